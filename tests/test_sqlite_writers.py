"""SQLite writers take turns through a file lock (webapp.sqlite_writers).

Each test gives the waiting writer a SQLite busy timeout of 50 ms while another writer
holds the database for longer: without the turns it would fail with "database is
locked"; with them it waits for the turn and then writes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from webapp.database import configure_engine
from webapp.sqlite_writers import TurnTakingConnection
from webapp.sqlite_writers import writers_lock_path

HOLD_SECONDS = 0.4


def _engine(path: Path, busy_timeout_ms: int = 50) -> sa.Engine:
    engine = sa.create_engine(
        f"sqlite:///{path}",
        connect_args={"factory": TurnTakingConnection, "check_same_thread": False},
    )
    configure_engine(engine)

    @sa.event.listens_for(engine, "connect")
    def _short_busy_timeout(dbapi_connection, _record) -> None:
        # After configure_engine's own PRAGMAs, which set the app's 10 s.
        dbapi_connection.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")

    return engine


@pytest.fixture
def database(tmp_path) -> Path:
    path = tmp_path / "writers.sqlite3"
    engine = _engine(path)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (n INTEGER)")
    engine.dispose()
    return path


def _hold_then(engine: sa.Engine, ending: str, held: threading.Event) -> None:
    connection = engine.connect()
    transaction = connection.begin()
    connection.exec_driver_sql("INSERT INTO t VALUES (1)")
    held.set()
    threading.Event().wait(HOLD_SECONDS)
    if ending == "commit":
        transaction.commit()
    elif ending == "rollback":
        transaction.rollback()
    connection.close()  # "close" ends the transaction by returning the connection


@pytest.mark.parametrize("ending", ["commit", "rollback", "close"])
def test_a_waiting_writer_gets_its_turn_when_the_holder_ends(database, ending):
    engine = _engine(database)
    held = threading.Event()
    holder = threading.Thread(target=_hold_then, args=(engine, ending, held))
    holder.start()
    assert held.wait(5)
    with engine.begin() as connection:  # would be "database is locked" after 50 ms
        connection.exec_driver_sql("INSERT INTO t VALUES (2)")
    holder.join(5)
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT n FROM t ORDER BY n").scalars().all()
    assert rows == ([1, 2] if ending == "commit" else [2])
    engine.dispose()


def test_a_writer_in_another_process_waits_for_its_turn(database):
    """gunicorn workers are processes: the lock file serialises them the same way."""
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
        from tests.test_sqlite_writers import _engine
        from pathlib import Path
        engine = _engine(Path({str(database)!r}))
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO t VALUES (1)")
            print("held", flush=True)
            time.sleep({HOLD_SECONDS})
        """
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        engine = _engine(database)
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO t VALUES (2)")
            count = connection.exec_driver_sql("SELECT count(*) FROM t").scalar()
        assert count == 2
        engine.dispose()
    finally:
        holder.wait(10)
        holder.stdout.close()
    assert holder.returncode == 0


def test_a_thread_never_waits_for_its_own_turn(database):
    """A second writing connection in the same thread gets SQLite's own answer (locked
    after the busy timeout), not a wait for a lock it holds itself."""
    engine = _engine(database)
    outcome: list[object] = []

    def nested_writers() -> None:
        with engine.begin() as first:
            first.exec_driver_sql("INSERT INTO t VALUES (1)")
            try:
                with engine.begin() as second:
                    second.exec_driver_sql("INSERT INTO t VALUES (2)")
                outcome.append("wrote")
            except OperationalError as error:
                outcome.append(error)

    thread = threading.Thread(target=nested_writers)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "the nested writer waited for its own turn"
    assert len(outcome) == 1 and "locked" in str(outcome[0])
    engine.dispose()


def test_read_transactions_take_no_turn(database):
    """GET requests (deferred BEGIN) read while a writer holds its turn."""
    from webapp.database import sqlite_reads_only

    engine = _engine(database)
    held = threading.Event()
    holder = threading.Thread(target=_hold_then, args=(engine, "commit", held))
    holder.start()
    assert held.wait(5)
    token = sqlite_reads_only.set(True)
    try:
        with engine.connect() as connection:
            connection.begin()
            assert connection.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
            assert holder.is_alive()  # read without waiting for the writer
    finally:
        sqlite_reads_only.reset(token)
    holder.join(5)
    engine.dispose()


def test_lock_file_only_for_database_files():
    assert writers_lock_path("/srv/orginvites.sqlite3") == "/srv/orginvites.sqlite3-writers.lock"
    assert writers_lock_path(":memory:") is None
    assert writers_lock_path(None) is None
