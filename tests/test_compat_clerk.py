"""Clerk's own Python SDK against /compat/clerk/v1 on a live server (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func
from sqlalchemy import select

from tests.compat_support import accept_on_page
from tests.conftest import APP_ORIGIN
from tests.dashboard_support import make_member
from webapp.extensions import db
from webapp.models import Invitation
from webapp.models import Organization
from webapp.models import User

pytest.importorskip("clerk_backend_api", reason="the compat-test extra provides Clerk's SDK")

from clerk_backend_api import Clerk  # noqa: E402
from clerk_backend_api import models  # noqa: E402
from clerk_backend_api.utils import BackoffStrategy  # noqa: E402
from clerk_backend_api.utils import RetryConfig  # noqa: E402

DAY_MS = 24 * 3600 * 1000


def clerk(live, key: str | None = None) -> Clerk:
    return Clerk(
        bearer_auth=key or live.key,
        server_url=live.base + "/compat/clerk/v1",
        retry_config=RetryConfig("none", BackoffStrategy(1, 1, 1, 1), False),
    )


def invite(client: Clerk, live, email: str, role: str = "org:member", **fields):
    return client.organization_invitations.create(
        organization_id=live.org_id, email_address=email, role=role, notify=False, **fields
    )


def clerk_error(excinfo) -> models.ClerkError:
    assert len(excinfo.value.data.errors) == 1
    return excinfo.value.data.errors[0]


def test_create_returns_the_invitation_with_its_link_once(live):
    """Clerk's fields, millisecond times, the link in ``url`` once (when not emailed)."""
    client = clerk(live)
    created = invite(
        client,
        live,
        "Ada@Example.com",
        role="org:admin",
        public_metadata={"plan": "pro"},
        private_metadata={"crm": 42},
        redirect_url=f"{APP_ORIGIN}/welcome",
        expires_in_days=3,
    )
    assert created.object == models.OrganizationInvitationObject.ORGANIZATION_INVITATION
    assert created.id.startswith("inv_")
    assert (created.email_address, created.role, created.role_name) == (
        "Ada@example.com",
        "org:admin",
        "Admin",
    )
    assert created.organization_id == live.org_id and created.status == "pending"
    assert created.public_metadata == {"plan": "pro"} and created.private_metadata == {"crm": 42}
    assert created.expires_at - created.created_at == 3 * DAY_MS
    assert created.created_at == created.updated_at > 1_600_000_000_000  # milliseconds
    assert created.url.startswith(live.base + "/invitations/accept/")
    assert created.inviter_id is None and created.public_inviter_data is None

    emailed = client.organization_invitations.create(
        organization_id=live.org_id, email_address="grace@example.com", role="org:member"
    )
    assert emailed.url is None  # sent by OrgInvites: the link stays in the email

    fetched = client.organization_invitations.get(
        organization_id="acme", invitation_id=created.id
    )  # the slug works as the organization id too
    assert fetched.id == created.id and fetched.url is None
    assert fetched.public_metadata == {"plan": "pro"}
    with live.app.app_context():
        stored = db.session.get(Invitation, created.id)
        assert (stored.source, stored.role, stored.delivery_status) == (
            "clerk",
            "admin",
            "not_sent",
        )
        assert stored.redirect_url == f"{APP_ORIGIN}/welcome"
        assert stored.inviter_api_key_id is not None


def test_create_on_behalf_of_an_admin_member(live):
    """``inviter_user_id`` must administer the org; the invitation shows its inviter."""
    with live.app.app_context():
        org = db.session.get(Organization, live.org_id)
        make_member(org, "grace@example.com", "admin")
        make_member(org, "staff@example.com", "member")
        users = {u.email: u.id for u in db.session.scalars(select(User))}
    client = clerk(live)
    created = invite(client, live, "bob@example.com", inviter_user_id=users["grace@example.com"])
    assert created.inviter_id == users["grace@example.com"]
    assert created.public_inviter_data.identifier == "grace@example.com"
    assert created.public_inviter_data.first_name == "grace"

    with pytest.raises(models.ClerkErrors) as excinfo:
        invite(client, live, "eve@example.com", inviter_user_id=users["staff@example.com"])
    error = clerk_error(excinfo)
    assert excinfo.value.status_code == 422
    assert error.meta["param_name"] == "inviter_user_id"
    assert "is not an admin of Acme" in error.long_message

    revoked = client.organization_invitations.revoke(
        organization_id=live.org_id,
        invitation_id=created.id,
        requesting_user_id=users["grace@example.com"],
    )
    assert revoked.status == "revoked"
    with live.app.app_context():
        assert (
            db.session.get(Invitation, created.id).revoked_by_user_id == users["grace@example.com"]
        )


