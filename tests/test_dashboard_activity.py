"""The activity page: the org's audit events, newest first, filters, keyset pages."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import insert
from sqlalchemy import select

from tests.dashboard_pages import HOSTILE
from tests.dashboard_pages import Client
from tests.dashboard_pages import body
from tests.dashboard_pages import in_db
from tests.dashboard_pages import text
from tests.dashboard_pages import words
from tests.dashboard_support import BOOSTED
from tests.dashboard_support import FRAGMENT
from tests.dashboard_support import HISTORY_RESTORE
from webapp.clock import utcnow
from webapp.ids import new_id
from webapp.models import AuditEvent
from webapp.models import User
from webapp.services.activity import EVENT_TYPES
from webapp.services.actors import SYSTEM
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import create_invitation
from webapp.services.organizations import get_organization
from webapp.web.dashboard.activity import TYPE_LABELS

PAGE = "/orgs/acme/activity"

pytestmark = pytest.mark.usefixtures("quick_passwords")
INV = "inv_" + "0" * 26


def user_id(app, email: str) -> str:
    return in_db(app, lambda s: s.scalar(select(User.id).where(User.email_key == email)))


def add_events(app, *events: dict, org: str = "acme") -> list[str]:
    """Insert events ``minutes_ago`` old (default: 1 minute apart, in the order given)."""

    def insert_all(session):
        org_id = get_organization(session, org).id
        now = utcnow()
        rows = []
        for n, event in enumerate(events):
            minutes = event.pop("minutes_ago", len(events) - n)
            rows.append(
                {
                    "id": new_id("evt"),
                    "org_id": org_id,
                    "invitation_id": None,
                    "actor_type": "system",
                    "actor_id": None,
                    "data": {},
                    "created_at": now - timedelta(minutes=minutes),
                    **event,
                }
            )
        session.execute(insert(AuditEvent), rows)
        return [r["id"] for r in rows]

    return in_db(app, insert_all)


def shown(html: str) -> list[str]:
    """Event ids in the order the feed shows them."""
    return re.findall(r'<li class="activity-item" id="(evt_[0-9a-z]+)"', html)


def sentence(html: str, event_id: str) -> str:
    """The words of one event's line."""
    return words(html[html.index(f'id="{event_id}"') :].split("</li>")[0])


# --- page, fragments, access -----------------------------------------------------------------


def test_page_and_fragment(admin):
    """Plain GET: the page with filters; HX-Request: the feed alone; boosted/restore: page."""
    page = admin.get(PAGE)
    assert page.status_code == 200 and "<html" in body(page)
    assert '<select id="type" name="type">' in body(page) and "css/dashboard-pages.css" in body(
        page
    )
    assert 'hx-push-url="true"' in body(page)
    fragment = admin.get(PAGE, headers=FRAGMENT)
    assert body(fragment).lstrip().startswith('<div id="activity-feed"')
    assert "HX-Request" in fragment.headers["Vary"]
    for headers in (BOOSTED, HISTORY_RESTORE):
        assert "<html" in body(admin.get(PAGE, headers=headers))
    assert "Nothing has happened yet." in text(fragment)


def test_access(app, world):
    """Anonymous: sign in first; plain member: 403; another org's admin: 404; superuser: 200."""
    response = Client(app, None).get(PAGE)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert Client(app, world.member).get(PAGE).status_code == 403
    assert Client(app, world.outsider).get(PAGE).status_code == 404
    assert Client(app, world.root).get(PAGE).status_code == 200


# --- what the feed shows ----------------------------------------------------------------------


def test_newest_first_with_actor_time_and_sentence(app, admin):
    """Each event: relative and exact time, who did it, and what happened in words."""
    ada = user_id(app, "ada@example.com")
    ids = add_events(
        app,
        {
            "type": "invitation.created",
            "actor_type": "user",
            "actor_id": ada,
            "invitation_id": INV,
            "data": {"email": "cy@example.com", "role": "member", "source": "dashboard"},
            "minutes_ago": 90,
        },
        {"type": "invitation.sent", "invitation_id": INV, "data": {"kind": "invitation"}},
        {
            "type": "invitation.revoked",
            "actor_type": "api_key",
            "actor_id": "key_abc",
            "invitation_id": INV,
            "data": {"email": "cy@example.com", "cancelled_emails": 0},
        },
        {
            "type": "member.role_changed",
            "actor_type": "user",
            "actor_id": "user_gone",
            "data": {"email": "bob@example.com", "from": "member", "to": "admin"},
        },
    )
    html = body(admin.get(PAGE))
    assert shown(html) == list(reversed(ids))
    created = sentence(html, ids[0])
    assert "2 hours ago" in created and "UTC" in created
    assert "ada ada@example.com Invited cy@example.com as member (dashboard)" in created
    assert "system Delivered the invitation email" in sentence(html, ids[1])
    assert "API key key_abc Revoked the invitation of cy@example.com" in sentence(html, ids[2])
    assert "a deleted user Changed the role of bob@example.com from member to admin" in sentence(
        html, ids[3]
    )
    # An event of an invitation links to that invitation's whole story.
    assert f'href="{PAGE}?q={INV}"' in html


def test_changes_made_on_the_dashboard_appear(app, admin):
    """A settings change and a role added through the pages show with their details."""
    admin.post(
        "/orgs/acme/settings/general",
        {"name": "Acme Corp", "default_role": "member", "default_expiry": "14"},
    )
    admin.post("/orgs/acme/settings/roles", {"new-role-key": "billing", "new-role-is_admin": "y"})
    page = text(admin.get(PAGE))
    assert "Added the role billing (Billing), which administers the organization" in page
    assert "Changed the settings: name “Acme” → “Acme Corp”; default expiry 14 days" in page


