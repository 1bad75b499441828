"""Migrations build, on both databases, exactly the schema the models describe."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from tests.conftest import base_config
from tests.conftest import fresh_postgres_database
from webapp import create_app
from webapp.database import Base
from webapp.extensions import alembic
from webapp.extensions import db


@pytest.fixture
def empty_database_url(backend, tmp_path) -> Iterator[str]:
    """A database with no tables at all, of the parametrised backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    with fresh_postgres_database("orginvites_migration") as url:
        yield url


@pytest.fixture
def empty_app(empty_database_url, tmp_path):
    app = create_app(base_config(empty_database_url, tmp_path))
    yield app
    with app.app_context():
        db.engine.dispose()


def test_upgrade_from_empty_matches_the_models(empty_app):
    """After `db upgrade` autogenerate finds no difference between database and models."""
    with empty_app.app_context():
        assert alembic.needs_upgrade()
        alembic.upgrade()
        assert not alembic.needs_upgrade()
        assert alembic.compare_metadata() == []
    with empty_app.app_context():
        tables = set(sa.inspect(db.engine).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables


def test_downgrade_to_base_and_upgrade_again(empty_app):
    """The migration is reversible: base leaves no tables, and upgrading again works."""
    with empty_app.app_context():
        alembic.upgrade()
        alembic.downgrade("base")
    with empty_app.app_context():
        remaining = set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}
        assert remaining == set()
    with empty_app.app_context():
        alembic.upgrade()
        assert alembic.compare_metadata() == []


INSERT_ORG = sa.text(
    "INSERT INTO organizations (id, name, slug, default_role, default_expiry_seconds,"
    " allowed_redirect_origins, public_metadata, created_at, updated_at)"
    " VALUES ('org_x', 'X', 'x', 'member', 3600, '[]', '{}', :now, :now)"
)
INSERT_INVITATION = sa.text(
    "INSERT INTO invitations (id, org_id, email, email_key, role, status, source,"
    " public_metadata, private_metadata, project_grants, token_hash, created_at,"
    " updated_at, expires_at, revoked_at, send_count)"
    " VALUES (:id, 'org_x', 'a@example.com', 'a@example.com', 'member', :status, 'api',"
    " '{}', '{}', '[]', :id, :now, :now, :now, :now, 0)"
)
NOW = {"now": "2026-01-01 00:00:00"}


def test_one_pending_invitation_per_email_is_a_database_rule(app):
    """The partial unique index itself refuses a second pending row (no Python involved)."""
    with app.app_context():
        db.session.execute(INSERT_ORG, NOW)
        # Terminal rows for the same address are fine, any number of them.
        for n, status in enumerate(["revoked", "expired", "revoked"]):
            db.session.execute(INSERT_INVITATION, {**NOW, "id": f"inv_t{n}", "status": status})
        db.session.execute(INSERT_INVITATION, {**NOW, "id": "inv_p1", "status": "pending"})
        db.session.commit()
        with pytest.raises(IntegrityError):
            db.session.execute(INSERT_INVITATION, {**NOW, "id": "inv_p2", "status": "pending"})
        db.session.rollback()


def test_status_check_constraint_refuses_unknown_status(app):
    """The database refuses a status outside the five known ones."""
    with app.app_context():
        db.session.execute(INSERT_ORG, NOW)
        with pytest.raises(IntegrityError):
            db.session.execute(INSERT_INVITATION, {**NOW, "id": "inv_b", "status": "bogus"})
        db.session.rollback()
