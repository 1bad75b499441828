"""The settings page: general settings, allowed redirect origins, roles (HTTP level)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.conftest import APP_ORIGIN
from tests.dashboard_pages import HOSTILE
from tests.dashboard_pages import Client
from tests.dashboard_pages import body
from tests.dashboard_pages import in_db
from tests.dashboard_pages import text
from tests.dashboard_support import BOOSTED
from tests.dashboard_support import FRAGMENT
from tests.dashboard_support import HISTORY_RESTORE
from webapp.models import AuditEvent
from webapp.models import User
from webapp.services.actors import SYSTEM
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import create_invitation
from webapp.services.organizations import add_role
from webapp.services.organizations import get_organization

PAGE = "/orgs/acme/settings"

pytestmark = pytest.mark.usefixtures("quick_passwords")
GENERAL = f"{PAGE}/general"
ORIGINS = f"{PAGE}/origins"
REMOVE_ORIGIN = f"{PAGE}/origins/remove"
ROLES = f"{PAGE}/roles"
OTHER_ORIGIN = "https://other.example.org"


def acme(app) -> dict:
    """Acme's settings as stored now."""

    def read(session):
        org = get_organization(session, "acme")
        return {
            "name": org.name,
            "default_role": org.default_role,
            "default_expiry_seconds": org.default_expiry_seconds,
            "allowed_redirect_origins": list(org.allowed_redirect_origins),
            "default_redirect_url": org.default_redirect_url,
            "roles": {r.key: (r.name, r.is_admin) for r in org.roles},
        }

    return in_db(app, read)


def events(app, event_type: str) -> list[AuditEvent]:
    return in_db(
        app,
        lambda s: list(
            s.scalars(
                select(AuditEvent).where(AuditEvent.type == event_type).order_by(AuditEvent.id)
            )
        ),
    )


def user_id(app, email: str) -> str:
    return in_db(app, lambda s: s.scalar(select(User.id).where(User.email_key == email)))


def general_form(**changes) -> dict:
    values = {
        "name": "Acme",
        "default_role": "member",
        "default_expiry": "7",
        "default_redirect_url": "",
    }
    values.update(changes)
    return values


def role_field(app, key: str) -> str:
    """The form field name of a role's rename input (prefixed with the role's row id)."""
    return in_db(app, lambda s: f"role-{get_organization(s, 'acme').role(key).id}-name")


# --- page, fragments, access, CSRF -----------------------------------------------------------


def test_page_and_fragment(admin):
    """Plain GET: the page with its three sections; HX-Request: the sections without layout."""
    page = admin.get(PAGE)
    html = body(page)
    assert page.status_code == 200 and "<html" in html
    for section in ("settings-general", "settings-origins", "settings-roles"):
        assert f'id="{section}"' in html
    assert 'href="/orgs/acme/settings" aria-current="page">Settings<' in html
    assert "css/dashboard-pages.css" in html
    fragment = admin.get(PAGE, headers=FRAGMENT)
    assert "<html" not in body(fragment)
    assert body(fragment).lstrip().startswith('<div class="settings">')
    assert "HX-Request" in fragment.headers["Vary"]
    for headers in (BOOSTED, HISTORY_RESTORE):
        assert "<html" in body(admin.get(PAGE, headers=headers))


def test_access(app, world):
    """Anonymous: sign in first; plain member: 403; another org's admin: 404; superuser: 200."""
    anonymous = Client(app, None, PAGE)
    response = anonymous.get(PAGE)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    response = anonymous.get(PAGE, headers=FRAGMENT)  # htmx is told where to go instead
    assert response.status_code == 401 and response.headers["HX-Redirect"].startswith("/login")
    response = anonymous.post(GENERAL, general_form(name="Hacked"))
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    member = Client(app, world.member, "/login")
    assert member.get(PAGE).status_code == 403
    assert member.post(GENERAL, general_form(name="Hacked")).status_code == 403
    assert member.post(f"{ROLES}/member/remove").status_code == 403
    outsider = Client(app, world.outsider, "/login")
    assert outsider.get(PAGE).status_code == 404
    assert outsider.post(ROLES, {"new-role-key": "spy"}).status_code == 404
    assert Client(app, world.root, PAGE).get(PAGE).status_code == 200
    assert acme(app)["name"] == "Acme" and "spy" not in acme(app)["roles"]


CSRF_CASES = [
    (GENERAL, general_form(name="Changed")),
    (ORIGINS, {"origin": OTHER_ORIGIN}),
    (REMOVE_ORIGIN, {"origin": APP_ORIGIN}),
    (ROLES, {"new-role-key": "billing"}),
    (f"{ROLES}/member/rename", {"name": "Changed"}),
    (f"{ROLES}/admin/remove", {}),
]