def test_every_type_has_a_label_and_a_sentence(app, admin):
    """No event type falls back to its raw name, and the filter offers every type."""
    assert set(TYPE_LABELS) == set(EVENT_TYPES)
    ids = add_events(app, *({"type": t, "data": {"email": "x@example.com"}} for t in EVENT_TYPES))
    html = body(admin.get(PAGE))
    for event_id, event_type in zip(ids, EVENT_TYPES, strict=True):
        assert event_type not in sentence(html, event_id), event_type
        assert f'<option value="{event_type}">' in html


# --- filters ----------------------------------------------------------------------------------


def test_filter_by_type(app, admin):
    ids = add_events(app, {"type": "invitation.created"}, {"type": "invitation.revoked"})
    response = admin.get(f"{PAGE}?type=invitation.revoked", headers=FRAGMENT)
    assert shown(body(response)) == [ids[1]]
    page = body(admin.get(f"{PAGE}?type=invitation.revoked"))
    assert '<option value="invitation.revoked" selected>' in page
    # An unknown type is ignored rather than an error.
    assert shown(body(admin.get(f"{PAGE}?type=drop.tables", headers=FRAGMENT))) == ids[::-1]
    none = admin.get(f"{PAGE}?type=role.added", headers=FRAGMENT)
    assert "No events match these filters." in text(none)


def test_filter_by_email_or_invitation_id(app, admin):
    """Part of an address finds its events, even those without the address in their data."""

    def invite(session):
        org = get_organization(session, "acme")
        issued = create_invitation(
            session, org, InvitationRequest("Cy@Example.com", notify=False), actor=SYSTEM
        )
        return issued.invitation.id

    cy = in_db(app, invite)
    ids = add_events(
        app,
        {"type": "invitation.sent", "invitation_id": cy, "data": {"kind": "invitation"}},
        {"type": "member.removed", "data": {"email": "dee@example.com", "role": "member"}},
        {"type": "invitation.revoked", "invitation_id": INV, "data": {"email": "eve@x.io"}},
    )
    by_part = shown(body(admin.get(f"{PAGE}?q=cy%40EXAMPLE", headers=FRAGMENT)))
    assert len(by_part) == 2 and ids[0] in by_part  # invitation.created and .sent
    assert shown(body(admin.get(f"{PAGE}?q=dee", headers=FRAGMENT))) == [ids[1]]
    by_id = shown(body(admin.get(f"{PAGE}?q={cy}", headers=FRAGMENT)))
    assert len(by_id) == 2 and ids[0] in by_id
    assert shown(body(admin.get(f"{PAGE}?q=%25", headers=FRAGMENT))) == []  # LIKE is escaped
    mixed = admin.get(f"{PAGE}?q=eve&type=invitation.created", headers=FRAGMENT)
    assert shown(body(mixed)) == []


# --- pages and isolation ----------------------------------------------------------------------


def test_keyset_pages(app, admin):
    """50 a page, newest first; Older/Newer keep the filters; a foreign or stale cursor restarts."""
    ids = add_events(app, *({"type": "invitation.expired"} for _ in range(60)))
    newest_first = ids[::-1]
    first = body(admin.get(f"{PAGE}?type=invitation.expired"))
    assert shown(first) == newest_first[:50] and 'rel="prev"' not in first
    older = re.search(r'rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    assert "type=invitation.expired" in older and f"after={newest_first[49]}" in older
    second = body(admin.get(older, headers=FRAGMENT))
    assert shown(second) == newest_first[50:] and 'rel="next"' not in second
    newer = re.search(r'rel="prev" href="([^"]+)"', second).group(1).replace("&amp;", "&")
    assert shown(body(admin.get(newer, headers=FRAGMENT))) == newest_first[:50]
    [foreign] = add_events(app, {"type": "invitation.expired"}, org="globex")
    for cursor in ("evt_gone", foreign):
        response = admin.get(f"{PAGE}?after={cursor}", headers=FRAGMENT)
        assert response.status_code == 200 and shown(body(response)) == newest_first[:50]


def test_other_orgs_events_never_show(app, admin):
    add_events(app, {"type": "invitation.created", "data": {"email": "g@globex.com"}}, org="globex")
    assert shown(body(admin.get(PAGE))) == []
    assert shown(body(admin.get(f"{PAGE}?q=globex"))) == []


def test_hostile_values_render_inert(app, admin):
    """Markup in an address, a user's name, a failure reason or a role name stays text."""

    def rename(session):
        session.scalar(select(User).where(User.email_key == "ada@example.com")).name = HOSTILE

    in_db(app, rename)
    ada = user_id(app, "ada@example.com")
    add_events(
        app,
        {"type": "invitation.created", "actor_type": "user", "actor_id": ada,
         "data": {"email": f"{HOSTILE}@x.io", "role": HOSTILE}},
        {"type": "invitation.delivery_failed", "data": {"reason": HOSTILE, "attempts": 3}},
        {"type": "role.renamed", "data": {"key": "x", "from": HOSTILE, "to": '" hx-get="/x'}},
        {"type": "org.updated", "data": {"changes": {"name": {"from": "A", "to": HOSTILE}}}},
    )  # fmt: skip
    for response in (admin.get(PAGE), admin.get(f"{PAGE}?q=%3Cimg", headers=FRAGMENT)):
        html = body(response)
        assert "<img" not in html and 'hx-get="/x' not in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html
