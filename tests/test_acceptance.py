"""The public acceptance page: preview without side effects, accept, decline, redirect."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func
from sqlalchemy import select

from tests.conftest import APP_ORIGIN
from webapp.extensions import db
from webapp.models import AuditEvent
from webapp.models import Invitation
from webapp.models import Membership
from webapp.models import User
from webapp.services.actors import SYSTEM
from webapp.services.invitation_transitions import revoke_invitation
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import create_invitation
from webapp.services.organizations import add_role
from webapp.services.organizations import update_organization
from webapp.services.tickets import InvalidTicket
from webapp.services.tickets import verify_ticket
from webapp.web.security import content_security_policy

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def invite(session, org, email="ada@example.com", **fields) -> tuple[str, str]:
    """Create an invitation; return ``(path of its link, invitation id)``."""
    fields.setdefault("notify", False)
    issued = create_invitation(session, org, InvitationRequest(email=email, **fields), actor=SYSTEM)
    session.commit()
    return urlsplit(issued.accept_url).path, issued.invitation.id


def csrf_token(client, path) -> str:
    page = client.get(path)
    match = CSRF.search(page.get_data(as_text=True))
    assert match, page.get_data(as_text=True)
    return match.group(1)


def accept(client, path, **form):
    token = csrf_token(client, path)
    return client.post(path, data={"csrf_token": token, **form})


@pytest.fixture
def client(app):
    return app.test_client()


def test_get_and_head_change_nothing(client, session, org):
    """Ten GETs and ten HEADs (a mail scanner) leave the invitation pending and untouched."""
    path, invitation_id = invite(session, org, redirect_url=f"{APP_ORIGIN}/welcome")
    before = session.get(Invitation, invitation_id)
    updated_at = before.updated_at
    events = session.scalar(select(func.count()).select_from(AuditEvent))
    for _ in range(10):
        assert client.get(path).status_code == 200
        assert client.head(path).status_code == 200
    session.expire_all()
    after = session.get(Invitation, invitation_id)
    assert after.status == "pending" and after.updated_at == updated_at
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == events
    assert session.scalar(select(func.count()).select_from(Membership)) == 0


def test_preview_shows_org_inviter_role_address_and_expiry(client, session, org):
    """The page says who invited whom to what, until when, with Accept and Decline."""
    path, invitation_id = invite(session, org, email="Ada@Example.com", message="Hi Ada!")
    page = client.get(path).get_data(as_text=True)
    invitation = session.get(Invitation, invitation_id)
    assert "Join Acme" in page
    assert "Ada@example.com" in page
    assert "Member" in page
    assert invitation.expires_at.strftime("%d %B %Y") in page
    assert "Hi Ada!" in page
    assert "Accept invitation" in page and "Decline" in page


def test_accept_page_headers(client, session, org):
    """No caching, strict-origin referrer, the CSP, no framing, no sniffing."""
    path, _ = invite(session, org, redirect_url=f"{APP_ORIGIN}/welcome")
    response = client.get(path)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "strict-origin"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # The form's redirect target is the one origin added to form-action.
    assert response.headers["Content-Security-Policy"] == content_security_policy(
        form_action=f"'self' {APP_ORIGIN}"
    )
    # Nothing third-party: every src/href of the page is local.
    page = response.get_data(as_text=True)
    assert re.findall(r'(?:src|href)="([^"]*://[^"]*)"', page) == []


def test_accept_redirects_with_ticket_and_repeat_gives_the_same_redirect(client, session, org):
    """303 to the product with id, status and ticket; a second POST: same answer, one member."""
    path, invitation_id = invite(session, org, redirect_url=f"{APP_ORIGIN}/welcome?from=mail")
    first = accept(client, path, name="Ada Lovelace")
    assert first.status_code == 303
    target = urlsplit(first.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{APP_ORIGIN}/welcome"
    query = parse_qs(target.query)
    assert query["from"] == ["mail"]
    assert query["invitation_id"] == [invitation_id]
    assert query["status"] == ["accepted"]
    second = accept(client, path, name="Someone Else")
    assert second.status_code == 303
    assert second.headers["Location"] == first.headers["Location"]
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Membership)) == 1
    user = session.scalar(select(User).where(User.email_key == "ada@example.com"))
    assert user.name == "Ada Lovelace"

    verified = verify_ticket(session, query["ticket"][0])
    assert verified.invitation.id == invitation_id
    assert verified.user.id == user.id
    session.commit()
    with pytest.raises(InvalidTicket, match="already used"):
        verify_ticket(session, query["ticket"][0])


def test_ticket_expires_and_resists_tampering(client, session, org, time_machine):
    """A ticket is refused when altered, and ten minutes after acceptance."""
    time_machine.move_to("2026-06-01 12:00:00+00:00", tick=False)
    path, _ = invite(session, org, redirect_url=f"{APP_ORIGIN}/welcome")
    ticket = parse_qs(urlsplit(accept(client, path).headers["Location"]).query)["ticket"][0]
    with pytest.raises(InvalidTicket):
        verify_ticket(session, ticket[:-2] + ("AA" if not ticket.endswith("AA") else "BB"))
    time_machine.shift(timedelta(minutes=10, seconds=1))
    with pytest.raises(InvalidTicket, match="expired"):
        verify_ticket(session, ticket)


def test_post_without_csrf_token_is_refused(client, session, org):
    """CSRF is on: a POST without the token fails and changes nothing."""
    path, invitation_id = invite(session, org)
    response = client.post(path, data={"name": "Mallory"})
    assert response.status_code == 400
    session.expire_all()
    assert session.get(Invitation, invitation_id).status == "pending"


def test_decline_records_it_and_kills_the_link(client, session, org):
    """Decline shows a plain confirmation; the link then shows the 'no longer valid' page."""
    path, invitation_id = invite(session, org)
    token = csrf_token(client, path)
    response = client.post(f"{path}/decline", data={"csrf_token": token})
    assert response.status_code == 200
    assert "Invitation declined" in response.get_data(as_text=True)
    session.expire_all()
    assert session.get(Invitation, invitation_id).status == "declined"
    assert client.get(path).status_code == 404
    assert client.post(path, data={"csrf_token": token}).status_code == 404


def test_unknown_revoked_and_expired_links_look_the_same(client, session, org, time_machine):
    """One page and one status for every dead link, so nothing can be enumerated."""
    time_machine.move_to("2026-06-01 12:00:00+00:00", tick=False)
    revoked_path, revoked_id = invite(session, org, email="revoked@example.com")
    revoke_invitation(session, org, revoked_id, actor=SYSTEM)
    session.commit()
    expired_path, _ = invite(
        session, org, email="expired@example.com", expires_in=timedelta(hours=1)
    )
    time_machine.shift(timedelta(hours=2))
    unknown_path = "/invitations/accept/" + "x" * 43
    pages = [client.get(p) for p in (revoked_path, expired_path, unknown_path)]
    assert {p.status_code for p in pages} == {404}
    assert len({p.get_data() for p in pages}) == 1
    assert "no longer valid" in pages[0].get_data(as_text=True)
    assert "Ask the person who invited you" in pages[0].get_data(as_text=True)


def test_expired_link_cannot_be_accepted(client, session, org, time_machine):
    """Accepting after expiry (before any sweep) gives the same dead-link page."""
    time_machine.move_to("2026-06-01 12:00:00+00:00", tick=False)
    path, invitation_id = invite(session, org, expires_in=timedelta(hours=1))
    token = csrf_token(client, path)
    time_machine.shift(timedelta(hours=1, seconds=1))
    response = client.post(path, data={"csrf_token": token})
    assert response.status_code == 404
    session.expire_all()
    assert session.get(Invitation, invitation_id).status == "pending"  # swept later
    assert session.scalar(select(func.count()).select_from(Membership)) == 0


def test_redirect_removed_from_allowlist_is_not_followed(client, session, org):
    """The redirect is checked again at accept time: an origin removed since is ignored."""
    path, _ = invite(session, org, redirect_url=f"{APP_ORIGIN}/welcome")
    update_organization(session, org, allowed_redirect_origins=["https://other.example.com"])
    session.commit()
    response = accept(client, path)
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert "You have joined Acme" in response.get_data(as_text=True)


def test_without_redirect_url_a_joined_page_is_shown(client, session, org):
    """No redirect on the invitation or the org: a plain 'you have joined' page."""
    path, _ = invite(session, org)
    response = accept(client, path)
    assert response.status_code == 200
    assert "You have joined Acme" in response.get_data(as_text=True)


def test_org_default_redirect_is_used(client, session, org):
    """With none on the invitation, the org's default redirect URL is where people land."""
    update_organization(session, org, default_redirect_url=f"{APP_ORIGIN}/start")
    session.commit()
    path, _ = invite(session, org)
    assert accept(client, path).headers["Location"].startswith(f"{APP_ORIGIN}/start?")


