"""Statements compiled once per dialect and run straight on the DBAPI cursor.

For the few statements a hot request runs every time (an API create runs five in its
write transaction): SQLAlchemy's per-execution work (cache key, parameter and result
set-up, events) costs several times what SQLite needs to run a one-row statement.
Here a Core statement is compiled once per dialect; each run is one DBAPI ``execute``
with its parameters in the compiled order and the selected columns' result processors
applied to the rows.

Parameters must be values the driver takes as they are (strings, numbers): no bind
processors run. The caller opens the transaction first (``webapp.database.begin_writes``)
when the statement writes: connection events do not see these statements.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql.expression import Executable


class _Compiled:
    __slots__ = ("names", "processors", "sql")

    def __init__(self, statement: Executable, dialect: sa.Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup) if compiled.positional else None
        columns = getattr(statement, "selected_columns", None)
        if columns is None:
            returning = getattr(statement, "_returning", ()) or ()
            columns = list(returning)
        # dialect_impl: a variant's type for this dialect (JSONB on PostgreSQL).
        self.processors = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns or ()
        ]


class PreparedStatement:
    """``build()`` (a Core statement with named ``bindparam``s), compiled on first use
    for each dialect."""

    def __init__(self, build: Callable[[], Executable]) -> None:
        self._build = build
        self._statement: Executable | None = None
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, dialect: sa.Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            if self._statement is None:
                self._statement = self._build()
            compiled = self._compiled[dialect.name] = _Compiled(self._statement, dialect)
        return compiled

    def run(self, connection: sa.Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Execute on ``connection``'s DBAPI connection; the rows it returns (processed)."""
        compiled = self._for(connection.dialect)
        arguments: Any = (
            tuple(params[name] for name in compiled.names) if compiled.names is not None else params
        )
        cursor = connection.connection.dbapi_connection.cursor()
        try:
            cursor.execute(compiled.sql, arguments)
            if cursor.description is None:
                return []
            rows = cursor.fetchall()
        finally:
            cursor.close()
        processors = compiled.processors
        if not any(processors):
            return [tuple(row) for row in rows]
        return [
            tuple(p(v) if p is not None else v for p, v in zip(processors, row, strict=True))
            for row in rows
        ]


def attached(session: Session, model: type[Any], values: Mapping[str, Any]) -> Any:
    """A persistent ``model`` object in ``session`` from a row's values, without a query.

    ``values`` must hold every column, as a read would give them. The object in the
    session's identity map, if there is one, wins (it may hold changes).
    """
    key = identity_key(model, values["id"])
    existing = session.identity_map.get(key)
    if existing is not None:
        return existing
    # As the ORM's own loading does: the values straight into the instance's dict (no
    # attribute events), then marked as loaded and unchanged under their identity.
    instance = sa.inspect(model).class_manager.new_instance()
    instance.__dict__.update(values)
    make_transient_to_detached(instance)
    session.add(instance)
    return instance
