"""The single-create path: what it answers, what it writes, and (SQLite) when it locks."""

from __future__ import annotations

import sqlite3
from datetime import UTC
from datetime import timedelta
from datetime import timezone

import psycopg
import pytest
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import text

from tests.api_support import assert_problem
from tests.api_support import build_world
from tests.conftest import APP_ORIGIN
from tests.statements import driver_statements
from webapp.clock import utcnow
from webapp.database import in_late_writes
from webapp.extensions import db
from webapp.ids import new_id
from webapp.models import AuditEvent
from webapp.models import Invitation
from webapp.models import InvitationCounter
from webapp.models import Membership
from webapp.models import User
from webapp.services.actors import SYSTEM
from webapp.services.errors import AlreadyMember
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import create_invitation
from webapp.services.organizations import create_organization
from webapp.services.organizations import create_project
from webapp.services.organizations import get_organization

INVITATIONS = "/organizations/acme/invitations"


def test_the_answer_is_what_a_later_read_gives(api):
    """The created invitation is built from the values written, not read back: every
    field must equal what GET answers (UTC times, metadata, projects, redirect)."""
    with api.app.app_context():
        project = create_project(db.session, get_organization(db.session, "acme"), name="Web")
        db.session.commit()
        project_id = project.id
    expires = (utcnow() + timedelta(days=3)).astimezone(timezone(timedelta(hours=2)))
    created = api.invite(
        "Ada@Example.com",
        role="admin",
        expires_at=expires.isoformat(),
        redirect_url=f"{APP_ORIGIN}/welcome",
        public_metadata={"team": "red", "n": [1, 2]},
        private_metadata={"crm": "x1"},
        projects=[{"id": project_id, "role": "owner"}],
        message="Welcome aboard",
        notify=False,
    )
    assert created.pop("accept_url")
    read = api.call("GET", f"{INVITATIONS}/{created['id']}").get_json()
    assert created == read
    assert read["expires_at"] == expires.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_one_create_writes_its_row_event_and_counter(api):
    before = _pending_count(api)
    created = api.invite("a@example.com", notify=False)
    with api.app.app_context():
        events = db.session.scalars(
            select(AuditEvent.type).where(AuditEvent.invitation_id == created["id"])
        ).all()
        assert events == ["invitation.created"]
        assert db.session.get(Invitation, created["id"]).status == "pending"
    assert _pending_count(api) == before + 1


def test_a_lapsed_pending_invitation_is_expired_and_replaced(api, time_machine):
    """The address's own pending invitation, past its expiry but not yet swept, is
    expired (status, counters) before the new one goes in."""
    first = api.invite("late@example.com", expires_in_days=1)
    time_machine.move_to(utcnow() + timedelta(days=2))
    second = api.invite("late@example.com")
    assert second["id"] != first["id"]
    with api.app.app_context():
        assert db.session.get(Invitation, first["id"]).status == "expired"
        counts = dict(
            db.session.execute(
                select(InvitationCounter.status, InvitationCounter.count).where(
                    InvitationCounter.org_id == api.org_id
                )
            ).all()
        )
    assert counts["pending"] == 1 and counts["expired"] == 1


def test_a_refused_create_writes_nothing(api):
    api.invite("dup@example.com")
    before = _pending_count(api)
    with api.app.app_context():
        events = db.session.scalar(select(func.count()).select_from(AuditEvent))
    assert_problem(
        api.call("POST", INVITATIONS, json={"email": "dup@example.com"}), 409, "already_invited"
    )
    assert _pending_count(api) == before
    with api.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == events


def _pending_count(api) -> int:
    with api.app.app_context():
        return db.session.scalar(
            select(InvitationCounter.count).where(
                InvitationCounter.org_id == api.org_id, InvitationCounter.status == "pending"
            )
        )


# ------------------------------------------------------------------ SQLite locking


@pytest.fixture
def sqlite_api(make_app):
    return build_world(make_app("sqlite"))


def test_sqlite_create_takes_the_write_lock_after_its_reads(sqlite_api):
    """Key, organization and role are read before BEGIN IMMEDIATE; the address checks,
    the writes and the commit come after it."""
    sqlite_api.invite("first@example.com")  # the key's last-used time is now fresh
    with sqlite_api.app.app_context():
        engine = db.engine
    with driver_statements(engine) as top:
        sqlite_api.invite("ada@example.com", notify=False)
    begin = top.index("BEGIN IMMEDIATE")
    before, after = top[:begin], top[begin + 1 :]
    # the org key's organization is read with the key, not looked up again
    assert any("FROM api_keys LEFT OUTER JOIN organizations" in s for s in before)
    assert not any(s.startswith("SELECT") and "FROM organizations" in s for s in top)
    assert any("FROM org_roles" in s for s in before)
    assert all(s.startswith("SELECT") for s in before)
    assert any("FROM memberships" in s for s in after)
    assert any(s.startswith("INSERT INTO invitations") for s in after)
    assert after[-1] == "COMMIT"


