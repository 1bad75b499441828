"""PostgreSQL: pooled connections are pinged only after idling, and a dead one is
replaced before a request uses it."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import text

from webapp.extensions import db


def _backend_pid(app) -> int:
    with app.app_context():
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        db.session.rollback()
    return pid


def _terminate(app, pid: int) -> None:
    admin = sa.create_engine(app.config["DATABASE_URL"], isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()


def test_a_connection_that_died_while_idle_is_replaced_before_use(pg_app, monkeypatch):
    monkeypatch.setattr("webapp.database.PING_AFTER_IDLE_SECONDS", 0.0)
    pid = _backend_pid(pg_app)
    _terminate(pg_app, pid)
    with pg_app.app_context():
        assert db.session.execute(text("SELECT 1")).scalar_one() == 1
    assert _backend_pid(pg_app) != pid


def test_without_the_ping_the_dead_connection_would_fail_the_request(pg_app, monkeypatch):
    """The counterpart: what the ping saves a request from."""
    monkeypatch.setattr("webapp.database.PING_AFTER_IDLE_SECONDS", 3600.0)
    pid = _backend_pid(pg_app)
    _terminate(pg_app, pid)
    with pg_app.app_context():
        try:
            db.session.execute(text("SELECT 1"))
            failed = False
        except sa.exc.OperationalError:
            failed = True
        db.session.rollback()
    assert failed


def test_a_connection_in_steady_use_is_not_pinged(pg_app, monkeypatch):
    with pg_app.app_context():
        dialect = db.engine.dialect
    pings = []
    original = dialect.do_ping
    monkeypatch.setattr(dialect, "do_ping", lambda c: (pings.append(c), original(c))[1])
    for _ in range(5):
        _backend_pid(pg_app)
    assert pings == []
    monkeypatch.setattr("webapp.database.PING_AFTER_IDLE_SECONDS", 0.0)
    _backend_pid(pg_app)
    assert len(pings) == 1
