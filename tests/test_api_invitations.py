"""Invitation endpoints: every rule answers with its exact status and code."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update

from tests.api_support import assert_problem
from tests.conftest import APP_ORIGIN
from tests.conftest import PUBLIC_BASE_URL
from tests.dashboard_support import make_member
from webapp.clock import utcnow
from webapp.extensions import db
from webapp.models import AuditEvent
from webapp.models import Invitation
from webapp.models import OutboxMessage
from webapp.models import Project
from webapp.services.invitations import get_invitation_by_token
from webapp.services.organizations import create_project
from webapp.services.organizations import get_organization
from webapp.services.organizations import update_organization

INVITATIONS = "/organizations/acme/invitations"


def _outbox_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(OutboxMessage))


def test_create_queues_the_email_and_answers_201_with_location(api):
    response = api.call(
        "POST",
        INVITATIONS,
        json={
            "email": "Ada@Example.com",
            "role": "admin",
            "redirect_url": f"{APP_ORIGIN}/welcome",
            "public_metadata": {"plan": "pro"},
            "private_metadata": {"crm": 42},
            "expires_in_days": 3,
            "message": "Welcome aboard",
        },
    )
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1{INVITATIONS}/{body['id']}"
    assert body["email"] == "Ada@example.com"
    assert body["role"] == "admin"
    assert body["status"] == "pending"
    assert body["public_metadata"] == {"plan": "pro"}
    assert body["private_metadata"] == {"crm": 42}
    assert body["inviter"] == {"user_id": None, "api_key_id": api.org_key_id}
    assert body["delivery"]["status"] == "queued"
    assert "accept_url" not in body  # the email carries the link; the API does not
    assert body["created_at"].endswith("Z")
    assert _outbox_count(api.app) == 1
    with api.app.app_context():
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.invitation_id == body["id"]))
        assert (event.type, event.actor_type, event.actor_id) == (
            "invitation.created",
            "api_key",
            api.org_key_id,
        )


def test_notify_false_sends_nothing_and_returns_the_link_once(api):
    body = api.invite("ada@example.com", notify=False)
    assert _outbox_count(api.app) == 0
    assert body["delivery"]["status"] == "not_sent"
    link = urlsplit(body["accept_url"])
    assert f"{link.scheme}://{link.netloc}" == PUBLIC_BASE_URL
    with api.app.app_context():
        found = get_invitation_by_token(db.session, link.path.rsplit("/", 1)[1])
        assert found.id == body["id"]
    again = api.call("GET", f"{INVITATIONS}/{body['id']}").get_json()
    assert "accept_url" not in again
    listed = api.call("GET", INVITATIONS).get_json()["data"][0]
    assert "accept_url" not in listed


def test_inviter_user_id_must_be_a_member(api):
    with api.app.app_context():
        make_member(get_organization(db.session, "acme"), "boss@example.com", "admin")
        from webapp.models import User

        boss = db.session.scalar(select(User.id).where(User.email_key == "boss@example.com"))
    body = api.invite("ada@example.com", inviter_user_id=boss)
    assert body["inviter"] == {"user_id": boss, "api_key_id": api.org_key_id}
    response = api.call(
        "POST", INVITATIONS, json={"email": "bob@example.com", "inviter_user_id": "user_nobody"}
    )
    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"] == [
        {
            "field": "inviter_user_id",
            "code": "unknown_user",
            "message": "'user_nobody' is not a member of Acme",
        }
    ]


def test_projects_are_granted_by_id(api):
    with api.app.app_context():
        project = create_project(db.session, get_organization(db.session, "acme"), "Research")
        db.session.commit()
        project_id = project.id
    body = api.invite("ada@example.com", projects=[{"id": project_id, "role": "owner"}])
    assert body["projects"] == [{"id": project_id, "role": "owner"}]
    response = api.call(
        "POST", INVITATIONS, json={"email": "b@example.com", "projects": [{"id": "proj_nope"}]}
    )
    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"][0]["field"] == "projects"
    assert "proj_nope" in problem["errors"][0]["message"]
    with api.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Project)) == 1


def test_malformed_json_is_400(api):
    response = api.call(
        "POST",
        INVITATIONS,
        data=b'{"email": "a@b.co",',
        headers={"Content-Type": "application/json"},
    )
    body = assert_problem(response, 400, "malformed_request")
    assert "not valid JSON" in body["detail"]
    response = api.call("POST", INVITATIONS, json=["a@b.co"])
    assert_problem(response, 400, "malformed_request")


def test_deeply_nested_bodies_are_refused_not_crashed_on(api):
    deep = b"[" * 100_000 + b"]" * 100_000
    for path in (INVITATIONS, f"{INVITATIONS}/bulk", "/organizations/acme/api_keys/key_x/revoke"):
        response = api.call(
            "POST",
            path,
            data=deep,
            headers={"Content-Type": "application/json", "Idempotency-Key": f"deep-{path}"},
        )
        assert response.status_code in (400, 404, 422), (path, response.status_code)
    nested: object = 1
    for _ in range(40):
        nested = [nested]
    response = api.call(
        "POST", INVITATIONS, json={"email": "a@b.co", "public_metadata": {"a": nested}}
    )
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["code"] == "too_deep"


def test_non_json_body_is_415(api):
    response = api.call(
        "POST", INVITATIONS, data="email=a@b.co", content_type="application/x-www-form-urlencoded"
    )
    body = assert_problem(response, 415, "unsupported_media_type")
    assert "application/x-www-form-urlencoded" in body["detail"]


def test_unknown_fields_and_bindable_internals_are_refused_by_name(api):
    response = api.call(
        "POST",
        INVITATIONS,
        json={"email": "a@b.co", "status": "accepted", "org_id": "org_x", "token_hash": "0"},
    )
    body = assert_problem(response, 422, "validation_failed")
    assert {(e["field"], e["code"]) for e in body["errors"]} == {
        ("status", "unknown_field"),
        ("org_id", "unknown_field"),
        ("token_hash", "unknown_field"),
    }
    assert _outbox_count(api.app) == 0


def test_types_are_strict_and_errors_name_field_and_value(api):
    response = api.call(
        "POST", INVITATIONS, json={"email": "a@b.co", "notify": "yes", "expires_in_days": "5"}
    )
    body = assert_problem(response, 422, "validation_failed")
    messages = {e["field"]: e["message"] for e in body["errors"]}
    assert "'yes'" in messages["notify"]
    assert "'5'" in messages["expires_in_days"]
    response = api.call("POST", INVITATIONS, json={"role": "member"})
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"] == [
        {"field": "email", "code": "required", "message": "email is required"}
    ]


def test_service_rules_answer_422_naming_the_value(api):
    response = api.call(
        "POST",
        INVITATIONS,
        json={
            "email": "not-an-email",
            "role": "wizard",
            "redirect_url": "https://evil.example.net/x",
            "expires_in_days": 31,
        },
    )
    body = assert_problem(response, 422, "validation_failed")
    fields = {e["field"]: e for e in body["errors"]}
    assert fields["expires_in_days"]["message"].endswith("(got 31)")
    response = api.call(
        "POST",
        INVITATIONS,
        json={
            "email": "not-an-email",
            "role": "wizard",
            "redirect_url": "https://evil.example.net/",
        },
    )
    body = assert_problem(response, 422, "validation_failed")
    fields = {e["field"]: e for e in body["errors"]}
    assert "not-an-email" in fields["email"]["message"]
    assert "'wizard'" in fields["role"]["message"]
    assert fields["redirect_url"]["code"]
    assert "evil.example.net" in fields["redirect_url"]["message"]


def test_expires_at_sets_the_exact_expiry(api):
    when = (utcnow() + timedelta(days=2)).replace(microsecond=0)
    body = api.invite("ada@example.com", expires_at=when.isoformat())
    assert body["expires_at"] == when.isoformat().replace("+00:00", "Z")
    response = api.call(
        "POST",
        INVITATIONS,
        json={"email": "b@example.com", "expires_at": when.isoformat(), "expires_in_days": 2},
    )
    assert_problem(response, 422, "validation_failed")


def test_duplicate_is_409_naming_the_existing_invitation(api):
    first = api.invite("ada@example.com")
    response = api.call("POST", INVITATIONS, json={"email": "ADA@example.com"})
    body = assert_problem(response, 409, "already_invited")
    assert body["existing_invitation_id"] == first["id"]


def test_inviting_a_member_is_409(api):
    with api.app.app_context():
        make_member(get_organization(db.session, "acme"), "bob@example.com", "member")
    body = assert_problem(
        api.call("POST", INVITATIONS, json={"email": "bob@example.com"}), 409, "already_member"
    )
    assert "bob@example.com" in body["detail"]


def test_quota_is_403(api):
    with api.app.app_context():
        update_organization(db.session, get_organization(db.session, "acme"), invite_quota=1)
        db.session.commit()
    api.invite("a@example.com")
    body = assert_problem(
        api.call("POST", INVITATIONS, json={"email": "b@example.com"}), 403, "quota_exceeded"
    )
    assert "quota is 1" in body["detail"]


def test_revoke_then_revoke_again_is_409(api):
    invitation = api.invite("ada@example.com")
    response = api.call("POST", f"{INVITATIONS}/{invitation['id']}/revoke")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "revoked"
    assert body["revoked_at"]
    again = api.call("POST", f"{INVITATIONS}/{invitation['id']}/revoke")
    problem = assert_problem(again, 409, "invalid_status")
    assert "is revoked" in problem["detail"]
    # The unsent email was cancelled.
    with api.app.app_context():
        statuses = set(db.session.scalars(select(OutboxMessage.status)))
    assert statuses == {"cancelled"}


def test_revoke_records_the_requesting_user(api):
    with api.app.app_context():
        make_member(get_organization(db.session, "acme"), "boss@example.com", "admin")
        from webapp.models import User

        boss = db.session.scalar(select(User.id).where(User.email_key == "boss@example.com"))
    invitation = api.invite("ada@example.com")
    response = api.call(
        "POST", f"{INVITATIONS}/{invitation['id']}/revoke", json={"requesting_user_id": boss}
    )
    assert response.status_code == 200
    with api.app.app_context():
        row = db.session.get(Invitation, invitation["id"])
        assert (row.revoked_by_user_id, row.revoked_by_api_key_id) == (boss, api.org_key_id)


def test_revoke_by_email(api):
    invitation = api.invite("ada@example.com")
    response = api.call("POST", f"{INVITATIONS}/revoke_by_email", json={"email": "ADA@example.com"})
    assert response.status_code == 200
    assert response.get_json()["id"] == invitation["id"]
    assert response.get_json()["status"] == "revoked"
    missing = api.call("POST", f"{INVITATIONS}/revoke_by_email", json={"email": "ada@example.com"})
    body = assert_problem(missing, 404, "not_found")
    assert "ada@example.com has no pending invitation" in body["detail"]


def test_unknown_invitation_is_404(api):
    assert_problem(api.call("GET", f"{INVITATIONS}/inv_nope"), 404, "not_found")
    assert_problem(api.call("POST", f"{INVITATIONS}/inv_nope/revoke"), 404, "not_found")
    assert_problem(api.call("GET", "/organizations/nope/invitations"), 404, "not_found")


def test_resend_rotates_the_link_and_is_throttled(api, time_machine):
    time_machine.move_to(utcnow(), tick=False)
    invitation = api.invite("ada@example.com", notify=False)
    too_soon = api.call("POST", f"{INVITATIONS}/{invitation['id']}/resend", json={"notify": False})
    body = assert_problem(too_soon, 429, "throttled")
    assert too_soon.headers["Retry-After"] == "60"
    assert body["retry_after"] == 60
    time_machine.shift(timedelta(seconds=61))
    response = api.call("POST", f"{INVITATIONS}/{invitation['id']}/resend", json={"notify": False})
    assert response.status_code == 200
    resent = response.get_json()
    assert resent["accept_url"] != invitation["accept_url"]
    assert resent["delivery"]["send_count"] == 2
    with api.app.app_context():
        old_token = urlsplit(invitation["accept_url"]).path.rsplit("/", 1)[1]
        assert get_invitation_by_token(db.session, old_token) is None
    time_machine.shift(timedelta(seconds=61))
    emailed = api.call("POST", f"{INVITATIONS}/{invitation['id']}/resend")
    assert emailed.status_code == 200
    assert "accept_url" not in emailed.get_json()
    assert _outbox_count(api.app) == 1


def test_resend_of_a_revoked_invitation_is_409(api):
    invitation = api.invite("ada@example.com")
    api.call("POST", f"{INVITATIONS}/{invitation['id']}/revoke")
    response = api.call("POST", f"{INVITATIONS}/{invitation['id']}/resend")
    assert_problem(response, 409, "invalid_status")


def test_resend_reopens_an_expired_invitation(api, time_machine):
    time_machine.move_to(utcnow(), tick=False)
    invitation = api.invite("ada@example.com", expires_in_days=1)
    time_machine.shift(timedelta(days=2))
    assert api.call("GET", f"{INVITATIONS}/{invitation['id']}").get_json()["status"] == "expired"
    response = api.call("POST", f"{INVITATIONS}/{invitation['id']}/resend")
    assert response.status_code == 200
    assert response.get_json()["status"] == "pending"


def test_bulk_reports_each_item_in_input_order(api):
    api.invite("taken@example.com")
    items = [
        {"email": "a@example.com"},
        {"email": "not-an-email"},
        {"email": "taken@example.com"},
        {"email": "b@example.com", "role": "admin", "notify": False},
        {"email": "c@example.com", "surprise": True},
        "d@example.com",
        {"email": "a@example.com"},
    ]
    response = api.call("POST", f"{INVITATIONS}/bulk", json=items)
    assert response.status_code == 200
    body = response.get_json()
    assert [s["index"] for s in body["successes"]] == [0, 3]
    assert body["successes"][1]["invitation"]["role"] == "admin"
    assert "accept_url" in body["successes"][1]["invitation"]
    assert "accept_url" not in body["successes"][0]["invitation"]
    errors = {e["index"]: e for e in body["errors"]}
    assert list(errors) == [1, 2, 4, 5, 6]
    assert errors[1]["code"] == "validation_failed"
    assert errors[1]["errors"][0]["field"] == "email"
    assert errors[1]["email"] == "not-an-email"
    assert errors[2]["code"] == "already_invited"
    assert errors[2]["existing_invitation_id"]
    assert errors[4]["errors"][0] == {
        "field": "[4].surprise",
        "code": "unknown_field",
        "message": "unknown field '[4].surprise'",
    }
    assert errors[5]["code"] == "validation_failed"
    assert errors[6]["code"] == "already_invited"
    assert errors[6]["existing_invitation_id"] == body["successes"][0]["invitation"]["id"]
    assert _outbox_count(api.app) == 2  # taken@ (before) and a@; b@ had notify=false


def test_bulk_size_limits(api):
    body = assert_problem(
        api.call("POST", f"{INVITATIONS}/bulk", json=[]), 422, "validation_failed"
    )
    assert "got 0" in body["detail"]
    many = [{"email": f"u{i}@example.com"} for i in range(1001)]
    body = assert_problem(
        api.call("POST", f"{INVITATIONS}/bulk", json=many), 422, "validation_failed"
    )
    assert "got 1001" in body["detail"]
    assert_problem(
        api.call("POST", f"{INVITATIONS}/bulk", json={"email": "a@b.co"}), 400, "malformed_request"
    )


def test_body_over_one_mebibyte_is_413(api):
    response = api.call(
        "POST",
        INVITATIONS,
        data=b'{"email": "' + b"a" * (1024 * 1024) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 413, "payload_too_large")


def test_list_filters_orders_and_totals(api):
    for name in ("carol", "alice", "bob", "dave"):
        api.invite(f"{name}@example.com")
    invitations = api.call("GET", INVITATIONS).get_json()["data"]
    api.call("POST", f"{INVITATIONS}/{invitations[0]['id']}/revoke")  # dave
    body = api.call("GET", f"{INVITATIONS}?status=pending&order_by=%2Bemail").get_json()
    assert [i["email"] for i in body["data"]] == [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
    ]
    assert body["total_count"] == 3
    assert body["totals"] == {
        "pending": 3,
        "accepted": 0,
        "declined": 0,
        "revoked": 1,
        "expired": 0,
    }
    # An unencoded '+' arrives as a space and still means ascending.
    plus = api.call("GET", f"{INVITATIONS}?status=pending&order_by=+email").get_json()
    assert [i["id"] for i in plus["data"]] == [i["id"] for i in body["data"]]
    both = api.call("GET", f"{INVITATIONS}?status=pending,revoked&order_by=-email").get_json()
    assert [i["email"][0] for i in both["data"]] == ["d", "c", "b", "a"]
    repeated = api.call("GET", f"{INVITATIONS}?status=revoked&status=pending").get_json()
    assert repeated["total_count"] == 4
    search = api.call("GET", f"{INVITATIONS}?query=AR").get_json()
    assert [i["email"] for i in search["data"]] == ["carol@example.com"]


def test_list_items_are_what_get_answers(api):
    """The list writes the JSON columns as stored (not decoded and encoded again): every
    item must still equal the invitation's GET, metadata and projects included."""
    with api.app.app_context():
        project = create_project(db.session, get_organization(db.session, "acme"), "Research")
        db.session.commit()
        project_id = project.id
    api.invite(
        "ada@example.com",
        public_metadata={"team": "red", "nested": {"n": [1, 2.5, None, True]}, "é": "ü"},
        private_metadata={"html": "<b>&'\"</b>", "line": "a\u2028b"},
        projects=[{"id": project_id, "role": "owner"}],
    )
    api.invite("bob@example.com")  # empty metadata, no projects
    with api.app.app_context():
        # A JSON null (a row written by something older) reads as empty.
        db.session.execute(
            update(Invitation)
            .where(Invitation.email_key == "bob@example.com")
            .values(public_metadata=None, project_grants=None)
        )
        db.session.commit()
    listed = api.call("GET", INVITATIONS).get_json()["data"]
    assert len(listed) == 2
    for item in listed:
        assert item == api.call("GET", f"{INVITATIONS}/{item['id']}").get_json()
    by_email = {item["email"]: item for item in listed}
    assert by_email["ada@example.com"]["public_metadata"]["é"] == "ü"
    assert by_email["ada@example.com"]["projects"] == [{"id": project_id, "role": "owner"}]
    assert by_email["bob@example.com"]["public_metadata"] == {}
    assert by_email["bob@example.com"]["projects"] == []


