"""The members page: list, search, pages, role changes, removal, last-admin rules."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select

from tests.dashboard_pages import HOSTILE
from tests.dashboard_pages import Client
from tests.dashboard_pages import body
from tests.dashboard_pages import in_db
from tests.dashboard_pages import make_world
from tests.dashboard_pages import text
from tests.dashboard_pages import use_quick_passwords
from tests.dashboard_support import BOOSTED
from tests.dashboard_support import FRAGMENT
from tests.dashboard_support import HISTORY_RESTORE
from tests.dashboard_support import make_member
from tests.test_races import race
from webapp.clock import utcnow
from webapp.extensions import db
from webapp.ids import new_id
from webapp.models import AuditEvent
from webapp.models import Membership
from webapp.models import ProjectMembership
from webapp.models import User
from webapp.services.actors import Actor
from webapp.services.errors import Conflict
from webapp.services.members import change_member_role
from webapp.services.members import list_members
from webapp.services.organizations import create_project
from webapp.services.organizations import get_organization

PAGE = "/orgs/acme/members"

pytestmark = pytest.mark.usefixtures("quick_passwords")


def member_id(app, email: str, org: str = "acme") -> str | None:
    def find(session):
        return session.scalar(
            select(Membership.id)
            .join(User, User.id == Membership.user_id)
            .where(User.email_key == email, Membership.org_id == get_organization(session, org).id)
        )

    return in_db(app, find)


def role_of(app, email: str) -> str | None:
    def find(session):
        return session.scalar(
            select(Membership.role)
            .join(User, User.id == Membership.user_id)
            .where(
                User.email_key == email, Membership.org_id == get_organization(session, "acme").id
            )
        )

    return in_db(app, find)


def events(app, event_type: str) -> list[AuditEvent]:
    return in_db(
        app,
        lambda s: list(s.scalars(select(AuditEvent).where(AuditEvent.type == event_type))),
    )


def role_field(member: str) -> str:
    return f"member-{member}-role"


def change(client: Client, app, email: str, role: str, headers=None):
    mid = member_id(app, email)
    return client.post(f"{PAGE}/{mid}/role", {role_field(mid): role}, headers=headers)


def add_people(app, count: int) -> None:
    """``count`` members m0 (oldest) … who joined two days ago, a minute apart.

    They are older than Ada and Bob, who joined when the test began.
    """
    start = utcnow() - timedelta(days=2)

    def build(session):
        org = get_organization(session, "acme")
        rows, users = [], []
        for n in range(count):
            now = start + timedelta(minutes=n)
            user_id = new_id("user")
            users.append(
                {
                    "id": user_id,
                    "email": f"m{n}@example.com",
                    "email_key": f"m{n}@example.com",
                    "name": f"Member {n}",
                    "is_superuser": False,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            rows.append(
                {
                    "id": new_id("mem"),
                    "org_id": org.id,
                    "user_id": user_id,
                    "role": "member",
                    "public_metadata": {},
                    "private_metadata": {},
                    "invitation_id": f"inv_{n:026d}",
                    "created_at": now,
                    "updated_at": now,
                }
            )
        session.execute(insert(User), users)
        session.execute(insert(Membership), rows)

    in_db(app, build)


def listed(html: str) -> list[str]:
    return re.findall(r'data-label="Email" class="breakable">([^<]+)<', html)


# --- page, fragments, access, CSRF -----------------------------------------------------------


def test_page_and_fragments(app, admin):
    """List, row, and remove confirmation: page for plain/boosted/restore, fragment for htmx."""
    page = admin.get(PAGE)
    assert page.status_code == 200 and "<html" in body(page)
    assert 'id="member-list"' in body(page) and "css/dashboard-pages.css" in body(page)
    fragment = admin.get(PAGE, headers=FRAGMENT)
    assert body(fragment).lstrip().startswith('<div id="member-list"')
    assert "HX-Request" in fragment.headers["Vary"]
    for headers in (BOOSTED, HISTORY_RESTORE):
        assert "<html" in body(admin.get(PAGE, headers=headers))

    bob = member_id(app, "bob@example.com")
    row = admin.get(f"{PAGE}/{bob}", headers=FRAGMENT)
    assert body(row).lstrip().startswith(f'<tr id="member-{bob}"')
    assert "<html" in body(admin.get(f"{PAGE}/{bob}"))  # the member's own page
    confirm = admin.get(f"{PAGE}/{bob}/remove", headers=FRAGMENT)
    assert body(confirm).lstrip().startswith(f'<tr id="member-{bob}"')
    assert "Remove bob@example.com from Acme?" in text(confirm)
    full = admin.get(f"{PAGE}/{bob}/remove", headers=BOOSTED)
    assert "<html" in body(full) and "Remove bob@example.com from Acme?" in text(full)
    assert "HX-Request" in confirm.headers["Vary"]


def test_access(app, world):
    """Anonymous: sign in first; plain member: 403; another org's admin: 404; superuser: 200."""
    bob = member_id(app, "bob@example.com")
    anonymous = Client(app, None)
    response = anonymous.get(PAGE)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert anonymous.post(f"{PAGE}/{bob}/remove").status_code == 302
    member = Client(app, world.member)
    assert member.get(PAGE).status_code == 403
    assert member.post(f"{PAGE}/{bob}/remove").status_code == 403
    outsider = Client(app, world.outsider)
    assert outsider.get(PAGE).status_code == 404
    assert outsider.post(f"{PAGE}/{bob}/role", {role_field(bob): "admin"}).status_code == 404
    root = Client(app, world.root)
    assert root.get(PAGE).status_code == 200
    assert role_of(app, "bob@example.com") == "member"
    # Another org's membership id under this org's URL: 404, and it stays.
    olga = member_id(app, "olga@example.com", org="globex")
    assert root.post(f"{PAGE}/{olga}/remove").status_code == 404
    assert root.get(f"{PAGE}/{olga}", headers=FRAGMENT).status_code == 404
    assert member_id(app, "olga@example.com", org="globex") == olga


