"""The compat prefixes over plain HTTP: every error in the vendor's envelope, keys only.

What the SDKs do not send on their own: unknown URLs, wrong methods, oversized or
malformed bodies, unknown fields, a session cookie instead of a key, rate limits.
"""

from __future__ import annotations

import pytest

from tests.compat_support import build_compat_world
from tests.dashboard_support import make_member
from tests.dashboard_support import sign_in
from webapp.extensions import db
from webapp.models import Organization

CLERK = "/compat/clerk/v1"
OPENAI = "/compat/openai/v1"
ANTHROPIC = "/compat/anthropic/v1"


@pytest.fixture
def world(app):
    return build_compat_world(app)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def clerk_error(response) -> dict:
    body = response.get_json()
    assert set(body) == {"errors", "meta"}, body
    (error,) = body["errors"]
    assert set(error) == {"message", "long_message", "code", "meta"}
    return error


def openai_error(response) -> dict:
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) >= {"message", "type", "param", "code"}
    return body["error"]


def anthropic_error(response) -> dict:
    body = response.get_json()
    assert body["type"] == "error" and {"type", "message"} <= set(body["error"]), body
    return body["error"]


def test_unknown_urls_answer_in_each_envelope(app, world):
    client = app.test_client()
    response = client.get(f"{CLERK}/organizations/{world['org_id']}/nothing")
    assert response.status_code == 404 and clerk_error(response)["code"] == "resource_not_found"
    response = client.get(f"{OPENAI}/organization/nothing")
    assert response.status_code == 404
    assert openai_error(response)["type"] == "invalid_request_error"
    response = client.get(f"{ANTHROPIC}/organizations/nothing")
    assert response.status_code == 404 and anthropic_error(response)["type"] == "not_found_error"


def test_wrong_methods_answer_405_with_allow(app, world):
    client = app.test_client()
    response = client.put(f"{OPENAI}/organization/invites", headers=bearer(world["key"]))
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    assert openai_error(response)["code"] == "method_not_allowed"
    response = client.patch(f"{ANTHROPIC}/organizations/invites/inv_x")
    assert response.status_code == 405
    assert anthropic_error(response)["type"] == "invalid_request_error"
    response = client.delete(f"{CLERK}/organization_invitations")
    assert response.status_code == 405 and clerk_error(response)["code"] == "method_not_allowed"


