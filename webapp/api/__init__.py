"""The native REST API under /api/v1 (JSON only, API keys only) and its documentation."""

from __future__ import annotations

from flask import Flask


def load_operations() -> None:
    """Import every module that declares operations (each registers them on import)."""
    from webapp.api import docs  # noqa: F401
    from webapp.api import invitations  # noqa: F401
    from webapp.api import organizations  # noqa: F401
    from webapp.api import tickets  # noqa: F401


def register_api(app: Flask) -> None:
    """Mount the API: CSRF-exempt (it never reads cookies), errors as problem+json."""
    from webapp.api.blueprint import blueprint
    from webapp.api.docs import docs_blueprint
    from webapp.api.problems import problem_from_http_error
    from webapp.extensions import csrf
    from webapp.web.errors import register_error_renderer
    from webapp.web.sessions import without_cookie_sessions

    load_operations()
    csrf.exempt(blueprint)
    app.register_blueprint(blueprint)
    app.register_blueprint(docs_blueprint)
    register_error_renderer(app, "/api/v1", problem_from_http_error)
    without_cookie_sessions(app, "/api/v1")
