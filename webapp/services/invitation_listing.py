"""Listing invitations: status filters, email search, ordering, offset and keyset pages."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from functools import cache
from functools import lru_cache

from sqlalchemy import JSON
from sqlalchemy import ColumnElement
from sqlalchemy import Select
from sqlalchemy import Text
from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import cast
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import tuple_
from sqlalchemy.orm import Session
from sqlalchemy.orm import selectinload

from webapp.clock import utcnow
from webapp.database import written_limit
from webapp.models import Invitation
from webapp.models import InvitationStatus
from webapp.models import Organization
from webapp.models import User
from webapp.models.invitations import STATUS_VALUES
from webapp.services.counters import status_totals
from webapp.services.counters import stored_totals_columns
from webapp.services.counters import totals_from_columns
from webapp.services.errors import FieldError
from webapp.services.errors import ValidationFailed
from webapp.services.prepared import PreparedStatement
from webapp.services.search import email_search
from webapp.services.validation import email_key

ORDERINGS = ("created_at", "-created_at", "email", "-email")
MAX_LIMIT = 500
# Far beyond any real list; larger numbers overflow the databases' 64-bit integers.
MAX_OFFSET = 1_000_000_000
MAX_QUERY_LENGTH = 254
SEARCH_TOTAL_CAP = 1_000
MATCHES_COLUMN = "matches_in_search"


@dataclass
class InvitationQuery:
    """What to list. ``starting_after``/``ending_before`` are invitation ids (cursors).

    ``query`` finds a part of an address; ``email`` one whole address (case-insensitive);
    ``roles``, when given, keeps invitations with one of these role keys (an empty list
    matches nothing). ``max_limit`` is the largest page the caller's surface allows (the
    vendor APIs each document their own).
    """

    statuses: Sequence[str] = ()
    query: str | None = None
    email: str | None = None
    roles: Sequence[str] | None = None
    order_by: str = "-created_at"
    limit: int = 20
    offset: int | None = None
    starting_after: str | None = None
    ending_before: str | None = None
    max_limit: int = MAX_LIMIT
    # Plain rows (columns only, no ORM objects) load several times faster; the API and
    # the dashboard read them. ``inviter_names`` also looks up each inviting user's name
    # (``InvitationPage.inviter_names``) in one query.
    plain_rows: bool = False
    inviter_names: bool = False
    # With plain rows: only these columns (the dashboard's table shows a dozen of them;
    # skipping the JSON columns saves decoding them). None: every column but the token's
    # hash.
    columns: tuple[str, ...] | None = None
    # With plain rows: the JSON columns (metadata, project grants) as their stored JSON
    # text, not decoded, for a caller that writes them out as they are (the API).
    json_as_text: bool = False


class InvitationRow(tuple):
    """An invitation's columns as plain attributes (no ORM object, no session): a named
    tuple, one type per set of columns (:func:`invitation_row_type`).

    Several times faster to read than SQLAlchemy's ``Row``, whose attribute access runs
    a Python-level lookup (a list page reads two dozen attributes of every row), and
    made from the driver's tuple without a Python call per row.
    """

    __slots__ = ()


@cache
def invitation_row_type(columns: tuple[str, ...]) -> type[InvitationRow]:
    fields = namedtuple("InvitationColumns", columns)  # noqa: PYI024 - built per column set
    return type("InvitationRow", (fields, InvitationRow), {"__slots__": ()})


@dataclass
class InvitationPage:
    # Invitation objects, or InvitationRows with the same attributes when asked for.
    items: list[Invitation] | list[InvitationRow]
    has_more: bool
    # How many invitations match the status filter and search, over all pages.
    total: int
    totals_by_status: dict[str, int] = field(default_factory=dict)
    now: datetime = field(default_factory=utcnow)
    # False when a search matched more than SEARCH_TOTAL_CAP: ``total`` is then a floor.
    total_exact: bool = True
    # {user id: name, or email when unnamed} of the page's inviters, when asked for.
    inviter_names: dict[str, str] = field(default_factory=dict)


def status_condition(status: str, now: datetime) -> ColumnElement[bool]:
    """SQL for an *effective* status: pending past its expiry counts as expired."""
    if status == InvitationStatus.PENDING.value:
        return and_(Invitation.status == status, Invitation.expires_at > now)
    if status == InvitationStatus.EXPIRED.value:
        return or_(
            Invitation.status == status,
            and_(Invitation.status == InvitationStatus.PENDING.value, Invitation.expires_at <= now),
        )
    return Invitation.status == status


def _check(q: InvitationQuery) -> list[FieldError]:
    errors = []
    for status in q.statuses:
        if status not in STATUS_VALUES:
            errors.append(
                FieldError(
                    "status",
                    "invalid_status",
                    f"{status!r} is not a status (one of: {', '.join(STATUS_VALUES)})",
                )
            )
    if q.order_by not in ORDERINGS:
        errors.append(
            FieldError(
                "order_by",
                "invalid_order",
                f"{q.order_by!r} is not an ordering (one of: {', '.join(ORDERINGS)})",
            )
        )
    if not isinstance(q.limit, int) or not 1 <= q.limit <= q.max_limit:
        errors.append(
            FieldError("limit", "out_of_range", f"limit must be between 1 and {q.max_limit}")
        )
    if q.offset is not None and (not isinstance(q.offset, int) or not 0 <= q.offset <= MAX_OFFSET):
        errors.append(
            FieldError("offset", "out_of_range", f"offset must be between 0 and {MAX_OFFSET:,}")
        )
    cursors = [n for n in ("starting_after", "ending_before") if getattr(q, n)]
    if len(cursors) > 1 or (cursors and q.offset):
        errors.append(
            FieldError(
                cursors[-1] if cursors else "offset",
                "conflicting_fields",
                "use one of offset, starting_after or ending_before",
            )
        )
    if q.query is not None and len(q.query) > MAX_QUERY_LENGTH:
        errors.append(FieldError("query", "too_long", "the search is too long"))
    if q.email is not None and len(q.email) > MAX_QUERY_LENGTH:
        errors.append(FieldError("email", "too_long", "the email address is too long"))
    return errors


# Page statements kept compiled (a shape is a combination of filters, order, cursor and
# page size: a few are common, the rest are built again when needed).
SHAPES_KEPT = 512


@dataclass(frozen=True)
class _PageShape:
    """What decides a page query's SQL (values are bound parameters): its cache key."""

    per_org: bool
    statuses: tuple[str, ...]
    by_email: bool
    by_roles: bool
    sort_by_created: bool
    walk_descending: bool
    # "<" or ">" against the cursor's (sort value, id); "" without a cursor.
    cursor: str
    offset: bool
    plain_rows: bool
    columns: tuple[str, ...] | None
    json_as_text: bool
    # Plain rows also carry the stored totals (one round trip less); the SQL for them
    # differs by database.
    totals_dialect: str | None
    # Written into the SQL, not bound (webapp.database.written_limit).
    limit: int