def test_posts_need_the_csrf_token(app, admin):
    """Without the token every POST is refused (400), plain or htmx, and nothing changes."""
    before = acme(app)
    for path, data in CSRF_CASES:
        for headers in ({}, FRAGMENT):
            response = admin.post(path, data, headers=headers, csrf=False)
            assert response.status_code == 400, path
    assert acme(app) == before
    assert in_db(app, lambda s: s.scalars(select(AuditEvent.type)).all()) == []


# --- general --------------------------------------------------------------------------------


def test_general_saves_and_records_who_changed_what(app, admin):
    """A plain POST saves, answers 303 to the section, and writes org.updated with the changes."""
    response = admin.post(
        GENERAL,
        general_form(
            name="Acme Corp",
            default_role="admin",
            default_expiry="14",
            default_redirect_url=f"{APP_ORIGIN}/start",
        ),
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"{PAGE}#settings-general"
    stored = acme(app)
    assert stored["name"] == "Acme Corp" and stored["default_role"] == "admin"
    assert stored["default_expiry_seconds"] == 14 * 86400
    assert stored["default_redirect_url"] == f"{APP_ORIGIN}/start"
    [event] = events(app, "org.updated")
    assert event.actor_type == "user" and event.actor_id == user_id(app, "ada@example.com")
    assert event.data["changes"]["name"] == {"from": "Acme", "to": "Acme Corp"}
    assert event.data["changes"]["default_expiry_seconds"] == {
        "from": 7 * 86400,
        "to": 14 * 86400,
    }
    assert "Saved the settings." in text(admin.get(PAGE))


def test_general_fragment_and_no_event_without_a_change(app, admin):
    """htmx gets the section back with a notice; saving unchanged values records nothing."""
    response = admin.post(GENERAL, general_form(), headers=FRAGMENT)
    assert response.status_code == 200
    assert body(response).lstrip().startswith('<section id="settings-general"')
    assert "Saved the settings." in text(response)
    assert events(app, "org.updated") == []
    # The roles table comes along out of band, so its Default badge follows the setting.
    assert '<section id="settings-roles"' in body(response)
    assert body(response).count('hx-swap-oob="true"') == 1
    # A boosted form is a page navigation: the redirect, as for a plain POST.
    boosted = admin.post(GENERAL, general_form(name="Boosted"), headers=BOOSTED)
    assert boosted.status_code == 303 and acme(app)["name"] == "Boosted"


def test_general_errors_beside_each_field_and_nothing_saved(app, admin):
    """Every problem at once (422), each message naming the value; nothing is saved."""
    for headers in (FRAGMENT, {}):
        response = admin.post(
            GENERAL,
            general_form(
                name="",
                default_role="owner",
                default_expiry="31",
                default_redirect_url="https://evil.example.net/x",
            ),
            headers=headers,
        )
        assert response.status_code == 422
        html, page = body(response), text(response)
        assert ("<html" in html) == (headers == {})
        assert 'id="name-error"' in html and "name is required" in page
        assert 'id="default_role-error"' in html and "'owner' is not one of" in page
        assert 'id="default_expiry-error"' in html
        assert "'31' is not a whole number of days from 1 to 30" in page
        assert 'id="default_redirect_url-error"' in html
        assert (
            "'https://evil.example.net/x' is not on this organization's allowed redirect origins"
        ) in page
        assert 'aria-invalid="true"' in html
    response = admin.post(GENERAL, general_form(name="Renamed", default_expiry="soon"))
    assert response.status_code == 422
    assert "'soon' is not a whole number of days" in text(response)
    assert acme(app)["name"] == "Acme"
    assert events(app, "org.updated") == []


def test_a_finer_default_expiry_survives_an_unrelated_save(app, admin):
    """An API-set default of 2 hours shows as 1 day and stays 2 hours when the name changes."""
    in_db(app, lambda s: setattr(get_organization(s, "acme"), "default_expiry_seconds", 7200))
    assert 'value="1"' in body(admin.get(PAGE))
    assert admin.post(GENERAL, general_form(name="Acme 2", default_expiry="1")).status_code == 303
    assert acme(app)["default_expiry_seconds"] == 7200
    assert admin.post(GENERAL, general_form(default_expiry="2")).status_code == 303
    assert acme(app)["default_expiry_seconds"] == 2 * 86400


# --- redirect origins -----------------------------------------------------------------------


def test_origins_add_and_remove(app, admin):
    """Added in canonical form; duplicates and non-origins refused by value; removal works."""
    response = admin.post(ORIGINS, {"origin": "https://Other.Example.org:443/"}, headers=FRAGMENT)
    assert response.status_code == 200
    assert body(response).lstrip().startswith('<section id="settings-origins"')
    assert f"Added {OTHER_ORIGIN}." in text(response)
    assert acme(app)["allowed_redirect_origins"] == [APP_ORIGIN, OTHER_ORIGIN]

    duplicate = admin.post(ORIGINS, {"origin": OTHER_ORIGIN}, headers=FRAGMENT)
    assert duplicate.status_code == 422
    assert f"{OTHER_ORIGIN} is already allowed" in text(duplicate)
    assert 'id="origin-error"' in body(duplicate)
    for bad, message in (
        ("http://insecure.example.org", "must use https"),
        ("https://app.example.org/path", "must be an origin only"),
        ("javascript:alert(1)", "must start with https://"),
    ):
        response = admin.post(ORIGINS, {"origin": bad}, headers=FRAGMENT)
        assert response.status_code == 422
        assert f"'{bad}'" in text(response) and message in text(response)

    response = admin.post(REMOVE_ORIGIN, {"origin": OTHER_ORIGIN})
    assert response.status_code == 303
    assert response.headers["Location"] == f"{PAGE}#settings-origins"
    assert acme(app)["allowed_redirect_origins"] == [APP_ORIGIN]
    changes = [e.data["changes"]["allowed_redirect_origins"] for e in events(app, "org.updated")]
    assert changes == [
        {"from": [APP_ORIGIN], "to": [APP_ORIGIN, OTHER_ORIGIN]},
        {"from": [APP_ORIGIN, OTHER_ORIGIN], "to": [APP_ORIGIN]},
    ]


def test_origin_of_the_default_redirect_cannot_be_removed(app, admin):
    """Removing the default redirect URL's origin is refused (422) until the URL changes."""
    admin.post(GENERAL, general_form(default_redirect_url=f"{APP_ORIGIN}/start"))
    response = admin.post(REMOVE_ORIGIN, {"origin": APP_ORIGIN}, headers=FRAGMENT)
    assert response.status_code == 422
    assert (
        f"{APP_ORIGIN} is the origin of the default redirect URL {APP_ORIGIN}/start; "
        "change or clear the default redirect URL first"
    ) in text(response)
    plain = admin.post(REMOVE_ORIGIN, {"origin": APP_ORIGIN})
    assert plain.status_code == 422 and "<html" in body(plain)
    unknown = admin.post(REMOVE_ORIGIN, {"origin": OTHER_ORIGIN}, headers=FRAGMENT)
    assert unknown.status_code == 422
    assert f"'{OTHER_ORIGIN}' is not an allowed redirect origin of Acme" in text(unknown)
    assert acme(app)["allowed_redirect_origins"] == [APP_ORIGIN]


# --- roles ----------------------------------------------------------------------------------


def test_roles_table_shows_usage(app, admin):
    """Key, name, whether it administers, and how many members and pending invitations use it."""

    def invite(session):
        org = get_organization(session, "acme")
        create_invitation(
            session, org, InvitationRequest("cy@example.com", notify=False), actor=SYSTEM
        )

    in_db(app, invite)
    response = admin.get(PAGE)
    page = text(response)
    assert "Rename admin Yes 1 member, 0 pending invitations" in page  # Ada
    assert "Rename member No 1 member, 1 pending invitation" in page  # Bob; cy@
    assert 'value="Admin"' in body(response) and 'value="Member"' in body(response)
    assert '<span class="badge">Default</span>' in body(response)


def test_add_rename_remove_a_role(app, admin):
    """Each step shows in the section, updates the default-role choices and is audited."""
    response = admin.post(
        ROLES,
        {"new-role-key": "billing", "new-role-name": "Billing team", "new-role-is_admin": "y"},
        headers=FRAGMENT,
    )
    assert response.status_code == 200
    html = body(response)
    assert html.lstrip().startswith('<section id="settings-roles"')
    assert "Added the role billing." in html
    # The general section's select follows, out of band.
    assert 'hx-swap-oob="true"' in html and '<option value="billing">' in html
    assert acme(app)["roles"]["billing"] == ("Billing team", True)

    field = role_field(app, "billing")
    response = admin.post(f"{ROLES}/billing/rename", {field: "Finance"}, headers=FRAGMENT)
    assert response.status_code == 200 and "Renamed the role billing." in text(response)
    assert acme(app)["roles"]["billing"] == ("Finance", True)

    response = admin.post(f"{ROLES}/billing/remove")
    assert response.status_code == 303
    assert response.headers["Location"] == f"{PAGE}#settings-roles"
    assert "billing" not in acme(app)["roles"]

    admin_id = user_id(app, "ada@example.com")
    added, renamed, removed = (
        events(app, "role.added"),
        events(app, "role.renamed"),
        events(app, "role.removed"),
    )
    assert added[0].data == {"key": "billing", "name": "Billing team", "is_admin": True}
    assert renamed[0].data == {"key": "billing", "from": "Billing team", "to": "Finance"}
    assert removed[0].data == {"key": "billing", "name": "Finance"}
    assert {e.actor_id for e in added + renamed + removed} == {admin_id}


def test_role_form_errors_name_the_value(app, admin):
    """Bad or duplicate keys, too-long and empty names: 422 beside the field."""
    cases = [
        ({"new-role-key": "Bad Key"}, "new-role-key-error", "'Bad Key' is not a valid role key"),
        ({"new-role-key": "member"}, "new-role-key-error", "role 'member' already exists in Acme"),
        (
            {"new-role-key": "long", "new-role-name": "x" * 101},
            "new-role-name-error",
            "name is 101 characters; the limit is 100",
        ),
    ]
    for data, error_id, message in cases:
        response = admin.post(ROLES, data, headers=FRAGMENT)
        assert response.status_code == 422, data
        assert f'id="{error_id}"' in body(response) and message in text(response)
    field = role_field(app, "member")
    response = admin.post(f"{ROLES}/member/rename", {field: "  "}, headers=FRAGMENT)
    assert response.status_code == 422
    assert f'id="{field}-error"' in body(response) and "name is required" in text(response)
    plain = admin.post(ROLES, {"new-role-key": "Bad Key"})
    assert plain.status_code == 422 and "<html" in body(plain)
    assert set(acme(app)["roles"]) == {"admin", "member"}
    assert admin.post(f"{ROLES}/nope/rename", {"name": "x"}).status_code == 404
    assert admin.post(f"{ROLES}/nope/remove").status_code == 404


def test_roles_in_use_cannot_be_removed(app, admin):
    """The default role, and roles of members or pending invitations: refused with the reason."""

    def setup(session):
        org = get_organization(session, "acme")
        add_role(session, org, "billing")
        add_role(session, org, "viewer")
        create_invitation(
            session,
            org,
            InvitationRequest("cy@example.com", role="viewer", notify=False),
            actor=SYSTEM,
        )

    in_db(app, setup)
    cases = [
        ("member", "Cannot remove member: 'member' is the default role; choose another default"),
        ("admin", "Cannot remove admin: role 'admin' is used by 1 member; give them another role"),
        ("viewer", "Cannot remove viewer: role 'viewer' is used by 1 pending invitation;"),
    ]
    for key, message in cases:
        response = admin.post(f"{ROLES}/{key}/remove", headers=FRAGMENT)
        assert response.status_code == 422
        assert message in text(response)
    assert set(acme(app)["roles"]) == {"admin", "member", "billing", "viewer"}
    assert admin.post(f"{ROLES}/billing/remove", headers=FRAGMENT).status_code == 200
    assert events(app, "role.removed")[0].data["key"] == "billing"


def test_hostile_names_render_inert(app, admin):
    """A role name and an organization name made of markup come back escaped everywhere."""
    admin.post(ROLES, {"new-role-key": "evil", "new-role-name": HOSTILE})
    admin.post(GENERAL, general_form(name=HOSTILE))
    assert acme(app)["name"] == HOSTILE
    for response in (admin.get(PAGE), admin.get(PAGE, headers=FRAGMENT)):
        html = body(response)
        assert "<img" not in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_nav_links_to_the_new_pages(admin):
    """The navigation shows Members, Activity and Settings once their endpoints exist."""
    html = body(admin.get(PAGE))
    for path, label in (("members", "Members"), ("activity", "Activity"), ("settings", "Settings")):
        assert f'href="/orgs/acme/{path}"' in html and f">{label}<" in html


def test_superuser_changes_are_audited_as_the_superuser(app, world):
    """A superuser (not a member) may change settings; the event names them."""
    root = Client(app, world.root, PAGE)
    assert root.post(GENERAL, general_form(name="Acme Global")).status_code == 303
    [event] = events(app, "org.updated")
    assert event.actor_id == user_id(app, "root@example.com")
    assert acme(app)["name"] == "Acme Global"
