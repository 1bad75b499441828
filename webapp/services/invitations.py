"""Creating and reading invitations."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import exists
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webapp.clock import utcnow
from webapp.ids import new_id
from webapp.models import DeliveryStatus
from webapp.models import Invitation
from webapp.models import InvitationStatus
from webapp.models import Membership
from webapp.models import Organization
from webapp.models import Project
from webapp.models import User
from webapp.services.actors import Actor
from webapp.services.audit import record_event
from webapp.services.counters import adjust_counters
from webapp.services.counters import status_totals
from webapp.services.errors import AlreadyInvited
from webapp.services.errors import AlreadyMember
from webapp.services.errors import FieldError
from webapp.services.errors import NotFound
from webapp.services.errors import QuotaExceeded
from webapp.services.errors import ServiceError
from webapp.services.errors import ValidationFailed
from webapp.services.expiry import expire_lapsed_for_address
from webapp.services.organizations import MAX_EXPIRY_SECONDS
from webapp.services.organizations import MIN_EXPIRY_SECONDS
from webapp.services.outbox import enqueue_email
from webapp.services.tokens import accept_url
from webapp.services.tokens import hash_token
from webapp.services.tokens import new_token
from webapp.services.validation import check_metadata
from webapp.services.validation import check_redirect_url
from webapp.services.validation import clean_text
from webapp.services.validation import normalize_email

MAX_MESSAGE_LENGTH = 1000
PROJECT_ROLES = ("member", "owner")
# expires_at given by a client is measured a moment after it was computed.
EXPIRY_CLOCK_SLACK = timedelta(seconds=60)


@dataclass
class InvitationRequest:
    """What a caller asks for; every field is checked by ``create_invitation``."""

    email: Any
    role: str | None = None
    expires_in: timedelta | None = None
    expires_at: datetime | None = None
    redirect_url: str | None = None
    public_metadata: dict[str, Any] | None = None
    private_metadata: dict[str, Any] | None = None
    project_grants: list[dict[str, str]] | None = None
    message: str | None = None
    notify: bool = True


@dataclass
class IssuedInvitation:
    """An invitation together with its link, which is shown only this once."""

    invitation: Invitation
    accept_url: str


@dataclass
class BulkFailure:
    index: int
    email: str
    error: ServiceError


@dataclass
class BulkResult:
    """Per-item outcome of ``create_invitations``, in input order within each list."""

    successes: list[tuple[int, IssuedInvitation]] = field(default_factory=list)
    failures: list[BulkFailure] = field(default_factory=list)


@dataclass
class _CheckedRequest:
    email: str
    email_key: str
    role: str
    expires_at: datetime
    redirect_url: str | None
    public_metadata: dict[str, Any]
    private_metadata: dict[str, Any]
    project_grants: list[dict[str, str]]
    message: str | None
    notify: bool


def resolve_expiry(
    org: Organization,
    now: datetime,
    expires_in: timedelta | None,
    expires_at: datetime | None,
    field_name: str = "expires_in",
) -> datetime | FieldError:
    """Expiry from a duration or an instant, 1 hour to 30 days ahead; the org default otherwise."""
    if expires_in is not None and expires_at is not None:
        return FieldError(
            field_name, "conflicting_fields", "give expires_in or expires_at, not both"
        )
    if expires_at is not None:
        if expires_at.tzinfo is None:
            return FieldError("expires_at", "invalid", "expires_at needs a time zone")
        delta = expires_at - now
        if not (
            timedelta(seconds=MIN_EXPIRY_SECONDS) - EXPIRY_CLOCK_SLACK
            <= delta
            <= timedelta(seconds=MAX_EXPIRY_SECONDS)
        ):
            return FieldError(
                "expires_at",
                "expiry_out_of_range",
                f"{expires_at.isoformat()} must be between 1 hour and 30 days from now",
            )
        return expires_at
    if expires_in is not None:
        if not MIN_EXPIRY_SECONDS <= expires_in.total_seconds() <= MAX_EXPIRY_SECONDS:
            return FieldError(
                field_name,
                "expiry_out_of_range",
                f"{_describe(expires_in)} is outside the allowed range of 1 hour to 30 days",
            )
        return now + expires_in
    return now + timedelta(seconds=org.default_expiry_seconds)


def _describe(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400} days"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hours"
    return f"{seconds} seconds"


def _check_project_grants(
    session: Session, org: Organization, grants: object
) -> list[dict[str, str]] | FieldError:
    if grants is None:
        return []
    if not isinstance(grants, list):
        return FieldError("projects", "invalid", "projects must be a list of {id, role}")
    wanted: list[dict[str, str]] = []
    for item in grants:
        if not isinstance(item, dict) or not isinstance(item.get("project_id"), str):
            return FieldError("projects", "invalid", "each project grant needs a project id")
        role = item.get("role", "member")
        if role not in PROJECT_ROLES:
            return FieldError(
                "projects", "invalid_project_role", f"project role {role!r} must be member or owner"
            )
        wanted.append({"project_id": item["project_id"], "role": role})
    ids = [g["project_id"] for g in wanted]
    if len(set(ids)) != len(ids):
        return FieldError("projects", "duplicate_project", "a project is listed twice")
    if ids:
        known = set(
            session.scalars(select(Project.id).where(Project.org_id == org.id, Project.id.in_(ids)))
        )
        unknown = [i for i in ids if i not in known]
        if unknown:
            return FieldError(
                "projects", "unknown_project", f"{unknown[0]!r} is not a project of {org.name}"
            )
    return wanted


def check_shared_fields(
    session: Session, org: Organization, request: InvitationRequest, now: datetime | None = None
) -> None:
    """Check everything but the email address (what a batch shares); raise ValidationFailed."""
    check_invitation_request(session, org, request, now or utcnow(), skip_email=True)


def check_invitation_request(
    session: Session,
    org: Organization,
    request: InvitationRequest,
    now: datetime,
    *,
    skip_email: bool = False,
) -> _CheckedRequest:
    """Apply every field rule; raise ValidationFailed listing all problems."""
    errors: list[FieldError] = []
    normalized = ("", "") if skip_email else normalize_email(request.email)
    if isinstance(normalized, FieldError):
        errors.append(normalized)
        normalized = ("", "")
    role = request.role or org.default_role
    if org.role(role) is None:
        errors.append(
            FieldError(
                "role",
                "unknown_role",
                f"{role!r} is not a role of {org.name} (roles: {_role_keys(org)})",
            )
        )
    expires_at = resolve_expiry(org, now, request.expires_in, request.expires_at)
    if isinstance(expires_at, FieldError):
        errors.append(expires_at)
    redirect_url = None
    if request.redirect_url not in (None, ""):
        checked = check_redirect_url(request.redirect_url, org.allowed_redirect_origins)
        if isinstance(checked, FieldError):
            errors.append(checked)
        else:
            redirect_url = checked
    max_bytes = current_app.config["METADATA_MAX_BYTES"]
    public = check_metadata(request.public_metadata, "public_metadata", max_bytes)
    private = check_metadata(request.private_metadata, "private_metadata", max_bytes)
    grants = _check_project_grants(session, org, request.project_grants)
    message = clean_text(request.message, "message", MAX_MESSAGE_LENGTH, multiline=True)
    for value in (public, private, grants, message):
        if isinstance(value, FieldError):
            errors.append(value)
    if errors:
        raise ValidationFailed(errors)
    return _CheckedRequest(
        email=normalized[0],
        email_key=normalized[1],
        role=role,
        expires_at=expires_at,  # type: ignore[arg-type]
        redirect_url=redirect_url,
        public_metadata=public,  # type: ignore[arg-type]
        private_metadata=private,  # type: ignore[arg-type]
        project_grants=grants,  # type: ignore[arg-type]
        message=message,  # type: ignore[arg-type]
        notify=request.notify,
    )


def _role_keys(org: Organization) -> str:
    return ", ".join(r.key for r in org.roles)


def is_member(session: Session, org_id: str, email_key: str) -> bool:
    return bool(
        session.scalar(
            select(
                exists()
                .where(Membership.org_id == org_id, Membership.user_id == User.id)
                .where(User.email_key == email_key)
            )
        )
    )


def find_pending_invitation(session: Session, org_id: str, email_key: str) -> Invitation | None:
    return session.scalar(
        select(Invitation).where(
            Invitation.org_id == org_id,
            Invitation.email_key == email_key,
            Invitation.status == InvitationStatus.PENDING.value,
        )
    )


def check_quota(session: Session, org: Organization, now: datetime, adding: int = 1) -> None:
    if org.invite_quota is None:
        return
    pending = status_totals(session, org.id, now)[InvitationStatus.PENDING.value]
    if pending + adding > org.invite_quota:
        raise QuotaExceeded(
            f"{org.name} already has {pending} pending invitations; its quota is {org.invite_quota}"
        )


def issue_invitation_email(
    session: Session, invitation: Invitation, org: Organization, raw_token: str, kind: str
) -> None:
    """Queue the invitation's email in the caller's transaction."""
    enqueue_email(
        session,
        kind=kind,
        to_email=invitation.email,
        raw_token=raw_token,
        org_id=org.id,
        invitation_id=invitation.id,
    )


def create_invitation(
    session: Session,
    org: Organization,
    request: InvitationRequest,
    *,
    actor: Actor,
    source: str = "api",
) -> IssuedInvitation:
    """Create one pending invitation, its audit event and (if ``notify``) its outbox email.

    Raises ValidationFailed, AlreadyInvited, AlreadyMember or QuotaExceeded. The
    partial unique index, not this function, is what guarantees one pending
    invitation per address when callers race.
    """
    now = utcnow()
    checked = check_invitation_request(session, org, request, now)
    if is_member(session, org.id, checked.email_key):
        raise AlreadyMember(checked.email, org.name)
    # A lapsed pending invitation reads as expired everywhere; make that true in the
    # table too, so it no longer holds the one-pending-per-address index.
    expire_lapsed_for_address(session, org.id, checked.email_key)
    check_quota(session, org, now)
    raw_token, token_hash = new_token()
    invitation_id = new_id("inv")
    values = {
        "id": invitation_id,
        "org_id": org.id,
        "email": checked.email,
        "email_key": checked.email_key,
        "role": checked.role,
        "status": InvitationStatus.PENDING.value,
        "source": source,
        "inviter_user_id": actor.user_id,
        "inviter_api_key_id": actor.api_key_id,
        "public_metadata": checked.public_metadata,
        "private_metadata": checked.private_metadata,
        "redirect_url": checked.redirect_url,
        "project_grants": checked.project_grants,
        "message": checked.message,
        "token_hash": token_hash,
        "created_at": now,
        "updated_at": now,
        "expires_at": checked.expires_at,
        "send_count": 1,
        "last_sent_at": now,
        "delivery_status": (
            DeliveryStatus.QUEUED.value if checked.notify else DeliveryStatus.NOT_SENT.value
        ),
    }
    try:
        with session.begin_nested():
            session.execute(insert(Invitation), [values])
    except IntegrityError:
        existing = find_pending_invitation(session, org.id, checked.email_key)
        if existing is None:
            raise
        raise AlreadyInvited(checked.email, existing.id) from None
    adjust_counters(session, org.id, {InvitationStatus.PENDING.value: 1})
    invitation = session.get(Invitation, invitation_id)
    assert invitation is not None
    record_event(
        session,
        "invitation.created",
        actor=actor,
        org_id=org.id,
        invitation_id=invitation_id,
        data={"email": checked.email, "role": checked.role, "source": source},
    )
    if checked.notify:
        # Queued now; the worker writes invitation.sent once the server accepted it.
        issue_invitation_email(session, invitation, org, raw_token, "invitation")
    return IssuedInvitation(invitation=invitation, accept_url=accept_url(raw_token))


def create_invitations(
    session: Session,
    org: Organization,
    requests: list[InvitationRequest],
    *,
    actor: Actor,
    source: str = "api",
) -> BulkResult:
    """Create many invitations; each succeeds or fails on its own (savepoint per item)."""
    result = BulkResult()
    for index, request in enumerate(requests):
        try:
            with session.begin_nested():
                issued = create_invitation(session, org, request, actor=actor, source=source)
        except ServiceError as error:
            result.failures.append(BulkFailure(index, str(request.email), error))
        else:
            result.successes.append((index, issued))
    return result


def get_invitation(session: Session, org: Organization | None, invitation_id: str) -> Invitation:
    """The invitation with this id in ``org`` (any org when None); another org's id is NotFound."""
    invitation = session.get(Invitation, invitation_id) if isinstance(invitation_id, str) else None
    if invitation is None or (org is not None and invitation.org_id != org.id):
        raise NotFound(f"no invitation {invitation_id!r}")
    return invitation


def get_invitation_by_token(session: Session, raw_token: str) -> Invitation | None:
    """Look an invitation up by the hash of its link token."""
    if not raw_token or len(raw_token) > 128:
        return None
    return session.scalar(select(Invitation).where(Invitation.token_hash == hash_token(raw_token)))


def get_pending_invitation_by_email(session: Session, org: Organization, email: str) -> Invitation:
    normalized = normalize_email(email)
    if isinstance(normalized, FieldError):
        raise ValidationFailed([normalized])
    invitation = find_pending_invitation(session, org.id, normalized[1])
    if invitation is None:
        raise NotFound(f"{normalized[0]} has no pending invitation in {org.name}")
    return invitation