@lru_cache(maxsize=SHAPES_KEPT)
def _page_conditions(shape: _PageShape) -> tuple[ColumnElement[bool], ...]:
    """The filters, without the cursor's and the search's (which the count leaves out
    or adds itself)."""
    now = bindparam("now", type_=Invitation.expires_at.type)
    conditions: list[ColumnElement[bool]] = []
    if shape.per_org:
        conditions.append(Invitation.org_id == bindparam("org_id"))
    if shape.statuses:
        conditions.append(or_(*(status_condition(s, now) for s in shape.statuses)))
    if shape.by_email:
        conditions.append(Invitation.email_key == bindparam("email_key"))
    if shape.by_roles:
        conditions.append(Invitation.role.in_(bindparam("roles", expanding=True)))
    return tuple(conditions)


@lru_cache(maxsize=SHAPES_KEPT)
def _page_statement(shape: _PageShape) -> Select:
    """The page query for ``shape``, built once: every list page runs one."""
    sort_column = Invitation.created_at if shape.sort_by_created else Invitation.email_key
    conditions = list(_page_conditions(shape))
    if shape.cursor:
        # The cursor invitation's sort value is read by the page query itself (one
        # statement, not two): a subquery evaluated once, so the row-value comparison
        # still seeks in the index. An unknown cursor, or another organization's, makes
        # it NULL and the page empty (list_invitations then says which).
        anchored = select(sort_column).where(Invitation.id == bindparam("anchor_id"))
        if shape.per_org:
            anchored = anchored.where(Invitation.org_id == bindparam("org_id"))
        key = tuple_(sort_column, Invitation.id)
        anchor = tuple_(anchored.scalar_subquery(), bindparam("anchor_id"))
        conditions.append(key < anchor if shape.cursor == "<" else key > anchor)
    order = (
        [sort_column.desc(), Invitation.id.desc()]
        if shape.walk_descending
        else [sort_column.asc(), Invitation.id.asc()]
    )
    if shape.plain_rows:
        table_columns = Invitation.__table__.columns
        if shape.columns is None:
            # Never the token's hash: a list has no use for it.
            selected = [c for c in table_columns if c.name != "token_hash"]
        else:
            selected = [table_columns[name] for name in shape.columns]
        if shape.json_as_text:
            selected = [
                cast(c, Text).label(c.name) if isinstance(c.type, JSON) else c for c in selected
            ]
        statement = select(*selected)
    else:
        # One query for the page's inviters, not one per row.
        statement = select(Invitation).options(selectinload(Invitation.inviter))
    if shape.totals_dialect is not None:
        statement = statement.add_columns(
            *stored_totals_columns(shape.per_org, shape.totals_dialect)
        )
    statement = statement.where(*conditions).order_by(*order).limit(written_limit(shape.limit))
    if shape.offset:
        statement = statement.offset(bindparam("offset"))
    return statement


