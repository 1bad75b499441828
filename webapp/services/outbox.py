"""Queueing and cancelling emails; the delivery worker reads what this writes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy import update
from sqlalchemy.orm import Session

from webapp.clock import utcnow
from webapp.ids import new_id
from webapp.models import OutboxMessage
from webapp.models import OutboxStatus
from webapp.services.tokens import seal_for_outbox


def enqueue_email(
    session: Session,
    *,
    kind: str,
    to_email: str,
    raw_token: str | None,
    org_id: str | None,
    invitation_id: str | None = None,
    context: dict[str, Any] | None = None,
) -> str:
    """Write an outbox row in the caller's transaction and return its id."""
    message_id = new_id("msg")
    now = utcnow()
    session.execute(
        insert(OutboxMessage),
        [
            {
                "id": message_id,
                "kind": kind,
                "org_id": org_id,
                "invitation_id": invitation_id,
                "to_email": to_email,
                "token_ciphertext": seal_for_outbox(raw_token) if raw_token else None,
                "context": context or {},
                "status": OutboxStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        ],
    )
    return message_id


def cancel_unsent_for_invitations(session: Session, invitation_ids: Sequence[str]) -> int:
    """Cancel every not-yet-sent email of these invitations and erase their tokens."""
    if not invitation_ids:
        return 0
    result = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.invitation_id.in_(list(invitation_ids)),
            OutboxMessage.status == OutboxStatus.PENDING.value,
        )
        .values(status=OutboxStatus.CANCELLED.value, token_ciphertext=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount
