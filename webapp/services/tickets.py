"""Acceptance tickets: a short-lived signed proof, handed to the product on redirect,
that an invitation was accepted. The product verifies it once through OrgInvites.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature
from itsdangerous import URLSafeSerializer
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webapp.clock import utcnow
from webapp.models import AcceptanceTicketUse
from webapp.models import Invitation
from webapp.models import InvitationStatus
from webapp.models import Membership
from webapp.models import User
from webapp.services.errors import ServiceError

TICKET_LIFETIME = timedelta(minutes=10)
_SALT = "orginvites.acceptance-ticket"


class InvalidTicket(ServiceError):
    code = "invalid_ticket"


@dataclass
class VerifiedAcceptance:
    invitation: Invitation
    user: User
    membership: Membership


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def issue_ticket(invitation: Invitation) -> str:
    """The ticket of an accepted invitation.

    It is derived from the acceptance time, so a repeated accept gets the very same
    ticket (and the same redirect); it is valid for ten minutes after acceptance.
    """
    assert invitation.accepted_at is not None
    return _serializer().dumps(
        {"inv": invitation.id, "at": int(invitation.accepted_at.timestamp())}
    )


def verify_ticket(
    session: Session, ticket: str, *, org_id: str | None = None
) -> VerifiedAcceptance:
    """Check signature, age and single use; return what the acceptance created.

    With ``org_id`` (an org-scoped API key), another organization's ticket is invalid
    and is not used up. Raises InvalidTicket (tampered, expired, already verified, or
    not accepted).
    """
    try:
        payload = _serializer().loads(ticket)
        invitation_id, accepted_ts = payload["inv"], int(payload["at"])
    except (BadSignature, KeyError, TypeError, ValueError):
        raise InvalidTicket("the ticket is not valid") from None
    invitation = session.get(Invitation, invitation_id)
    if (
        invitation is None
        or (org_id is not None and invitation.org_id != org_id)
        or invitation.status != InvitationStatus.ACCEPTED.value
        or invitation.accepted_at is None
        or int(invitation.accepted_at.timestamp()) != accepted_ts
    ):
        raise InvalidTicket("the ticket is not valid")
    if utcnow() > invitation.accepted_at + TICKET_LIFETIME:
        raise InvalidTicket("the ticket has expired", code="ticket_expired")
    try:
        with session.begin_nested():
            session.execute(
                insert(AcceptanceTicketUse),
                [{"invitation_id": invitation.id, "used_at": utcnow()}],
            )
    except IntegrityError:
        raise InvalidTicket("the ticket was already used", code="ticket_used") from None
    user = session.get(User, invitation.accepted_user_id) if invitation.accepted_user_id else None
    membership = (
        session.scalar(
            select(Membership).where(
                Membership.org_id == invitation.org_id, Membership.user_id == user.id
            )
        )
        if user
        else None
    )
    if user is None or membership is None:
        raise InvalidTicket("the membership no longer exists")
    return VerifiedAcceptance(invitation=invitation, user=user, membership=membership)
