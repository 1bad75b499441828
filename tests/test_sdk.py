"""The Python SDK (``webapp.sdk``) against a live server on SQLite and PostgreSQL.

Every request goes over real HTTP to the app served by ``tests.live.serve``; setup
uses the services in an app context that is left before the first request.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy import select

from tests.live import free_port
from tests.sdk_world import OWNER_EMAIL
from tests.sdk_world import LiveApi
from tests.sdk_world import RecordingTransport
from tests.sdk_world import accept_over_http
from tests.sdk_world import live_api
from webapp.extensions import db
from webapp.models import Invitation as InvitationRow
from webapp.sdk import NOT_GIVEN
from webapp.sdk import AlreadyInvitedError
from webapp.sdk import AlreadyMemberError
from webapp.sdk import APIConnectionError
from webapp.sdk import APITimeoutError
from webapp.sdk import AuthenticationError
from webapp.sdk import BulkError
from webapp.sdk import BulkSuccess
from webapp.sdk import Client
from webapp.sdk import ConflictError
from webapp.sdk import IdempotencyKeyReusedError
from webapp.sdk import InvalidStatusError
from webapp.sdk import InvalidTicketError
from webapp.sdk import Invitation
from webapp.sdk import InvitationPage
from webapp.sdk import NotFoundError
from webapp.sdk import OrgInvitesError
from webapp.sdk import PermissionDeniedError
from webapp.sdk import ProjectGrant
from webapp.sdk import QuotaExceededError
from webapp.sdk import RateLimitError
from webapp.sdk import ServerError
from webapp.sdk import ThrottledError
from webapp.sdk import ValidationError

APP_URL = "https://app.example.com/welcome"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def live(make_app, backend) -> Iterator[LiveApi]:
    """The live server, with resends allowed back to back."""
    with live_api(make_app, backend, RESEND_MIN_INTERVAL_SECONDS=0) as world:
        yield world


def emails(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{n:04d}@example.com" for n in range(count)]


def stored_count(live: LiveApi, email: str) -> int:
    with live.app.app_context():
        return db.session.scalar(
            select(func.count()).select_from(InvitationRow).where(InvitationRow.email == email)
        )


# --- the client itself ---------------------------------------------------------------


def test_importing_the_sdk_touches_no_network():
    """Import in a fresh interpreter where every socket connection would fail loudly."""
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise AssertionError('network used at import')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import webapp.sdk\n"
        "webapp.sdk.Client('https://invites.example.com', 'oik_x').close()\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_py_typed_marker_ships_with_the_package():
    assert (PROJECT_ROOT / "webapp" / "py.typed").is_file()
    pyproject = (PROJECT_ROOT / "pyproject.toml").read_text()
    assert '"py.typed"' in pyproject


@pytest.mark.parametrize(
    ("base_url", "api_key", "message"),
    [
        (None, "oik_x", "base_url is required"),
        ("ftp://invites.example.com", "oik_x", "http(s) URL"),
        ("invites.example.com", "oik_x", "http(s) URL"),
        ("https://invites.example.com?x=1", "oik_x", "query or fragment"),
        ("https://invites.example.com", "", "api_key is required"),
        ("https://invites.example.com", None, "api_key is required"),
    ],
)
def test_client_refuses_bad_settings_naming_them(monkeypatch, base_url, api_key, message):
    monkeypatch.delenv("ORGINVITES_URL", raising=False)
    monkeypatch.delenv("ORGINVITES_API_KEY", raising=False)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Client(base_url, api_key)


def test_client_reads_url_and_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("ORGINVITES_URL", "https://invites.example.com/")
    monkeypatch.setenv("ORGINVITES_API_KEY", "oik_from_env")
    with Client() as client:
        assert client.base_url == "https://invites.example.com/api/v1"
        assert "oik_from_env" not in repr(client)
    with Client("https://invites.example.com/api/v1", "k") as client:
        assert client.base_url == "https://invites.example.com/api/v1"


def test_input_mistakes_are_refused_before_any_request(live):
    transport = RecordingTransport()
    with live.client(transport=transport) as client:
        invitations = client.organization_invitations
        with pytest.raises(TypeError, match="not one string"):
            invitations.create_many("acme", emails="a@example.com")
        with pytest.raises(TypeError, match=r"emails\[1\] must be a string"):
            invitations.create_many("acme", emails=["a@example.com", 7])
        with pytest.raises(TypeError, match="exactly one"):
            invitations.create_many("acme")
        with pytest.raises(TypeError, match=r"invitations\[0\]: unknown field 'emial'"):
            invitations.create_many("acme", invitations=[{"emial": "a@example.com"}])
        with pytest.raises(TypeError, match=r"invitations\[0\]: 'email' is required"):
            invitations.create_many("acme", invitations=[{"role": "admin"}])
        with pytest.raises(ValueError, match="timezone-aware"):
            invitations.create("acme", email="a@example.com", expires_at=datetime(2030, 1, 1))
        with pytest.raises(ValueError, match="non-empty id or slug"):
            invitations.get("acme", "")
        with pytest.raises(ValueError, match="at least one setting"):
            client.organizations.update("acme")
        assert invitations.create_many("acme", emails=[]) == ([], [])
    assert transport.exchanges == []


# --- organization invitations: every method -------------------------------------------


def test_create_with_every_field_and_read_it_back(live):
    with live.app.app_context():
        from webapp.services.organizations import create_project
        from webapp.services.organizations import get_organization

        project = create_project(db.session, get_organization(db.session, "acme"), "Research")
        db.session.commit()
        project_id = project.id
    expires_at = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    with live.client() as client:
        created = client.organization_invitations.create(
            "acme",
            email="Ada@Example.com",
            role="admin",
            expires_at=expires_at,
            redirect_url=APP_URL,
            public_metadata={"plan": "pro"},
            private_metadata={"crm": 42},
            projects=[ProjectGrant(id=project_id, role="owner")],
            inviter_user_id=live.owner_user_id,
            message="Welcome aboard",
            notify=False,
        )
        assert isinstance(created, Invitation)
        assert created.id.startswith("inv_")
        assert created.organization_id == live.org_id
        assert created.email == "Ada@example.com"
        assert (created.role, created.status) == ("admin", "pending")
        assert created.expires_at == expires_at
        assert created.created_at.tzinfo is not None
        assert created.created_at.utcoffset() == timedelta(0)
        assert created.redirect_url == APP_URL
        assert created.public_metadata == {"plan": "pro"}
        assert created.private_metadata == {"crm": 42}
        assert created.projects == [ProjectGrant(id=project_id, role="owner")]
        assert created.inviter.user_id == live.owner_user_id
        assert created.message == "Welcome aboard"
        assert created.delivery.status == "not_sent"
        assert created.accept_url and "/invitations/accept/" in created.accept_url

        fetched = client.organization_invitations.get("acme", created.id)
        by_id = client.organization_invitations.get(live.org_id, created.id)
    assert fetched == by_id
    assert fetched.accept_url is None  # shown once, never again
    assert fetched.id == created.id and fetched.expires_at == expires_at

    document = fetched.to_dict()
    assert document["created_at"].endswith("Z")
    assert document["projects"] == [{"id": project_id, "role": "owner"}]
    assert Invitation.from_dict(document) == fetched


def test_create_with_defaults_queues_the_email(live):
    with live.client() as client:
        invitation = client.organization_invitations.create(
            "acme", email="grace@example.com", expires_in_days=2
        )
    assert invitation.role == "member"
    assert invitation.accept_url is None
    assert invitation.delivery.status == "queued"
    assert invitation.delivery.send_count == 1
    remaining = invitation.expires_at - datetime.now(UTC)
    assert timedelta(days=2) - timedelta(minutes=5) < remaining <= timedelta(days=2)


def test_create_many_returns_successes_and_errors_in_input_order(live):
    with live.client() as client:
        first = client.organization_invitations.create("acme", email="dup@example.com")
        successes, errors = client.organization_invitations.create_many(
            "acme",
            emails=["a@example.com", "not-an-address", "dup@example.com", OWNER_EMAIL, "b@x.io"],
            role="admin",
            message="Hello",
        )
    assert all(isinstance(s, BulkSuccess) for s in successes)
    assert [(s.index, s.email) for s in successes] == [(0, "a@example.com"), (4, "b@x.io")]
    assert {s.invitation.role for s in successes} == {"admin"}
    assert {s.invitation.message for s in successes} == {"Hello"}
    assert all(isinstance(e, BulkError) for e in errors)
    assert [(e.index, e.email, e.code, e.status) for e in errors] == [
        (1, "not-an-address", "validation_failed", 422),
        (2, "dup@example.com", "already_invited", 409),
        (3, OWNER_EMAIL, "already_member", 409),
    ]
    assert errors[0].errors[0].field == "email"
    assert "not-an-address" in errors[0].detail
    assert errors[1].existing_invitation_id == first.id


def test_create_many_items_override_shared_fields(live):
    with live.client() as client:
        successes, errors = client.organization_invitations.create_many(
            "acme",
            invitations=[
                {"email": "plain@example.com"},
                {"email": "boss@example.com", "role": "admin", "notify": True},
                {"email": "quiet@example.com", "public_metadata": {"team": "ops"}},
            ],
            notify=False,
            public_metadata={"source": "import"},
        )
    assert errors == []
    plain, boss, quiet = (s.invitation for s in successes)
    assert plain.accept_url and quiet.accept_url and boss.accept_url is None
    assert (plain.role, boss.role) == ("member", "admin")
    assert plain.public_metadata == {"source": "import"}
    assert quiet.public_metadata == {"team": "ops"}


def test_create_many_splits_more_than_a_thousand_keeping_indexes(live):
    addresses = emails("bulk", 1005)
    addresses[3] = "broken"
    addresses[1002] = addresses[0]  # a duplicate of an item in the first request
    transport = RecordingTransport()
    with live.client(transport=transport) as client:
        successes, errors = client.organization_invitations.create_many("acme", emails=addresses)
    posts = transport.posts()
    assert len(posts) == 2
    assert len({p.idempotency_key for p in posts}) == 2
    assert [e.index for e in errors] == [3, 1002]
    assert [e.email for e in errors] == ["broken", addresses[0]]
    assert errors[1].code == "already_invited"
    assert [s.index for s in successes] == [i for i in range(1005) if i not in (3, 1002)]
    assert all(s.email == addresses[s.index] for s in successes)


def test_a_request_failing_midway_keeps_the_results_of_the_earlier_ones(live):
    addresses = emails("half", 1003)
    transport = RecordingTransport(gateway_passes=1, gateway_failures=1)
    with live.client(transport=transport, max_retries=0) as client:
        with pytest.raises(ServerError) as failed:
            client.organization_invitations.create_many("acme", emails=addresses)
        assert failed.value.partial_results is not None
        successes, errors = failed.value.partial_results
        assert errors == []
        assert [s.index for s in successes] == list(range(1000))
        total = client.organization_invitations.list_page("acme", limit=1).total_count
    assert total == 1000  # the second request never reached the server


def test_list_pages_automatically_over_every_invitation_once(live):
    with live.client() as client:
        successes, errors = client.organization_invitations.create_many(
            "acme", emails=emails("page", 230)
        )
        assert errors == [] and len(successes) == 230
        transport = RecordingTransport()
        with live.client(transport=transport) as paging:
            pager = paging.organization_invitations.list("acme", limit=17)
            assert pager.total_count == 230
            assert pager.totals.pending == 230
            seen = list(pager)
        assert len(transport.exchanges) == 14  # ceil(230 / 17)
    ids = [i.id for i in seen]
    assert len(ids) == len(set(ids)) == 230
    assert set(ids) == {s.invitation.id for s in successes}
    keys = [(i.created_at, i.id) for i in seen]
    assert keys == sorted(keys, reverse=True)  # newest first, the default


def test_list_filters_orders_and_pages_by_offset_and_cursor(live):
    with live.client() as client:
        invitations = client.organization_invitations
        created, _ = invitations.create_many("acme", emails=emails("f", 40))
        revoked = {s.invitation.id for s in created[::4]}
        for invitation_id in revoked:
            invitations.revoke("acme", invitation_id)

        by_status = list(invitations.list("acme", status=["revoked"], limit=3))
        assert {i.id for i in by_status} == revoked
        assert {i.status for i in by_status} == {"revoked"}
        several = invitations.list("acme", status=["pending", "revoked"], limit=7)
        assert several.total_count == 40
        assert len(list(several)) == 40

        by_email = [i.email for i in invitations.list("acme", order_by="email", limit=6)]
        assert by_email == sorted(by_email) and len(by_email) == 40
        descending = [i.email for i in invitations.list("acme", order_by="-email", limit=9)]
        assert descending == by_email[::-1]
        ascending = list(invitations.list("acme", order_by="+created_at", limit=11))
        assert [i.id for i in ascending] == [s.invitation.id for s in created]

        found = list(invitations.list("acme", query="f0001"))
        assert [i.email for i in found] == ["f0001@example.com"]

        page = invitations.list_page("acme", order_by="email", limit=5, offset=10)
        assert isinstance(page, InvitationPage)
        assert [i.email for i in page.data] == by_email[10:15]
        assert page.has_more is True
        assert (page.first_id, page.last_id) == (page.data[0].id, page.data[-1].id)
        assert page.total_count == 40 and page.total_count_exact is True
        assert page.totals.revoked == len(revoked) and page.totals.pending == 40 - len(revoked)
        before = invitations.list_page(
            "acme", order_by="email", limit=5, ending_before=page.first_id
        )
        assert [i.email for i in before.data] == by_email[5:10]
        after = invitations.list_page(
            "acme", order_by="email", limit=5, starting_after=page.last_id
        )
        assert [i.email for i in after.data] == by_email[15:20]


def test_revoke_delete_and_resend(live):
    with live.client() as client:
        invitations = client.organization_invitations
        first = invitations.create("acme", email="r1@example.com")
        second = invitations.create("acme", email="R2@example.com")
        third = invitations.create("acme", email="r3@example.com", notify=False)

        revoked = invitations.revoke("acme", first.id, requesting_user_id=live.owner_user_id)
        assert revoked.id == first.id
        assert revoked.status == "revoked" and revoked.revoked_at is not None

        deleted = invitations.delete("acme", email="r2@EXAMPLE.com")
        assert (deleted.id, deleted.status) == (second.id, "revoked")

        resent = invitations.resend("acme", third.id, notify=False, expires_in_days=10)
        assert resent.accept_url and resent.accept_url != third.accept_url
        assert resent.delivery.send_count == 2
        assert resent.expires_at - datetime.now(UTC) > timedelta(days=9)
        emailed = invitations.resend("acme", third.id)
        assert emailed.accept_url is None
        assert emailed.delivery.status == "queued"

        with pytest.raises(InvalidStatusError) as revoked_twice:
            invitations.revoke("acme", first.id)
        with pytest.raises(NotFoundError):
            invitations.delete("acme", email="r2@example.com")  # no pending one left
    assert revoked_twice.value.status == 409
    assert first.id in revoked_twice.value.detail


def test_instance_wide_list_carries_each_organization(live):
    with live.client("org") as acme, live.client("other") as globex:
        acme.organization_invitations.create_many("acme", emails=emails("acme", 5))
        globex.organization_invitations.create_many("globex", emails=emails("glob", 4))
        with pytest.raises(PermissionDeniedError) as refused:
            list(acme.invitations.list())
    assert refused.value.code == "forbidden"
    with live.client("instance") as ops:
        everything = list(ops.invitations.list(limit=2))
        pending = ops.invitations.list_page(status="pending", limit=3)
    assert len(everything) == 9
    assert {(i.organization.slug, i.organization.name) for i in everything} == {
        ("acme", "Acme"),
        ("globex", "Globex"),
    }
    assert all(i.organization.id == i.organization_id for i in everything)
    assert pending.total_count == 9 and len(pending.data) == 3 and pending.has_more


def test_organizations_list_get_create_update(live):
    with live.client("instance") as ops:
        assert [o.slug for o in ops.organizations.list()] == ["acme", "globex"]
        made = ops.organizations.create("Initech", slug="initech")
        assert (made.name, made.slug) == ("Initech", "initech")
        assert {r.key for r in made.roles} == {"admin", "member"}
        assert made.created_at.tzinfo is not None
        changed = ops.organizations.update(
            "initech",
            name="Initech Ltd",
            default_expiry_days=3,
            allowed_redirect_origins=["https://initech.example.com"],
            invite_quota=50,
        )
        assert changed.name == "Initech Ltd"
        assert changed.default_expiry_days == 3
        assert changed.allowed_redirect_origins == ["https://initech.example.com"]
        assert changed.invite_quota == 50
        cleared = ops.organizations.update(made.id, invite_quota=None, name=NOT_GIVEN)
        assert cleared.invite_quota is None and cleared.name == "Initech Ltd"
        assert ops.organizations.get(made.id) == cleared
    with live.client("org") as acme:
        assert [o.slug for o in acme.organizations.list()] == ["acme"]
        assert acme.organizations.get("acme").id == live.org_id
        with pytest.raises(NotFoundError):
            acme.organizations.get("globex")
        with pytest.raises(PermissionDeniedError):
            acme.organizations.create("Not Mine")


def test_acceptance_ticket_verifies_once(live):
    with live.client() as client:
        invitation = client.organization_invitations.create(
            "acme", email="newcomer@example.com", redirect_url=APP_URL, notify=False
        )
        redirect = accept_over_http(live.url, invitation.accept_url)
        assert redirect["invitation_id"] == invitation.id
        result = client.acceptance_tickets.verify(redirect["ticket"])
        assert result.invitation.id == invitation.id
        assert result.invitation.status == "accepted"
        assert result.user.email == "newcomer@example.com"
        assert result.membership.user_id == result.user.id
        assert result.membership.invitation_id == invitation.id
        assert result.membership.organization_id == live.org_id
        with pytest.raises(InvalidTicketError) as again:
            client.acceptance_tickets.verify(redirect["ticket"])
        with pytest.raises(InvalidTicketError) as forged:
            client.acceptance_tickets.verify("not-a-ticket")
    assert again.value.reason == "ticket_used"
    assert forged.value.reason == "invalid_ticket"
    assert again.value.status == 422


# --- errors: each status and code as its exception ------------------------------------


def test_bad_key_is_an_authentication_error(live):
    with Client(live.url, "oik_not_a_real_key") as client, pytest.raises(AuthenticationError) as e:
        client.organization_invitations.get("acme", "inv_x")
    assert (e.value.status, e.value.code) == (401, "unauthenticated")
    assert "API key" in e.value.detail
    assert isinstance(e.value, OrgInvitesError)


def test_another_organizations_data_is_not_found(live):
    with live.client("other") as globex:
        theirs = globex.organization_invitations.create("globex", email="x@example.com")
    with live.client("org") as acme:
        with pytest.raises(NotFoundError) as other_org:
            list(acme.organization_invitations.list("globex"))
        with pytest.raises(NotFoundError) as other_invitation:
            acme.organization_invitations.get("acme", theirs.id)
    assert (other_org.value.status, other_org.value.code) == (404, "not_found")
    assert "globex" in other_org.value.detail
    assert theirs.id in other_invitation.value.detail


def test_duplicate_is_a_conflict_with_the_existing_id(live):
    with live.client() as client:
        first = client.organization_invitations.create("acme", email="twice@example.com")
        with pytest.raises(AlreadyInvitedError) as twice:
            client.organization_invitations.create("acme", email="TWICE@example.com")
        with pytest.raises(AlreadyMemberError) as member:
            client.organization_invitations.create("acme", email=OWNER_EMAIL)
    assert isinstance(twice.value, ConflictError)
    assert (twice.value.status, twice.value.code) == (409, "already_invited")
    assert twice.value.existing_invitation_id == first.id
    assert member.value.code == "already_member"


def test_invalid_fields_are_a_validation_error_naming_each(live):
    with live.client() as client:
        with pytest.raises(ValidationError) as bad:
            client.organization_invitations.create(
                "acme", email="nope", role="emperor", redirect_url="https://evil.example.net/"
            )
        with pytest.raises(ValidationError) as out_of_range:
            client.organization_invitations.create(
                "acme", email="ok@example.com", expires_in_days=99
            )
        with pytest.raises(ValidationError) as bad_filter:
            list(client.organization_invitations.list("acme", status="lost"))
    assert (bad.value.status, bad.value.code) == (422, "validation_failed")
    assert {e.field for e in bad.value.errors} == {"email", "role", "redirect_url"}
    assert any("emperor" in e.message for e in bad.value.errors)
    assert [e.field for e in out_of_range.value.errors] == ["expires_in_days"]
    assert "99" in out_of_range.value.errors[0].message
    assert bad_filter.value.errors[0].field.startswith("status")


def test_quota_exceeded_is_permission_denied(live):
    with live.client() as client:
        client.organizations.update("acme", invite_quota=1)
        client.organization_invitations.create("acme", email="one@example.com")
        with pytest.raises(QuotaExceededError) as full:
            client.organization_invitations.create("acme", email="two@example.com")
    assert isinstance(full.value, PermissionDeniedError)
    assert (full.value.status, full.value.code) == (403, "quota_exceeded")


def test_resending_too_soon_is_throttled_and_not_retried(make_app, backend):
    with live_api(make_app, backend, RESEND_MIN_INTERVAL_SECONDS=600) as world:
        transport = RecordingTransport()
        with world.client(transport=transport, max_retries=3) as client:
            invitation = client.organization_invitations.create("acme", email="t@example.com")
            with pytest.raises(ThrottledError) as throttled:
                client.organization_invitations.resend("acme", invitation.id)
    assert isinstance(throttled.value, RateLimitError)
    assert throttled.value.code == "throttled"
    assert 500 < throttled.value.retry_after <= 600
    assert len(transport.posts()) == 2  # a rule, not load: no retry


def test_rate_limit_is_waited_out_and_retried(make_app, backend):
    with live_api(make_app, backend, API_RATE_LIMIT_PER_KEY="2/second") as world:
        transport = RecordingTransport()
        with world.client(transport=transport, max_retries=4) as client:
            pages = [client.organization_invitations.list_page("acme") for _ in range(5)]
        assert all(p.total_count == 0 for p in pages)
        statuses = [e.status for e in transport.exchanges]
        assert statuses.count(200) == 5
        assert 429 in statuses
        for limited, retried in zip(transport.exchanges, transport.exchanges[1:], strict=False):
            if limited.status == 429:
                asked = float(limited.headers["retry-after"])
                assert asked >= 1
                assert retried.sent_at - limited.sent_at >= asked * 0.95

        with world.client(max_retries=0) as impatient, pytest.raises(RateLimitError) as limited:
            for _ in range(4):
                impatient.organization_invitations.list_page("acme")
    assert (limited.value.status, limited.value.code) == (429, "rate_limited")
    assert limited.value.retry_after is not None and limited.value.retry_after >= 1
    assert "2/second" in limited.value.detail


def test_a_retry_after_beyond_the_cap_is_raised_at_once(make_app, backend):
    with live_api(make_app, backend, API_RATE_LIMIT_PER_KEY="1/minute") as world:
        transport = RecordingTransport()
        with world.client(transport=transport, max_retries=3, max_retry_wait=5) as client:
            client.organization_invitations.list_page("acme")
            with pytest.raises(RateLimitError) as limited:
                client.organization_invitations.list_page("acme")
    assert limited.value.retry_after > 5
    assert [e.status for e in transport.exchanges] == [200, 429]


# --- retries, idempotency, transport failures -----------------------------------------


def test_a_lost_answer_is_retried_with_the_same_idempotency_key(live):
    transport = RecordingTransport(drop_responses=1)
    with live.client(transport=transport) as client:
        invitation = client.organization_invitations.create("acme", email="once@example.com")
    first, retry = transport.posts()
    assert first.status == 201  # the server did the work; its answer was lost
    assert first.idempotency_key and first.idempotency_key == retry.idempotency_key
    assert retry.status == 201
    assert retry.headers.get("idempotent-replayed") == "true"
    assert invitation.email == "once@example.com"
    assert stored_count(live, "once@example.com") == 1


def test_a_lost_bulk_answer_is_replayed_not_repeated(live):
    transport = RecordingTransport(drop_responses=1)
    with live.client(transport=transport) as client:
        successes, errors = client.organization_invitations.create_many(
            "acme", emails=["p@example.com", "q@example.com"]
        )
    assert errors == []  # not "already invited": the first answer was replayed
    assert [s.email for s in successes] == ["p@example.com", "q@example.com"]
    first, retry = transport.posts()
    assert first.idempotency_key == retry.idempotency_key
    assert retry.headers.get("idempotent-replayed") == "true"


def test_each_logical_post_gets_its_own_key_and_callers_may_choose_it(live):
    transport = RecordingTransport()
    with live.client(transport=transport) as client:
        invitations = client.organization_invitations
        a = invitations.create("acme", email="k1@example.com", idempotency_key="signup-42")
        again = invitations.create("acme", email="k1@example.com", idempotency_key="signup-42")
        invitations.create("acme", email="k3@example.com")
        invitations.create("acme", email="k4@example.com")
    assert again.id == a.id
    keys = [p.idempotency_key for p in transport.posts()]
    assert keys[:2] == ["signup-42"] * 2
    assert transport.posts()[1].headers.get("idempotent-replayed") == "true"
    assert len(set(keys[2:])) == 2 and "signup-42" not in keys[2:]


def test_a_key_reused_for_another_request_is_refused(live):
    with live.client() as client:
        invitations = client.organization_invitations
        invitations.create("acme", email="k1@example.com", idempotency_key="signup-43")
        with pytest.raises(ValidationError) as reused:
            invitations.create("acme", email="k2@example.com", idempotency_key="signup-43")
    assert stored_count(live, "k2@example.com") == 0
    assert (reused.value.status, reused.value.code) == (422, "idempotency_key_reused")
    assert isinstance(reused.value, IdempotencyKeyReusedError)


def test_server_errors_are_retried_then_raised(live):
    transport = RecordingTransport(gateway_failures=2)
    with live.client(transport=transport, max_retries=2) as client:
        page = client.organization_invitations.list_page("acme")
    assert page.total_count == 0
    assert [e.status for e in transport.exchanges] == [503, 503, 200]

    transport = RecordingTransport(gateway_failures=5)
    with (
        live.client(transport=transport, max_retries=1) as client,
        pytest.raises(ServerError) as failed,
    ):
        client.organization_invitations.create("acme", email="s@example.com")
    assert failed.value.status == 503
    assert failed.value.code == "http_503"
    assert "Service Unavailable" in failed.value.detail
    posts = transport.posts()
    assert len(posts) == 2 and posts[0].idempotency_key == posts[1].idempotency_key


def test_an_unreachable_server_is_a_connection_error():
    port = free_port()  # nothing listens there
    with Client(f"http://127.0.0.1:{port}", "oik_x", max_retries=1) as client:
        client._sleep = lambda seconds: None
        with pytest.raises(APIConnectionError) as failed:
            client.organizations.list()
    assert not isinstance(failed.value, APITimeoutError)
    assert failed.value.status is None
    assert f"127.0.0.1:{port}" in failed.value.detail


def test_a_silent_server_is_a_timeout():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts connections into the backlog, never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with (
            Client(url, "oik_x", timeout=0.3, max_retries=0) as client,
            pytest.raises(APITimeoutError) as failed,
        ):
            client.organizations.list()
    assert failed.value.code == "timeout"


def test_requests_from_several_threads_share_one_client(live):
    """httpx's client is thread-safe; the SDK keeps no per-request state on it."""
    addresses = emails("thread", 12)
    failures: list[BaseException] = []
    with live.client() as client:

        def invite(address: str) -> None:
            try:
                client.organization_invitations.create("acme", email=address)
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        threads = [threading.Thread(target=invite, args=(a,)) for a in addresses]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        found = {i.email for i in client.organization_invitations.list("acme")}
    assert failures == []
    assert found == set(addresses)


def test_explicit_settings_win_over_the_environment(live, monkeypatch):
    monkeypatch.setenv("ORGINVITES_API_KEY", "oik_wrong")
    monkeypatch.setenv("ORGINVITES_URL", "http://127.0.0.1:9")
    with Client(live.url, live.org_key) as client:
        assert client.organizations.get("acme").id == live.org_id
