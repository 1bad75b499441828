"""Organizations, roles, settings, projects, members, API keys, and ticket verification."""

from __future__ import annotations

from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest

from tests.api_support import assert_problem
from tests.conftest import APP_ORIGIN
from tests.dashboard_support import make_member
from webapp.extensions import db
from webapp.services.errors import ValidationFailed
from webapp.services.organizations import get_organization
from webapp.services.organizations import update_organization


def test_instance_key_creates_and_lists_organizations(api):
    response = api.call("POST", "/organizations", key="instance", json={"name": "Initech"})
    assert response.status_code == 201
    created = response.get_json()
    assert created["slug"] == "initech"
    assert [r["key"] for r in created["roles"]] == ["admin", "member"]
    names = [
        o["name"] for o in api.call("GET", "/organizations", key="instance").get_json()["data"]
    ]
    assert names == ["Acme", "Globex", "Initech"]
    # An org key sees only its own organization.
    own = api.call("GET", "/organizations").get_json()["data"]
    assert [o["slug"] for o in own] == ["acme"]
    taken = api.call("POST", "/organizations", key="instance", json={"name": "Acme"})
    body = assert_problem(taken, 409, "conflict")
    assert "'acme'" in body["detail"]


def test_settings_change_and_clear(api):
    response = api.call(
        "PATCH",
        "/organizations/acme",
        json={
            "name": "Acme Corp",
            "default_expiry_days": 3,
            "allowed_redirect_origins": [APP_ORIGIN, "https://other.example.org"],
            "default_redirect_url": f"{APP_ORIGIN}/start",
            "invite_quota": 100,
        },
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["name"] == "Acme Corp"
    assert body["default_expiry_days"] == 3
    assert body["allowed_redirect_origins"] == [APP_ORIGIN, "https://other.example.org"]
    assert body["invite_quota"] == 100
    cleared = api.call(
        "PATCH", "/organizations/acme", json={"default_redirect_url": None, "invite_quota": None}
    ).get_json()
    assert cleared["default_redirect_url"] is None
    assert cleared["invite_quota"] is None
    assert cleared["name"] == "Acme Corp"  # untouched fields stay
    bad = api.call(
        "PATCH",
        "/organizations/acme",
        json={"default_role": "wizard", "allowed_redirect_origins": ["javascript:alert(1)"]},
    )
    problem = assert_problem(bad, 422, "validation_failed")
    assert {e["field"] for e in problem["errors"]} == {"default_role", "allowed_redirect_origins"}
    # Nothing of the refused change was kept.
    assert api.call("GET", "/organizations/acme").get_json()["default_role"] == "member"


def test_a_quota_too_large_for_the_column_is_refused_by_name(api):
    """Found by the schema run: 2**63 reached the database (a 500 on SQLite, whose
    INTEGER it overflows). The document's bound and the service's are the same."""
    response = api.call("PATCH", "/organizations/acme", json={"invite_quota": 2**63})
    problem = assert_problem(response, 422, "validation_failed")
    assert [e["field"] for e in problem["errors"]] == ["invite_quota"]
    assert "1000000000" in problem["errors"][0]["message"]
    assert "9223372036854775808" in problem["errors"][0]["message"]
    assert api.call("GET", "/organizations/acme").get_json()["invite_quota"] is None
    with api.app.app_context():
        org = get_organization(db.session, "acme")
        with pytest.raises(ValidationFailed) as refused:
            update_organization(db.session, org, invite_quota=1_000_000_001)
        assert refused.value.errors[0].message == (
            "the quota must be a whole number from 0 to 1,000,000,000, not 1000000001"
        )
        db.session.rollback()
    ceiling = api.call("PATCH", "/organizations/acme", json={"invite_quota": 1_000_000_000})
    assert ceiling.get_json()["invite_quota"] == 1_000_000_000


def test_roles_add_rename_remove(api):
    created = api.call(
        "POST", "/organizations/acme/roles", json={"key": "org:billing", "name": "Billing"}
    )
    assert created.status_code == 201
    assert created.get_json() == {"key": "org:billing", "name": "Billing", "administers": False}
    renamed = api.call("PATCH", "/organizations/acme/roles/org:billing", json={"name": "Finance"})
    assert renamed.get_json()["name"] == "Finance"
    api.invite("ada@example.com", role="org:billing")
    in_use = api.call("DELETE", "/organizations/acme/roles/org:billing")
    body = assert_problem(in_use, 409, "conflict")
    assert "pending invitation" in body["detail"]
    invitations = api.call("GET", "/organizations/acme/invitations").get_json()["data"]
    api.call("POST", f"/organizations/acme/invitations/{invitations[0]['id']}/revoke")
    removed = api.call("DELETE", "/organizations/acme/roles/org:billing")
    assert [r["key"] for r in removed.get_json()["data"]] == ["admin", "member"]
    assert [r["key"] for r in api.call("GET", "/organizations/acme/roles").get_json()["data"]] == [
        "admin",
        "member",
    ]


def test_projects(api):
    created = api.call("POST", "/organizations/acme/projects", json={"name": "Research"})
    assert created.status_code == 201
    project = created.get_json()
    assert project["id"].startswith("proj_")
    listed = api.call("GET", "/organizations/acme/projects").get_json()["data"]
    assert [p["name"] for p in listed] == ["Research"]
    duplicate = api.call("POST", "/organizations/acme/projects", json={"name": "Research"})
    assert_problem(duplicate, 409, "conflict")


def test_members_list_change_role_and_remove(api):
    with api.app.app_context():
        org = get_organization(db.session, "acme")
        make_member(org, "boss@example.com", "admin")
        make_member(org, "ann@example.com", "member")
    listed = api.call("GET", "/organizations/acme/members").get_json()
    assert listed["total_count"] == 2
    by_email = {m["email"]: m for m in listed["data"]}
    ann = by_email["ann@example.com"]
    boss = by_email["boss@example.com"]
    changed = api.call(
        "PATCH", f"/organizations/acme/members/{ann['id']}", json={"role": "admin"}
    ).get_json()
    assert changed["role"] == "admin"
    assert api.call("GET", f"/organizations/acme/members/{ann['id']}").get_json()["role"] == "admin"
    removed = api.call("DELETE", f"/organizations/acme/members/{ann['id']}")
    assert removed.get_json()["email"] == "ann@example.com"
    last_admin = api.call("DELETE", f"/organizations/acme/members/{boss['id']}")
    assert_problem(last_admin, 409, "conflict")
    assert_problem(api.call("GET", f"/organizations/acme/members/{ann['id']}"), 404, "not_found")
    assert_problem(
        api.call("GET", "/organizations/acme/members?limit=1000"), 422, "validation_failed"
    )


def test_api_keys_are_shown_once_and_revocable(api):
    created = api.call("POST", "/organizations/acme/api_keys", json={"name": "ci"})
    assert created.status_code == 201
    key = created.get_json()
    secret = key["secret"]
    assert secret.startswith("oik_")
    listed = api.call("GET", "/organizations/acme/api_keys").get_json()["data"]
    assert {k["name"] for k in listed} == {"acme backend", "ci"}
    assert all("secret" not in k for k in listed)
    assert api.call("GET", "/organizations/acme", key=secret).status_code == 200
    api.call("POST", f"/organizations/acme/api_keys/{key['id']}/revoke")
    assert_problem(api.call("GET", "/organizations/acme", key=secret), 401, "unauthenticated")
    # Another org's key id is not found here.
    assert_problem(
        api.call("POST", f"/organizations/globex/api_keys/{key['id']}/revoke", key="instance"),
        404,
        "not_found",
    )


def _accept(api, accept_url: str) -> str:
    """Accept on the public page; return the ticket from the redirect."""
    import re

    client = api.app.test_client()
    path = urlsplit(accept_url).path
    page = client.get(path).get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post(path, data={"csrf_token": token, "name": "Ada"})
    assert response.status_code == 303, response.get_data(as_text=True)
    return parse_qs(urlsplit(response.headers["Location"]).query)["ticket"][0]


def test_ticket_verifies_once_and_only_for_its_organization(api):
    invitation = api.invite("ada@example.com", notify=False, redirect_url=f"{APP_ORIGIN}/welcome")
    ticket = _accept(api, invitation["accept_url"])
    # Another organization's key cannot verify (nor use up) the ticket.
    other = api.call("POST", "/acceptance-tickets/verify", key="other", json={"ticket": ticket})
    assert_problem(other, 422, "invalid_ticket")
    response = api.call("POST", "/acceptance-tickets/verify", json={"ticket": ticket})
    assert response.status_code == 200
    body = response.get_json()
    assert body["invitation"]["id"] == invitation["id"]
    assert body["invitation"]["status"] == "accepted"
    assert body["user"]["email"] == "ada@example.com"
    assert body["membership"]["role"] == "member"
    again = api.call("POST", "/acceptance-tickets/verify", json={"ticket": ticket})
    problem = assert_problem(again, 422, "invalid_ticket")
    assert problem["reason"] == "ticket_used"
    tampered = api.call("POST", "/acceptance-tickets/verify", json={"ticket": ticket + "x"})
    assert assert_problem(tampered, 422, "invalid_ticket")["reason"] == "invalid_ticket"
