"""The bulk write path stores exactly what SQLAlchemy's Core insert stores."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import text

from webapp.models import AuditEvent
from webapp.services.bulk_rows import POSTGRES_COPY_MIN_ROWS
from webapp.services.bulk_rows import insert_rows

WHEN = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2)))


def event(n: int, when: datetime = WHEN) -> dict:
    return {
        "id": f"evt_bulk{n:06d}",
        "org_id": None,
        "invitation_id": None,
        "type": "invitation.created",
        "actor_type": "system",
        "actor_id": None,
        "data": {"email": f"p{n % 100_000}@x.example", "nested": [1, {"a": None}]} if n % 2 else {},
        "created_at": when,
    }


@pytest.mark.parametrize("count", [1, POSTGRES_COPY_MIN_ROWS + 1])
def test_bulk_rows_match_core_insert(session, count):
    """Same stored text (SQLite) or values (PostgreSQL) as Core, COPY path included;
    times are stored in UTC, microseconds always written."""
    session.execute(insert(AuditEvent.__table__), [event(n) for n in range(count)])
    insert_rows(session, AuditEvent.__table__, [event(n + 100_000) for n in range(count)])
    session.commit()
    raw = session.execute(
        text(
            "SELECT id, CAST(created_at AS TEXT), CAST(data AS TEXT) FROM audit_events ORDER BY id"
        )
    ).all()
    core = [(r[1], r[2]) for r in raw if r[0] < "evt_bulk100000"]
    bulk = [(r[1], r[2]) for r in raw if r[0] >= "evt_bulk100000"]
    assert core == bulk and len(bulk) == count
    loaded = session.scalar(select(AuditEvent.created_at).where(AuditEvent.id == "evt_bulk100000"))
    assert loaded == WHEN.astimezone(UTC)


def test_bulk_rows_refuse_naive_datetimes(session):
    with pytest.raises(ValueError, match="naive"):
        insert_rows(session, AuditEvent.__table__, [event(1, WHEN.replace(tzinfo=None))])
