"""Who may call what: API keys only (never cookies), org keys stay in their organization."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.api_support import assert_problem
from tests.dashboard_support import make_superuser
from tests.dashboard_support import sign_in
from webapp.extensions import db
from webapp.models import ApiKey
from webapp.services.api_keys import revoke_api_key
from webapp.services.organizations import get_organization


def test_no_key_is_401_with_a_bearer_challenge(api):
    response = api.call("GET", "/organizations/acme/invitations", key=None)
    body = assert_problem(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in body["detail"]


@pytest.mark.parametrize(
    "header",
    ["Bearer oik_not-a-real-key", "Bearer ", "Basic dXNlcjpwYXNz", "oik_without_scheme"],
)
def test_unknown_or_malformed_key_is_401(api, header):
    response = api.client.get(
        "/api/v1/organizations/acme/invitations", headers={"Authorization": header}
    )
    assert_problem(response, 401, "unauthenticated")


def test_revoked_key_is_401_at_once(api):
    assert api.call("GET", "/organizations/acme/invitations").status_code == 200
    with api.app.app_context():
        revoke_api_key(db.session, api.org_key_id, None)
        db.session.commit()
    assert_problem(api.call("GET", "/organizations/acme/invitations"), 401, "unauthenticated")


def test_a_key_may_revoke_itself_through_the_api(api):
    response = api.call("POST", f"/organizations/acme/api_keys/{api.org_key_id}/revoke")
    assert response.status_code == 200
    assert response.get_json()["revoked_at"]
    assert_problem(api.call("GET", "/organizations/acme"), 401, "unauthenticated")


def test_key_of_another_org_sees_nothing_of_this_one(api):
    invitation = api.invite("ada@example.com")
    for method, path in [
        ("GET", "/organizations/acme"),
        ("GET", "/organizations/acme/invitations"),
        ("GET", f"/organizations/{api.org_id}/invitations"),
        ("GET", f"/organizations/acme/invitations/{invitation['id']}"),
        ("POST", f"/organizations/acme/invitations/{invitation['id']}/revoke"),
        ("POST", "/organizations/acme/invitations"),
    ]:
        body = {"email": "x@example.com"} if path.endswith("/invitations") else {}
        response = api.call(method, path, key="other", json=body)
        assert_problem(response, 404, "not_found")
    # Its own organization's path with this org's invitation id: also 404.
    response = api.call("GET", f"/organizations/globex/invitations/{invitation['id']}", key="other")
    assert_problem(response, 404, "not_found")
    # And nothing changed.
    again = api.call("GET", f"/organizations/acme/invitations/{invitation['id']}")
    assert again.get_json()["status"] == "pending"


def test_org_key_reaches_its_organization_by_slug_and_by_id_as_it_is_now(api):
    """The key's organization is read with the key on every request: by slug or id, and
    a change made a moment ago is what the next request sees."""
    for ref in ("acme", api.org_id):
        assert api.call("GET", f"/organizations/{ref}").get_json()["id"] == api.org_id
    with api.app.app_context():
        org = get_organization(db.session, "acme")
        org.name, org.slug = "Acme Renamed", "acme-renamed"
        db.session.commit()
    assert_problem(api.call("GET", "/organizations/acme"), 404, "not_found")
    assert api.call("GET", "/organizations/acme-renamed").get_json()["name"] == "Acme Renamed"


def test_org_key_on_instance_endpoints_is_403(api):
    assert_problem(api.call("GET", "/invitations"), 403, "forbidden")
    assert_problem(api.call("POST", "/organizations", json={"name": "New"}), 403, "forbidden")
    assert api.call("GET", "/invitations", key="instance").status_code == 200


def test_instance_key_reaches_every_organization(api):
    for ref in ("acme", "globex", api.org_id):
        assert (
            api.call("GET", f"/organizations/{ref}/invitations", key="instance").status_code == 200
        )


def test_session_cookie_alone_gets_401_and_no_csrf_needed_with_a_key(api):
    with api.app.app_context():
        person = make_superuser()
    sign_in(api.client, person)
    # Signed in to the dashboard as a superuser, but no key: the API does not care.
    response = api.client.get("/api/v1/invitations")
    assert_problem(response, 401, "unauthenticated")
    response = api.client.post("/api/v1/organizations/acme/invitations", json={"email": "a@b.co"})
    assert_problem(response, 401, "unauthenticated")
    # With a key, a POST needs no CSRF token (the API never reads cookies).
    assert (
        api.call("POST", "/organizations/acme/invitations", json={"email": "a@b.co"}).status_code
        == 201
    )


def test_api_requests_neither_read_nor_write_the_session_cookie(api, monkeypatch):
    """A signed-in browser calling the API: the API never opens the cookie session (so
    it cannot be authenticated by it) and sets no cookie; the dashboard session stays."""
    with api.app.app_context():
        person = make_superuser()
    sign_in(api.client, person)
    interface = api.app.session_interface
    opened = []

    def open_session(app, request):
        found = type(interface).open_session(interface, app, request)
        opened.append((request.path, found))
        return found

    monkeypatch.setattr(interface, "open_session", open_session)
    assert api.call("GET", "/organizations/acme/invitations").status_code == 200
    response = api.client.get("/api/v1/organizations/acme/invitations")
    assert_problem(response, 401, "unauthenticated")
    assert "Set-Cookie" not in response.headers
    response = api.client.get("/compat/openai/v1/organization/invites")
    assert response.status_code == 401
    assert [found for _, found in opened] == [None, None, None]
    assert api.client.get("/orgs/acme/invitations").status_code == 200  # still signed in
    assert opened[-1][1].get("_user_id")


def test_last_used_time_is_recorded(api):
    with api.app.app_context():
        assert db.session.get(ApiKey, api.org_key_id).last_used_at is None
    api.call("GET", "/organizations/acme")
    with api.app.app_context():
        assert (
            db.session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == api.org_key_id))
            is not None
        )


def test_rate_limit_answers_429_with_retry_after(make_app, backend):
    from tests.api_support import build_world

    world = build_world(make_app(backend, API_RATE_LIMIT_PER_KEY="3/minute"))
    statuses = [world.call("GET", "/organizations/acme").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    response = world.call("GET", "/organizations/acme")
    body = assert_problem(response, 429, "rate_limited")
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert "3/minute" in body["detail"]
    assert response.headers["X-RateLimit-Remaining"] == "0"
    # Another key has its own budget.
    assert world.call("GET", "/organizations/acme", key="instance").status_code == 200


def test_org_rate_limit_counts_every_key_of_the_org(make_app, backend):
    from tests.api_support import build_world

    world = build_world(make_app(backend, API_RATE_LIMIT_PER_ORG="2/minute"))
    created = world.call("POST", "/organizations/acme/api_keys", json={"name": "second"})
    assert created.status_code == 201
    second = created.get_json()["secret"]
    assert world.call("GET", "/organizations/acme", key=second).status_code == 200
    response = world.call("GET", "/organizations/acme")
    body = assert_problem(response, 429, "rate_limited")
    assert "this organization" in body["detail"]


def test_rate_limits_are_shared_through_redis_when_configured(make_app):
    """With ORGINVITES_RATELIMIT_STORAGE_URI=redis://…, every process counts together."""
    import os
    import secrets

    from tests.api_support import build_world

    url = os.environ.get("ORGINVITES_TEST_REDIS_URL")
    if not url:
        pytest.skip("Redis tests skipped: ORGINVITES_TEST_REDIS_URL is not set")
    # A prefix of its own, so runs never share counters.
    first = make_app(
        "sqlite",
        RATELIMIT_STORAGE_URI=url,
        RATELIMIT_KEY_PREFIX=f"test-{secrets.token_hex(4)}",
        API_RATE_LIMIT_PER_KEY="2/minute",
    )
    world = build_world(first)
    assert world.call("GET", "/organizations/acme").status_code == 200
    assert world.call("GET", "/organizations/acme").status_code == 200
    assert_problem(world.call("GET", "/organizations/acme"), 429, "rate_limited")
    # Counted in Redis, not in this process: the storage says so too.
    from webapp.extensions import limiter

    with first.app_context():
        assert type(limiter.storage).__name__.lower().startswith("redis")
