"""Reports for an organization's overview: invitations sent and accepted over time.

Every figure is about the invitations *created* in the window ("of the invitations
sent in the last 30 days, how many were accepted, and how fast"). That keeps each
query an index range scan bounded by the window: ``(org_id, created_at)`` for the
sent counts, ``(org_id, status, created_at)`` for the accepted ones. Counting by
``accepted_at`` instead would need an index on it (there is none), because a resent
invitation can be accepted any time after it was created.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import time
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy import ColumnElement
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.clock import utcnow
from webapp.models import DeliveryStatus
from webapp.models import Invitation
from webapp.models import InvitationStatus

RANGES = (30, 90, 365)
DEFAULT_RANGE = 30
# Up to this many days the chart has one point per day; beyond it, one per week.
DAILY_UP_TO_DAYS = 60
FAILED_DELIVERY_LIMIT = 20
ACCEPTED = InvitationStatus.ACCEPTED.value


@dataclass(frozen=True)
class Bucket:
    """One point of the chart: the days ``first``..``last`` (inclusive, UTC)."""

    first: date
    last: date
    created: int = 0
    accepted: int = 0


@dataclass(frozen=True)
class AcceptanceReport:
    """Invitations created in ``[start, end)`` per bucket, and how (fast) they were accepted."""

    days: int
    unit: str  # "day" or "week"
    start: datetime
    end: datetime
    buckets: list[Bucket]
    created: int
    accepted: int
    # Nearest-rank percentiles of accepted_at - created_at, in seconds: half of the
    # accepted invitations were accepted within ``median_seconds``, 90 % within p90.
    median_seconds: float | None
    p90_seconds: float | None

    @property
    def acceptance_rate(self) -> float | None:
        """Accepted / created (0..1), or None when nothing was created."""
        return self.accepted / self.created if self.created else None


def bucket_days(today: date, days: int) -> tuple[str, list[tuple[date, date]]]:
    """The chart's buckets ending with ``today``: daily, or whole weeks beyond 60 days.

    Weekly buckets are seven full days each, the last one ending today, so no point of
    the chart is a partial week (the window is then rounded up to whole weeks).
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    if days <= DAILY_UP_TO_DAYS:
        firsts = [today - timedelta(days=days - 1 - i) for i in range(days)]
        return "day", [(d, d) for d in firsts]
    weeks = math.ceil(days / 7)
    first = today - timedelta(days=7 * weeks - 1)
    return "week", [
        (first + timedelta(days=7 * i), first + timedelta(days=7 * i + 6)) for i in range(weeks)
    ]


def _utc_day(session: Session, column) -> ColumnElement[date]:
    """The UTC calendar day of a timestamp column, computed by the database."""
    if session.get_bind().dialect.name == "postgresql":
        # A literal (not a bound parameter) so GROUP BY repeats the exact same expression.
        return sa.cast(func.timezone(sa.literal_column("'UTC'"), column), sa.Date)
    # SQLite stores UTC as 'YYYY-MM-DD HH:MM:SS[.ffffff]'; date() keeps the day part.
    return sa.type_coerce(func.date(column), sa.Date)


def _seconds_to_accept(session: Session) -> ColumnElement[float]:
    if session.get_bind().dialect.name == "postgresql":
        return sa.extract("epoch", Invitation.accepted_at) - sa.extract(
            "epoch", Invitation.created_at
        )
    return (func.julianday(Invitation.accepted_at) - func.julianday(Invitation.created_at)) * 86400


def _per_day(session: Session, conditions: list[ColumnElement[bool]]) -> dict[date, int]:
    day = _utc_day(session, Invitation.created_at)
    rows = session.execute(select(day, func.count()).where(*conditions).group_by(day))
    return {d: int(n) for d, n in rows}


def _percentiles(
    session: Session, conditions: list[ColumnElement[bool]], percents: tuple[int, ...]
) -> dict[int, float]:
    """Nearest-rank percentiles of the time to accept, in one sorted pass in SQL."""
    seconds = _seconds_to_accept(session)
    ranked = (
        select(
            seconds.label("seconds"),
            func.row_number().over(order_by=seconds).label("rank"),
            func.count().over().label("n"),
        )
        .where(*conditions)
        .subquery()
    )
    # Rank ceil(p/100 * n), in integer arithmetic on both databases.
    wanted = {p: (ranked.c.n * p + 99) // 100 for p in percents}
    rows = session.execute(
        select(ranked.c.seconds, ranked.c.rank, ranked.c.n).where(
            or_(*(ranked.c.rank == w for w in wanted.values()))
        )
    ).all()
    result: dict[int, float] = {}
    for value, rank, n in rows:
        for p in percents:
            if rank == (int(n) * p + 99) // 100:
                result[p] = round(float(value), 3)
    return result


def acceptance_report(
    session: Session, org_id: str, *, days: int = DEFAULT_RANGE, now: datetime | None = None
) -> AcceptanceReport:
    """Invitations created per day (or week) over the last ``days`` days and their acceptance."""
    if days not in RANGES:
        raise ValueError(f"days must be one of {RANGES}")
    now = now or utcnow()
    today = now.astimezone(UTC).date()
    unit, spans = bucket_days(today, days)
    start = datetime.combine(spans[0][0], time.min, tzinfo=UTC)
    end = datetime.combine(spans[-1][1] + timedelta(days=1), time.min, tzinfo=UTC)
    window = [
        Invitation.org_id == org_id,
        Invitation.created_at >= start,
        Invitation.created_at < end,
    ]
    accepted_window = [*window, Invitation.status == ACCEPTED]
    created_by_day = _per_day(session, window)
    accepted_by_day = _per_day(session, accepted_window)

    width = 7 if unit == "week" else 1
    created = [0] * len(spans)
    accepted_counts = [0] * len(spans)
    for by_day, into in ((created_by_day, created), (accepted_by_day, accepted_counts)):
        for day, count in by_day.items():
            index = (day - spans[0][0]).days // width
            if 0 <= index < len(spans):
                into[index] += count
    buckets = [
        Bucket(first, last, created[i], accepted_counts[i]) for i, (first, last) in enumerate(spans)
    ]
    accepted = sum(accepted_counts)
    percentiles = _percentiles(session, accepted_window, (50, 90)) if accepted else {}
    return AcceptanceReport(
        days=days,
        unit=unit,
        start=start,
        end=end,
        buckets=buckets,
        created=sum(created),
        accepted=accepted,
        median_seconds=percentiles.get(50),
        p90_seconds=percentiles.get(90),
    )


def failed_deliveries(
    session: Session, org_id: str, *, limit: int = FAILED_DELIVERY_LIMIT
) -> list[Invitation]:
    """The organization's invitations whose latest email failed for good, newest first."""
    return list(
        session.scalars(
            select(Invitation)
            .where(
                Invitation.org_id == org_id,
                Invitation.delivery_status == DeliveryStatus.FAILED.value,
            )
            .order_by(Invitation.last_sent_at.desc(), Invitation.id.desc())
            .limit(limit)
        )
    )