def test_list_parameter_errors_name_the_parameter(api):
    cases = {
        "limit=501": "limit",
        "limit=0": "limit",
        "limit=ten": "limit",
        "status=sleeping": "status.0",
        "order_by=size": "order_by",
        "stauts=pending": "stauts",
        "offset=-1": "offset",
    }
    for query, field in cases.items():
        body = assert_problem(api.call("GET", f"{INVITATIONS}?{query}"), 422, "validation_failed")
        assert body["errors"][0]["field"] == field, (query, body)
    body = assert_problem(
        api.call("GET", f"{INVITATIONS}?starting_after=inv_x&offset=5"), 422, "validation_failed"
    )
    assert body["errors"][0]["code"] == "conflicting_fields"
    body = assert_problem(
        api.call("GET", f"{INVITATIONS}?starting_after=inv_unknown"), 422, "validation_failed"
    )
    assert body["errors"][0] == {
        "field": "starting_after",
        "code": "unknown_cursor",
        "message": "'inv_unknown' is not an invitation in this list",
    }


def test_instance_list_spans_organizations_with_their_public_data(api):
    api.invite("ada@example.com")
    api.call("POST", "/organizations/globex/invitations", key="other", json={"email": "g@x.io"})
    body = api.call("GET", "/invitations?order_by=email", key="instance").get_json()
    assert [(i["email"], i["organization"]["slug"]) for i in body["data"]] == [
        ("ada@example.com", "acme"),
        ("g@x.io", "globex"),
    ]
    assert body["data"][1]["organization"] == {
        "id": api.other_org_id,
        "name": "Globex",
        "slug": "globex",
    }


def test_unknown_endpoint_and_wrong_method_are_problems(api):
    assert_problem(api.call("GET", "/nothing-here"), 404, "not_found")
    response = api.call("DELETE", INVITATIONS)
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]
