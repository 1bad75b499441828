"""SQLAlchemy base, column types and the per-dialect engine setup."""

from __future__ import annotations

import time
from contextvars import ContextVar
from datetime import UTC
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from psycopg.pq import TransactionStatus
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import DeclarativeBase

from webapp.sqlite_writers import TurnTakingConnection
from webapp.sqlite_writers import writers_lock_path

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base for every model; constraint names follow ``NAMING_CONVENTION``."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive, in UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware UTC datetime is required")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def result_processor(self, dialect: sa.Dialect, coltype: object):
        """One function per value (lists read thousands): on SQLite the stored text is
        parsed with ``datetime.fromisoformat``, several times faster than the regular
        expression SQLAlchemy's SQLite type uses."""
        if dialect.name == "sqlite":
            parse = datetime.fromisoformat

            def from_text(value: str | None) -> datetime | None:
                if value is None:
                    return None
                try:
                    # Stored naive, in UTC: parsed with its offset appended, several times
                    # faster than replacing the tzinfo afterwards.
                    parsed = parse(value + "+00:00")
                except ValueError:  # text written by something else, with an offset
                    parsed = parse(value)
                if parsed.tzinfo is UTC:
                    return parsed
                return (
                    parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
                )

            return from_text

        def to_utc(value: datetime | None) -> datetime | None:
            if value is None or value.tzinfo is UTC:
                return value
            if value.tzinfo is None:
                return value.replace(tzinfo=UTC)
            return value.astimezone(UTC)

        return to_utc


# JSON everywhere, JSONB on PostgreSQL (indexable, compact).
JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def written_limit(rows: int) -> sa.ColumnElement[int]:
    """``LIMIT rows`` written into the SQL (``select(...).limit(written_limit(n))``), not
    bound as a parameter, for page queries.

    PostgreSQL plans a prepared statement once (a generic plan) only when it knows what
    the statement costs, and a bound LIMIT hides that: psycopg prepares the page query,
    yet PostgreSQL planned every run anew, which cost it more than running the page.
    One statement per page size instead (a handful in practice).
    """
    if type(rows) is not int or rows < 0:  # never text into the SQL
        raise ValueError(f"a row count, not {rows!r}")
    return sa.literal_column(str(rows))


def insert_ignoring_conflicts(table: sa.Table, index_elements: list[str], dialect_name: str):
    """An INSERT that silently skips rows violating the unique key ``index_elements``."""
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=index_elements)
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=index_elements)


SQLITE_BUSY_TIMEOUT_MS = 10_000
# SQLite checkpoints the WAL into the database file (with an fsync) at the first commit
# after the WAL passes this many pages; 1,000 (4 MB) is SQLite's default.
SQLITE_CHECKPOINT_PAGES = 1000
# While a bulk import writes (each 2,000-row batch adds ~2,500 pages to the WAL): 40 MB.
SQLITE_BULK_CHECKPOINT_PAGES = 10_000
_BULK_CHECKPOINTS = "orginvites_bulk_checkpoints"

# True while serving a request that only reads: its SQLite transaction may then start
# deferred (a shared read lock in WAL mode), so readers never queue behind each other.
sqlite_reads_only: ContextVar[bool] = ContextVar("sqlite_reads_only", default=False)

# True while serving a request that reads first and writes at the end (an API create):
# its statements run outside any transaction until ``begin_writes`` (or the first
# statement that is not a SELECT) opens the write transaction. SQLite: ``BEGIN
# IMMEDIATE``, so the write lock is held for the writes only, not for the reads and the
# CPU work before them. PostgreSQL (when the request's session is in autocommit, see
# webapp.web.transactions): ``BEGIN``, so a write that is one statement can run on its
# own, without the ``BEGIN`` and ``COMMIT`` round trips.
in_late_writes: ContextVar[bool] = ContextVar("in_late_writes", default=False)


def begin_writes(connection: sa.Connection) -> None:
    """Open the write transaction now, if the connection's is not open yet.

    Only connections under ``in_late_writes`` can be without one: everywhere else this
    does nothing (the transaction began with the first statement). Call it before the
    checks that must hold until the commit (a member check, a quota).
    """
    dbapi_connection = connection.connection.dbapi_connection
    if connection.dialect.name == "postgresql":
        _begin_postgres_late_writes(dbapi_connection)
        return
    if connection.dialect.name != "sqlite":
        return
    if dbapi_connection.in_transaction:
        return
    _take_turn_and(dbapi_connection, lambda: connection.exec_driver_sql("BEGIN IMMEDIATE"))


def _begin_postgres_late_writes(dbapi_connection: Any) -> None:
    # An autocommit connection outside a transaction: psycopg sends BEGIN as asked, and
    # its commit() and rollback() (SQLAlchemy's, at the end of the request) then send
    # COMMIT or ROLLBACK because the server reports the open transaction.
    if (
        in_late_writes.get()
        and dbapi_connection.autocommit
        and dbapi_connection.info.transaction_status == TransactionStatus.IDLE
    ):
        dbapi_connection.execute("BEGIN")


def _take_turn_and(dbapi_connection: Any, begin: Any) -> None:
    if isinstance(dbapi_connection, TurnTakingConnection):
        # Wait for the writers before this one (see webapp.sqlite_writers).
        dbapi_connection.take_write_turn()
    try:
        begin()
    except BaseException:
        if isinstance(dbapi_connection, TurnTakingConnection):
            dbapi_connection.end_write_turn()
        raise


# A pooled PostgreSQL connection idle longer than this is pinged before use.
PING_AFTER_IDLE_SECONDS = 10.0


