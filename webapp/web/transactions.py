"""Requests that only read run without a write transaction.

SQLite: their transaction starts deferred (a shared read lock in WAL mode; see
webapp.database), so readers never queue behind each other or behind writers.
PostgreSQL: their statements run in autocommit, which saves the ``BEGIN`` and
``ROLLBACK`` round trips; under READ COMMITTED each statement sees its own snapshot
inside a transaction too, so reads lose nothing.

Late writers (``late_writer``: an API create without an Idempotency-Key) start the same
way on PostgreSQL: their reads in autocommit, until ``webapp.database.begin_writes``
(or their first statement that is not a SELECT) opens the transaction; a write that is
a single statement may run on its own. (With an Idempotency-Key, the stored answer
must commit with the write: one transaction from the start.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from flask import current_app
from flask import request

from webapp.database import sqlite_reads_only
from webapp.extensions import db

_WRITES_ON_GET = "writes_on_get"
_LATE_WRITER = "late_writer"


def writes_on_get(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a GET view that writes (it keeps a write transaction)."""
    setattr(view, _WRITES_ON_GET, True)
    return view


def late_writer(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a view that reads first and opens its write transaction itself (see
    ``webapp.database.in_late_writes``)."""
    setattr(view, _LATE_WRITER, True)
    return view


def register_read_only_requests(app: Flask) -> None:
    with app.app_context():
        engine = db.engine
    # Shares the engine's pool; connections go back with their isolation level reset.
    autocommit_engine = (
        engine.execution_options(isolation_level="AUTOCOMMIT")
        if engine.dialect.name == "postgresql"
        else None
    )

    @app.before_request
    def _mark_reads() -> None:
        view = current_app.view_functions.get(request.endpoint or "")
        reads_only = request.method in ("GET", "HEAD") and not getattr(view, _WRITES_ON_GET, False)
        request.environ["orginvites.reads_token"] = sqlite_reads_only.set(reads_only)
        writes_late = (
            getattr(view, _LATE_WRITER, False) and "Idempotency-Key" not in request.headers
        )
        if (reads_only or writes_late) and autocommit_engine is not None:
            db.session.bind = autocommit_engine
            request.environ["orginvites.autocommit_reads"] = True

    @app.teardown_request
    def _unmark(_exc: BaseException | None) -> None:
        token = request.environ.pop("orginvites.reads_token", None)
        if token is not None:
            sqlite_reads_only.reset(token)
        if request.environ.pop("orginvites.autocommit_reads", False):
            # The session outlives the request when a caller holds the app context.
            db.session.close()
            db.session.bind = engine
