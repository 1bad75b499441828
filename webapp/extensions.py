"""Extension singletons, unbound; ``create_app`` binds them with ``init_app``."""

from collections.abc import Callable
from typing import Any

from flask import Flask
from flask import request
from flask.globals import request_ctx
from flask_alembic import Alembic
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_sqlalchemy_lite import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from webapp.database import Base

db = SQLAlchemy()
alembic = Alembic(metadatas=Base.metadata, run_mkdir=False)
csrf = CSRFProtect()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address)

# Blueprints whose requests count against the API's own budgets (webapp.api.rate_limits):
# Flask-Limiter's per-request check skips them (it has no limit for them, only its cost).
SELF_LIMITED_BLUEPRINTS: set[str] = set()


# Blueprints with limits on reading requests (GET, HEAD) too: the acceptance pages count
# every request per address. Elsewhere only form posts are limited (sign-in, password
# reset), so reading requests skip Flask-Limiter's per-request check and its cost.
READ_LIMITED_BLUEPRINTS: set[str] = set()


@limiter.request_filter
def _no_limit_applies() -> bool:
    blueprint = request.blueprint
    if blueprint in SELF_LIMITED_BLUEPRINTS:
        return True
    return request.method in ("GET", "HEAD") and blueprint not in READ_LIMITED_BLUEPRINTS


def skip_limiter_checks_where_no_limit_applies(app: Flask) -> None:
    """Run Flask-Limiter's per-request check only where ``_no_limit_applies`` says a limit
    may apply. Its own request filter gives the same answer, but only after it has
    identified the request and gathered its limits: work on every dashboard read and
    API call for nothing. Its after-request and teardown hooks then run only where its
    per-request state was made."""
    hooks = app.before_request_funcs[None]
    index = hooks.index(limiter._check_request_limit)
    check = hooks[index]

    def check_request_limit() -> None:
        if not _no_limit_applies():
            check()

    hooks[index] = check_request_limit

    # Its after-request and teardown hooks read and reset the request's limiter state:
    # where nothing made that state (no check ran), there is nothing to do.
    def only_with_limiter_state(hook: Callable[[Any], Any], passes_through: bool) -> Callable:
        def run_if_limited(value: Any) -> Any:
            if hasattr(request_ctx._get_current_object(), "_limiter_request_context"):
                return hook(value)
            return value if passes_through else None

        return run_if_limited

    after = app.after_request_funcs[None]
    for position, hook in enumerate(after):
        if getattr(hook, "func", None) is Limiter._Limiter__inject_headers:
            after[position] = only_with_limiter_state(hook, passes_through=True)
    teardown = app.teardown_request_funcs[None]
    for position, hook in enumerate(teardown):
        if getattr(hook, "__func__", None) is Limiter._Limiter__release_context:
            teardown[position] = only_with_limiter_state(hook, passes_through=False)