def _ping_connections_after_idling(engine: sa.Engine) -> None:
    """Check a pooled connection with a round trip only when it has been idle a while.

    SQLAlchemy's ``pool_pre_ping`` pings at every checkout: one extra round trip per
    request, a fifth of a list page's. A connection in steady use was just used; one
    that idled (where a server restart or a firewall's idle timeout bites) is pinged,
    and a dead one is replaced before the request sees it. A restart under steady
    traffic fails the statements in flight, as it would anyway, and invalidates the pool.
    """

    @event.listens_for(engine, "checkin")
    def _note_idle_since(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # noqa: BLE001 - any failure means: use another
            # The pool discards this connection and checks out a fresh one.
            raise sa.exc.DisconnectionError(str(error)) from error


def _sessions_in_utc(engine: sa.Engine) -> None:
    """Every PostgreSQL session in UTC, whatever the server's default.

    psycopg gives each ``timestamptz`` it reads the session's time zone: for ``UTC``
    that is ``datetime.UTC`` itself, which ``UTCDateTime`` passes through as it is, so a
    list page's hundred timestamps convert nothing (with the Debian default
    ``Etc/UTC``, each was converted again). Dates computed in SQL are UTC dates, as on
    SQLite.
    """

    @event.listens_for(engine, "connect")
    def _set_utc(dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection.info.parameter_status("TimeZone") == "UTC":
            return
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True  # a session setting, outside any transaction
        try:
            dbapi_connection.execute("SET TIME ZONE 'UTC'")
        finally:
            dbapi_connection.autocommit = autocommit


def configure_engine(
    engine: sa.Engine, sqlite_mmap_size: int = 0, sqlite_cache_kib: int = 2000
) -> None:
    """Apply the per-dialect session rules.

    SQLite: WAL, foreign keys, a busy timeout, a page cache and memory-mapped reads of
    the given sizes (a list page or a search reads pages all over a large file: with
    SQLite's default 2,000-page cache they are read from the file again and again),
    writers that take turns through a file lock (``webapp.sqlite_writers``), and every
    transaction opened with ``BEGIN IMMEDIATE`` so that a read-then-write transaction
    never fails half-way with SQLITE_BUSY (Python's sqlite3 would otherwise start
    transactions lazily, after the SELECTs) — except while ``sqlite_reads_only`` is
    set (GET requests).
    """
    if engine.dialect.name == "postgresql":
        _ping_connections_after_idling(engine)
        _sessions_in_utc(engine)

        @event.listens_for(engine, "before_cursor_execute")
        def _postgres_write_begins(
            connection: sa.Connection, _cursor: Any, statement: str, *_args: Any
        ) -> None:
            # As on SQLite (below): under late writes, whatever is not a SELECT runs
            # inside the write transaction, never on its own.
            if in_late_writes.get() and not statement.startswith("SELECT"):
                _begin_postgres_late_writes(connection.connection.dbapi_connection)

    if engine.dialect.name != "sqlite":
        return
    lock_path = writers_lock_path(engine.url.database)

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        if lock_path and isinstance(dbapi_connection, TurnTakingConnection):
            dbapi_connection.enable_turns(lock_path)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA mmap_size={int(sqlite_mmap_size)}")
        cursor.execute(f"PRAGMA cache_size=-{int(sqlite_cache_kib)}")
        cursor.close()

    @event.listens_for(engine, "checkin")
    def _sqlite_checkin(dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is not None and record.info.pop(_BULK_CHECKPOINTS, False):
            dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}")

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection: sa.Connection) -> None:
        if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return  # each statement is its own (read) transaction
        if sqlite_reads_only.get():
            # Straight to the driver: a statement through SQLAlchemy costs more than
            # SQLite takes to run it, on every read request.
            connection.connection.dbapi_connection.execute("BEGIN")
            return
        if in_late_writes.get():
            return  # reads run on their own until begin_writes (see in_late_writes)
        begin_writes(connection)

    @event.listens_for(engine, "before_cursor_execute")
    def _sqlite_write_begins(
        connection: sa.Connection, _cursor: Any, statement: str, *_args: Any
    ) -> None:
        # Under in_late_writes, whatever is not a SELECT writes (or opens a
        # savepoint): it runs inside the BEGIN IMMEDIATE transaction, never on its own.
        # (SQLAlchemy wraps a failure here like the statement's own.)
        if in_late_writes.get() and not statement.startswith(("SELECT", "BEGIN")):
            dbapi_connection = connection.connection.dbapi_connection
            if not dbapi_connection.in_transaction:
                _take_turn_and(
                    dbapi_connection, lambda: dbapi_connection.execute("BEGIN IMMEDIATE")
                )


def sqlite_bulk_batch(session: Any) -> None:
    """Call in a bulk-import batch's transaction: its connection then checkpoints the
    WAL only every ``SQLITE_BULK_CHECKPOINT_PAGES`` pages, instead of at every batch's
    commit (each time copying back and fsyncing index pages that the next batch changes
    again). Durability is unchanged: every commit is in the WAL as before. The default
    comes back when the connection returns to the pool (see ``configure_engine``)."""
    if session.get_bind().dialect.name == "sqlite":
        connection = session.connection()
        connection.exec_driver_sql(f"PRAGMA wal_autocheckpoint={SQLITE_BULK_CHECKPOINT_PAGES}")
        connection.info[_BULK_CHECKPOINTS] = True


def end_sqlite_bulk_writes(session: Any) -> None:
    """After a bulk import's last committed batch: checkpoint what it left in the WAL,
    so that no later request pays for it. PASSIVE: it never waits for anyone."""
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
