"""Writing thousands of rows in one go: values converted once, sent the cheapest way.

SQLAlchemy's Core ``executemany`` runs a bind processor for every value of every row
(datetimes, JSON) and builds a parameter dictionary per row: for a 2,000-row import
batch of invitations, audit events and outbox emails that Python work cost more than
the database's. Here each column gets one converter to exactly what SQLAlchemy would
have sent (the same stored text on SQLite, the same values on PostgreSQL, datetimes as
the text psycopg would send), and rows go to the driver as tuples:

* SQLite: multi-row ``VALUES`` statements of up to 500 rows. SQLite runs them faster
  than ``executemany`` of the same rows, and the invitations' insert trigger fills the
  FTS5 search table, which flushes its pending terms at every statement that runs a
  trigger (one flush per statement instead of per row);
* PostgreSQL: ``COPY … FROM STDIN``; invitations are copied straight into their table
  inside a savepoint, and only if one of them conflicts, copied into a temporary table
  and moved with one ``INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING id``, so the
  one-pending-per-address index still decides, row by row, who wins.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from webapp.database import UTCDateTime
from webapp.database import begin_writes

Converter = Callable[[Any], Any]

# Below this many rows PostgreSQL gets a plain INSERT (a COPY and a temporary table
# cost more than they save for a handful of rows).
POSTGRES_COPY_MIN_ROWS = 50
# Rows per multi-row INSERT on SQLite (x 28 columns stays far below its 32,766
# parameter limit).
SQLITE_ROWS_PER_STATEMENT = 500
_STAGING = "invitation_batch_staging"
UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given where an aware UTC datetime is required")
    return value.astimezone(UTC)


def _sqlite_datetime(value: datetime | None) -> str | None:
    """The text SQLAlchemy's SQLite DATETIME stores: ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC."""
    if value is None:
        return None
    return _utc(value).replace(tzinfo=None).isoformat(" ", "microseconds")


def _postgres_datetime(value: datetime | None) -> str | None:
    """The text psycopg sends for an aware datetime (``isoformat()``, here in UTC).

    Made once per distinct instant (a batch has a few: now and some expiries) instead
    of psycopg formatting each of the seven datetimes of every imported row again:
    ~0.8 s of client CPU per 100,000 rows. PostgreSQL reads the same instant from it.
    """
    return None if value is None else _utc(value).isoformat()


def _json(value: Any) -> str | None:
    if value is None:
        return None
    if not value and isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    return json.dumps(value)


def _converter(column: sa.Column, dialect: str) -> Converter | None:
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return _sqlite_datetime if dialect == "sqlite" else _postgres_datetime
    if isinstance(kind, sa.JSON):
        return _json
    return None


def _default_maker(column: sa.Column, convert: Converter | None) -> Callable[[], Any]:
    """A function giving the column's Python default for one row, converted."""
    default = column.default
    assert default is not None

    def make() -> Any:
        # Column defaults like utcnow or dict take a context; none needs it.
        value = default.arg(None) if default.is_callable else default.arg  # type: ignore[union-attr]
        return value if convert is None or value is None else convert(value)

    return make