def test_admin_role_asks_for_a_password(client, session, org):
    """An admin role needs a password: missing → 422 with the error beside the field."""
    path, _ = invite(session, org, role="admin", redirect_url=f"{APP_ORIGIN}/welcome")
    page = client.get(path).get_data(as_text=True)
    assert 'name="password"' in page
    refused = accept(client, path, name="Grace")
    assert refused.status_code == 422
    assert "the password needs at least 10 characters" in refused.get_data(as_text=True)
    accepted = accept(client, path, name="Grace", password="correct horse battery")
    assert accepted.status_code == 303
    user = session.scalar(select(User).where(User.email_key == "ada@example.com"))
    assert user.password_hash and "correct horse" not in user.password_hash


def test_member_role_asks_for_no_password(client, session, org):
    """A non-admin role is accepted without a password field."""
    add_role(session, org, "viewer")
    session.commit()
    path, _ = invite(session, org, role="viewer")
    assert 'name="password"' not in client.get(path).get_data(as_text=True)


def _client_and_link(make_app, backend, **limits):
    """A test client of an app with these limits, and one invitation's link."""
    app = make_app(backend, **limits)
    with app.app_context():
        from webapp.services.organizations import create_organization

        org = create_organization(db.session, name="Limited")
        db.session.commit()
        path, _ = invite(db.session, org)
    return app.test_client(), path


