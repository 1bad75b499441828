"""Turning an outbox row into an ``email.message.EmailMessage``."""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from email.utils import parseaddr
from functools import lru_cache
from urllib.parse import urlsplit

from flask import current_app
from flask import render_template
from sqlalchemy import Row
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm import selectinload

from webapp.clock import utcnow
from webapp.models import Invitation
from webapp.models import Organization
from webapp.models import OutboxMessage
from webapp.models import User
from webapp.services.tokens import accept_url
from webapp.services.tokens import open_from_outbox
from webapp.services.tokens import public_url

# An outbox row: the ORM object, or a plain row of its table (what the worker reads).
OutboxRow = OutboxMessage | Row

# Org-controlled text that reaches a header or a subject line is capped.
MAX_HEADER_TEXT = 120


class MessageNotBuildable(Exception):
    """The row can never become an email (its link can no longer be rebuilt)."""


@lru_cache(maxsize=1024)  # the same org, role and inviter names, batch after batch
def _one_line(text: str, limit: int = MAX_HEADER_TEXT) -> str:
    """Collapse whitespace and control characters, cap the length."""
    cleaned = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def expiry_in_words(expires_at: datetime, now: datetime) -> str:
    seconds = (expires_at - now).total_seconds()
    if seconds <= 0:
        return "has expired"
    hours = seconds / 3600
    if hours < 1.5:
        return "in about an hour"
    if hours < 36:
        return f"in {round(hours)} hours"
    return f"in {round(hours / 24)} days"


def message_id_for(outbox_id: str) -> str:
    """A stable Message-ID per outbox row, so a re-delivery is recognisably the same mail."""
    return f"<{outbox_id}@{_message_id_host()}>"


def _message_id_host() -> str:
    return urlsplit(current_app.config["PUBLIC_BASE_URL"]).hostname or "orginvites.invalid"


@dataclass
class InvitationEmailContext:
    org_name: str
    inviter: str | None
    role_name: str
    message: str | None
    accept_url: str
    expires_in_words: str
    expires_on: str
    to_email: str
    is_reminder: bool


def _inviter_label(user: User | None) -> str | None:
    """The inviting person; None when a system or an API key invited."""
    if user is None:
        return None
    return _one_line(f"{user.name} ({user.email})" if user.name else user.email)


@dataclass
class OutgoingEmail:
    """A message ready for a transport: serialized bytes, or (rarely) the object itself."""

    outbox_id: str
    sender: str
    recipient: str
    message_id: str
    raw: bytes | None = None
    message: EmailMessage | None = None

    def as_bytes(self) -> bytes:
        return self.raw if self.raw is not None else self.message.as_bytes(policy=SMTP)


def _body_cte(text: str) -> str | None:
    """7bit for plain ASCII (keeps the link on one line); the library's choice otherwise."""
    if text.isascii() and all(len(line) <= 998 for line in text.splitlines()):
        return "7bit"
    return None


def compose_invitation_email(
    context: InvitationEmailContext, outbox_id: str, now: datetime
) -> EmailMessage:
    """The invitation (or reminder) email: HTML and plain-text parts, stable Message-ID."""
    if context.inviter:
        subject = f"{context.inviter} invited you to join {context.org_name}"
    else:
        subject = f"You're invited to join {context.org_name}"
    if context.is_reminder:
        subject = f"Reminder: {subject}"
    message = EmailMessage()
    message["Subject"] = _one_line(subject, 200)
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = context.to_email
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id_for(outbox_id)
    message["Auto-Submitted"] = "auto-generated"
    text = render_template("emails/invitation.txt", email=context)
    html = render_template("emails/invitation.html", email=context)
    message.set_content(text, cte=_body_cte(text))
    message.add_alternative(html, subtype="html", cte=_body_cte(html))
    return message


@dataclass
class _Loaded:
    """What a batch's emails mention, read up front as plain values.

    Building the emails then never touches the database: the worker builds each one
    while the previous one is with the SMTP server, outside any transaction.
    """

    invitations: dict[str, Row]  # the columns an email mentions
    org_names: dict[str, str]
    role_names: dict[tuple[str, str], str]  # (org id, role key) -> display name
    inviters: dict[str, str | None]  # user id -> label