def test_list_filters_orders_and_pages(live):
    """Several statuses, one address, ascending or descending, limit and offset."""
    client = clerk(live)
    ids = {
        email: invite(client, live, email).id
        for email in ("carol@example.com", "alice@example.com", "bob@example.com", "dan@ex.com")
    }
    client.organization_invitations.revoke(
        organization_id=live.org_id, invitation_id=ids["dan@ex.com"]
    )
    invitations = client.organization_invitations

    everything = invitations.list(organization_id=live.org_id)
    assert everything.total_count == 4
    assert [i.email_address for i in everything.data] == [
        "dan@ex.com",
        "bob@example.com",
        "alice@example.com",
        "carol@example.com",
    ]  # newest first by default
    pending = invitations.list(
        organization_id=live.org_id,
        status=models.ListOrganizationInvitationsQueryParamStatus.PENDING,
        order_by="email_address",
    )
    assert [i.email_address for i in pending.data] == [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
    ]
    assert pending.total_count == 3
    newest_by_email = invitations.list(
        organization_id=live.org_id, order_by="-email_address", limit=2, offset=1
    )
    assert [i.email_address for i in newest_by_email.data] == [
        "carol@example.com",
        "bob@example.com",
    ]
    assert newest_by_email.total_count == 4
    oldest = invitations.list(organization_id=live.org_id, order_by="+created_at", limit=1)
    assert [i.email_address for i in oldest.data] == ["carol@example.com"]
    one = invitations.list(organization_id=live.org_id, email_address="BOB@example.com")
    assert [i.id for i in one.data] == [ids["bob@example.com"]] and one.total_count == 1

    # Several statuses at once (the SDK sends one; Clerk's API takes the parameter repeated).
    response = httpx.get(
        f"{live.base}/compat/clerk/v1/organizations/{live.org_id}/invitations",
        params=[("status", "revoked"), ("status", "pending"), ("limit", "10")],
        headers={"Authorization": f"Bearer {live.key}"},
    )
    assert response.status_code == 200
    assert response.json()["total_count"] == 4
    assert {i["status"] for i in response.json()["data"]} == {"pending", "revoked"}


def test_list_parameter_errors_name_the_parameter(live):
    invitations = clerk(live).organization_invitations
    for kwargs, param, words in (
        ({"limit": 501}, "limit", "limit must be between 1 and 500"),
        ({"limit": 0}, "limit", "limit must be between 1 and 500"),
        ({"offset": -1}, "offset", "offset must be between 0 and 1,000,000,000"),
        ({"offset": 10**30}, "offset", "offset must be between 0 and 1,000,000,000"),
        ({"order_by": "-role"}, "order_by", "'-role' is not an ordering"),
    ):
        with pytest.raises(models.ClerkErrors) as excinfo:
            invitations.list(organization_id=live.org_id, **kwargs)
        error = clerk_error(excinfo)
        assert excinfo.value.status_code == 422, kwargs
        assert error.code == "form_param_value_invalid"
        assert error.meta["param_name"] == param and words in error.long_message


def test_list_pending_is_deprecated_and_lists_pending_only(live):
    client = clerk(live)
    kept = invite(client, live, "kept@example.com")
    gone = invite(client, live, "gone@example.com")
    client.organization_invitations.revoke(organization_id=live.org_id, invitation_id=gone.id)
    with pytest.warns(DeprecationWarning, match="DEPRECATED"):
        pending = client.organization_invitations.list_pending(organization_id=live.org_id)
    assert [i.id for i in pending.data] == [kept.id] and pending.total_count == 1