class RowWriter:
    """Rows (dicts with the same keys, as the ``*_row`` builders make them) → tuples.

    ``names`` are the columns written: the keys the rows give, in table order, then the
    columns left out that have a Python default (filled per row, as SQLAlchemy does);
    columns left out without a default are not written (NULL or the server default,
    again as SQLAlchemy does). Per row, one ``itemgetter`` call takes the given values
    and only the datetime and JSON columns are converted.
    """

    def __init__(self, table: sa.Table, keys: Sequence[str], dialect: str) -> None:
        self.table = table
        given = set(keys)
        columns = [c for c in table.columns if c.name in given]
        defaulted = [c for c in table.columns if c.name not in given and c.default is not None]
        self.columns = columns + defaulted
        self.names = [c.name for c in self.columns]
        self._get = operator.itemgetter(*[c.name for c in columns])
        self._single = len(columns) == 1
        # (position, converter) of the given columns that need one.
        self._datetimes: list[int] = []
        self._others: list[tuple[int, Converter]] = []
        for position, column in enumerate(columns):
            convert = _converter(column, dialect)
            if convert is None:
                continue
            if isinstance(column.type, UTCDateTime):
                self._datetimes.append(position)
            else:
                self._others.append((position, convert))
        self._datetime_converter = _sqlite_datetime if dialect == "sqlite" else _postgres_datetime
        self._defaults = [_default_maker(c, _converter(c, dialect)) for c in defaulted]

    def values(self, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        get = self._get
        datetimes = self._datetimes
        others = self._others
        defaults = self._defaults
        to_datetime = self._datetime_converter
        # A batch shares a few instants (now, a handful of expiries): convert each once.
        converted: dict[datetime, Any] = {}
        out = []
        append = out.append
        for row in rows:
            picked = get(row)
            values = [picked] if self._single else list(picked)
            for position in datetimes:
                value = values[position]
                if value is not None:
                    done = converted.get(value)
                    if done is None:
                        done = converted[value] = to_datetime(value)
                    values[position] = done
            for position, convert in others:
                value = values[position]
                if value is not None:
                    values[position] = convert(value)
            for make in defaults:
                values.append(make())
            append(tuple(values))
        return out


@lru_cache(maxsize=64)
def row_writer(table: sa.Table, keys: tuple[str, ...], dialect: str) -> RowWriter:
    """The writer for rows with these keys, built once (a single create uses three)."""
    return RowWriter(table, keys, dialect)


@dataclass(frozen=True, slots=True)
class DriverRows:
    """Rows of one table as the driver gets them: the columns written and a tuple per row.

    Made by ``driver_rows`` apart from writing them, so that a bulk import can convert
    the next batch's rows while the database writes this one's; ``insert_rows`` and
    ``insert_skipping_conflicts`` take them as well as the rows themselves.
    """

    table: sa.Table
    dialect: str
    names: tuple[str, ...]
    values: list[tuple[Any, ...]]

    def __len__(self) -> int:
        return len(self.values)

    def column(self, name: str) -> list[Any]:
        position = self.names.index(name)
        return [row[position] for row in self.values]

    def take(self, positions: Sequence[int]) -> DriverRows:
        """These rows only (by position), in the order given."""
        values = self.values
        return DriverRows(self.table, self.dialect, self.names, [values[p] for p in positions])


def driver_rows(table: sa.Table, rows: Sequence[dict[str, Any]], dialect: str) -> DriverRows:
    """``rows`` (dicts with the same keys, as the ``*_row`` builders make them) converted
    for ``dialect``'s driver. Needs no database and no app context."""
    if not rows:
        return DriverRows(table, dialect, (), [])
    writer = row_writer(table, tuple(rows[0]), dialect)
    return DriverRows(table, dialect, tuple(writer.names), writer.values(rows))


def _converted(
    session: Session, table: sa.Table, rows: Sequence[dict[str, Any]] | DriverRows
) -> DriverRows:
    dialect = _dialect(session)
    if isinstance(rows, DriverRows):
        if rows.table is not table or rows.dialect != dialect:
            raise ValueError(f"rows converted for {rows.table.name} on {rows.dialect}")
        return rows
    return driver_rows(table, rows, dialect)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _dbapi_cursor(session: Session):
    # session.connection() opens the transaction (BEGIN IMMEDIATE on SQLite) first;
    # under late writes (webapp.database) begin_writes opens it.
    connection = session.connection()
    begin_writes(connection)
    return connection.connection.cursor()


def _column_list(names: Sequence[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _placeholder(dialect: str) -> str:
    return "%s" if dialect == "postgresql" else "?"


@lru_cache(maxsize=256)
def _insert_sql(table_name: str, names: tuple[str, ...], dialect: str, rows: int, tail: str) -> str:
    marks = "(" + ", ".join([_placeholder(dialect)] * len(names)) + ")"
    return (
        f"INSERT INTO {table_name} ({_column_list(names)}) VALUES "
        + ", ".join([marks] * rows)
        + tail
    )


def _insert_values(cursor, converted: DriverRows, values: list, tail: str = "") -> None:
    """One multi-row ``INSERT … VALUES (…), (…) <tail>`` of ``values`` (some of
    ``converted``'s rows)."""
    cursor.execute(
        _insert_sql(converted.table.name, converted.names, converted.dialect, len(values), tail),
        [v for row in values for v in row],
    )


def insert_rows(
    session: Session, table: sa.Table, rows: Sequence[dict[str, Any]] | DriverRows
) -> None:
    """INSERT every row, in the caller's transaction (no conflict handling)."""
    if not rows:
        return
    converted = _converted(session, table, rows)
    values = converted.values
    cursor = _dbapi_cursor(session)
    try:
        if converted.dialect == "postgresql" and len(values) >= POSTGRES_COPY_MIN_ROWS:
            _copy(cursor, table.name, converted.names, values)
        else:
            # Multi-row statements (SQLite; PostgreSQL below the COPY size): SQLite
            # runs 500 rows in one INSERT about a third faster than one by one.
            for start in range(0, len(values), SQLITE_ROWS_PER_STATEMENT):
                _insert_values(cursor, converted, values[start : start + SQLITE_ROWS_PER_STATEMENT])
    finally:
        cursor.close()


def _copy(cursor, table_name: str, names: Sequence[str], values: list[tuple[Any, ...]]) -> None:
    with cursor.copy(f"COPY {table_name} ({_column_list(names)}) FROM STDIN") as copy:
        for row in values:
            copy.write_row(row)


def _copy_unless_conflict(
    cursor, table_name: str, names: Sequence[str], values: list[tuple[Any, ...]]
) -> bool:
    """PostgreSQL: COPY the rows straight into the table, inside a savepoint; False (and
    nothing written) if one of them violates a unique index.

    An import batch rarely conflicts (its planning skipped the addresses invited
    already), and COPY into the table costs about half a second less per 100,000 rows
    than COPY into a staging table and INSERT … SELECT … ON CONFLICT. A batch that does
    conflict (a concurrent import, a re-import racing this one) takes that path instead,
    where the index decides row by row; a racer's uncommitted row makes COPY wait for
    its transaction, as the INSERT would.
    """
    cursor.execute("SAVEPOINT bulk_copy")
    try:
        _copy(cursor, table_name, names, values)
    except Exception as error:
        # Told by its SQLSTATE: importing psycopg here would load libpq into every
        # SQLite process (~10 MB of resident memory).
        if getattr(error, "sqlstate", None) != UNIQUE_VIOLATION:
            raise
        cursor.execute("ROLLBACK TO SAVEPOINT bulk_copy")
        return False
    cursor.execute("RELEASE SAVEPOINT bulk_copy")
    return True


def insert_skipping_conflicts(
    session: Session,
    table: sa.Table,
    rows: Sequence[dict[str, Any]] | DriverRows,
    *,
    conflict: str,
    returning: str = "id",
) -> set[Any]:
    """INSERT the rows, skipping those that hit the unique index named by ``conflict``
    (an ``ON CONFLICT`` target such as ``(org_id, email_key) WHERE status = 'pending'``);
    return the ``returning`` column of the rows that went in. That column must be a
    unique key whose values the rows bring (new ids).

    Rows are inserted in the order given (callers sort them so that concurrent batches
    take index entries in one order).
    """
    if not rows:
        return set()
    converted = _converted(session, table, rows)
    values = converted.values
    names = converted.names
    columns = _column_list(names)
    tail = f" ON CONFLICT {conflict} DO NOTHING RETURNING {returning}"
    cursor = _dbapi_cursor(session)
    inserted: set[Any] = set()
    try:
        if converted.dialect == "postgresql":
            # Small batches: one multi-row INSERT; large ones: COPY straight into the
            # table, and only if a row conflicts, COPY into a temporary table and one
            # INSERT … SELECT … ON CONFLICT in the same order.
            if len(values) < POSTGRES_COPY_MIN_ROWS:
                _insert_values(cursor, converted, values, tail)
                inserted.update(r[0] for r in cursor.fetchall())
            elif _copy_unless_conflict(cursor, table.name, names, values):
                inserted.update(converted.column(returning))
            else:
                cursor.execute(
                    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} "
                    f"(LIKE {table.name} INCLUDING DEFAULTS, _position integer) "
                    "ON COMMIT DELETE ROWS"
                )
                staged = [*names, "_position"]
                _copy(cursor, _STAGING, staged, [(*row, n) for n, row in enumerate(values)])
                cursor.execute(
                    f"INSERT INTO {table.name} ({columns}) SELECT {columns} FROM {_STAGING} "
                    f"ORDER BY _position{tail}"
                )
                inserted.update(r[0] for r in cursor.fetchall())
                cursor.execute(f"DELETE FROM {_STAGING}")
        else:
            # No RETURNING: the row count tells whether every row went in (as nearly
            # always), and only a statement that skipped some looks up which of its
            # (new, unique) values are there. Reading RETURNING rows costs SQLite a
            # step per row, and the writing thread a GIL hand-over per step.
            position = names.index(returning)
            for start in range(0, len(values), SQLITE_ROWS_PER_STATEMENT):
                chunk = values[start : start + SQLITE_ROWS_PER_STATEMENT]
                _insert_values(cursor, converted, chunk, f" ON CONFLICT {conflict} DO NOTHING")
                wanted = [row[position] for row in chunk]
                if cursor.rowcount == len(chunk):
                    inserted.update(wanted)
                else:
                    marks = ", ".join("?" * len(wanted))
                    cursor.execute(
                        f'SELECT "{returning}" FROM {table.name} WHERE "{returning}" IN ({marks})',
                        wanted,
                    )
                    inserted.update(r[0] for r in cursor.fetchall())
    finally:
        cursor.close()
    return inserted
