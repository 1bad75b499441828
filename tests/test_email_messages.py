"""Invitation emails: content, headers, and the shared-template fast path."""

from __future__ import annotations

import email
import email.policy
import hashlib
import re

from sqlalchemy import select

from webapp.delivery.messages import build_email
from webapp.delivery.messages import render_outgoing
from webapp.models import Invitation
from webapp.models import OutboxMessage
from webapp.services.actors import SYSTEM
from webapp.services.actors import Actor
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import create_invitations
from webapp.services.organizations import create_organization
from webapp.services.users import create_admin_user

LINK = re.compile(r"https://invites\.example\.com/invitations/accept/([A-Za-z0-9_-]{43})")


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def parts(message) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


def queued(session, org, emails, actor=SYSTEM, **fields):
    result = create_invitations(
        session, org, [InvitationRequest(email=e, **fields) for e in emails], actor=actor
    )
    session.commit()
    assert not result.failures, result.failures
    return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.created_at)))


def test_shared_template_gives_the_same_email_as_a_direct_build(session):
    """The fast path fills in recipient, link and Message-ID exactly as a full build would."""
    admin, _ = create_admin_user(
        session, email="grace@example.com", password="long enough pw", name="Grace"
    )
    org = create_organization(session, name="Acme Rockets")
    rows = queued(
        session,
        org,
        ["ada@example.com", "alan@example.org", "Linus@Example.net"],
        message="Welcome aboard,\nsee you Monday.",
        actor=Actor.user(admin.id),
    )
    outgoing = render_outgoing(session, rows)
    assert all(o.raw is not None for o in outgoing)  # all took the fast path
    for row, fast in zip(rows, outgoing, strict=True):
        direct = parse(build_email(session, row).as_bytes(policy=email.policy.SMTP))
        fast_message = parse(fast.raw)
        for header in ("Subject", "From", "To", "Message-ID", "Auto-Submitted"):
            assert str(fast_message[header]) == str(direct[header]), header
        assert parts(fast_message) == parts(direct)
        assert fast.recipient == row.to_email


def test_email_content_names_org_inviter_role_expiry_and_link(session):
    """Both parts carry the org, the inviter, the role, the note, the expiry and the link."""
    admin, _ = create_admin_user(
        session, email="grace@example.com", password="long enough pw", name="Grace Hopper"
    )
    org = create_organization(session, name="Acme Rockets")
    [row] = queued(
        session, org, ["ada@example.com"], message="Bring snacks", actor=Actor.user(admin.id)
    )
    [outgoing] = render_outgoing(session, [row])
    message = parse(outgoing.raw)
    assert message["Subject"] == "Grace Hopper (grace@example.com) invited you to join Acme Rockets"
    assert message["Message-ID"] == f"<{row.id}@invites.example.com>"
    text, html = parts(message)
    for body in (text, html):
        assert "Acme Rockets" in body and "Member" in body and "Bring snacks" in body
        assert "expires in 7 days" in body
    token = LINK.search(text).group(1)
    assert LINK.search(html).group(1) == token
    invitation_hash = session.get(type(row), row.id).invitation_id

    assert (
        session.get(Invitation, invitation_hash).token_hash
        == hashlib.sha256(token.encode()).hexdigest()
    )


def test_non_ascii_org_name_is_encoded_properly(session):
    """A non-ASCII org name takes the direct build: encoded subject, intact link."""
    org = create_organization(session, name="Café Zürich", slug="cafe")
    [row] = queued(session, org, ["ada@example.com"])
    [outgoing] = render_outgoing(session, [row])
    message = parse(outgoing.as_bytes())
    assert message["Subject"] == "You're invited to join Café Zürich"
    text, _ = parts(message)
    assert LINK.search(text)
    assert outgoing.as_bytes().isascii()  # encoded for transport


def test_non_ascii_recipient_keeps_the_message_object_for_smtputf8(session):
    """An internationalised address is sent as a message object (smtplib adds SMTPUTF8)."""
    org = create_organization(session, name="Acme")
    [row] = queued(session, org, ["ü@bücher.de"])
    [outgoing] = render_outgoing(session, [row])
    assert outgoing.raw is None and outgoing.message is not None
    assert outgoing.message["To"] == "ü@bücher.de"


def test_hostile_note_is_escaped_in_html(session):
    """The inviter's note is text: markup in it is escaped in the HTML part."""
    org = create_organization(session, name="Acme")
    [row] = queued(session, org, ["ada@example.com"], message="<script>alert(1)</script>")
    _, html = parts(parse(render_outgoing(session, [row])[0].raw))
    assert "<script>" not in html and "&lt;script&gt;" in html
