"""Idempotency-Key on POSTs: replay, mismatch (422), in flight (409), expiry after 24 h."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func
from sqlalchemy import select

from tests.api_support import assert_problem
from webapp.api.operations import request_fingerprint
from webapp.clock import utcnow
from webapp.extensions import db
from webapp.models import IdempotentRequest
from webapp.models import Invitation
from webapp.services.idempotency import claim_key
from webapp.services.idempotency import purge_expired_keys

INVITATIONS = "/organizations/acme/invitations"


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_same_key_and_body_replays_the_first_answer(api):
    headers = {"Idempotency-Key": "create-ada-1"}
    first = api.call("POST", INVITATIONS, json={"email": "ada@example.com"}, headers=headers)
    assert first.status_code == 201
    # The same body with other whitespace and key order is the same request.
    second = api.call(
        "POST",
        INVITATIONS,
        data='{ "email" :  "ada@example.com" }',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert second.get_json() == first.get_json()
    assert second.headers["Location"] == first.headers["Location"]
    assert _count(api.app, Invitation) == 1


def test_same_key_with_another_body_or_path_is_422(api):
    headers = {"Idempotency-Key": "k-1"}
    api.call("POST", INVITATIONS, json={"email": "ada@example.com"}, headers=headers)
    other = api.call("POST", INVITATIONS, json={"email": "bob@example.com"}, headers=headers)
    body = assert_problem(other, 422, "idempotency_key_reused")
    assert "'k-1'" in body["detail"]
    other_path = api.call(
        "POST", "/organizations/acme/projects", json={"name": "x"}, headers=headers
    )
    assert_problem(other_path, 422, "idempotency_key_reused")
    assert _count(api.app, Invitation) == 1


def test_keys_are_per_api_key(api):
    headers = {"Idempotency-Key": "shared"}
    assert (
        api.call("POST", INVITATIONS, json={"email": "a@example.com"}, headers=headers).status_code
        == 201
    )
    response = api.call(
        "POST", INVITATIONS, key="instance", json={"email": "b@example.com"}, headers=headers
    )
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response.headers


def test_a_request_still_in_flight_is_409(api):
    with api.app.test_request_context(
        f"/api/v1{INVITATIONS}", method="POST", json={"email": "ada@example.com"}
    ):
        fingerprint = request_fingerprint()
        with db.engine.begin() as connection:
            # Another process claimed the key for this request and has not answered yet.
            claim_key(connection, api.org_key_id, "busy", fingerprint, utcnow())
    response = api.call(
        "POST", INVITATIONS, json={"email": "ada@example.com"}, headers={"Idempotency-Key": "busy"}
    )
    assert_problem(response, 409, "idempotency_key_in_use")
    assert _count(api.app, Invitation) == 0


def test_an_abandoned_claim_is_taken_over(api, time_machine):
    time_machine.move_to(utcnow(), tick=False)
    with api.app.app_context(), db.engine.begin() as connection:
        claim_key(connection, api.org_key_id, "crashed", "whatever", utcnow())
    time_machine.shift(timedelta(minutes=3))
    response = api.call(
        "POST", INVITATIONS, json={"email": "a@example.com"}, headers={"Idempotency-Key": "crashed"}
    )
    assert response.status_code == 201


def test_refusals_are_replayed_but_throttling_is_not_remembered(api, time_machine):
    time_machine.move_to(utcnow(), tick=False)
    headers = {"Idempotency-Key": "bad-email"}
    first = api.call("POST", INVITATIONS, json={"email": "nope"}, headers=headers)
    assert_problem(first, 422, "validation_failed")
    second = api.call("POST", INVITATIONS, json={"email": "nope"}, headers=headers)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.get_json() == first.get_json()

    invitation = api.invite("ada@example.com")
    resend = f"{INVITATIONS}/{invitation['id']}/resend"
    headers = {"Idempotency-Key": "resend-1"}
    assert_problem(api.call("POST", resend, headers=headers), 429, "throttled")
    time_machine.shift(timedelta(seconds=61))
    retried = api.call("POST", resend, headers=headers)
    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried.headers


def test_keys_expire_after_24_hours(api, time_machine):
    time_machine.move_to(utcnow(), tick=False)
    headers = {"Idempotency-Key": "daily"}
    first = api.call("POST", INVITATIONS, json={"email": "a@example.com"}, headers=headers)
    time_machine.shift(timedelta(hours=25))
    again = api.call("POST", INVITATIONS, json={"email": "b@example.com"}, headers=headers)
    assert again.status_code == 201
    assert again.get_json()["id"] != first.get_json()["id"]
    time_machine.shift(timedelta(hours=25))
    with api.app.app_context(), db.engine.begin() as connection:
        assert purge_expired_keys(connection, utcnow()) == 1
    assert _count(api.app, IdempotentRequest) == 0


def test_bad_keys_are_400(api):
    for key in ["", " padded ", "x" * 256, "naïve"]:
        response = api.call(
            "POST", INVITATIONS, json={"email": "a@example.com"}, headers={"Idempotency-Key": key}
        )
        assert_problem(response, 400, "invalid_idempotency_key")


def test_concurrent_duplicates_create_once(make_app, backend):
    """Eight threads send the same request with the same key at once: one invitation."""
    from tests.api_support import build_world

    world = build_world(make_app(backend))
    barrier = threading.Barrier(8)
    results: list[int] = []

    def send() -> None:
        client = world.app.test_client()
        barrier.wait()
        response = client.post(
            f"/api/v1{INVITATIONS}",
            json={"email": "race@example.com"},
            headers={"Authorization": f"Bearer {world.org_key}", "Idempotency-Key": "race"},
        )
        results.append(response.status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _count(world.app, Invitation) == 1
    assert set(results) <= {201, 409}
    assert 201 in results
