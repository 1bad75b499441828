"""Every statement the database driver runs, whichever way it was sent (SQLAlchemy or
the prepared statements that go straight to the driver's cursor)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy import event


def _recording_cursor(base: type, statements: list[str]) -> type:
    class RecordingCursor(base):
        def execute(self, query, params=None, **kwargs):
            statements.append(str(query))
            return super().execute(query, params, **kwargs)

        def executemany(self, query, params_seq, **kwargs):
            statements.append(str(query))
            return super().executemany(query, params_seq, **kwargs)

    return RecordingCursor


@contextmanager
def driver_statements(engine: Engine) -> Iterator[list[str]]:
    """Record the statements of connections opened inside the block (the pool is
    emptied before and after, so every connection is a new one). SQLite's trace also
    reports what triggers and virtual tables run, as ``-- …`` lines: left out."""
    statements: list[str] = []

    def record(dbapi_connection, _record):
        if engine.dialect.name == "sqlite":
            dbapi_connection.set_trace_callback(statements.append)
        else:
            dbapi_connection.cursor_factory = _recording_cursor(
                dbapi_connection.cursor_factory, statements
            )

    engine.dispose()
    event.listen(engine, "connect", record)
    try:
        yield statements
    finally:
        event.remove(engine, "connect", record)
        engine.dispose()
        statements[:] = [" ".join(s.split()) for s in statements if not s.startswith("--")]