def _load(session: Session, rows: Sequence[OutboxRow]) -> _Loaded:
    """Everything the batch's emails mention, in three queries (four with roles)."""
    invitation_ids = [r.invitation_id for r in rows if r.invitation_id]
    # Plain rows, not ORM objects: a batch has hundreds.
    invitations = {
        i.id: i
        for i in session.execute(
            select(
                Invitation.id,
                Invitation.org_id,
                Invitation.role,
                Invitation.message,
                Invitation.expires_at,
                Invitation.inviter_user_id,
            ).where(Invitation.id.in_(invitation_ids))
        )
    }
    org_ids = {i.org_id for i in invitations.values()}
    orgs = list(
        session.scalars(
            select(Organization)
            .where(Organization.id.in_(org_ids))
            .options(selectinload(Organization.roles))
        )
    )
    user_ids = {i.inviter_user_id for i in invitations.values() if i.inviter_user_id}
    users = session.scalars(select(User).where(User.id.in_(user_ids)))
    return _Loaded(
        invitations,
        org_names={o.id: o.name for o in orgs},
        role_names={(o.id, r.key): r.name for o in orgs for r in o.roles},
        inviters={u.id: _inviter_label(u) for u in users},
    )


def _opened(row: OutboxRow, loaded: _Loaded) -> tuple[Row, str]:
    """The row's invitation and the raw token of its link, or MessageNotBuildable."""
    if row.kind not in ("invitation", "invitation_resend"):
        raise MessageNotBuildable(f"unknown email kind {row.kind!r}")
    invitation = loaded.invitations.get(row.invitation_id or "")
    if invitation is None or not row.token_ciphertext:
        raise MessageNotBuildable("the invitation or its link is gone")
    raw_token = open_from_outbox(row.token_ciphertext)
    if raw_token is None:
        raise MessageNotBuildable(
            "the link cannot be rebuilt (the secret key changed); resend the invitation"
        )
    return invitation, raw_token


def _expiry_texts(expires_at: datetime, now: datetime) -> tuple[str, str]:
    return expiry_in_words(expires_at, now), expires_at.strftime("%A %d %B %Y, %H:%M UTC")


def _shared_key(row: OutboxRow, invitation: Row, now: datetime) -> tuple:
    """Everything ``_shared_context`` depends on (the expiry as the email words it)."""
    return (
        row.kind,
        invitation.org_id,
        invitation.role,
        invitation.message,
        invitation.inviter_user_id,
        _expiry_texts(invitation.expires_at, now),
    )


def _shared_context(
    row: OutboxRow, invitation: Row, loaded: _Loaded, now: datetime
) -> InvitationEmailContext:
    """The email's context but for the recipient and the link (left empty)."""
    role_name = loaded.role_names.get((invitation.org_id, invitation.role), invitation.role)
    expires_in_words, expires_on = _expiry_texts(invitation.expires_at, now)
    return InvitationEmailContext(
        org_name=_one_line(loaded.org_names[invitation.org_id]),
        inviter=loaded.inviters.get(invitation.inviter_user_id or ""),
        role_name=_one_line(role_name),
        message=invitation.message,
        accept_url="",
        expires_in_words=expires_in_words,
        expires_on=expires_on,
        to_email="",
        is_reminder=row.kind == "invitation_resend",
    )


def _context(row: OutboxRow, loaded: _Loaded, now: datetime) -> InvitationEmailContext:
    invitation, raw_token = _opened(row, loaded)
    shared = _shared_context(row, invitation, loaded, now)
    return replace(shared, to_email=row.to_email, accept_url=accept_url(raw_token))


# Placeholders for what differs between emails of one group; ASCII, never folded or
# encoded (7bit bodies), each checked present before a template is used.
_TOKEN_SLOT = "OItokenSLOT" + "x" * 32  # as long as a real token (43 characters)
_RECIPIENT_SLOT = "oi-recipient-slot@slot.invalid"
_OUTBOX_SLOT = "msg_oioutboxslot"


