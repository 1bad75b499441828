"""Shared fixtures: a fresh app per test on SQLite and (when configured) on PostgreSQL.

Set ORGINVITES_TEST_DATABASE_URL (for example
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) to run every database test on
PostgreSQL too. The suite creates its own database on that server for the run and
drops it afterwards, so leftovers on the server never matter.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from webapp import create_app
from webapp.database import Base
from webapp.extensions import alembic
from webapp.extensions import db
from webapp.models import Organization
from webapp.services.organizations import create_organization
from webapp.services.organizations import update_organization

# Fixtures of the settings, members and activity page tests, of the API tests and of the
# compat API tests.
pytest_plugins = ["tests.dashboard_pages", "tests.api_support", "tests.compat_support"]

PG_URL_VARIABLE = "ORGINVITES_TEST_DATABASE_URL"
PG_SKIP_MESSAGE = (
    f"PostgreSQL tests skipped: {PG_URL_VARIABLE} is not set "
    "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
)
PUBLIC_BASE_URL = "https://invites.example.com"
APP_ORIGIN = "https://app.example.com"


def base_config(database_url: str, instance_path: Path, **extra) -> dict:
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "DATABASE_URL": database_url,
        "INSTANCE_PATH": str(instance_path),
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "MAIL_BACKEND": "dev",
        "RATELIMIT_STORAGE_URI": "memory://",
        "DATABASE_POOL_SIZE": 45,
    }
    config.update(extra)
    return config


def migrate(database_url: str, instance_path: Path) -> None:
    app = create_app(base_config(database_url, instance_path))
    with app.app_context():
        alembic.upgrade()
    dispose(app)


def dispose(app: Flask) -> None:
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once keeps the suite fast)."""
    folder = tmp_path_factory.mktemp("sqlite-template")
    path = folder / "template.sqlite3"
    migrate(f"sqlite:///{path}", folder)
    return path


@contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """Create an empty database on the configured server; drop it afterwards.

    Skips the test (with a message saying how to run it) when no server is configured.
    """
    server_url = os.environ.get(PG_URL_VARIABLE)
    if not server_url:
        pytest.skip(PG_SKIP_MESSAGE)
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test run, dropped at the end."""
    with fresh_postgres_database("orginvites_test") as url:
        migrate(url, Path(os.environ.get("TMPDIR", "/tmp")))
        yield url


def _truncate_postgres(app: Flask) -> None:
    """Empty every table so each test starts from the freshly migrated state."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with app.app_context():
        db.session.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.session.commit()


@pytest.fixture
def make_app(request, tmp_path) -> Callable[..., Flask]:
    """Build an app on a fresh database of the given backend ("sqlite" or "postgresql")."""
    apps: list[Flask] = []

    def factory(backend: str = "sqlite", **extra) -> Flask:
        if backend == "sqlite":
            template = request.getfixturevalue("sqlite_template")
            path = tmp_path / f"test-{len(apps)}.sqlite3"
            shutil.copy(template, path)
            url = f"sqlite:///{path}"
        else:
            url = request.getfixturevalue("postgres_url")
        app = create_app(base_config(url, tmp_path, **extra))
        if backend == "postgresql":
            _truncate_postgres(app)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        dispose(app)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> str:
    """Every test that uses this runs once per database."""
    return request.param


@pytest.fixture
def app(make_app, backend) -> Flask:
    return make_app(backend)


@pytest.fixture
def pg_app(make_app) -> Flask:
    """An app on PostgreSQL only (races, SKIP LOCKED)."""
    return make_app("postgresql")


@pytest.fixture
def session(app) -> Iterator[Session]:
    """The request-scoped session of an app context held for the whole test."""
    with app.app_context():
        yield db.session


@pytest.fixture
def make_org(session) -> Callable[..., Organization]:
    def factory(name: str = "Acme", slug: str | None = None, **settings) -> Organization:
        org = create_organization(session, name=name, slug=slug)
        settings.setdefault("allowed_redirect_origins", [APP_ORIGIN])
        update_organization(session, org, **settings)
        session.commit()
        return org

    return factory


@pytest.fixture
def org(make_org) -> Organization:
    return make_org()
