"""Invitation state changes: revoke, resend, accept, decline and the expiry sweep.

Every change is a conditional UPDATE whose row count decides the winner, so that
concurrent callers (40 accepts of one link, a revoke racing an accept) end in
exactly one outcome.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import Update
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webapp.clock import utcnow
from webapp.database import insert_ignoring_conflicts
from webapp.ids import new_id
from webapp.models import DeliveryStatus
from webapp.models import Invitation
from webapp.models import InvitationStatus
from webapp.models import Membership
from webapp.models import Organization
from webapp.models import Project
from webapp.models import ProjectMembership
from webapp.models import User
from webapp.services.actors import Actor
from webapp.services.audit import record_event
from webapp.services.counters import adjust_counters
from webapp.services.errors import AlreadyInvited
from webapp.services.errors import AlreadyMember
from webapp.services.errors import FieldError
from webapp.services.errors import InvalidTransition
from webapp.services.errors import InvitationUnavailable
from webapp.services.errors import Throttled
from webapp.services.errors import ValidationFailed
from webapp.services.invitations import IssuedInvitation
from webapp.services.invitations import check_quota
from webapp.services.invitations import find_pending_invitation
from webapp.services.invitations import get_invitation
from webapp.services.invitations import get_invitation_by_token
from webapp.services.invitations import get_pending_invitation_by_email
from webapp.services.invitations import is_member
from webapp.services.invitations import issue_invitation_email
from webapp.services.invitations import resolve_expiry
from webapp.services.outbox import cancel_unsent_for_invitations
from webapp.services.tokens import accept_url
from webapp.services.tokens import new_token
from webapp.services.users import check_password_rules
from webapp.services.users import get_or_create_user
from webapp.services.users import hash_password
from webapp.services.validation import check_redirect_url
from webapp.services.validation import clean_text

PENDING = InvitationStatus.PENDING.value
EXPIRED = InvitationStatus.EXPIRED.value


def _conditional_update(session: Session, statement: Update) -> int:
    """Run a guarded UPDATE and return how many rows it changed (0 means: lost the race)."""
    result = session.execute(statement.execution_options(synchronize_session=False))
    return result.rowcount


def _reload(session: Session, invitation: Invitation) -> Invitation:
    session.refresh(invitation)
    return invitation


def revoke_invitation(
    session: Session,
    org: Organization,
    invitation_id: str,
    *,
    actor: Actor,
    verb: str = "revoked",
) -> Invitation:
    """Revoke a pending invitation: its link dies and its unsent email is cancelled.

    Only a pending invitation can be revoked (an accepted one, in particular, cannot be
    withdrawn); ``verb`` is the caller's word for it in that error ("deleted" for the
    vendor APIs that call revoking deleting).
    """
    invitation = get_invitation(session, org, invitation_id)
    now = utcnow()
    won = _conditional_update(
        session,
        update(Invitation)
        .where(
            Invitation.id == invitation.id,
            Invitation.status == PENDING,
            Invitation.expires_at > now,
        )
        .values(
            status=InvitationStatus.REVOKED.value,
            revoked_at=now,
            updated_at=now,
            revoked_by_user_id=actor.user_id,
            revoked_by_api_key_id=actor.api_key_id,
        ),
    )
    _reload(session, invitation)
    if not won:
        raise InvalidTransition(invitation.id, invitation.effective_status(now), verb, "pending")
    cancelled = cancel_unsent_for_invitations(session, [invitation.id])
    if cancelled and invitation.delivery_status == DeliveryStatus.QUEUED.value:
        invitation.delivery_status = None
    adjust_counters(session, org.id, {PENDING: -1, InvitationStatus.REVOKED.value: 1})
    record_event(
        session,
        "invitation.revoked",
        actor=actor,
        org_id=org.id,
        invitation_id=invitation.id,
        data={"email": invitation.email, "cancelled_emails": cancelled},
    )
    return invitation


def resend_invitation(
    session: Session,
    org: Organization,
    invitation_id: str,
    *,
    actor: Actor,
    notify: bool = True,
    expires_in: timedelta | None = None,
) -> IssuedInvitation:
    """Issue a new link (the old one dies), reset the expiry and queue the email again.

    Works on pending and expired invitations (an expired one re-opens as pending);
    throttled to one resend per ``RESEND_MIN_INTERVAL_SECONDS`` and at most
    ``MAX_SENDS_PER_INVITATION`` links per invitation.
    """
    invitation = get_invitation(session, org, invitation_id)
    now = utcnow()
    effective = invitation.effective_status(now)
    if effective not in (PENDING, EXPIRED):
        raise InvalidTransition(invitation.id, effective, "resent", "pending or expired")
    min_interval = current_app.config["RESEND_MIN_INTERVAL_SECONDS"]
    if invitation.last_sent_at is not None:
        wait = (invitation.last_sent_at + timedelta(seconds=min_interval) - now).total_seconds()
        if wait > 0:
            retry_after = math.ceil(wait)
            raise Throttled(
                f"invitation {invitation.id} was sent less than {min_interval} seconds ago; "
                f"try again in {retry_after} seconds",
                retry_after,
            )
    max_sends = current_app.config["MAX_SENDS_PER_INVITATION"]
    if invitation.send_count >= max_sends:
        raise Throttled(
            f"invitation {invitation.id} has been sent {invitation.send_count} times, the limit; "
            "revoke it and invite again",
            3600,
        )
    if effective == EXPIRED:
        # Re-opening makes a pending invitation again: the same rules as creating one.
        if is_member(session, org.id, invitation.email_key):
            raise AlreadyMember(invitation.email, org.name)
        check_quota(session, org, now)
    expires_at = resolve_expiry(org, now, expires_in, None)
    if isinstance(expires_at, FieldError):
        raise ValidationFailed([expires_at])
    raw_token, token_hash = new_token()
    stored_status = invitation.status
    try:
        with session.begin_nested():
            won = _conditional_update(
                session,
                update(Invitation)
                .where(
                    Invitation.id == invitation.id,
                    Invitation.status == stored_status,
                    Invitation.token_hash == invitation.token_hash,
                )
                .values(
                    status=PENDING,
                    token_hash=token_hash,
                    expires_at=expires_at,
                    updated_at=now,
                    send_count=Invitation.send_count + 1,
                    last_sent_at=now,
                    delivery_status=(
                        DeliveryStatus.QUEUED.value if notify else DeliveryStatus.NOT_SENT.value
                    ),
                    delivery_error=None,
                ),
            )
    except IntegrityError:
        other = find_pending_invitation(session, org.id, invitation.email_key)
        if other is None:
            raise
        raise AlreadyInvited(invitation.email, other.id) from None
    _reload(session, invitation)
    if not won:
        raise InvalidTransition(
            invitation.id, invitation.effective_status(now), "resent", "pending or expired"
        )
    if stored_status == EXPIRED:
        adjust_counters(session, org.id, {EXPIRED: -1, PENDING: 1})
    cancel_unsent_for_invitations(session, [invitation.id])
    if notify:
        issue_invitation_email(session, invitation, org, raw_token, "invitation_resend")
    record_event(
        session,
        "invitation.resent",
        actor=actor,
        org_id=org.id,
        invitation_id=invitation.id,
        data={
            "email": invitation.email,
            "send_count": invitation.send_count,
            "reopened": effective == EXPIRED,
            "notify": notify,
        },
    )
    return IssuedInvitation(invitation=invitation, accept_url=accept_url(raw_token))


@dataclass
class AcceptResult:
    invitation: Invitation
    user: User
    membership: Membership
    already_accepted: bool
    redirect_url: str | None


def redirect_target(session: Session, invitation: Invitation) -> str | None:
    """The invitation's (or org's default) redirect URL, re-checked against today's allowlist."""
    org = session.get(Organization, invitation.org_id)
    assert org is not None
    candidate = invitation.redirect_url or org.default_redirect_url
    if not candidate:
        return None
    checked = check_redirect_url(candidate, org.allowed_redirect_origins)
    return None if isinstance(checked, FieldError) else checked