def _template_for(shared: InvitationEmailContext, now: datetime) -> bytes | None:
    slotted = replace(shared, to_email=_RECIPIENT_SLOT, accept_url=accept_url(_TOKEN_SLOT))
    raw = compose_invitation_email(slotted, _OUTBOX_SLOT, now).as_bytes(policy=SMTP)
    if not raw.isascii() or any(
        slot.encode() not in raw for slot in (_TOKEN_SLOT, _RECIPIENT_SLOT, _OUTBOX_SLOT)
    ):
        return None
    return raw


Outgoing = OutgoingEmail | tuple[str, MessageNotBuildable]


def render_outgoing(session: Session, rows: Sequence[OutboxRow]) -> list[Outgoing]:
    """Build the emails of a batch, in order; unbuildable rows come back with the reason."""
    return list(iter_outgoing(session, rows))


def iter_outgoing(session: Session, rows: Sequence[OutboxRow]) -> Iterator[Outgoing]:
    """Read what the batch's emails need now; build each email when it is asked for.

    The returned iterator does not use ``session`` (the caller may end its transaction).
    Emails that differ only in recipient, link and Message-ID (a bulk invite) share
    one ``EmailMessage`` rendering; each is then filled in. Anything non-ASCII is
    built on its own.
    """
    now = utcnow()
    loaded = _load(session, rows)
    sender = parseaddr(current_app.config["MAIL_FROM"])[1]
    return _build_each(rows, loaded, now, sender)


def _build_each(
    rows: Sequence[OutboxRow], loaded: _Loaded, now: datetime, sender: str
) -> Iterator[Outgoing]:
    host = _message_id_host()
    # Per group of emails alike but for recipient, link and Message-ID: the shared
    # context, and the rendered template (None when it cannot be filled in safely).
    groups: dict[tuple, tuple[InvitationEmailContext, bytes | None]] = {}
    for row in rows:
        message_id = f"<{row.id}@{host}>"
        if row.kind == "password_reset":
            try:
                message = compose_password_reset_email(row, now)
            except MessageNotBuildable as exc:
                yield (row.id, exc)
                continue
            yield OutgoingEmail(row.id, sender, row.to_email, message_id, message=message)
            continue
        try:
            invitation, raw_token = _opened(row, loaded)
        except MessageNotBuildable as exc:
            yield (row.id, exc)
            continue
        key = _shared_key(row, invitation, now)
        if key not in groups:
            shared = _shared_context(row, invitation, loaded, now)
            groups[key] = (shared, _template_for(shared, now))
        shared, template = groups[key]
        if template is not None and row.to_email.isascii():
            raw = (
                template.replace(_TOKEN_SLOT.encode(), raw_token.encode())
                .replace(_RECIPIENT_SLOT.encode(), row.to_email.encode())
                .replace(_OUTBOX_SLOT.encode(), row.id.encode())
            )
            yield OutgoingEmail(row.id, sender, row.to_email, message_id, raw=raw)
        else:
            context = replace(shared, to_email=row.to_email, accept_url=accept_url(raw_token))
            message = compose_invitation_email(context, row.id, now)
            yield OutgoingEmail(row.id, sender, row.to_email, message_id, message=message)


def compose_password_reset_email(row: OutboxRow, now: datetime) -> EmailMessage:
    """The password-reset email: a single-use link valid for one hour."""
    raw_token = open_from_outbox(row.token_ciphertext) if row.token_ciphertext else None
    if raw_token is None:
        raise MessageNotBuildable("the reset link cannot be rebuilt; ask for a new one")
    link = public_url(f"/password-reset/{raw_token}")
    message = EmailMessage()
    message["Subject"] = "Reset your OrgInvites password"
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = row.to_email
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id_for(row.id)
    message["Auto-Submitted"] = "auto-generated"
    text = render_template("emails/password_reset.txt", link=link, to_email=row.to_email)
    html = render_template("emails/password_reset.html", link=link, to_email=row.to_email)
    message.set_content(text, cte=_body_cte(text))
    message.add_alternative(html, subtype="html", cte=_body_cte(html))
    return message


def build_email(session: Session, row: OutboxMessage) -> EmailMessage:
    """The email of one outbox row, built directly (no shared template)."""
    if row.kind == "password_reset":
        return compose_password_reset_email(row, utcnow())
    context = _context(row, _load(session, [row]), utcnow())
    return compose_invitation_email(context, row.id, utcnow())