def test_posts_need_the_csrf_token(app, admin):
    """Role change and removal without the token: 400, nothing changes."""
    bob = member_id(app, "bob@example.com")
    for headers in ({}, FRAGMENT):
        response = admin.post(f"{PAGE}/{bob}/role", {role_field(bob): "admin"}, headers, csrf=False)
        assert response.status_code == 400
        assert admin.post(f"{PAGE}/{bob}/remove", headers=headers, csrf=False).status_code == 400
    assert role_of(app, "bob@example.com") == "member"
    assert events(app, "member.role_changed") == [] and events(app, "member.removed") == []


# --- list -------------------------------------------------------------------------------------


def test_rows_show_name_email_role_joined_and_invitation(app, admin):
    """Each row: name, email, a role select, joined time, a link to the invitation's activity."""
    add_people(app, 1)
    html = body(admin.get(PAGE))
    mid = member_id(app, "m0@example.com")
    row = html[html.index(f'id="member-{mid}"') :].split("</tr>")[0]
    assert "Member 0" in row and "m0@example.com" in row
    assert f'name="{role_field(mid)}"' in row and '<option selected value="member">' in row
    assert "<time datetime=" in row and "2 days ago" in row
    assert f'href="/orgs/acme/activity?q=inv_{0:026d}"' in row
    assert f'hx-post="/orgs/acme/members/{mid}/role"' in row and 'hx-trigger="change"' in row
    assert '<span class="badge">You</span>' in html  # Ada sees herself marked


def test_search_by_email(app, admin):
    """q matches part of the address, case-insensitively; the count follows."""
    add_people(app, 12)
    response = admin.get(f"{PAGE}?q=M1", headers=FRAGMENT)
    assert listed(body(response)) == ["m11@example.com", "m10@example.com", "m1@example.com"]
    assert "3 members matching “M1”" in text(response)
    none = admin.get(f"{PAGE}?q=nobody%25", headers=FRAGMENT)
    assert listed(body(none)) == [] and "No member matches “nobody%”." in text(none)


