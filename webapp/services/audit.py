"""Writing audit events (in the caller's transaction)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from webapp.clock import utcnow
from webapp.ids import new_id
from webapp.models import AuditEvent
from webapp.services.actors import Actor


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
    session.execute(
        insert(AuditEvent),
        [
            {
                "id": new_id("evt"),
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
                "created_at": utcnow(),
            }
        ],
    )
