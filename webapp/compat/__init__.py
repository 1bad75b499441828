"""Wire-compatible endpoints for the Clerk, OpenAI and Anthropic SDKs (docs/compat.md)."""

from __future__ import annotations

from flask import Flask

from webapp.web.errors import register_error_renderer
from webapp.web.sessions import without_cookie_sessions


def register_compat_apis(app: Flask) -> None:
    """Mount the three vendor APIs; every error under their prefixes is in their envelope."""
    from webapp.compat import anthropic
    from webapp.compat import clerk
    from webapp.compat import openai

    for vendor in (clerk, openai, anthropic):
        app.register_blueprint(vendor.blueprint)
        register_error_renderer(app, vendor.PREFIX, vendor.render_http_error)
        without_cookie_sessions(app, vendor.PREFIX)
