"""Per-organization status totals kept in ``invitation_counters``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

import orjson
from sqlalchemy import BigInteger
from sqlalchemy import ColumnElement
from sqlalchemy import Connection
from sqlalchemy import ScalarSelect
from sqlalchemy import Select
from sqlalchemy import Text
from sqlalchemy import Update
from sqlalchemy import bindparam
from sqlalchemy import cast
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from webapp.clock import utcnow
from webapp.database import begin_writes
from webapp.models import Invitation
from webapp.models import InvitationCounter
from webapp.models import InvitationStatus
from webapp.models.invitations import STATUS_VALUES
from webapp.services.prepared import PreparedStatement


def create_counters(session: Session, org_id: str) -> None:
    """One zeroed row per status, created with the organization."""
    session.execute(
        insert(InvitationCounter),
        [{"org_id": org_id, "status": s, "count": 0} for s in STATUS_VALUES],
    )


def adjust_counters(session: Session, org_id: str, deltas: Mapping[str, int]) -> None:
    """Apply ``{status: +n/-n}`` in the caller's transaction."""
    for status, delta in deltas.items():
        if delta:
            session.execute(
                update(InvitationCounter)
                .where(InvitationCounter.org_id == org_id, InvitationCounter.status == status)
                .values(count=InvitationCounter.count + delta)
                .execution_options(synchronize_session=False)
            )


def _add_to_counter_statement() -> Update:
    return (
        update(InvitationCounter)
        .where(
            InvitationCounter.org_id == bindparam("org_id"),
            InvitationCounter.status == bindparam("counter_status"),
        )
        .values(count=InvitationCounter.count + bindparam("delta", type_=BigInteger))
    )


_ADD_TO_COUNTER = PreparedStatement(_add_to_counter_statement)


def add_to_counter(connection: Connection, org_id: str, status: str, delta: int) -> None:
    """Add ``delta`` to one stored count, in the connection's (write) transaction.

    A prepared statement on the driver's cursor: no autoflush of the session's pending
    objects (``adjust_counters`` is the session-level form)."""
    begin_writes(connection)
    _ADD_TO_COUNTER.run(connection, {"org_id": org_id, "counter_status": status, "delta": delta})


def _pending_conditions(org_id: Any) -> list[ColumnElement[bool]]:
    pending = [Invitation.status == InvitationStatus.PENDING.value]
    if org_id is not None:
        pending.append(Invitation.org_id == org_id)
    return pending


def _earliest_pending_expiry(org_id: Any) -> ScalarSelect:
    """The earliest pending expiry: one probe of an index that leads with status and
    expiry. Usually still in the future, so nothing needs counting."""
    return (
        select(func.min(Invitation.expires_at))
        .where(*_pending_conditions(org_id))
        .scalar_subquery()
    )


def _lapsed_pending(session: Session, org_id: str | None, now: datetime) -> int:
    """How many pending invitations are past ``expires_at`` but not yet swept.

    Counted only when the earliest pending expiry has passed: planners cannot know that
    almost no pending row is overdue and would otherwise choose a scan.
    """
    return (
        session.scalar(
            select(func.count())
            .select_from(Invitation)
            .where(*_pending_conditions(org_id), Invitation.expires_at <= now)
        )
        or 0
    )


@cache
def _stored_totals_statement(per_org: bool) -> Select:
    """Stored counts per status and the earliest pending expiry, for one org (bound as
    ``org_id``) or all. Built once: every list page runs it."""
    org_id = bindparam("org_id") if per_org else None
    statement = select(
        InvitationCounter.status,
        func.sum(InvitationCounter.count),
        _earliest_pending_expiry(org_id),
    ).group_by(InvitationCounter.status)
    if per_org:
        statement = statement.where(InvitationCounter.org_id == org_id)
    return statement


def status_totals(
    session: Session, org_id: str | None, now: datetime | None = None
) -> dict[str, int]:
    """Totals per effective status (a pending invitation past expiry counts as expired).

    Reads the counters plus the few pending rows already past ``expires_at`` that the
    sweep has not marked yet; the stored counts and the earliest pending expiry come in
    one query.
    """
    now = now or utcnow()
    stored: dict[str, int] = {}
    earliest = None
    for status, count, earliest_expiry in session.connection().execute(
        _stored_totals_statement(org_id is not None), {"org_id": org_id}
    ):
        stored[status] = count
        earliest = earliest_expiry
    return totals_from_stored(session, org_id, now, stored, earliest)