@lru_cache(maxsize=SHAPES_KEPT)
def _prepared_page(shape: _PageShape) -> PreparedStatement:
    return PreparedStatement(lambda: _page_statement(shape))


@cache
def _cursor_statement() -> Select:
    return select(Invitation.org_id).where(Invitation.id == bindparam("id"))


def _check_cursor(session: Session, org_id: str | None, cursor_id: str, name: str) -> None:
    """ValidationFailed naming the parameter unless ``cursor_id`` is in this list."""
    found = session.connection().execute(_cursor_statement(), {"id": cursor_id}).scalar()
    if found is None or (org_id is not None and found != org_id):
        raise ValidationFailed.single(
            name, "unknown_cursor", f"{cursor_id!r} is not an invitation in this list"
        )


def list_invitations(
    session: Session, org: Organization | str | None, q: InvitationQuery
) -> InvitationPage:
    """One page of an organization's invitations (all organizations when ``org`` is None).

    ``org`` is the organization or its id (a caller that has only the id needs no object).
    """
    errors = _check(q)
    if errors:
        raise ValidationFailed(errors)
    now = utcnow()
    statuses = tuple(dict.fromkeys(q.statuses))
    org_id = org if org is None or isinstance(org, str) else org.id
    params: dict[str, object] = {
        "now": now,
        "org_id": org_id,
        "offset": q.offset or 0,
    }
    if q.email is not None:
        params["email_key"] = email_key(q.email)
    if q.roles is not None:
        params["roles"] = list(dict.fromkeys(q.roles))
    search = (q.query or "").strip().lower()
    found = email_search(session, search) if search else None
    search_condition = found.condition if found is not None else None

    descending = q.order_by.startswith("-")
    sort_by_created = q.order_by.endswith("created_at")
    backwards = False
    cursor = ""
    cursor_id = q.starting_after or q.ending_before
    if cursor_id:
        params["anchor_id"] = cursor_id
        backwards = bool(q.ending_before)
        after = descending != backwards  # walking "down" the chosen order
        cursor = "<" if after else ">"

    shape = _PageShape(
        per_org=org_id is not None,
        statuses=statuses,
        by_email=q.email is not None,
        by_roles=q.roles is not None,
        sort_by_created=sort_by_created,
        walk_descending=descending != backwards,
        cursor=cursor,
        offset=bool(q.offset),
        plain_rows=q.plain_rows,
        columns=q.columns,
        json_as_text=q.plain_rows and q.json_as_text,
        totals_dialect=session.get_bind().dialect.name if q.plain_rows else None,
        limit=q.limit + 1,
    )
    statement = _page_statement(shape)
    if search_condition is not None:
        statement = statement.where(search_condition)
    # A bounded search (its candidates named) is counted by the page's own query: the
    # page reads and sorts every match anyway, a separate count would read them again.
    # A cursor narrows the page's rows, not the total, so it still counts apart.
    counted_in_page = found is not None and found.bounded and q.plain_rows and not cursor_id
    if counted_in_page:
        statement = statement.add_columns(func.count().over().label(MATCHES_COLUMN))
    # What plain rows carry after the invitation's columns: the stored totals and the
    # earliest pending expiry, then the number of matches when counted here.
    extras: tuple = ()
    totals_width = 0
    if q.plain_rows:
        if search_condition is None and not shape.by_roles:
            # The common page (no search, no IN list): straight on the driver's cursor.
            prepared = _prepared_page(shape)
            connection = session.connection()
            values = prepared.run(connection, params)
            keys = prepared.keys(connection.dialect)
        else:
            result = session.connection().execute(statement, params)
            values = result.all()
            keys = tuple(result.keys())
        totals_width = len(stored_totals_columns(shape.per_org, shape.totals_dialect))
        width = len(keys) - totals_width - counted_in_page
        columns = keys[:width]
        if values:
            extras = tuple(values[0][width:])
        row_type, make = invitation_row_type(columns), tuple.__new__
        rows = [make(row_type, v[:width]) for v in values]
    else:
        rows = list(session.execute(statement, params).scalars())
    if cursor_id and not rows:
        # An empty page: the end of the list, or a cursor that is not in it.
        _check_cursor(
            session, org_id, cursor_id, "starting_after" if q.starting_after else "ending_before"
        )
    has_more = len(rows) > q.limit
    rows = rows[: q.limit]
    if backwards:
        rows.reverse()

    if extras:
        totals = totals_from_columns(session, org_id, now, extras[:totals_width])
    else:
        totals = status_totals(session, org_id, now)
    matches = extras[totals_width] if counted_in_page and extras else None
    total_exact = True
    # The per-status counters only know statuses: any other filter is counted.
    narrowed = bool(search or q.email is not None or q.roles is not None)
    if matches is not None:
        total, total_exact = min(matches, SEARCH_TOTAL_CAP), matches <= SEARCH_TOTAL_CAP
    elif narrowed and not cursor_id and not has_more and (rows or not q.offset):
        # The whole result is on this page: no need to count it again.
        total = (q.offset or 0) + len(rows)
    elif narrowed:
        # Counting every match of a common term would scan the table: stop at a cap.
        count_conditions = list(_page_conditions(shape))
        if search_condition is not None:
            count_conditions.append(search_condition)
        capped = (
            select(Invitation.id)
            .where(*count_conditions)
            .limit(written_limit(SEARCH_TOTAL_CAP + 1))
            .subquery()
        )
        total = session.scalar(select(func.count()).select_from(capped), params) or 0
        if total > SEARCH_TOTAL_CAP:
            total, total_exact = SEARCH_TOTAL_CAP, False
    else:
        total = sum(totals[s] for s in (statuses or STATUS_VALUES))
    return InvitationPage(
        items=rows,
        has_more=has_more,
        total=total,
        totals_by_status=totals,
        now=now,
        total_exact=total_exact,
        inviter_names=_inviter_names(session, rows) if q.inviter_names else {},
    )


def _inviter_names(session: Session, rows: Sequence) -> dict[str, str]:
    ids = sorted({row.inviter_user_id for row in rows if row.inviter_user_id})
    if not ids:
        return {}
    found = session.connection().execute(
        select(User.id, User.name, User.email).where(User.id.in_(ids))
    )
    return {user_id: name or email for user_id, name, email in found}