def role_administers(session: Session, invitation: Invitation) -> bool:
    org = session.get(Organization, invitation.org_id)
    assert org is not None
    role = org.role(invitation.role)
    return bool(role and role.is_admin)


def needs_password(session: Session, invitation: Invitation) -> bool:
    """Accepting an admin role needs a password, unless the person already has one."""
    if not role_administers(session, invitation):
        return False
    user = session.scalar(select(User).where(User.email_key == invitation.email_key))
    return not (user and user.password_hash)


def accept_invitation(
    session: Session, raw_token: str, *, name: str | None = None, password: str | None = None
) -> AcceptResult:
    """Accept by link token: create or link the user, membership and project memberships.

    A second accept of an already accepted link returns the same result with
    ``already_accepted=True``. Unknown, revoked, declined and expired links raise
    InvitationUnavailable. An admin role needs a password unless the user has one.
    """
    invitation = get_invitation_by_token(session, raw_token)
    if invitation is None:
        raise InvitationUnavailable()
    if invitation.status == InvitationStatus.ACCEPTED.value:
        return _accepted_result(session, invitation, already=True)
    now = utcnow()
    if invitation.effective_status(now) != PENDING:
        raise InvitationUnavailable()

    clean_name = clean_text(name, "name", 200)
    errors: list[FieldError] = []
    if isinstance(clean_name, FieldError):
        errors.append(clean_name)
        clean_name = None
    password_required = needs_password(session, invitation)
    if password_required:
        problem = check_password_rules(password)
        if problem:
            errors.append(problem)
    if errors:
        raise ValidationFailed(errors)

    won = _conditional_update(
        session,
        update(Invitation)
        .where(
            Invitation.id == invitation.id,
            Invitation.status == PENDING,
            Invitation.expires_at > now,
        )
        .values(status=InvitationStatus.ACCEPTED.value, accepted_at=now, updated_at=now),
    )
    if not won:
        _reload(session, invitation)
        if invitation.status == InvitationStatus.ACCEPTED.value:
            return _accepted_result(session, invitation, already=True)
        raise InvitationUnavailable()

    user = get_or_create_user(session, invitation.email, invitation.email_key, clean_name)
    if clean_name and not user.name:
        user.name = clean_name
    if password_required and password:
        user.password_hash = hash_password(password)
    dialect = session.get_bind().dialect.name
    session.execute(
        insert_ignoring_conflicts(Membership.__table__, ["org_id", "user_id"], dialect),
        [
            {
                "id": new_id("mem"),
                "org_id": invitation.org_id,
                "user_id": user.id,
                "role": invitation.role,
                "public_metadata": invitation.public_metadata or {},
                "private_metadata": invitation.private_metadata or {},
                "invitation_id": invitation.id,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )
    grants = invitation.project_grants or []
    if grants:
        live_projects = set(
            session.scalars(
                select(Project.id).where(
                    Project.org_id == invitation.org_id,
                    Project.id.in_([g["project_id"] for g in grants]),
                )
            )
        )
        rows = [
            {
                "project_id": g["project_id"],
                "user_id": user.id,
                "role": g["role"],
                "created_at": now,
            }
            for g in grants
            if g["project_id"] in live_projects
        ]
        if rows:
            session.execute(
                insert_ignoring_conflicts(
                    ProjectMembership.__table__, ["project_id", "user_id"], dialect
                ),
                rows,
            )
    session.execute(
        update(Invitation)
        .where(Invitation.id == invitation.id)
        .values(accepted_user_id=user.id)
        .execution_options(synchronize_session=False)
    )
    _reload(session, invitation)
    cancel_unsent_for_invitations(session, [invitation.id])
    adjust_counters(session, invitation.org_id, {PENDING: -1, InvitationStatus.ACCEPTED.value: 1})
    record_event(
        session,
        "invitation.accepted",
        actor=Actor.user(user.id),
        org_id=invitation.org_id,
        invitation_id=invitation.id,
        data={"email": invitation.email, "role": invitation.role, "user_id": user.id},
    )
    return _accepted_result(session, invitation, already=False)


def _accepted_result(session: Session, invitation: Invitation, *, already: bool) -> AcceptResult:
    user = session.get(User, invitation.accepted_user_id) if invitation.accepted_user_id else None
    if user is None:  # the accepting user was deleted since
        raise InvitationUnavailable()
    membership = session.scalar(
        select(Membership).where(
            Membership.org_id == invitation.org_id, Membership.user_id == user.id
        )
    )
    if membership is None:  # removed from the org since: the link is spent
        raise InvitationUnavailable()
    return AcceptResult(
        invitation=invitation,
        user=user,
        membership=membership,
        already_accepted=already,
        redirect_url=redirect_target(session, invitation),
    )


def decline_invitation(session: Session, raw_token: str) -> tuple[Invitation, bool]:
    """Decline by link token. Returns ``(invitation, already_declined)``."""
    invitation = get_invitation_by_token(session, raw_token)
    if invitation is None:
        raise InvitationUnavailable()
    if invitation.status == InvitationStatus.DECLINED.value:
        return invitation, True
    now = utcnow()
    won = _conditional_update(
        session,
        update(Invitation)
        .where(
            Invitation.id == invitation.id,
            Invitation.status == PENDING,
            Invitation.expires_at > now,
        )
        .values(status=InvitationStatus.DECLINED.value, declined_at=now, updated_at=now),
    )
    _reload(session, invitation)
    if not won:
        if invitation.status == InvitationStatus.DECLINED.value:
            return invitation, True
        raise InvitationUnavailable()
    cancel_unsent_for_invitations(session, [invitation.id])
    adjust_counters(session, invitation.org_id, {PENDING: -1, InvitationStatus.DECLINED.value: 1})
    record_event(
        session,
        "invitation.declined",
        actor=Actor("system", None),
        org_id=invitation.org_id,
        invitation_id=invitation.id,
        data={"email": invitation.email},
    )
    return invitation, False


def revoke_pending_by_email(
    session: Session, org: Organization, email: str, *, actor: Actor
) -> Invitation:
    """Revoke the pending invitation of an address (Anyscale's ``delete --email``)."""
    invitation = get_pending_invitation_by_email(session, org, email)
    return revoke_invitation(session, org, invitation.id, actor=actor)


__all__ = [
    "AcceptResult",
    "accept_invitation",
    "decline_invitation",
    "redirect_target",
    "resend_invitation",
    "revoke_invitation",
    "revoke_pending_by_email",
]
