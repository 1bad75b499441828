"""The superuser area: organizations with totals, creating one, the instance-wide list."""

from __future__ import annotations

import re
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from sqlalchemy import event
from sqlalchemy import func
from sqlalchemy import select

from tests.dashboard_support import BOOSTED
from tests.dashboard_support import FRAGMENT
from tests.dashboard_support import HISTORY_RESTORE
from tests.dashboard_support import csrf_from
from tests.dashboard_support import make_member
from tests.dashboard_support import make_superuser
from tests.dashboard_support import sign_in
from webapp.extensions import db
from webapp.models import Membership
from webapp.models import Organization
from webapp.models import User
from webapp.services.actors import SYSTEM
from webapp.services.counters import status_totals_by_org
from webapp.services.invitation_transitions import accept_invitation
from webapp.services.invitation_transitions import revoke_invitation
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import create_invitation
from webapp.services.organizations import create_organization

NOW = datetime(2030, 3, 15, 12, 0, tzinfo=UTC)
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"


def _invite(org, email, **fields):
    fields.setdefault("notify", False)
    issued = create_invitation(
        db.session, org, InvitationRequest(email=email, **fields), actor=SYSTEM
    )
    return issued.invitation.id, issued.accept_url.rsplit("/", 1)[1]


@pytest.fixture
def seeded(app, time_machine):
    """Acme: 2 pending, 1 accepted, 1 revoked, 1 lapsed (pending past expiry) · Globex: 7 pending.

    Invitations are a minute apart: acme's first (oldest), then globex's.
    """
    time_machine.move_to(NOW - timedelta(days=3), tick=False)
    with app.app_context():
        acme = create_organization(db.session, name="Acme", slug="acme")
        globex = create_organization(db.session, name="Globex", slug="globex")
        _invite(acme, "lapsed@example.com", expires_in=timedelta(hours=1))
        time_machine.shift(timedelta(minutes=1))
        _, token = _invite(acme, "ada@example.com")
        time_machine.shift(timedelta(minutes=1))
        revoked, _ = _invite(acme, "rev@example.com")
        for n in range(2):
            time_machine.shift(timedelta(minutes=1))
            _invite(acme, f"p{n}@example.com")
        for n in range(7):
            time_machine.shift(timedelta(minutes=1))
            _invite(globex, f"g{n}@example.com")
        revoke_invitation(db.session, acme, revoked, actor=SYSTEM)
        db.session.commit()
        accept_invitation(db.session, token, name="Ada")
        db.session.commit()
        time_machine.move_to(NOW, tick=False)
        root = make_superuser()
        boss = make_member(acme, "boss@example.com", "admin")
        return {"root": root, "boss": boss, "acme": acme.id, "globex": globex.id}


@pytest.fixture
def client(app, seeded):
    client = app.test_client()
    sign_in(client, seeded["root"])
    return client


def _row(page: str, name: str) -> list[str]:
    """The cells (text) of the organizations table row whose first cell is ``name``."""
    row = re.search(rf"<tr>\s*<td[^>]*><a [^>]*>{re.escape(name)}</a></td>(.*?)</tr>", page, re.S)
    assert row, name
    return [
        re.sub(r"<[^>]+>", "", cell).strip()
        for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    ]


# --- organizations ---------------------------------------------------------------------------


def test_status_totals_by_org(app, seeded):
    """Counters per org, the lapsed pending one counted as expired, no org mixed up."""
    with app.app_context():
        totals = status_totals_by_org(db.session, NOW)
    assert totals[seeded["acme"]] == {
        "pending": 2,
        "accepted": 1,
        "declined": 0,
        "revoked": 1,
        "expired": 1,
    }
    assert totals[seeded["globex"]] == {
        "pending": 7,
        "accepted": 0,
        "declined": 0,
        "revoked": 0,
        "expired": 0,
    }


def test_organizations_page_with_totals_in_one_counters_query(app, client):
    """Each org's totals per status; one query on the counters whatever the number of orgs."""
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.get("/admin")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    # Slug, created, pending, accepted, declined, revoked, expired, total.
    assert _row(page, "Acme")[2:] == ["2", "1", "0", "1", "1", "5"]
    assert _row(page, "Globex")[2:] == ["7", "0", "0", "0", "0", "7"]
    assert 'href="/orgs/acme/overview">Acme</a>' in page
    assert sum("invitation_counters" in s for s in statements) == 1
    assert sum("FROM invitations" in s for s in statements) == 1  # lapsed pending, all orgs
    assert "css/admin.css" in page and "style=" not in page