def test_oversized_bodies_answer_413(app, world):
    client = app.test_client()
    huge = b'{"email": "' + b"a" * (1024 * 1024 + 10) + b'"}'
    response = client.post(
        f"{ANTHROPIC}/organizations/invites",
        data=huge,
        headers={"X-Api-Key": world["key"], "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert anthropic_error(response)["type"] == "request_too_large"
    response = client.post(
        f"{OPENAI}/organization/invites",
        data=huge,
        headers={**bearer(world["key"]), "Content-Type": "application/json"},
    )
    assert response.status_code == 413 and openai_error(response)["type"] == "invalid_request_error"


def test_malformed_bodies_and_unknown_fields_are_named(app, world):
    client = app.test_client()
    headers = {**bearer(world["key"]), "Content-Type": "application/json"}
    response = client.post(f"{OPENAI}/organization/invites", data="{not json", headers=headers)
    assert response.status_code == 400
    assert openai_error(response)["message"] == "body: the request body is not valid JSON"
    response = client.post(
        f"{OPENAI}/organization/invites",
        json={"email": "ada@example.com", "role": "reader", "status": "accepted"},
        headers=headers,
    )
    assert response.status_code == 400 and openai_error(response)["param"] == "status"
    assert "'status' is not a field of the request body" in openai_error(response)["message"]
    response = client.post(
        f"{ANTHROPIC}/organizations/invites", json=["ada@example.com"], headers=headers
    )
    assert response.status_code == 400
    assert anthropic_error(response)["message"] == "body: the request body must be a JSON object"
    response = client.post(
        f"{CLERK}/organizations/{world['org_id']}/invitations",
        json={"email_address": "ada@example.com", "role": "org:member", "token_hash": "x"},
        headers=headers,
    )
    assert response.status_code == 422
    error = clerk_error(response)
    assert (error["code"], error["meta"]["param_name"]) == ("form_param_unknown", "token_hash")
    response = client.post(
        f"{CLERK}/organizations/{world['org_id']}/invitations",
        json={"email_address": "ada@example.com", "role": "org:member", "notify": "yes"},
        headers=headers,
    )
    assert clerk_error(response)["long_message"] == "notify must be true or false"
    response = client.get(
        f"{CLERK}/organizations/{world['org_id']}/invitations?limit=ten", headers=headers
    )
    assert response.status_code == 422
    assert clerk_error(response)["long_message"] == "limit must be a whole number, not 'ten'"


def test_a_dashboard_session_is_no_key(app, world):
    """Signed in to the dashboard, without a key: refused like any unauthenticated call."""
    client = app.test_client()
    with app.app_context():
        admin = make_member(db.session.get(Organization, world["org_id"]), "a@example.com", "admin")
    sign_in(client, admin)
    response = client.get(f"{OPENAI}/organization/invites")
    assert response.status_code == 401 and openai_error(response)["code"] == "invalid_api_key"
    response = client.get(f"{ANTHROPIC}/organizations/invites")
    assert response.status_code == 401
    response = client.post(
        f"{CLERK}/organizations/{world['org_id']}/invitations",
        json={"email_address": "x@example.com", "role": "org:member"},
    )
    assert response.status_code == 403
    assert clerk_error(response)["code"] == "authentication_invalid"


def test_only_anthropic_takes_the_key_as_x_api_key(app, world):
    client = app.test_client()
    response = client.get(f"{ANTHROPIC}/organizations/invites", headers={"X-Api-Key": world["key"]})
    assert response.status_code == 200
    response = client.get(f"{OPENAI}/organization/invites", headers={"X-Api-Key": world["key"]})
    assert response.status_code == 401


def test_compat_and_native_requests_share_the_keys_budget(make_app, backend):
    """Two requests a minute: one native, one compat; the third, anywhere, is refused."""
    app = make_app(backend, API_RATE_LIMIT_PER_KEY="2/minute")
    world = build_compat_world(app)
    client = app.test_client()
    headers = bearer(world["key"])
    assert client.get("/api/v1/organizations/acme/invitations", headers=headers).status_code == 200
    first = client.get(f"{OPENAI}/organization/invites", headers=headers)
    assert first.status_code == 200 and first.headers["X-RateLimit-Remaining"] == "0"
    refused = client.get(f"{OPENAI}/organization/invites", headers=headers)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert openai_error(refused)["message"].startswith("this API key is limited to 2/minute")
    refused = client.get(f"{ANTHROPIC}/organizations/invites", headers=headers)
    assert refused.status_code == 429
    assert anthropic_error(refused)["type"] == "rate_limit_error"
    refused = client.get(f"{CLERK}/organizations/acme/invitations", headers=headers)
    assert refused.status_code == 429 and clerk_error(refused)["code"] == "too_many_requests"


@pytest.mark.parametrize(
    ("path", "target"),
    [
        (f"{OPENAI}/organization/invites", "webapp.compat.openai.list_invitations"),
        (f"{ANTHROPIC}/organizations/invites", "webapp.compat.anthropic.list_invitations"),
        (f"{CLERK}/organizations/acme/invitations", "webapp.compat.clerk.list_invitations"),
    ],
)
def test_a_server_error_answers_in_the_envelope(make_app, monkeypatch, path, target):
    """A bug is a 500 in the vendor's shape (no HTML page, no stack trace)."""
    app = make_app("sqlite", PROPAGATE_EXCEPTIONS=False)
    world = build_compat_world(app)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(target, broken)
    response = app.test_client().get(path, headers=bearer(world["key"]))
    assert response.status_code == 500 and response.mimetype == "application/json"
    assert "a bug" not in response.get_data(as_text=True)
    if path.startswith(OPENAI):
        assert openai_error(response)["type"] == "server_error"
    elif path.startswith(ANTHROPIC):
        assert anthropic_error(response)["type"] == "api_error"
    else:
        assert clerk_error(response)["code"] == "internal_clerk_error"


def test_nul_characters_are_refused_not_stored(app, world):
    """PostgreSQL cannot store a NUL: in a path, a query or a body it is a named error."""
    client = app.test_client()
    headers = bearer(world["key"])
    response = client.get(f"{OPENAI}/organization/invites/inv%00x", headers=headers)
    assert response.status_code == 400
    assert openai_error(response)["message"] == "invite_id: invite_id contains a NUL character"
    response = client.get(
        f"{ANTHROPIC}/organizations/invites?email=a%00@example.com",
        headers={"X-Api-Key": world["key"]},
    )
    assert response.status_code == 400
    assert anthropic_error(response)["message"] == "email: email contains a NUL character"
    response = client.post(
        f"{CLERK}/organizations/{world['org_id']}/invitations",
        json={
            "email_address": "ada@example.com",
            "role": "org:member",
            "public_metadata": {"note": "a\x00b"},
        },
        headers=headers,
    )
    assert response.status_code == 422
    error = clerk_error(response)
    assert error["meta"]["param_name"] == "public_metadata.note"
    assert error["long_message"] == "public_metadata.note contains a NUL character"


def test_deeply_nested_bodies_are_refused(app, world):
    """A megabyte of brackets would exhaust Python's recursion: a named error instead."""
    client = app.test_client()
    headers = {**bearer(world["key"]), "Content-Type": "application/json"}
    for depth in (100_000, 40):
        body = "[" * depth + "]" * depth
        response = client.post(f"{OPENAI}/organization/invites", data=body, headers=headers)
        assert response.status_code == 400
        assert openai_error(response)["message"] == (
            "body: the request body nests deeper than 32 levels"
        )
    nested = {"email": "ada@example.com", "role": "reader", "projects": []}
    response = client.post(f"{OPENAI}/organization/invites", json=nested, headers=headers)
    assert response.status_code == 200
