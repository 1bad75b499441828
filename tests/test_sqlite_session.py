"""SQLite runs with WAL, foreign keys, a busy timeout and BEGIN IMMEDIATE transactions."""

from __future__ import annotations

import sqlite3
from datetime import UTC
from datetime import datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import text

from webapp.database import SQLITE_BUSY_TIMEOUT_MS
from webapp.database import UTCDateTime
from webapp.extensions import db


@pytest.fixture
def sqlite_app(make_app):
    return make_app("sqlite")


def test_pragmas_are_set_on_every_connection(sqlite_app):
    """WAL journal, foreign keys on and a busy timeout."""
    with sqlite_app.app_context():
        assert db.session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert db.session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert db.session.execute(text("PRAGMA busy_timeout")).scalar() == SQLITE_BUSY_TIMEOUT_MS
        # A larger page cache (pages of a large file read again and again into a
        # 2,000-page cache made a search several times slower); no memory mapping
        # unless asked for (mapped pages count in the process's resident memory).
        assert db.session.execute(text("PRAGMA mmap_size")).scalar() == 0
        assert db.session.execute(text("PRAGMA cache_size")).scalar() == -16 * 1024


def test_a_transaction_takes_the_write_lock_at_its_first_statement(sqlite_app):
    """Even a SELECT opens the transaction with BEGIN IMMEDIATE, so writers queue up front."""
    with sqlite_app.app_context():
        db.session.execute(text("SELECT 1"))  # opens the transaction
        path = db.engine.url.database
        other = sqlite3.connect(path, timeout=0.1, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()
        db.session.rollback()
        other = sqlite3.connect(path, timeout=0.1, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # free again once our transaction ended
        other.execute("ROLLBACK")
        other.close()


def test_foreign_keys_are_enforced(sqlite_app):
    """A membership pointing at no organization is refused."""
    from sqlalchemy.exc import IntegrityError

    with sqlite_app.app_context(), pytest.raises(IntegrityError):
        db.session.execute(
            text(
                "INSERT INTO memberships (id, org_id, user_id, role, public_metadata,"
                " private_metadata, created_at, updated_at)"
                " VALUES ('mem_x', 'org_missing', 'user_missing', 'member', '{}', '{}',"
                " '2026-01-01', '2026-01-01')"
            )
        )


def test_read_only_requests_do_not_take_the_write_lock(sqlite_app):
    """While a GET is served its transaction is deferred: writers elsewhere are not blocked."""
    from webapp.database import sqlite_reads_only

    token = sqlite_reads_only.set(True)
    try:
        with sqlite_app.app_context():
            db.session.execute(text("SELECT 1"))
            other = sqlite3.connect(db.engine.url.database, timeout=0.1, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")  # not locked out
            other.execute("ROLLBACK")
            other.close()
            db.session.rollback()
    finally:
        sqlite_reads_only.reset(token)


def test_get_requests_are_marked_read_only_and_posts_are_not(sqlite_app):
    """The flag is set for GET/HEAD requests only, and cleared after each request."""
    from flask import request

    from webapp.database import sqlite_reads_only

    seen = {}

    @sqlite_app.after_request
    def record(response):
        seen[request.method] = sqlite_reads_only.get()
        return response

    client = sqlite_app.test_client()
    client.get("/healthz")
    client.post("/login", data={})
    assert seen == {"GET": True, "POST": False}
    assert sqlite_reads_only.get() is False


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("2026-06-01 12:34:56.123456", datetime(2026, 6, 1, 12, 34, 56, 123456, tzinfo=UTC)),
        ("2026-06-01 12:34:56", datetime(2026, 6, 1, 12, 34, 56, tzinfo=UTC)),
        # Text another tool wrote with an offset is moved to UTC.
        ("2026-06-01T14:34:56+02:00", datetime(2026, 6, 1, 12, 34, 56, tzinfo=UTC)),
        ("2026-06-01", datetime(2026, 6, 1, tzinfo=UTC)),
    ],
)
def test_stored_times_read_back_as_aware_utc(sqlite_app, stored, expected):
    """Datetimes are stored naive (in UTC) and always read back aware, in UTC."""
    column = sa.column("moment", UTCDateTime())
    with sqlite_app.app_context():
        value = db.session.execute(
            sa.select(column).select_from(sa.text(f"(SELECT '{stored}' AS moment)"))
        ).scalar()
    assert value == expected
    assert value.tzinfo is UTC