def test_organizations_page_and_fragment(client):
    """HX-Request alone gets the organizations region; boosted or history restore: the page."""
    fragment = client.get("/admin", headers=FRAGMENT)
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "HX-Request" in fragment.headers["Vary"]
    assert "<html" not in body and body.lstrip().startswith('<div id="admin-organizations"')
    for headers in (BOOSTED, HISTORY_RESTORE):
        page = client.get("/admin", headers=headers).get_data(as_text=True)
        assert "<html" in page and 'id="admin-organizations"' in page


def test_create_organization(app, client, seeded):
    """A name (and no slug) creates the org with its counters; no membership unless asked."""
    token = csrf_from(client, "/admin")
    response = client.post("/admin/organizations", data={"csrf_token": token, "name": "Initech"})
    assert response.status_code == 303 and response.headers["Location"] == "/admin"
    page = client.get("/admin").get_data(as_text=True)
    assert "Created Initech (initech)." in page
    assert _row(page, "Initech")[2:] == ["0", "0", "0", "0", "0", "0"]
    with app.app_context():
        org = db.session.scalar(select(Organization).where(Organization.slug == "initech"))
        assert org is not None and [r.key for r in org.roles] == ["admin", "member"]
        assert db.session.scalar(select(func.count()).where(Membership.org_id == org.id)) == 0


def test_create_organization_and_join_as_admin(app, client, seeded):
    """With the box ticked the superuser becomes an admin member (and it is audited)."""
    token = csrf_from(client, "/admin")
    response = client.post(
        "/admin/organizations",
        data={"csrf_token": token, "name": "Umbrella", "slug": "umbrella-corp", "make_admin": "y"},
    )
    assert response.status_code == 303
    with app.app_context():
        org = db.session.scalar(select(Organization).where(Organization.slug == "umbrella-corp"))
        root = db.session.scalar(select(User).where(User.email_key == "root@example.com"))
        membership = db.session.scalar(select(Membership).where(Membership.org_id == org.id))
        assert (membership.user_id, membership.role) == (root.id, "admin")


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": ""}, "name", "This field is required."),
        ({"name": "Acme", "slug": "Not A Slug"}, "slug", "is not a valid slug"),
        ({"name": "Acme again", "slug": "acme"}, "slug", "already exists"),
        ({"name": "x" * 201}, "name", "Field cannot be longer than 200 characters."),
    ],
)
def test_create_organization_errors_beside_fields(app, client, data, field, message):
    """Bad input: 422, the message under its field, nothing created; htmx gets the region."""
    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(Organization))
    for headers in ({}, FRAGMENT):
        token = csrf_from(client, "/admin")
        response = client.post(
            "/admin/organizations", data={"csrf_token": token, **data}, headers=headers
        )
        assert response.status_code == 422
        body = response.get_data(as_text=True)
        error = re.search(rf'<p class="field__error" id="{field}-error"[^>]*>([^<]*)</p>', body)
        assert error and message in error.group(1)
        assert ("<html" in body) == (headers == {})
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Organization)) == before


def test_create_organization_with_htmx_returns_the_region(client):
    """Success over htmx: the region with the new row, a notice and an empty form."""
    token = csrf_from(client, "/admin")
    response = client.post(
        "/admin/organizations",
        data={"csrf_token": token, "name": "Hooli"},
        headers=FRAGMENT,
    )
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<div id="admin-organizations"')
    assert "Created Hooli (hooli)." in body and _row(body, "Hooli")
    assert 'name="name" required type="text" value=""' in body


def test_create_organization_needs_csrf(app, client):
    """Without the CSRF token: refused, nothing created."""
    response = client.post("/admin/organizations", data={"name": "Sneaky"})
    assert response.status_code == 400
    response = client.post(
        "/admin/organizations", data={"name": "Sneaky", "csrf_token": "forged"}, headers=FRAGMENT
    )
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(Organization).where(Organization.name == "Sneaky")) is None


def test_hostile_org_name_is_escaped(app, client, seeded):
    """A name like markup renders as text on both admin pages."""
    token = csrf_from(client, "/admin")
    client.post("/admin/organizations", data={"csrf_token": token, "name": HOSTILE, "slug": "evil"})
    with app.app_context():
        evil = db.session.scalar(select(Organization).where(Organization.slug == "evil"))
        _invite(evil, "victim@example.com")
        db.session.commit()
    for path in ("/admin", "/admin/invitations"):
        page = client.get(path).get_data(as_text=True)
        assert ESCAPED in page, path
        assert "<script>alert(1)" not in page and "<img src=x" not in page, path


# --- the instance-wide invitation list ------------------------------------------------------


def _emails(html: str) -> list[str]:
    return re.findall(r'data-label="Email" class="breakable"><a [^>]*>([^<]+)</a>', html)