def totals_from_stored(
    session: Session,
    org_id: str | None,
    now: datetime,
    stored: Mapping[str, int] | None,
    earliest_pending_expiry: datetime | None,
) -> dict[str, int]:
    """Totals per effective status from the stored counts ({status: count}) and the
    earliest pending expiry: the pending rows already past ``expires_at`` that the
    sweep has not marked yet count as expired."""
    totals = {status: int((stored or {}).get(status) or 0) for status in STATUS_VALUES}
    if earliest_pending_expiry is not None and earliest_pending_expiry <= now:
        lapsed = _lapsed_pending(session, org_id, now)
        totals[InvitationStatus.PENDING.value] -= lapsed
        totals[InvitationStatus.EXPIRED.value] += lapsed
    return totals


@cache
def stored_totals_columns(per_org: bool, dialect: str) -> tuple[ColumnElement, ColumnElement]:
    """The stored counts as one JSON object ({status: count}, as text) and the earliest
    pending expiry, as scalar subqueries (org bound as ``org_id``) for another statement to
    select: a list page reads its totals in its page query, without a round trip of
    their own. Each is evaluated once per statement, not per row; give the values read
    to :func:`totals_from_columns`."""
    org_id = bindparam("org_id") if per_org else None
    aggregate = func.json_object_agg if dialect == "postgresql" else func.json_group_object
    if per_org:
        # One row per (org, status): the key. Aggregated straight, no grouping.
        status, count = InvitationCounter.status, InvitationCounter.count
        stored = select(cast(aggregate(status, count), Text)).where(
            InvitationCounter.org_id == org_id
        )
    else:
        counts = (
            select(InvitationCounter.status, func.sum(InvitationCounter.count).label("count"))
            .group_by(InvitationCounter.status)
            .subquery()
        )
        stored = select(cast(aggregate(counts.c.status, counts.c.count), Text))
    # As text: every row of the page carries it, only the first is decoded.
    return (
        stored.scalar_subquery().label("stored_totals"),
        _earliest_pending_expiry(org_id).label("earliest_pending_expiry"),
    )


def status_totals_by_org(
    session: Session, now: datetime | None = None
) -> dict[str, dict[str, int]]:
    """``{org_id: totals per effective status}`` for every organization, in two queries.

    The same rule as :func:`status_totals`: stored counters, with the pending rows
    already past ``expires_at`` moved to expired.
    """
    now = now or utcnow()
    totals: dict[str, dict[str, int]] = {}
    for org_id, status, count in session.execute(
        select(InvitationCounter.org_id, InvitationCounter.status, InvitationCounter.count)
    ):
        totals.setdefault(org_id, {s: 0 for s in STATUS_VALUES})[status] = int(count or 0)
    lapsed = session.execute(
        select(Invitation.org_id, func.count())
        .where(Invitation.status == InvitationStatus.PENDING.value, Invitation.expires_at <= now)
        .group_by(Invitation.org_id)
    )
    for org_id, count in lapsed:
        org_totals = totals.setdefault(org_id, {s: 0 for s in STATUS_VALUES})
        org_totals[InvitationStatus.PENDING.value] -= count
        org_totals[InvitationStatus.EXPIRED.value] += count
    return totals


def rebuild_counters(session: Session, org_id: str) -> dict[str, int]:
    """Recount an organization's rows (repair tool; also used after bulk seeding)."""
    stored = Counter(
        dict(
            session.execute(
                select(Invitation.status, func.count())
                .where(Invitation.org_id == org_id)
                .group_by(Invitation.status)
            ).all()
        )
    )
    session.execute(delete(InvitationCounter).where(InvitationCounter.org_id == org_id))
    session.execute(
        insert(InvitationCounter),
        [{"org_id": org_id, "status": s, "count": stored.get(s, 0)} for s in STATUS_VALUES],
    )
    return {s: stored.get(s, 0) for s in STATUS_VALUES}


def totals_from_columns(
    session: Session, org_id: str | None, now: datetime, values: Sequence[Any]
) -> dict[str, int]:
    """Totals per effective status from the values of :func:`stored_totals_columns`."""
    stored_json, earliest_pending_expiry = values
    stored = orjson.loads(stored_json) if stored_json else {}
    return totals_from_stored(session, org_id, now, stored, earliest_pending_expiry)
