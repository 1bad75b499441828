"""The invitation list, invite form, revoke and resend in the dashboard (HTTP level)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy import update

from tests.conftest import APP_ORIGIN
from tests.dashboard_support import BOOSTED
from tests.dashboard_support import FRAGMENT
from tests.dashboard_support import HISTORY_RESTORE
from tests.dashboard_support import csrf_from
from tests.dashboard_support import make_superuser
from tests.dashboard_support import sign_in
from webapp.extensions import db
from webapp.models import Invitation
from webapp.services.actors import SYSTEM
from webapp.services.invitation_transitions import revoke_invitation
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import create_invitations
from webapp.services.organizations import create_organization
from webapp.services.organizations import update_organization

LIST = "/orgs/acme/invitations"


@pytest.fixture
def seeded(app, time_machine):
    """Acme with 30 invitations a minute apart (a0 oldest … a29 newest), 3 revoked."""
    time_machine.move_to("2026-06-01 12:00:00+00:00", tick=False)
    with app.app_context():
        org = create_organization(db.session, name="Acme")
        update_organization(db.session, org, allowed_redirect_origins=[APP_ORIGIN])
        ids = []
        for n in range(30):
            time_machine.shift(timedelta(minutes=1))
            result = create_invitations(
                db.session, org, [InvitationRequest(email=f"a{n}@example.com")], actor=SYSTEM
            )
            ids.append(result.successes[0][1].invitation.id)
        for invitation_id in ids[:3]:
            revoke_invitation(db.session, org, invitation_id, actor=SYSTEM)
        db.session.commit()
        person = make_superuser()
    time_machine.shift(timedelta(minutes=5))
    return person, ids


@pytest.fixture
def client(app, seeded):
    client = app.test_client()
    sign_in(client, seeded[0])
    return client


def emails(html: str) -> list[str]:
    return re.findall(r'data-label="Email" class="breakable">([^<]+)<', html)


def test_list_page_and_fragment(client):
    """A plain GET is the page; HX-Request alone gets the list region; boosted/restore: page."""
    page = client.get(LIST).get_data(as_text=True)
    assert "<html" in page and 'id="invitation-list"' in page and "Invite someone" in page
    fragment = client.get(LIST, headers=FRAGMENT)
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and body.lstrip().startswith('<div id="invitation-list"')
    assert "HX-Request" in fragment.headers["Vary"]
    for headers in (BOOSTED, HISTORY_RESTORE):
        assert "<html" in client.get(LIST, headers=headers).get_data(as_text=True)


def test_tabs_show_counts_and_filter(client):
    """Each tab has its count; a tab shows only its status."""
    page = client.get(LIST).get_data(as_text=True)
    assert re.search(r"All <span class=\"count\">30</span>", page)
    assert re.search(r"Pending <span class=\"count\">27</span>", page)
    assert re.search(r"Revoked <span class=\"count\">3</span>", page)
    revoked = client.get(f"{LIST}?status=revoked").get_data(as_text=True)
    assert sorted(emails(revoked)) == ["a0@example.com", "a1@example.com", "a2@example.com"]


def test_search_sort_and_keyset_pages(client):
    """Search narrows; sort orders; Older/Newer walk every row once."""
    found = client.get(f"{LIST}?q=A2", headers=FRAGMENT).get_data(as_text=True)
    expected = ["a2@example.com"] + [f"a{n}@example.com" for n in range(20, 30)]
    assert sorted(emails(found)) == sorted(expected)
    by_email = emails(client.get(f"{LIST}?sort=email&limit=10").get_data(as_text=True))
    assert by_email == sorted(by_email) and by_email[0] == "a0@example.com"

    seen, url = [], f"{LIST}?limit=10"
    for _ in range(3):
        html = client.get(url).get_data(as_text=True)
        seen += emails(html)
        older = re.search(r'rel="next" href="([^"]+)"', html)
        if not older:
            break
        url = older.group(1).replace("&amp;", "&")
    assert seen == [f"a{n}@example.com" for n in range(29, -1, -1)]
    newer = re.search(r'rel="prev" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert emails(client.get(newer).get_data(as_text=True)) == [
        f"a{n}@example.com" for n in range(19, 9, -1)
    ]


def test_unknown_list_parameters_fall_back_to_the_default_view(client):
    """A hand-edited URL never errors: unknown status/sort/limit mean the defaults."""
    response = client.get(f"{LIST}?status=bogus&sort=nope&limit=7&after=inv_nothere")
    assert response.status_code == 200
    assert len(emails(response.get_data(as_text=True))) == 25


def test_invite_form_page_fragment_errors_and_success(client, app):
    """GET: page or fragment; bad address / disallowed redirect: 422 beside the field."""
    assert "<html" in client.get(f"{LIST}/new").get_data(as_text=True)
    assert "<html" not in client.get(f"{LIST}/new", headers=FRAGMENT).get_data(as_text=True)
    token = csrf_from(client, LIST)
    bad = client.post(
        f"{LIST}/new",
        data={"csrf_token": token, "email": "not-an-address", "role": "member", "notify": "y"},
        headers=FRAGMENT,
    )
    assert bad.status_code == 422
    assert "&#39;not-an-address&#39; is not valid" in bad.get_data(as_text=True)
    off_list = client.post(
        f"{LIST}/new",
        data={
            "csrf_token": token,
            "email": "ok@example.com",
            "role": "member",
            "redirect_url": "https://evil.example/",
            "notify": "y",
        },
        headers=FRAGMENT,
    )
    assert off_list.status_code == 422
    assert "is not on this organization&#39;s allowed redirect origins" in off_list.get_data(
        as_text=True
    )
    good = client.post(
        f"{LIST}/new",
        data={
            "csrf_token": token,
            "email": "New.Person@Example.com",
            "role": "admin",
            "notify": "y",
        },
        headers=FRAGMENT,
    )
    assert good.status_code == 200
    assert good.headers["HX-Trigger"] == "invitation-created"
    assert "Invited New.Person@example.com." in good.get_data(as_text=True)
    with app.app_context():
        created = db.session.scalar(
            select(Invitation).where(Invitation.email_key == "new.person@example.com")
        )
        assert created.role == "admin" and created.source == "dashboard"
        assert created.inviter_user_id is not None


def test_invite_without_javascript_redirects_with_a_message(client):
    """A plain form POST answers 303 to the list, which shows the flash message."""
    token = csrf_from(client, LIST)
    response = client.post(
        f"{LIST}/new",
        data={"csrf_token": token, "email": "plain@example.com", "role": "member"},
    )
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Invited plain@example.com. No email was sent" in page


def test_posts_without_csrf_token_fail_and_change_nothing(client, app, seeded):
    """Invite, revoke and resend all refuse a POST without the CSRF token."""
    target = seeded[1][-1]
    assert client.post(f"{LIST}/new", data={"email": "x@example.com"}).status_code == 400
    assert client.post(f"{LIST}/{target}/revoke").status_code == 400
    assert client.post(f"{LIST}/{target}/resend").status_code == 400
    with app.app_context():
        assert db.session.get(Invitation, target).status == "pending"
        assert db.session.get(Invitation, target).send_count == 1


def test_revoke_asks_first_then_swaps_the_row(client, app, seeded):
    """GET shows the confirmation (row or page); POST revokes and returns the new row."""
    target = seeded[1][-1]
    confirm = client.get(f"{LIST}/{target}/revoke", headers=FRAGMENT).get_data(as_text=True)
    assert "Revoke the invitation of <strong>a29@example.com</strong>?" in confirm
    assert "<html" not in confirm
    assert "<html" in client.get(f"{LIST}/{target}/revoke").get_data(as_text=True)
    token = csrf_from(client, LIST)
    row = client.post(f"{LIST}/{target}/revoke", data={"csrf_token": token}, headers=FRAGMENT)
    html = row.get_data(as_text=True)
    assert "badge--revoked" in html and "Revoked the invitation of a29@example.com." in html
    assert ">Revoke<" not in html  # no action left on a revoked row
    again = client.post(f"{LIST}/{target}/revoke", data={"csrf_token": token}, headers=FRAGMENT)
    assert "is revoked; only pending invitations can be revoked" in again.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Invitation, target).status == "revoked"


def test_resend_rotates_the_link_and_says_so(client, app, seeded):
    """Resend on a pending row: a new link, the row says so; a second one is throttled."""
    target = seeded[1][-1]
    with app.app_context():
        old_hash = db.session.get(Invitation, target).token_hash
    token = csrf_from(client, LIST)
    first = client.post(f"{LIST}/{target}/resend", data={"csrf_token": token}, headers=FRAGMENT)
    assert "Sent a new link to a29@example.com" in first.get_data(as_text=True)
    second = client.post(f"{LIST}/{target}/resend", data={"csrf_token": token}, headers=FRAGMENT)
    assert "try again in 60 seconds" in second.get_data(as_text=True)
    with app.app_context():
        stored = db.session.get(Invitation, target)
        assert stored.token_hash != old_hash and stored.send_count == 2


def test_another_orgs_invitation_is_404(client, app):
    """An invitation id of another organization cannot be acted on from this one."""
    with app.app_context():
        other = create_organization(db.session, name="Globex")
        foreign = (
            create_invitations(
                db.session, other, [InvitationRequest(email="x@globex.example")], actor=SYSTEM
            )
            .successes[0][1]
            .invitation.id
        )
        db.session.commit()
    assert client.get(f"{LIST}/{foreign}/revoke").status_code == 404
    token = csrf_from(client, LIST)
    assert client.post(f"{LIST}/{foreign}/revoke", data={"csrf_token": token}).status_code == 404


def test_markup_in_stored_values_renders_as_text(client, app, seeded):
    """An address or a role holding markup or hx- attributes is shown inert."""
    target = seeded[1][-1]
    hostile = '<img src=x onerror=alert(1)>@x.io" hx-get="/logout'
    with app.app_context():
        db.session.execute(
            update(Invitation).where(Invitation.id == target).values(email=hostile, role="<b>r</b>")
        )
        db.session.commit()
    html = client.get(LIST).get_data(as_text=True)
    assert "<img src=x" not in html and 'hx-get="/logout' not in html
    assert "&lt;img src=x onerror=alert(1)&gt;@x.io&#34; hx-get=&#34;/logout" in html
    assert "&lt;b&gt;r&lt;/b&gt;" in html