def test_instance_list_shows_every_org_with_links_and_no_actions(client):
    """Newest first across orgs, an Organization column, emails link to the org's filtered list."""
    page = client.get("/admin/invitations").get_data(as_text=True)
    assert _emails(page)[:3] == ["g6@example.com", "g5@example.com", "g4@example.com"]
    assert len(_emails(page)) == 12
    assert '<th scope="col">Organization</th>' in page
    assert 'href="/orgs/acme/invitations?q=ada@example.com">ada@example.com</a>' in page
    globex = '<a href="/orgs/globex/invitations">Globex</a>'
    assert f'<td data-label="Organization" class="breakable">{globex}' in page
    assert 'class="actions"' not in page and "/revoke" not in page and "/resend" not in page
    # Tabs count every organization's invitations (the lapsed one is expired).
    counts = dict(re.findall(r'>(\w+) <span class="count">(\d+)</span>', page))
    assert counts == {
        "All": "12",
        "Pending": "9",
        "Accepted": "1",
        "Declined": "0",
        "Revoked": "1",
        "Expired": "1",
    }


def test_instance_list_filters_search_and_sort(client):
    """The same tabs, search and sort as an organization's list."""
    pending = client.get("/admin/invitations?status=pending").get_data(as_text=True)
    assert len(_emails(pending)) == 9 and "lapsed@example.com" not in _emails(pending)
    expired = client.get("/admin/invitations?status=expired").get_data(as_text=True)
    assert _emails(expired) == ["lapsed@example.com"]
    search = client.get("/admin/invitations?q=G1%40EXAMPLE").get_data(as_text=True)
    assert _emails(search) == ["g1@example.com"]
    by_email = client.get("/admin/invitations?sort=email").get_data(as_text=True)
    assert _emails(by_email) == sorted(_emails(by_email))
    assert _emails(by_email)[0] == "ada@example.com"
    nothing = client.get("/admin/invitations?q=nobody").get_data(as_text=True)
    assert "No invitation matches “nobody”." in nothing


def test_instance_list_keyset_pages(client):
    """Pages of 10 by cursor: next, then back; a stale cursor starts again from the top."""
    first = client.get("/admin/invitations?limit=10").get_data(as_text=True)
    assert len(_emails(first)) == 10 and 'rel="prev"' not in first
    next_href = re.search(r'<a rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    assert urlsplit(next_href).path == "/admin/invitations"
    assert 'hx-push-url="true"' in first
    second = client.get(next_href).get_data(as_text=True)
    assert _emails(second) == ["ada@example.com", "lapsed@example.com"]
    assert 'rel="next"' not in second
    prev_href = re.search(r'<a rel="prev" href="([^"]+)"', second).group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(prev_href).query)["limit"] == ["10"]
    assert _emails(client.get(prev_href).get_data(as_text=True)) == _emails(first)
    stale = client.get("/admin/invitations?limit=10&after=inv_doesnotexist")
    assert stale.status_code == 200 and _emails(stale.get_data(as_text=True)) == _emails(first)


def test_instance_list_page_and_fragment(client):
    fragment = client.get("/admin/invitations?status=pending", headers=FRAGMENT)
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "HX-Request" in fragment.headers["Vary"]
    assert "<html" not in body and body.lstrip().startswith('<div id="invitation-list"')
    assert len(_emails(body)) == 9
    for headers in (BOOSTED, HISTORY_RESTORE):
        page = client.get("/admin/invitations", headers=headers).get_data(as_text=True)
        assert "<html" in page and 'class="list-controls"' in page


# --- who may see it -------------------------------------------------------------------------


def test_only_superusers(app, seeded):
    """Anonymous: sign in; an org admin (not superuser): 404 everywhere, even a valid POST."""
    anonymous = app.test_client()
    for path in ("/admin", "/admin/invitations"):
        response = anonymous.get(path)
        assert response.status_code == 302
        location = urlsplit(response.headers["Location"])
        assert location.path == "/login" and parse_qs(location.query)["next"] == [path]
    boss = app.test_client()
    sign_in(boss, seeded["boss"])
    for path in ("/admin", "/admin/invitations"):
        assert boss.get(path).status_code == 404
        assert boss.get(path, headers=FRAGMENT).status_code == 404
    token = csrf_from(boss, "/orgs/acme/invitations")
    response = boss.post("/admin/organizations", data={"csrf_token": token, "name": "Mine"})
    assert response.status_code == 404
    with app.app_context():
        assert db.session.scalar(select(Organization).where(Organization.name == "Mine")) is None
    root = app.test_client()
    sign_in(root, seeded["root"])
    assert root.get("/admin").status_code == 200
    assert root.get("/admin/invitations").status_code == 200
    assert root.get("/orgs/globex/overview").status_code == 200