def test_rate_limit_per_link_answers_429_with_retry_after(make_app, backend):
    """Too many POSTs for one link: 429 with Retry-After."""
    client, path = _client_and_link(make_app, backend, ACCEPT_RATE_LIMIT_PER_TOKEN="2/minute")
    codes = [client.post(path, data={}).status_code for _ in range(3)]
    assert codes[:2] == [400, 400]  # no CSRF token, but counted
    assert codes[2] == 429
    limited = client.post(path, data={})
    assert int(limited.headers["Retry-After"]) > 0


def test_rate_limit_per_address_counts_the_page_views_too(make_app, backend):
    """The per-address limit of the acceptance pages counts GETs (a scanner or a guesser
    fetching links), not only the form posts."""
    client, path = _client_and_link(make_app, backend, ACCEPT_RATE_LIMIT_PER_IP="3/minute")
    responses = [client.get(path) for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    # Flask-Limiter's headers say what is left (its after-request hook ran).
    assert [r.headers.get("X-RateLimit-Remaining") for r in responses[:3]] == ["2", "1", "0"]
    assert responses[0].headers["X-RateLimit-Limit"] == "3"
    assert client.head("/invitations/accept/unknown-token").status_code == 429


def test_user_content_renders_inert(client, session, org):
    """A hostile message or name is escaped, never markup."""
    path, _ = invite(session, org, message='<img src=x onerror=alert(1)> hx-get="/x"')
    page = client.get(path).get_data(as_text=True)
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_demo_welcome_page_verifies_the_ticket_once(client, session, org):
    """The demo's product page verifies the ticket it receives, and only the first time."""
    update_organization(
        session,
        org,
        allowed_redirect_origins=["https://invites.example.com"],
        default_redirect_url="https://invites.example.com/welcome",
    )
    session.commit()
    path, _ = invite(session, org)
    location = urlsplit(accept(client, path, name="Ada").headers["Location"])
    assert location.path == "/welcome"
    first = client.get(f"/welcome?{location.query}").get_data(as_text=True)
    assert "Welcome, Ada" in first and "Acme" in first
    again = client.get(f"/welcome?{location.query}").get_data(as_text=True)
    assert "could not be verified: the ticket was already used" in again
