"""Creating and reading invitations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from functools import cache
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement
from sqlalchemy import Connection
from sqlalchemy import String
from sqlalchemy import Table
from sqlalchemy import any_
from sqlalchemy import bindparam
from sqlalchemy import exists
from sqlalchemy import literal_column
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from webapp.clock import utcnow
from webapp.database import begin_writes
from webapp.ids import new_id
from webapp.ids import new_ids
from webapp.models import AuditEvent
from webapp.models import DeliveryStatus
from webapp.models import Invitation
from webapp.models import InvitationStatus
from webapp.models import Membership
from webapp.models import Organization
from webapp.models import OutboxMessage
from webapp.models import Project
from webapp.models import User
from webapp.models.invitations import PENDING_ONLY
from webapp.services.actors import Actor
from webapp.services.audit import event_row
from webapp.services.audit import record_events
from webapp.services.bulk_rows import DriverRows
from webapp.services.bulk_rows import driver_rows
from webapp.services.bulk_rows import insert_skipping_conflicts
from webapp.services.bulk_rows import row_writer
from webapp.services.counters import add_to_counter
from webapp.services.counters import status_totals
from webapp.services.errors import AlreadyInvited
from webapp.services.errors import AlreadyMember
from webapp.services.errors import FieldError
from webapp.services.errors import NotFound
from webapp.services.errors import QuotaExceeded
from webapp.services.errors import ServiceError
from webapp.services.errors import ValidationFailed
from webapp.services.expiry import expire_lapsed_for_address
from webapp.services.expiry import expire_lapsed_for_addresses
from webapp.services.organizations import MAX_EXPIRY_SECONDS
from webapp.services.organizations import MIN_EXPIRY_SECONDS
from webapp.services.organizations import held_roles
from webapp.services.organizations import role_exists
from webapp.services.organizations import unknown_role_error
from webapp.services.outbox import enqueue_email
from webapp.services.outbox import enqueue_emails
from webapp.services.outbox import outbox_row
from webapp.services.prepared import PreparedStatement
from webapp.services.prepared import attached
from webapp.services.tokens import accept_url
from webapp.services.tokens import hash_token
from webapp.services.tokens import new_token
from webapp.services.tokens import new_tokens
from webapp.services.tokens import seal_for_outbox
from webapp.services.tokens import seal_many_for_outbox
from webapp.services.validation import check_metadata
from webapp.services.validation import check_redirect_url
from webapp.services.validation import clean_text
from webapp.services.validation import normalize_email

MAX_MESSAGE_LENGTH = 1000
# ON CONFLICT target of the partial unique index: one pending invitation per address.
PENDING_CONFLICT_TARGET = f"(org_id, email_key) WHERE {PENDING_ONLY.text}"
PROJECT_ROLES = ("member", "owner")
# The enums' values, read once: a bulk import writes them into 90,000 rows.
PENDING = InvitationStatus.PENDING.value
QUEUED = DeliveryStatus.QUEUED.value
NOT_SENT = DeliveryStatus.NOT_SENT.value
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


@dataclass(slots=True)
class CheckedRequest:
    """A request that passed every field rule, with defaults filled in."""

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
) -> CheckedRequest:
    """Apply every field rule; raise ValidationFailed listing all problems."""
    return InvitationChecker(session, org, now).check(request, skip_email=skip_email)


_UNSET = object()


class InvitationChecker:
    """Every field rule of an invitation request, for one organization at one instant.

    The one place these rules live. A batch (a CSV import) checks thousands of requests
    that share a few values (role, expiry, redirect URL, projects): each distinct value
    is checked once and its answer remembered; addresses and metadata are per request.
    """

    def __init__(self, session: Session, org: Organization, now: datetime | None = None) -> None:
        self.session = session
        self.org = org
        self.now = now or utcnow()
        self.max_metadata_bytes = current_app.config["METADATA_MAX_BYTES"]
        self._memo: dict[tuple[str, Any], Any] = {}

    def _remembered(self, kind: str, key: Any, compute):
        try:
            memo_key = (kind, key)
            hash(memo_key)
        except TypeError:
            return compute()
        value = self._memo.get(memo_key, _UNSET)
        if value is _UNSET:
            value = self._memo[memo_key] = compute()
        return value

    def _role(self, role: str) -> FieldError | None:
        # Roles not loaded (an API request): one index probe instead of loading them.
        # (The write path holds the role again in its transaction: ``held_roles``.)
        if (
            "roles" not in self.org.__dict__
            and isinstance(role, str)
            and role_exists(self.session, self.org, role)
        ):
            return None
        if self.org.role(role) is None:
            return unknown_role_error(self.org, role)
        return None

    def _redirect(self, value: object) -> str | FieldError:
        return check_redirect_url(value, self.org.allowed_redirect_origins)

    def problems(
        self, request: InvitationRequest, *, skip_email: bool = False
    ) -> tuple[CheckedRequest | None, list[FieldError]]:
        """The checked request, or None and every problem found."""
        errors: list[FieldError] = []
        normalized = ("", "") if skip_email else normalize_email(request.email)
        if isinstance(normalized, FieldError):
            errors.append(normalized)
            normalized = ("", "")
        role = request.role or self.org.default_role
        role_error = self._remembered("role", role, lambda: self._role(role))
        if role_error is not None:
            errors.append(role_error)
        expires_at = self._remembered(
            "expiry",
            (request.expires_in, request.expires_at),
            lambda: resolve_expiry(self.org, self.now, request.expires_in, request.expires_at),
        )
        if isinstance(expires_at, FieldError):
            errors.append(expires_at)
        redirect_url = None
        if request.redirect_url not in (None, ""):
            checked = self._remembered(
                "redirect", request.redirect_url, lambda: self._redirect(request.redirect_url)
            )
            if isinstance(checked, FieldError):
                errors.append(checked)
            else:
                redirect_url = checked
        public = check_metadata(request.public_metadata, "public_metadata", self.max_metadata_bytes)
        private = check_metadata(
            request.private_metadata, "private_metadata", self.max_metadata_bytes
        )
        grants = self._remembered(
            "projects",
            _grants_key(request.project_grants),
            lambda: _check_project_grants(self.session, self.org, request.project_grants),
        )
        message = self._remembered(
            "message",
            request.message,
            lambda: clean_text(request.message, "message", MAX_MESSAGE_LENGTH, multiline=True),
        )
        for value in (public, private, grants, message):
            if isinstance(value, FieldError):
                errors.append(value)
        if errors:
            return None, errors
        return (
            CheckedRequest(
                email=normalized[0],
                email_key=normalized[1],
                role=role,
                expires_at=expires_at,
                redirect_url=redirect_url,
                public_metadata=public,  # type: ignore[arg-type]
                private_metadata=private,  # type: ignore[arg-type]
                project_grants=grants,
                message=message,  # type: ignore[arg-type]
                notify=request.notify,
            ),
            [],
        )

    def check(self, request: InvitationRequest, *, skip_email: bool = False) -> CheckedRequest:
        """The checked request; raise ValidationFailed listing all problems."""
        checked, errors = self.problems(request, skip_email=skip_email)
        if errors:
            raise ValidationFailed(errors)
        assert checked is not None
        return checked


def _grants_key(grants: object) -> object:
    """A hashable stand-in for a project grant list (unhashable values are not remembered)."""
    if grants is None:
        return None
    if isinstance(grants, list) and all(
        isinstance(g, dict) and all(isinstance(v, str) for v in g.values()) for g in grants
    ):
        return tuple(tuple(sorted(g.items())) for g in grants)
    return [grants]  # unhashable: checked every time


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


def is_one_of(session: Session, column: ColumnElement[str], values: Sequence[str]):
    """``column IN (values)``; on PostgreSQL ``column = ANY(:array)``, one parameter.

    A 2,000-address IN list cost SQLAlchemy and psycopg more to render and bind (about
    20 ms a batch) than the lookup itself; the array is one value, and PostgreSQL still
    probes the column's index for each element. SQLite keeps the IN list (binding is
    cheap there, and its planner then starts from the column's index).
    """
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam("one_of", list(values), type_=ARRAY(String)))
    return column.in_(list(values))


def member_keys(session: Session, org_id: str, email_keys: Sequence[str]) -> set[str]:
    """Which of these addresses belong to members of the organization already."""
    if not email_keys:
        return set()
    return set(
        session.scalars(
            select(User.email_key)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.org_id == org_id, is_one_of(session, User.email_key, email_keys))
        )
    )


def is_pending_by_address() -> ColumnElement[bool]:
    """``status = 'pending'`` for lookups by (org, list of addresses).

    Written as ``status || ''`` so that no index on status can serve it: each address is
    then one probe of the (org_id, email_key) index. Without statistics (a bulk import is
    adding the rows; PostgreSQL's autovacuum has not analysed them yet, SQLite never does
    on its own) both planners otherwise pick an (org_id, status, …) index and walk every
    pending row of the organization for each list of addresses, quadratic over an import.
    """
    return literal_column("invitations.status || ''") == InvitationStatus.PENDING.value


def pending_keys(session: Session, org_id: str, email_keys: Sequence[str]) -> set[str]:
    """Which of these addresses have a pending invitation in the organization (as stored)."""
    if not email_keys:
        return set()
    return set(
        session.scalars(
            select(Invitation.email_key).where(
                Invitation.org_id == org_id,
                is_pending_by_address(),
                Invitation.email_key.in_(list(email_keys)),
            )
        )
    )


@dataclass(frozen=True, slots=True)
class CreatedInvitation:
    index: int
    invitation_id: str
    raw_token: str


@dataclass
class BatchCreation:
    """What ``create_checked_invitations`` did with each request (by input index)."""

    created: list[CreatedInvitation] = field(default_factory=list)
    already_invited: list[int] = field(default_factory=list)
    already_member: list[int] = field(default_factory=list)
    unknown_role: list[int] = field(default_factory=list)


def _insert_skipping_pending(session: Session, rows: list[dict[str, Any]] | DriverRows) -> set[str]:
    """INSERT … ON CONFLICT DO NOTHING on the one-pending-per-address index; return the
    ids of the rows that went in (the others lost to an existing pending invitation).

    Through ``bulk_rows`` (values converted once; COPY on PostgreSQL, multi-row
    statements on SQLite): a 2,000-row import batch is mostly this.
    """
    return insert_skipping_conflicts(
        session, Invitation.__table__, rows, conflict=PENDING_CONFLICT_TARGET
    )


@dataclass(frozen=True)
class NewInvitationRows:
    """Every row a batch of new invitations may write, built before anything is written.

    For each request, in address order (the order of the INSERT): the invitation row,
    its ``invitation.created`` event and, if it notifies, its outbox email with the
    sealed link, all converted for the driver; ``create_checked_invitations`` writes
    the ones of the invitations it creates. Made by ``new_invitation_rows``, which
    needs no database: a bulk import builds the next batch's rows while the database
    writes this one's.
    """

    dialect: str
    order: list[int]  # request indexes, in address order
    raw_tokens: list[str]  # by position in ``order``
    invitations: DriverRows
    events: DriverRows
    emailed: list[int]  # positions in ``order`` that notify
    emails: DriverRows  # one per position in ``emailed``


def new_invitation_rows(
    org_id: str,
    requests: Sequence[CheckedRequest],
    *,
    actor: Actor,
    source: str,
    now: datetime,
    event_data: dict[str, Any] | None,
    dialect: str,
) -> NewInvitationRows:
    """The rows of a new invitation for every request (see ``NewInvitationRows``).

    Ids, link tokens and seals come per batch (one read of random bytes each). Run in
    an app context (the seals' key comes from the secret key).
    """
    count = len(requests)
    order = sorted(range(count), key=lambda i: requests[i].email_key)
    ids = new_ids("inv", count)
    tokens = new_tokens(count)
    rows = [
        _invitation_row(org_id, requests[i], actor, source, now, token_hash, invitation_id)
        for i, invitation_id, (_, token_hash) in zip(order, ids, tokens, strict=True)
    ]
    # Each table's dicts are converted as soon as they are built, then dropped: two
    # batches' rows are in memory at once (one written, one built ahead).
    events = driver_rows(
        AuditEvent.__table__,
        [
            _created_event(org_id, row, actor, source, now, event_data, event_id=event_id)
            for row, event_id in zip(rows, new_ids("evt", count), strict=True)
        ],
        dialect,
    )
    emailed = [position for position, i in enumerate(order) if requests[i].notify]
    # Queued now; the worker writes invitation.sent once the server accepted it.
    sealed = seal_many_for_outbox([tokens[position][0] for position in emailed])
    emails = driver_rows(
        OutboxMessage.__table__,
        [
            outbox_row(
                kind="invitation",
                to_email=rows[position]["email"],
                sealed_token=sealed_token,
                org_id=org_id,
                invitation_id=rows[position]["id"],
                now=now,
                message_id=message_id,
            )
            for position, sealed_token, message_id in zip(
                emailed, sealed, new_ids("msg", len(emailed)), strict=True
            )
        ],
        dialect,
    )
    return NewInvitationRows(
        dialect=dialect,
        order=order,
        raw_tokens=[raw for raw, _ in tokens],
        invitations=driver_rows(Invitation.__table__, rows, dialect),
        events=events,
        emailed=emailed,
        emails=emails,
    )


def create_checked_invitations(
    session: Session,
    org: Organization,
    requests: Sequence[CheckedRequest],
    *,
    actor: Actor,
    source: str,
    now: datetime | None = None,
    event_data: dict[str, Any] | None = None,
    rows: NewInvitationRows | None = None,
) -> BatchCreation:
    """The one write path of new invitations, for one request or thousands.

    In the caller's transaction: members are refused, lapsed pending invitations of
    these addresses are expired, the quota is checked (QuotaExceeded, nothing written),
    then the rows are inserted with their audit events, outbox emails and counters.
    An address that already has a pending invitation, or gets one from a concurrent
    caller, is skipped by the partial unique index (ON CONFLICT DO NOTHING), never
    duplicated. Rows are inserted in address order so that concurrent batches lock
    index entries in one order.

    ``rows``, if given, are ``new_invitation_rows`` of these same requests (with the
    same actor, source, now and event data), built ahead; otherwise they are built here.
    """
    now = now or utcnow()
    result = BatchCreation()
    org_id = org.id
    keys = [c.email_key for c in requests]
    # Checked when the batch was planned; a role removed since fails its requests.
    roles = held_roles(session, org_id, {c.role for c in requests})
    result.unknown_role = [i for i, c in enumerate(requests) if c.role not in roles]
    members = member_keys(session, org_id, keys)
    candidates = [
        i for i, c in enumerate(requests) if c.email_key not in members and c.role in roles
    ]
    result.already_member = [
        i for i, c in enumerate(requests) if c.email_key in members and c.role in roles
    ]
    # A lapsed pending invitation reads as expired everywhere; make that true in the
    # table too, so it no longer holds the one-pending-per-address index.
    expire_lapsed_for_addresses(session, org_id, [keys[i] for i in candidates])
    fresh: list[int] = []
    seen: set[str] = set()
    for i in candidates:
        if keys[i] in seen:
            result.already_invited.append(i)
        else:
            seen.add(keys[i])
            fresh.append(i)
    if not fresh:
        return result
    # Addresses already invited are found by the INSERT itself (the unique index,
    # whatever the planner thinks); only a tight quota needs them counted first.
    try:
        check_quota(session, org, now, adding=len(fresh))
    except QuotaExceeded:
        pending = pending_keys(session, org_id, [keys[i] for i in fresh])
        if not pending:
            raise
        result.already_invited.extend(i for i in fresh if keys[i] in pending)
        fresh = [i for i in fresh if keys[i] not in pending]
        if not fresh:
            result.already_invited.sort()
            return result
        check_quota(session, org, now, adding=len(fresh))
    dialect = session.get_bind().dialect.name
    if rows is None:
        rows = new_invitation_rows(
            org_id,
            requests,
            actor=actor,
            source=source,
            now=now,
            event_data=event_data,
            dialect=dialect,
        )
    elif rows.dialect != dialect or len(rows.order) != len(requests):
        raise ValueError("rows built for other requests or another database")
    # The rows of the fresh requests, still in address order.
    if len(fresh) == len(requests):
        positions = list(range(len(requests)))
    else:
        wanted = set(fresh)
        positions = [p for p, i in enumerate(rows.order) if i in wanted]
    inserted = _insert_skipping_pending(session, rows.invitations.take(positions))
    invitation_ids = rows.invitations.column("id")
    created: list[int] = []
    for position in positions:
        i = rows.order[position]
        invitation_id = invitation_ids[position]
        if invitation_id not in inserted:
            # A concurrent caller's pending invitation for this address won.
            result.already_invited.append(i)
            continue
        result.created.append(CreatedInvitation(i, invitation_id, rows.raw_tokens[position]))
        created.append(position)
    if result.created:
        record_events(session, rows.events.take(created))
        if len(created) == len(rows.order):
            enqueue_emails(session, rows.emails)
        else:
            kept = set(created)
            enqueue_emails(
                session,
                rows.emails.take([n for n, p in enumerate(rows.emailed) if p in kept]),
            )
        # Last: on PostgreSQL the counter row's lock is held until the commit.
        add_to_counter(session.connection(), org_id, PENDING, len(result.created))
    result.created.sort(key=lambda c: c.index)
    result.already_invited.sort()
    return result


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
    return create_checked_invitation(session, org, checked, actor=actor, source=source, now=now)


def create_checked_invitation(
    session: Session,
    org: Organization,
    checked: CheckedRequest,
    *,
    actor: Actor,
    source: str,
    now: datetime,
) -> IssuedInvitation:
    """``create_checked_invitations`` for one request, in as few statements as it takes.

    The same rules in the same order: a member is refused, a lapsed pending invitation
    of the address is expired first, the quota is checked, and the partial unique index
    decides between racing callers (INSERT … ON CONFLICT DO NOTHING). Everything that
    needs no database — the token, its sealed copy for the outbox, the rows — is done
    before the first write: under late writes on SQLite (an API create) that is before
    ``BEGIN IMMEDIATE``, so the write lock is held for the statements alone.
    """
    raw_token, token_hash = new_token()
    row = _invitation_row(org.id, checked, actor, source, now, token_hash)
    event = _created_event(org.id, row, actor, source, now, None)
    email = (
        outbox_row(
            kind="invitation",
            to_email=row["email"],
            sealed_token=seal_for_outbox(raw_token),
            org_id=org.id,
            invitation_id=row["id"],
            now=now,
        )
        if checked.notify
        else None
    )

    connection = session.connection()
    # The statements below run on the driver's cursor, which does not autoflush: a
    # membership the caller added just before must be seen by the member check. (Under
    # late writes, a flush that writes opens the transaction first: webapp.database.)
    session.flush()
    link = accept_url(raw_token)
    # PostgreSQL's one statement is atomic on its own: under late writes it runs
    # outside a transaction (no BEGIN and COMMIT round trips), else in the caller's.
    if (
        connection.dialect.name == "postgresql"
        and org.invite_quota is None
        and _insert_created_postgres(connection, row, event, email, org.id)
    ):
        return IssuedInvitation(invitation=_loaded(session, row), accept_url=link)
    begin_writes(connection)
    # Nothing went in on PostgreSQL's one-statement path (a member, a pending invitation
    # of the address, live or lapsed, a racer's, or a role removed since the check), or
    # a quota to check first, or SQLite (whose statements cost no round trip): one step
    # at a time.
    if checked.role not in held_roles(session, org.id, [checked.role]):
        raise ValidationFailed([unknown_role_error(org, checked.role)])
    [(member, pending_id, pending_expires_at)] = _ADDRESS_STATE.run(
        connection, {"org_id": org.id, "email_key": checked.email_key}
    )
    if member:
        raise AlreadyMember(checked.email, org.name)
    if pending_id is not None:
        if pending_expires_at > utcnow():
            raise AlreadyInvited(checked.email, pending_id)
        # Lapsed: it reads as expired everywhere; make that true in the table too, so
        # it no longer holds the one-pending-per-address index.
        expire_lapsed_for_address(session, org.id, checked.email_key)
    check_quota(session, org, now)
    if not _insert_skipping_pending(session, [row]):
        # A concurrent caller's pending invitation for this address won.
        existing = find_pending_invitation(session, org.id, checked.email_key)
        raise AlreadyInvited(checked.email, existing.id if existing else None)
    record_events(session, [event])
    if email is not None:
        enqueue_emails(session, [email])
    add_to_counter(connection, org.id, InvitationStatus.PENDING.value, 1)
    return IssuedInvitation(invitation=_loaded(session, row), accept_url=link)


def _insert_created_postgres(
    connection: Connection,
    row: dict[str, Any],
    event: dict[str, Any],
    email: dict[str, Any] | None,
    org_id: str,
) -> bool:
    """PostgreSQL, one round trip: the invitation (unless the address is a member's,
    its role is gone, or it already has a pending invitation: ON CONFLICT on the partial
    unique index), and only if it went in, its audit event, its outbox email and the
    pending counter (last: its row lock is held until the commit). The role's row is
    held FOR KEY SHARE until the commit, as ``held_roles`` does. True if the invitation
    went in."""
    tables = [Invitation.__table__, AuditEvent.__table__]
    rows = [row, event]
    if email is not None:
        tables.append(OutboxMessage.__table__)
        rows.append(email)
    writers = [row_writer(t, tuple(r), "postgresql") for t, r in zip(tables, rows, strict=True)]
    values: list[Any] = [
        *writers[0].values([row])[0],
        org_id,
        row["email_key"],
        org_id,
        row["role"],
    ]
    for writer, other in zip(writers[1:], rows[1:], strict=True):
        values.extend(writer.values([other])[0])
    values.append(org_id)
    written = tuple((t, tuple(w.names)) for t, w in zip(tables, writers, strict=True))
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        cursor.execute(_created_sql_postgres(written), values)
        return cursor.fetchone() is not None
    finally:
        cursor.close()


@cache
def _created_sql_postgres(written: tuple[tuple[Table, tuple[str, ...]], ...]) -> str:
    """The statement for ``written``: (table, the columns its writer gives) each."""
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()
    tables = [table for table, _ in written]

    def typed_values(table: Table) -> tuple[str, str]:
        columns = [table.columns[name] for name in dict(written)[table]]
        names = ", ".join(f'"{c.name}"' for c in columns)
        casts = ", ".join(f"CAST(%s AS {c.type.compile(dialect=dialect)})" for c in columns)
        return names, casts

    names, casts = typed_values(tables[0])
    parts = [
        f"WITH inserted AS (INSERT INTO {tables[0].name} ({names}) SELECT {casts} "
        "WHERE NOT EXISTS (SELECT 1 FROM memberships JOIN users ON users.id = "
        "memberships.user_id WHERE memberships.org_id = %s AND users.email_key = %s) "
        "AND EXISTS (SELECT 1 FROM org_roles WHERE org_roles.org_id = %s "
        "AND org_roles.key = %s FOR KEY SHARE) "
        f"ON CONFLICT {PENDING_CONFLICT_TARGET} DO NOTHING RETURNING id)"
    ]
    for number, table in enumerate(tables[1:]):
        names, casts = typed_values(table)
        parts.append(
            f"written_{number} AS (INSERT INTO {table.name} ({names}) SELECT {casts} FROM inserted)"
        )
    parts.append(
        "counted AS (UPDATE invitation_counters SET count = invitation_counters.count + 1 "
        "FROM inserted WHERE invitation_counters.org_id = %s "
        "AND invitation_counters.status = 'pending')"
    )
    return ", ".join(parts) + " SELECT id FROM inserted"


def _address_state_statement():
    """Whether the address belongs to a member, and its pending invitation (id, expiry):
    one statement, two index probes."""
    org_id = bindparam("org_id")
    email_key = bindparam("email_key")
    member = exists().where(
        Membership.org_id == org_id, Membership.user_id == User.id, User.email_key == email_key
    )
    # The literal predicate lets both planners use the partial unique index.
    pending = (Invitation.org_id == org_id, Invitation.email_key == email_key, PENDING_ONLY)
    return select(
        member.label("is_member"),
        select(Invitation.id).where(*pending).scalar_subquery(),
        select(Invitation.expires_at).where(*pending).scalar_subquery(),
    )


_ADDRESS_STATE = PreparedStatement(_address_state_statement)


def _invitation_row(
    org_id: str,
    checked: CheckedRequest,
    actor: Actor,
    source: str,
    now: datetime,
    token_hash: str,
    invitation_id: str | None = None,
) -> dict[str, Any]:
    """Every column of a new pending invitation (the ORM object is built from the same)."""
    return {
        "id": invitation_id or new_id("inv"),
        "org_id": org_id,
        "email": checked.email,
        "email_key": checked.email_key,
        "role": checked.role,
        "status": PENDING,
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
        "delivery_status": QUEUED if checked.notify else NOT_SENT,
    }


# Columns a new invitation leaves empty: set on the ORM object so that none loads.
_EMPTY_AT_CREATION = {
    "accepted_at": None,
    "declined_at": None,
    "revoked_at": None,
    "revoked_by_user_id": None,
    "revoked_by_api_key_id": None,
    "accepted_user_id": None,
    "delivery_error": None,
}


def _created_event(
    org_id: str,
    row: dict[str, Any],
    actor: Actor,
    source: str,
    now: datetime,
    event_data: dict[str, Any] | None,
    event_id: str | None = None,
) -> dict[str, Any]:
    data = {"email": row["email"], "role": row["role"], "source": source}
    if event_data:
        data.update(event_data)
    return event_row(
        "invitation.created",
        actor=actor,
        org_id=org_id,
        invitation_id=row["id"],
        data=data,
        now=now,
        event_id=event_id,
    )


def _loaded(session: Session, row: dict[str, Any]) -> Invitation:
    """The just-inserted invitation as a persistent ORM object, without reading it back:
    built from the values written (as a read would give them: UTC datetimes)."""
    values = {**row, **_EMPTY_AT_CREATION, "expires_at": row["expires_at"].astimezone(UTC)}
    return attached(session, Invitation, values)


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