def test_instance_list_spans_organizations_for_an_instance_key_only(live):
    """An instance key sees every org (with its public data); an org key its own org."""
    mine = invite(clerk(live), live, "mine@example.com")
    theirs = clerk(live, live.other_key).organization_invitations.create(
        organization_id=live.other_org_id,
        email_address="theirs@example.com",
        role="org:member",
        notify=False,
    )
    everything = clerk(live, live.instance_key).organization_invitations.get_all()
    assert {i.id for i in everything.data} == {mine.id, theirs.id}
    assert everything.total_count == 2
    by_id = {i.id: i for i in everything.data}
    assert by_id[theirs.id].public_organization_data.slug == "globex"
    assert by_id[mine.id].public_organization_data.name == "Acme"
    own = clerk(live).organization_invitations.get_all(query="example.com")
    assert [i.id for i in own.data] == [mine.id]
    searched = clerk(live, live.instance_key).organization_invitations.get_all(
        query="theirs", status=models.ListInstanceOrganizationInvitationsQueryParamStatus.PENDING
    )
    assert [i.id for i in searched.data] == [theirs.id]


def test_bulk_create_creates_all(live):
    client = clerk(live)
    created = client.organization_invitations.bulk_create(
        organization_id=live.org_id,
        request_body=[
            {"email_address": "one@example.com", "role": "org:member", "notify": False},
            {"email_address": "two@example.com", "role": "org:admin", "expires_in_days": 2},
        ],
    )
    assert [(i.email_address, i.role) for i in created.data] == [
        ("one@example.com", "org:member"),
        ("two@example.com", "org:admin"),
    ]
    assert created.total_count == 2
    assert created.data[1].expires_at - created.data[1].created_at == 2 * DAY_MS
    # The link goes to a caller that sends the email itself, and only to that one.
    assert created.data[0].url.startswith(live.base + "/invitations/accept/")
    assert created.data[1].url is None
    with live.app.app_context():
        stored = db.session.get(Invitation, created.data[1].id)
        assert stored.delivery_status == "queued"  # notify defaults to true, as in Clerk


def test_bulk_create_creates_none_when_an_item_is_refused(live):
    """No per-item results in Clerk's answer: all or nothing, each bad item named."""
    client = clerk(live)
    existing = invite(client, live, "taken@example.com")
    with pytest.raises(models.ClerkErrors) as excinfo:
        client.organization_invitations.bulk_create(
            organization_id=live.org_id,
            request_body=[
                {"email_address": "fine@example.com", "role": "org:member"},
                {"email_address": "taken@example.com", "role": "org:member"},
                {"email_address": "not-an-address", "role": "org:member"},
                {"email_address": "fine@example.com", "role": "org:member"},
            ],
        )
    assert excinfo.value.status_code == 400
    errors = excinfo.value.data.errors
    assert [(e.code, e.meta["index"]) for e in errors] == [
        ("duplicate_record", 1),
        ("form_param_format_invalid", 2),
        ("form_param_value_invalid", 3),
    ]
    assert errors[0].long_message == (
        f"item 1 (taken@example.com): taken@example.com already has a pending invitation "
        f"({existing.id})"
    )
    assert errors[0].meta["invitation_id"] == existing.id
    assert "item 2 (not-an-address): email_address: 'not-an-address' is not valid" in (
        errors[1].long_message
    )
    assert "fine@example.com is also item 0 of this request" in errors[2].long_message
    with live.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Invitation)) == 1


def test_bulk_create_checks_the_array_and_each_item_first(live):
    client = clerk(live)
    for body, words in (
        ([], "a JSON array of 1 to 10 invitations"),
        (
            [{"email_address": f"p{i}@example.com", "role": "org:member"} for i in range(11)],
            "1 to 10",
        ),
    ):
        with pytest.raises(models.ClerkErrors) as excinfo:
            client.organization_invitations.bulk_create(
                organization_id=live.org_id, request_body=body
            )
        assert excinfo.value.status_code == 422 and words in clerk_error(excinfo).long_message
    with pytest.raises(models.ClerkErrors) as excinfo:
        client.organization_invitations.bulk_create(
            organization_id=live.org_id,
            request_body=[{"email_address": "x@example.com", "role": "org:owner"}],
        )
    error = clerk_error(excinfo)
    assert excinfo.value.status_code == 422 and error.meta == {
        "param_name": "role",
        "reason": "unknown_role",
        "index": 0,
    }
    assert "'org:owner' is not a role of Acme (roles: org:admin, org:member)" in error.long_message


