"""OrgInvites: organization invitations by email. ``create_app`` builds the application."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask

from webapp.config import ConfigError
from webapp.config import from_environment

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(__file__).resolve().parent
DEV_BASE_URL = "http://127.0.0.1:5000"


def create_app(
    test_config: Mapping[str, Any] | None = None, *, require_secret_key: bool = True
) -> Flask:
    """Build the application: settings, extensions, blueprints, error handlers, commands.

    ``test_config`` replaces the environment (tests never read ``ORGINVITES_*``).
    The CLI passes ``require_secret_key=False`` so that commands which need no
    key (``db upgrade``) work before one is configured.
    """
    settings = from_environment({} if test_config is not None else None)
    if test_config is not None:
        settings.update(test_config)

    from webapp.application import OrgInvitesFlask

    app = OrgInvitesFlask(
        __name__,
        instance_path=settings.get("INSTANCE_PATH") or None,
        instance_relative_config=True,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    _apply_settings(app, settings, require_secret_key)
    register_extensions(app)
    register_blueprints(app)
    register_commands(app)
    if test_config is None:
        # A process that serves (gunicorn builds each worker's app so) or runs a
        # command: one app for the process's life. (Tests build many; not for them.)
        from webapp.application import freeze_startup_objects

        freeze_startup_objects()
    return app


def _apply_settings(app: Flask, settings: dict[str, Any], require_secret_key: bool) -> None:
    from webapp.rate_limit_storage import storage_uri
    from webapp.secrets_store import read_instance_secret
    from webapp.sqlite_writers import TurnTakingConnection

    app.config.update({k: v for k, v in settings.items() if k not in {"DATABASE_URL"}})
    secret = settings.get("SECRET_KEY") or read_instance_secret(app.instance_path)
    if not secret and require_secret_key:
        raise ConfigError(
            "ORGINVITES_SECRET_KEY is not set. Set it to a long random string "
            "(python3 -c 'import secrets; print(secrets.token_urlsafe(48))'), "
            "or use `orginvites demo` / `orginvites run` for local development."
        )
    app.config["SECRET_KEY"] = secret
    # Links in emails are built from this, never from the request's Host header.
    app.config["PUBLIC_BASE_URL_IS_DEFAULT"] = not settings.get("PUBLIC_BASE_URL")
    app.config["PUBLIC_BASE_URL"] = settings.get("PUBLIC_BASE_URL") or DEV_BASE_URL

    url = (
        settings.get("DATABASE_URL")
        or f"sqlite:///{Path(app.instance_path) / 'orginvites.sqlite3'}"
    )
    if url.startswith("sqlite"):
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        engine = {
            "url": url,
            "connect_args": {
                "check_same_thread": False,
                "timeout": 10,
                "factory": TurnTakingConnection,
            },
        }
    else:
        pool_size = settings.get("DATABASE_POOL_SIZE") or 10
        engine = {
            "url": url,
            "pool_size": pool_size,
            "max_overflow": pool_size,
        }
    app.config["DATABASE_URL"] = url
    app.config["SQLALCHEMY_ENGINES"] = {"default": engine}
    app.config["ALEMBIC"] = {"script_location": str(PACKAGE_DIR / "migrations")}
    app.config["ALEMBIC_CONTEXT"] = {"include_object": include_in_migrations}
    # Flask's defaults hold the key with None (no limit): set it, don't setdefault it.
    app.config["MAX_CONTENT_LENGTH"] = settings.get("MAX_CONTENT_LENGTH") or 1024 * 1024
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=8),
        # Eight hours from sign-in (or the session's last change), not from the last
        # request: an absolute lifetime, and no re-signed cookie on every response.
        SESSION_REFRESH_EACH_REQUEST=False,
        REMEMBER_COOKIE_DURATION=timedelta(hours=8),
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=settings.get("SESSION_COOKIE_SECURE", True),
        RATELIMIT_STORAGE_URI=storage_uri(settings.get("RATELIMIT_STORAGE_URI") or "memory://"),
        RATELIMIT_HEADERS_ENABLED=True,
        # A form stays valid as long as the session (8 h), not one hour.
        WTF_CSRF_TIME_LIMIT=8 * 3600,
    )


def include_in_migrations(obj, name, type_, reflected, compare_to) -> bool:
    """Autogenerate ignores what migrations manage by hand: the search indexes."""
    if type_ == "table" and name and name.startswith("invitation_email_search"):
        return False
    return not (type_ == "index" and name == "ix_invitations_email_trgm")


def register_extensions(app: Flask) -> None:
    """Bind the extension singletons and apply the per-database session rules."""
    from webapp import auth  # noqa: F401  (registers the Flask-Login user loader)
    from webapp import models  # noqa: F401  (registers every table on the metadata)
    from webapp.database import configure_engine
    from webapp.extensions import alembic
    from webapp.extensions import csrf
    from webapp.extensions import db
    from webapp.extensions import limiter
    from webapp.extensions import login_manager
    from webapp.extensions import skip_limiter_checks_where_no_limit_applies

    db.init_app(app)
    _drop_async_session_teardown(app)
    with app.app_context():
        configure_engine(
            db.engine,
            sqlite_mmap_size=app.config["SQLITE_MMAP_SIZE"],
            sqlite_cache_kib=app.config["SQLITE_CACHE_SIZE_KIB"],
        )
    alembic.init_app(app)
    # The limiter first: its check runs before CSRF's, so floods of bad posts are limited too.
    limiter.init_app(app)
    skip_limiter_checks_where_no_limit_applies(app)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.session_protection = "strong"


def _drop_async_session_teardown(app: Flask) -> None:
    """Flask-SQLAlchemy-Lite also closes async sessions, with an async teardown function
    that Flask runs through asgiref: a thread and an event loop on every request (about a
    millisecond). OrgInvites has no async engines, so the function has nothing to do."""
    app.teardown_appcontext_funcs[:] = [
        f for f in app.teardown_appcontext_funcs if f.__name__ != "_close_async_sessions"
    ]


def register_blueprints(app: Flask) -> None:
    from webapp.api import register_api
    from webapp.compat import register_compat_apis
    from webapp.web.acceptance import blueprint as acceptance_blueprint
    from webapp.web.dashboard.activity import blueprint as activity_blueprint
    from webapp.web.dashboard.admin import blueprint as admin_blueprint
    from webapp.web.dashboard.auth import blueprint as auth_blueprint
    from webapp.web.dashboard.imports import blueprint as imports_blueprint
    from webapp.web.dashboard.invitations import blueprint as invitations_blueprint
    from webapp.web.dashboard.members import blueprint as members_blueprint
    from webapp.web.dashboard.overview import blueprint as overview_blueprint
    from webapp.web.dashboard.settings import blueprint as settings_blueprint
    from webapp.web.dev_mailbox import blueprint as dev_mailbox_blueprint
    from webapp.web.errors import register_error_handlers
    from webapp.web.filters import register_filters
    from webapp.web.home import blueprint as home_blueprint
    from webapp.web.invitation_rows import register_row_builders
    from webapp.web.security import register_security_headers
    from webapp.web.transactions import register_read_only_requests

    for blueprint in (
        home_blueprint,
        auth_blueprint,
        invitations_blueprint,
        imports_blueprint,
        overview_blueprint,
        members_blueprint,
        activity_blueprint,
        settings_blueprint,
        admin_blueprint,
        acceptance_blueprint,
        dev_mailbox_blueprint,
    ):
        app.register_blueprint(blueprint)
    register_api(app)
    register_compat_apis(app)
    register_error_handlers(app)
    register_security_headers(app)
    register_filters(app)
    register_row_builders(app)
    register_read_only_requests(app)


def register_commands(app: Flask) -> None:
    from webapp.cli import register_command_groups

    register_command_groups(app)
