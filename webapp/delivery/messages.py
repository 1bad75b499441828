"""Turning an outbox row into an ``email.message.EmailMessage``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import urlsplit

from flask import current_app
from flask import render_template
from sqlalchemy.orm import Session

from webapp.clock import utcnow
from webapp.models import Invitation
from webapp.models import Organization
from webapp.models import OutboxMessage
from webapp.models import User
from webapp.services.tokens import accept_url
from webapp.services.tokens import open_from_outbox

# Org-controlled text that reaches a header or a subject line is capped.
MAX_HEADER_TEXT = 120


class MessageNotBuildable(Exception):
    """The row can never become an email (its link can no longer be rebuilt)."""


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
    host = urlsplit(current_app.config["PUBLIC_BASE_URL"]).hostname or "orginvites.invalid"
    return f"<{outbox_id}@{host}>"


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


def _inviter_label(session: Session, invitation: Invitation) -> str | None:
    """The inviting person; None when a system or an API key invited."""
    user = session.get(User, invitation.inviter_user_id) if invitation.inviter_user_id else None
    if user is None:
        return None
    return _one_line(f"{user.name} ({user.email})" if user.name else user.email)


def build_invitation_email(session: Session, row: OutboxMessage) -> EmailMessage:
    """The invitation (or reminder) email for an outbox row: HTML and plain-text parts."""
    invitation = session.get(Invitation, row.invitation_id) if row.invitation_id else None
    if invitation is None or not row.token_ciphertext:
        raise MessageNotBuildable("the invitation or its link is gone")
    raw_token = open_from_outbox(row.token_ciphertext)
    if raw_token is None:
        raise MessageNotBuildable(
            "the link cannot be rebuilt (the secret key changed); resend the invitation"
        )
    org = session.get(Organization, invitation.org_id)
    assert org is not None
    role = org.role(invitation.role)
    now = utcnow()
    context = InvitationEmailContext(
        org_name=_one_line(org.name),
        inviter=_inviter_label(session, invitation),
        role_name=_one_line(role.name if role else invitation.role),
        message=invitation.message,
        accept_url=accept_url(raw_token),
        expires_in_words=expiry_in_words(invitation.expires_at, now),
        expires_on=invitation.expires_at.strftime("%A %d %B %Y, %H:%M UTC"),
        to_email=row.to_email,
        is_reminder=row.kind == "invitation_resend",
    )
    if context.inviter:
        subject = f"{context.inviter} invited you to join {context.org_name}"
    else:
        subject = f"You're invited to join {context.org_name}"
    if context.is_reminder:
        subject = f"Reminder: {subject}"
    message = EmailMessage()
    message["Subject"] = _one_line(subject, 200)
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = row.to_email
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id_for(row.id)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(render_template("emails/invitation.txt", email=context))
    message.add_alternative(
        render_template("emails/invitation.html", email=context), subtype="html"
    )
    return message


def build_email(session: Session, row: OutboxMessage) -> EmailMessage:
    """Dispatch on the row's kind."""
    if row.kind in ("invitation", "invitation_resend"):
        return build_invitation_email(session, row)
    raise MessageNotBuildable(f"unknown email kind {row.kind!r}")