def test_late_writes_read_without_the_lock_and_write_inside_a_transaction(make_app):
    app = make_app("sqlite")
    with app.app_context():
        create_organization(db.session, name="Acme", slug="acme")
        db.session.commit()
    token = in_late_writes.set(True)
    try:
        with app.app_context():
            path = db.engine.url.database
            db.session.execute(text("SELECT count(*) FROM organizations"))
            other = sqlite3.connect(path, timeout=0.1, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")  # the read took no lock
            other.execute("ROLLBACK")
            db.session.execute(text("UPDATE organizations SET name = 'Changed'"))
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")  # the write opened BEGIN IMMEDIATE first
            db.session.rollback()
            other.execute("BEGIN IMMEDIATE")  # free again
            other.execute("ROLLBACK")
            other.close()
            # Rolled back with its transaction, not committed on its own.
            assert db.session.scalar(text("SELECT name FROM organizations")) == "Acme"
            db.session.rollback()
    finally:
        in_late_writes.reset(token)


def test_a_member_added_but_not_yet_flushed_is_refused(session, org):
    """The create's statements run on the driver's cursor (no autoflush): a membership
    the caller added in the same transaction must still count."""
    user = User(id=new_id("user"), email="bob@example.com", email_key="bob@example.com")
    session.add(user)
    session.add(
        Membership(
            id=new_id("mem"),
            org_id=org.id,
            user_id=user.id,
            role="member",
            public_metadata={},
            private_metadata={},
        )
    )
    with pytest.raises(AlreadyMember):
        create_invitation(session, org, InvitationRequest(email="bob@example.com"), actor=SYSTEM)


# ------------------------------------------------------------- PostgreSQL round trips


@pytest.fixture
def pg_api(make_app):
    return build_world(make_app("postgresql"))


@pytest.fixture
def pg_commands(monkeypatch):
    """Every statement and every command (BEGIN, COMMIT, ROLLBACK: psycopg sends those
    itself) that psycopg sends, in order."""
    sent: list[str] = []
    execute = psycopg.Cursor.execute
    exec_command = psycopg.Connection._exec_command

    def recording_execute(self, query, params=None, **kwargs):
        sent.append(" ".join(str(query).split()))
        return execute(self, query, params, **kwargs)

    def recording_command(self, command, *args, **kwargs):
        sent.append(bytes(command).decode() if isinstance(command, bytes) else str(command))
        return exec_command(self, command, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", recording_execute)
    monkeypatch.setattr(psycopg.Connection, "_exec_command", recording_command)
    return sent


def test_a_postgres_create_is_one_statement_outside_a_transaction(pg_api, pg_commands):
    """Three round trips: the key (with its organization), the role, and the one
    statement that writes the invitation, its event and its counter (atomic on its own).
    No BEGIN and no COMMIT."""
    pg_api.invite("first@example.com")  # the key's last-used time is now fresh
    pg_commands.clear()
    created = pg_api.invite("ada@example.com", notify=False)
    assert [s.split(" ", 1)[0] for s in pg_commands] == ["SELECT", "SELECT", "WITH"]
    assert "FROM api_keys" in pg_commands[0] and "FROM org_roles" in pg_commands[1]
    with pg_api.app.app_context():
        assert db.session.get(Invitation, created["id"]).status == "pending"
        events = db.session.scalars(
            select(AuditEvent.type).where(AuditEvent.invitation_id == created["id"])
        ).all()
        assert events == ["invitation.created"]


def test_a_postgres_create_that_needs_more_than_one_statement_is_one_transaction(
    pg_api, pg_commands, time_machine
):
    """A lapsed pending invitation of the address: the one statement inserts nothing,
    and the steps that follow (expire it, insert the new one) run in one transaction."""
    first = pg_api.invite("late@example.com", expires_in_days=1)
    time_machine.move_to(utcnow() + timedelta(days=2))
    pg_api.invite("someone@example.com")  # fresh last-used time again
    pg_commands.clear()
    second = pg_api.invite("late@example.com")
    kinds = [s.split(" ", 1)[0] for s in pg_commands]
    begin = kinds.index("BEGIN")
    assert kinds[: begin + 1] == ["SELECT", "SELECT", "WITH", "BEGIN"]
    assert kinds[-1] == "COMMIT" and kinds.count("COMMIT") == 1
    assert any(s.startswith("UPDATE invitations") for s in pg_commands[begin:])
    with pg_api.app.app_context():
        assert db.session.get(Invitation, first["id"]).status == "expired"
        assert db.session.get(Invitation, second["id"]).status == "pending"


def test_a_postgres_create_with_an_idempotency_key_is_one_transaction(pg_api, pg_commands):
    """The stored answer commits with the invitation, in one transaction."""
    pg_api.invite("first@example.com")
    pg_commands.clear()
    response = pg_api.call(
        "POST",
        INVITATIONS,
        json={"email": "ada@example.com"},
        headers={"Idempotency-Key": "create-ada"},
    )
    assert response.status_code == 201
    # (psycopg sends the BEGIN it opens a transaction with just before the statement
    # that needs it: the recording lists it after that statement.)
    write = next(i for i, s in enumerate(pg_commands) if s.startswith("WITH"))
    assert pg_commands[write - 1].startswith("BEGIN")
    assert [s.split(" ", 1)[0] for s in pg_commands[write:]] == ["WITH", "UPDATE", "COMMIT"]
    assert pg_commands[write + 1].startswith("UPDATE idempotent_requests")


def test_postgres_late_writes_begin_before_a_write(pg_app):
    """Under late writes on an autocommit session, a statement that writes opens the
    transaction first: rolled back with it, not committed on its own."""
    with pg_app.app_context():
        create_organization(db.session, name="Acme", slug="acme")
        db.session.commit()
        autocommit = db.engine.execution_options(isolation_level="AUTOCOMMIT")
    token = in_late_writes.set(True)
    try:
        with pg_app.app_context():
            db.session.bind = autocommit
            db.session.execute(text("SELECT count(*) FROM organizations"))
            db.session.execute(text("UPDATE organizations SET name = 'Changed'"))
            db.session.rollback()
            assert db.session.scalar(text("SELECT name FROM organizations")) == "Acme"
            db.session.close()
    finally:
        in_late_writes.reset(token)
