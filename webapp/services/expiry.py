"""Writing the expired status of pending invitations whose time has passed."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import ColumnElement
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from webapp.clock import utcnow
from webapp.ids import new_id
from webapp.models import AuditEvent
from webapp.models import Invitation
from webapp.models import InvitationStatus
from webapp.services.counters import adjust_counters
from webapp.services.outbox import cancel_unsent_for_invitations

PENDING = InvitationStatus.PENDING.value
EXPIRED = InvitationStatus.EXPIRED.value


def _expire_where(session: Session, *conditions: ColumnElement[bool]) -> int:
    """Expire the lapsed pending rows matching ``conditions``: status, counters, events, mail."""
    now = utcnow()
    rows = session.execute(
        update(Invitation)
        .where(Invitation.status == PENDING, Invitation.expires_at <= now, *conditions)
        .values(status=EXPIRED, updated_at=now)
        .returning(Invitation.id, Invitation.org_id, Invitation.email)
        .execution_options(synchronize_session=False)
    ).all()
    if not rows:
        return 0
    for org_id, count in Counter(org_id for _, org_id, _ in rows).items():
        adjust_counters(session, org_id, {PENDING: -count, EXPIRED: count})
    session.execute(
        insert(AuditEvent),
        [
            {
                "id": new_id("evt"),
                "org_id": org_id,
                "invitation_id": invitation_id,
                "type": "invitation.expired",
                "actor_type": "system",
                "actor_id": None,
                "data": {"email": email},
                "created_at": now,
            }
            for invitation_id, org_id, email in rows
        ],
    )
    cancel_unsent_for_invitations(session, [r[0] for r in rows])
    return len(rows)


def expire_due_invitations(session: Session, *, batch_size: int = 1000) -> int:
    """Mark one batch of pending invitations past their expiry as expired.

    Returns how many were expired; call until 0. Readers already see these as
    expired; this makes it permanent (and frees the address for a new invitation).
    """
    candidates = (
        select(Invitation.id)
        .where(Invitation.status == PENDING, Invitation.expires_at <= utcnow())
        .limit(batch_size)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    ids = list(session.scalars(candidates))
    if not ids:
        return 0
    return _expire_where(session, Invitation.id.in_(ids))


def expire_lapsed_for_address(session: Session, org_id: str, email_key: str) -> int:
    """Expire now the address's lapsed pending invitation, if any, before a new one."""
    return _expire_where(session, Invitation.org_id == org_id, Invitation.email_key == email_key)


def expire_lapsed_for_addresses(session: Session, org_id: str, email_keys: list[str]) -> int:
    """``expire_lapsed_for_address`` for many addresses in one statement (bulk imports).

    First the organization's earliest pending expiry (one probe of its (org_id, status,
    expires_at) index): usually still ahead, and then there is nothing to look for.
    """
    if not email_keys:
        return 0
    earliest = session.scalar(
        select(func.min(Invitation.expires_at)).where(
            Invitation.org_id == org_id, Invitation.status == PENDING
        )
    )
    if earliest is None or earliest > utcnow():
        return 0
    return _expire_where(session, Invitation.org_id == org_id, Invitation.email_key.in_(email_keys))
