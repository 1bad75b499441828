"""Statements compiled once per dialect and run straight on the DBAPI cursor.

For the few statements a hot request runs every time (an API create runs five in its
write transaction, every API call looks its key up, every list reads a page):
SQLAlchemy's per-execution work (cache key, parameter and result set-up, events) costs
several times what SQLite needs to run a one-row statement. Here a Core statement is
compiled once per dialect; each run is one DBAPI ``execute`` with its parameters in the
compiled order (the statement's own values where the caller gives none, each through
its type's bind processor, if it has one) and the selected columns' result processors
applied to the rows.

Expanding parameters (``IN`` lists) are not supported. The caller opens the
transaction first (``webapp.database.begin_writes``) when the statement writes:
connection events do not see these statements.
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
    __slots__ = ("binders", "defaults", "keys", "names", "processing", "returns_rows", "sql")

    def __init__(self, statement: Executable, dialect: sa.Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup) if compiled.positional else None
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        # Values the statement carries itself (a literal compared against, say).
        self.defaults = {
            name: bind.effective_value for name, bind in binds.items() if not bind.required
        }
        # Parameters whose type converts them for the driver (a datetime on SQLite).
        self.binders = {
            name: processor
            for name, bind in binds.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        columns = getattr(statement, "selected_columns", None)
        if columns is None:
            returning = getattr(statement, "_returning", ()) or ()
            columns = list(returning)
        self.keys = tuple(c.key for c in columns or ())
        # Known here, so a run never asks the cursor: psycopg builds a Column object for
        # every column of the result to answer ``cursor.description``.
        self.returns_rows = bool(self.keys)
        # dialect_impl: a variant's type for this dialect (JSONB on PostgreSQL).
        processors = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns or ()
        ]
        # (position, processor) of the columns whose values need converting
        self.processing = tuple((i, p) for i, p in enumerate(processors) if p is not None)

    def arguments(self, params: Mapping[str, Any]) -> Any:
        if self.defaults or self.binders:
            params = {**self.defaults, **params}  # a copy: the caller's stays as given
            for name, processor in self.binders.items():
                if name in params:
                    params[name] = processor(params[name])
        if self.names is not None:
            return tuple(params[name] for name in self.names)
        return params


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

    def keys(self, dialect: sa.Dialect) -> tuple[str, ...]:
        """The names of the columns a run returns, in order."""
        return self._for(dialect).keys

    def run(self, connection: sa.Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Execute on ``connection``'s DBAPI connection; the rows it returns (processed)."""
        compiled = self._for(connection.dialect)
        cursor = connection.connection.dbapi_connection.cursor()
        try:
            cursor.execute(compiled.sql, compiled.arguments(params))
            if not compiled.returns_rows:
                return []
            rows = cursor.fetchall()
        finally:
            cursor.close()
        processing = compiled.processing
        if not processing:
            return [tuple(row) for row in rows]
        processed = []
        for row in rows:
            values = list(row)
            for index, processor in processing:
                value = values[index]
                if value is not None:  # NULL stays None (unset times are most of a row's)
                    values[index] = processor(value)
            processed.append(tuple(values))
        return processed


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


class WholeRow:
    """Every column of ``model``'s table, in order: select ``columns`` in a prepared
    statement, then ``attach`` (or ``as_dict``) the values it read."""

    def __init__(self, model: type[Any]) -> None:
        self.model = model
        self.columns = tuple(model.__table__.columns)
        self.keys = tuple(c.key for c in self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def as_dict(self, values: Any) -> dict[str, Any]:
        return dict(zip(self.keys, values, strict=True))

    def attach(self, session: Session, values: Any) -> Any:
        return attached(session, self.model, self.as_dict(values))
