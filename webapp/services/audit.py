"""Writing audit events (in the caller's transaction)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from webapp.clock import utcnow
from webapp.ids import new_id
from webapp.models import AuditEvent
from webapp.services.actors import Actor
from webapp.services.bulk_rows import DriverRows
from webapp.services.bulk_rows import insert_rows


def event_row(
    event_type: str,
    *,
    actor: Actor,
    org_id: str | None,
    invitation_id: str | None = None,
    data: dict[str, Any] | None = None,
    now: datetime | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """The values of one audit event row (for ``record_events``)."""
    return {
        "id": event_id or new_id("evt"),
        "org_id": org_id,
        "invitation_id": invitation_id,
        "type": event_type,
        "actor_type": actor.kind,
        "actor_id": actor.id,
        "data": (
            {**(data or {}), "on_behalf_of_user_id": actor.on_behalf_of_user_id}
            if actor.on_behalf_of_user_id
            else data or {}
        ),
        "created_at": now or utcnow(),
    }


def record_events(session: Session, rows: list[dict[str, Any]] | DriverRows) -> None:
    """Add many events (built by ``event_row``, maybe converted by ``driver_rows``) in
    as few statements as it takes. Never with a token."""
    if rows:
        insert_rows(session, AuditEvent.__table__, rows)


def record_event(
    session: Session,
    event_type: str,
    *,
    actor: Actor,
    org_id: str | None,
    invitation_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Add one audit event to the current transaction. ``data`` must never hold a token."""
    record_events(
        session,
        [event_row(event_type, actor=actor, org_id=org_id, invitation_id=invitation_id, data=data)],
    )