def test_revoke_only_pending(live):
    client = clerk(live)
    created = invite(client, live, "ada@example.com")
    revoked = client.organization_invitations.revoke(
        organization_id=live.org_id, invitation_id=created.id
    )
    assert revoked.status == "revoked" and revoked.updated_at >= created.updated_at
    with pytest.raises(models.ClerkErrors) as excinfo:
        client.organization_invitations.revoke(
            organization_id=live.org_id, invitation_id=created.id
        )
    error = clerk_error(excinfo)
    assert excinfo.value.status_code == 400
    assert error.code == "organization_invitation_not_pending"
    assert error.long_message == (
        f"invitation {created.id} is revoked; only pending invitations can be revoked"
    )


def test_user_invitations_are_the_ones_sent_to_their_address(live):
    client = clerk(live)
    created = invite(client, live, "ada@example.com")
    invite(client, live, "someone@example.com")
    accept_on_page(live.app, urlsplit(created.url).path, name="Ada Lovelace")
    with live.app.app_context():
        user_id = db.session.scalar(select(User.id).where(User.email_key == "ada@example.com"))
    found = client.users.get_organization_invitations(user_id=user_id)
    assert [(i.id, i.status) for i in found.data] == [(created.id, "accepted")]
    assert found.data[0].public_organization_data.slug == "acme"
    assert (
        client.users.get_organization_invitations(
            user_id=user_id, status=models.UsersGetOrganizationInvitationsQueryParamStatus.PENDING
        ).total_count
        == 0
    )
    with pytest.raises(models.ClerkErrors) as excinfo:
        client.users.get_organization_invitations(user_id="user_unknown")
    assert excinfo.value.status_code == 404
    assert clerk_error(excinfo).long_message == "no user 'user_unknown'"


# --- typed errors a user can act on --------------------------------------------------


def test_duplicate_invitation(live):
    client = clerk(live)
    first = invite(client, live, "ada@example.com")
    with pytest.raises(models.ClerkErrors) as excinfo:
        invite(client, live, "ADA@example.com")
    error = clerk_error(excinfo)
    assert excinfo.value.status_code == 400
    assert error.code == "duplicate_record"
    assert error.long_message == f"ADA@example.com already has a pending invitation ({first.id})"
    assert error.meta == {"invitation_id": first.id}


def test_unknown_invitation_and_organization(live):
    client = clerk(live)
    with pytest.raises(models.ClerkErrors) as excinfo:
        client.organization_invitations.get(organization_id=live.org_id, invitation_id="inv_nope")
    assert excinfo.value.status_code == 404
    assert clerk_error(excinfo).code == "resource_not_found"
    assert clerk_error(excinfo).long_message == "no invitation 'inv_nope'"
    # Another organization's id is unknown to this key, exactly like a missing one.
    with pytest.raises(models.ClerkErrors) as excinfo:
        invite(client, replace(live, org_id=live.other_org_id), "x@y.io")
    assert excinfo.value.status_code == 404
    assert clerk_error(excinfo).long_message == f"no organization {live.other_org_id!r}"


def test_invalid_email_and_expiry(live):
    client = clerk(live)
    with pytest.raises(models.ClerkErrors) as excinfo:
        invite(client, live, "ada(at)example.com", expires_in_days=45)
    assert excinfo.value.status_code == 422
    errors = {e.meta["param_name"]: e for e in excinfo.value.data.errors}
    assert errors["email_address"].code == "form_param_format_invalid"
    assert errors["email_address"].long_message.startswith(
        "email_address: 'ada(at)example.com' is not valid"
    )
    assert errors["expires_in_days"].long_message == (
        "expires_in_days: 45 days is outside the allowed range of 1 hour to 30 days"
    )


def test_wrong_key_is_refused_with_the_status_each_operation_documents(live):
    """Create and get document 403; the list documents no auth error, so 400 there."""
    client = clerk(live, "oik_not-a-real-key")
    with pytest.raises(models.ClerkErrors) as excinfo:
        invite(client, live, "ada@example.com")
    assert excinfo.value.status_code == 403
    error = clerk_error(excinfo)
    assert error.code == "authentication_invalid"
    assert "Authorization: Bearer <key>" in error.long_message
    with pytest.raises(models.ClerkErrors) as excinfo:
        client.organization_invitations.list(organization_id=live.org_id)
    assert excinfo.value.status_code == 400
    assert clerk_error(excinfo).code == "authentication_invalid"