def test_keyset_pages(app, admin):
    """Newest first, 25 a page; Older/Newer links carry cursors; a stale cursor starts over."""
    add_people(app, 30)  # with Ada and Bob: 32 members
    first = body(admin.get(PAGE))
    names = listed(first)
    assert names[:3] == ["bob@example.com", "ada@example.com", "m29@example.com"]
    assert len(names) == 25 and names[-1] == "m7@example.com"
    assert "32 members" in first
    after = re.search(r'rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    assert 'rel="prev"' not in first and 'hx-push-url="true"' in first
    second = body(admin.get(after, headers=FRAGMENT))
    assert listed(second) == [f"m{n}@example.com" for n in range(6, -1, -1)]
    assert 'rel="next"' not in second
    before = re.search(r'rel="prev" href="([^"]+)"', second).group(1).replace("&amp;", "&")
    assert listed(body(admin.get(before, headers=FRAGMENT))) == names
    stale = admin.get(f"{PAGE}?after=mem_gone", headers=FRAGMENT)
    assert stale.status_code == 200 and listed(body(stale)) == names
    assert len(listed(body(admin.get(f"{PAGE}?limit=50")))) == 32


def test_list_members_service_refuses_bad_input(app, world):
    """Limits and conflicting cursors are field errors (the view never sends them)."""

    def check(session):
        org = get_organization(session, "acme")
        with pytest.raises(Exception, match="limit must be between 1 and 100"):
            list_members(session, org, limit=0)
        with pytest.raises(Exception, match="use starting_after or ending_before"):
            list_members(session, org, starting_after="a", ending_before="b")

    in_db(app, check)


# --- role changes -----------------------------------------------------------------------------


def test_change_role_swaps_the_row_and_is_audited(app, admin):
    """htmx: the row comes back with the new role and a notice; the event names both roles."""
    response = change(admin, app, "bob@example.com", "admin", headers=FRAGMENT)
    assert response.status_code == 200
    bob = member_id(app, "bob@example.com")
    assert body(response).lstrip().startswith(f'<tr id="member-{bob}"')
    assert "bob@example.com is now admin." in text(response)
    assert '<option selected value="admin">' in body(response)
    assert role_of(app, "bob@example.com") == "admin"
    [event] = events(app, "member.role_changed")
    assert event.data["email"] == "bob@example.com"
    assert (event.data["from"], event.data["to"]) == ("member", "admin")
    assert event.actor_type == "user"
    plain = change(admin, app, "bob@example.com", "member")
    assert plain.status_code == 303 and plain.headers["Location"] == PAGE
    assert role_of(app, "bob@example.com") == "member"
    assert "bob@example.com is now member." in text(admin.get(PAGE))
    boosted = change(admin, app, "bob@example.com", "admin", headers=BOOSTED)
    assert boosted.status_code == 303 and role_of(app, "bob@example.com") == "admin"


def test_unknown_role_is_refused_by_name(app, admin):
    """A role the org does not have: 422 beside the select, naming it and the valid ones."""
    for headers in (FRAGMENT, {}):
        response = change(admin, app, "bob@example.com", "owner", headers=headers)
        assert response.status_code == 422
        assert "'owner' is not a role of Acme (roles: admin, member)" in text(response)
        bob = member_id(app, "bob@example.com")
        assert f'id="{role_field(bob)}-error"' in body(response)
    assert role_of(app, "bob@example.com") == "member"


def test_last_admin_cannot_be_demoted(app, world, admin):
    """Ada, the only admin, cannot give up admin; a superuser cannot demote her either."""
    response = change(admin, app, "ada@example.com", "member", headers=FRAGMENT)
    assert response.status_code == 422
    assert (
        "You are the last admin of Acme; make someone else an admin before giving up yours"
        in text(response)
    )
    root = Client(app, world.root)
    response = change(root, app, "ada@example.com", "member")
    assert response.status_code == 422 and "<html" in body(response)
    assert "ada@example.com is the last admin of Acme" in text(response)
    assert role_of(app, "ada@example.com") == "admin"
    assert events(app, "member.role_changed") == []


def test_demoting_yourself_leaves_the_org_pages(app, admin):
    """With another admin, Ada may step down; htmx is redirected home, the pages are then 403."""
    change(admin, app, "bob@example.com", "admin")
    response = change(admin, app, "ada@example.com", "member", headers=FRAGMENT)
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/"
    assert role_of(app, "ada@example.com") == "member"
    assert admin.get(PAGE).status_code == 403


# --- removal ----------------------------------------------------------------------------------


def test_remove_member_and_their_projects_in_this_org(app, admin):
    """The row says who was removed; their Acme projects go, their other orgs' stay."""

    def projects(session):
        acme = get_organization(session, "acme")
        globex = get_organization(session, "globex")
        bob = session.scalar(select(User).where(User.email_key == "bob@example.com"))
        make_member(globex, "bob@example.com", "member")
        for org in (acme, globex):
            project = create_project(session, org, "Web")
            session.add(ProjectMembership(project_id=project.id, user_id=bob.id, role="member"))

    in_db(app, projects)
    bob = member_id(app, "bob@example.com")
    response = admin.post(f"{PAGE}/{bob}/remove", headers=FRAGMENT)
    assert response.status_code == 200
    assert body(response).lstrip().startswith(f'<tr id="member-{bob}"')
    assert "Removed bob@example.com from Acme." in text(response)
    assert member_id(app, "bob@example.com") is None
    assert member_id(app, "bob@example.com", org="globex") is not None
    assert in_db(app, lambda s: s.scalar(select(func.count()).select_from(ProjectMembership))) == 1
    [event] = events(app, "member.removed")
    assert event.data["email"] == "bob@example.com" and event.data["role"] == "member"
    assert event.data["project_memberships_removed"] == 1
    assert admin.post(f"{PAGE}/{bob}/remove").status_code == 404


def test_plain_remove_redirects(app, admin):
    bob = member_id(app, "bob@example.com")
    response = admin.post(f"{PAGE}/{bob}/remove")
    assert response.status_code == 303 and response.headers["Location"] == PAGE
    assert "Removed bob@example.com from Acme." in text(admin.get(PAGE))


def test_last_admin_cannot_be_removed(app, world, admin):
    """Not by herself, not by a superuser: 422 in the confirmation, with the reason."""
    ada = member_id(app, "ada@example.com")
    response = admin.post(f"{PAGE}/{ada}/remove", headers=FRAGMENT)
    assert response.status_code == 422
    assert body(response).lstrip().startswith(f'<tr id="member-{ada}"')
    assert "You are the last admin of Acme; make someone else an admin before leaving" in text(
        response
    )
    root = Client(app, world.root)
    response = root.post(f"{PAGE}/{ada}/remove")
    assert response.status_code == 422 and "<html" in body(response)
    assert (
        "ada@example.com is the last admin of Acme; make someone else an admin before "
        "removing them" in text(response)
    )
    assert member_id(app, "ada@example.com") == ada
    assert events(app, "member.removed") == []


def test_hostile_member_name_renders_inert(app, admin):
    """A member called <img …> is shown as text in the list, the row and the confirmation."""

    def rename(session):
        user = session.scalar(select(User).where(User.email_key == "bob@example.com"))
        user.name = HOSTILE

    in_db(app, rename)
    bob = member_id(app, "bob@example.com")
    for response in (
        admin.get(PAGE),
        admin.get(PAGE, headers=FRAGMENT),
        admin.get(f"{PAGE}/{bob}", headers=FRAGMENT),
        admin.get(f"{PAGE}/{bob}"),
    ):
        assert "<img" not in body(response)
        assert "&lt;img src=x onerror=alert(1)&gt;" in body(response)


@pytest.mark.postgres_only
def test_two_admins_demoting_each_other_at_once_leave_one_admin(make_app, monkeypatch):
    """On PostgreSQL (Read Committed), the org lock keeps one admin when both act together."""
    use_quick_passwords(monkeypatch)
    app = make_app("postgresql")
    make_world(app)
    in_db(app, lambda s: make_member(get_organization(s, "acme"), "cy@example.com", "admin"))
    people = {
        email: (
            member_id(app, email),
            in_db(app, lambda s, e=email: s.scalar(select(User.id).where(User.email_key == e))),
        )
        for email in ("ada@example.com", "cy@example.com")
    }
    (ada_member, ada_id), (cy_member, cy_id) = people.values()

    def demote(target: str, actor_id: str):
        def act():
            org = get_organization(db.session, "acme")
            return change_member_role(db.session, org, target, "member", actor=Actor.user(actor_id))

        return act

    def both_admins(session):
        for member in (ada_member, cy_member):
            session.get(Membership, member).role = "admin"

    for _ in range(3):  # a lost race shows up in most rounds, not necessarily in one
        in_db(app, both_admins)
        actions = iter([demote(cy_member, ada_id), demote(ada_member, cy_id)])
        results = race(app, 2, lambda actions=actions: next(actions)())
        assert sorted(kind for kind, _ in results) == ["error", "ok"], results
        assert isinstance(next(r for kind, r in results if kind == "error"), Conflict)
        roles = [role_of(app, e) for e in ("ada@example.com", "cy@example.com")]
        assert roles.count("admin") == 1
