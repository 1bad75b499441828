"""Anthropic's own Python SDK against /compat/anthropic on a live server (strict validation)."""

from __future__ import annotations

from datetime import UTC
from datetime import timedelta

import httpx
import pytest

from tests.compat_support import accept_on_page
from tests.compat_support import deliver_and_read_link
from webapp.extensions import db
from webapp.models import Invitation
from webapp.models import Organization
from webapp.services.organizations import add_role

anthropic = pytest.importorskip("anthropic", reason="the compat-test extra provides its SDK")

from anthropic.types.organization import AlreadyMemberError  # noqa: E402
from anthropic.types.organization import InviteAlreadyExistsError  # noqa: E402


def client_for(live, key: str | None = None):
    return anthropic.Anthropic(
        api_key=key or live.key,
        base_url=live.base + "/compat/anthropic",
        max_retries=0,
        _strict_response_validation=True,
    )


def invites(live, key: str | None = None, *, beta: bool = False):
    client = client_for(live, key)
    return client.beta.organization.invites if beta else client.organization.invites


def add_org_role(live, key: str, is_admin: bool = False) -> None:
    with live.app.app_context():
        add_role(db.session, db.session.get(Organization, live.org_id), key, is_admin=is_admin)
        db.session.commit()


@pytest.mark.parametrize("beta", [False, True], ids=["ga", "beta"])
def test_create_retrieve_and_delete(live, beta):
    """Anthropic's fields, RFC 3339 times; a deleted invite reads as deleted."""
    add_org_role(live, "developer")
    created = invites(live, beta=beta).create(email="ada@example.com", role="developer")
    assert (created.type, created.email, created.role, created.status) == (
        "invite",
        "ada@example.com",
        "developer",
        "pending",
    )
    assert created.rbac_group_ids == [] and created.accepted_at is None
    assert created.invited_at.tzinfo is not None
    assert created.expires_at - created.invited_at == timedelta(days=7)
    assert invites(live, beta=beta).retrieve(created.id) == created
    with live.app.app_context():
        stored = db.session.get(Invitation, created.id)
        assert (stored.source, stored.role) == ("anthropic", "developer")

    deleted = invites(live, beta=beta).delete(created.id)
    assert (deleted.id, deleted.type) == (created.id, "invite_deleted")
    assert invites(live, beta=beta).retrieve(created.id).status == "deleted"
    with pytest.raises(anthropic.NotFoundError) as excinfo:
        invites(live, beta=beta).delete(created.id)
    assert excinfo.value.type == "not_found_error"
    assert excinfo.value.api_message == f"invite {created.id!r} was already deleted"


def test_roles_map_to_the_org_and_admin_is_refused(live):
    """A role the org lacks is its default role (read back as user); admin never."""
    created = invites(live).create(email="bill@example.com", role="billing")
    assert created.role == "user"
    with live.app.app_context():
        assert db.session.get(Invitation, created.id).role == "member"
    with pytest.raises(anthropic.BadRequestError) as excinfo:
        invites(live).create(email="root@example.com", role="admin")  # type: ignore[arg-type]
    assert excinfo.value.type == "invalid_request_error"
    assert excinfo.value.api_message.startswith("role: 'admin' cannot be assigned through the API")
    with pytest.raises(anthropic.BadRequestError) as excinfo:
        invites(live).create(email="x@example.com", role="user", rbac_group_ids=["grp_1"])
    assert "rbac_group_ids" in excinfo.value.api_message


def test_list_filters_and_pages_both_ways(live):
    add_org_role(live, "developer")
    client = invites(live)
    ids = [
        client.create(email=f"p{i}@example.com", role="developer" if i % 2 else "user").id
        for i in range(5)
    ]
    client.delete(ids[0])
    # Deleted invites are left out unless asked for by id; newest first.
    assert [i.id for i in client.list()] == [ids[4], ids[3], ids[2], ids[1]]
    page = client.list(limit=2)
    assert [i.id for i in page.data] == [ids[4], ids[3]]
    assert (page.has_more, page.first_id, page.last_id) == (True, ids[4], ids[3])
    assert [i.id for i in page.get_next_page().data] == [ids[2], ids[1]]
    assert [i.id for i in client.list(limit=1)] == [ids[4], ids[3], ids[2], ids[1]]
    before = client.list(before_id=ids[2], limit=1)
    assert [i.id for i in before.data] == [ids[3]] and before.has_more is True
    assert [i.id for i in before.get_next_page().data] == [ids[4]]
    assert [i.id for i in client.list(roles=["developer"])] == [ids[3], ids[1]]
    assert [i.id for i in client.list(roles=["user", "billing"])] == [ids[4], ids[2]]
    assert list(client.list(roles=["billing"])) == []
    assert [i.id for i in client.list(email="P2@EXAMPLE.com")] == [ids[2]]
    accept_on_page(live.app, deliver_and_read_link(live.app, "p4@example.com"))
    assert [i.id for i in client.list(statuses=["accepted"])] == [ids[4]]
    assert [i.id for i in client.list(statuses=["pending", "expired"])] == [ids[3], ids[2], ids[1]]
    accepted = client.retrieve(ids[4])
    assert accepted.status == "accepted" and accepted.accepted_at.tzinfo == UTC


# --- typed errors a user can act on --------------------------------------------------


def test_duplicate_invite_raises_invite_already_exists(live):
    first = invites(live).create(email="ada@example.com", role="user")
    with pytest.raises(InviteAlreadyExistsError) as excinfo:
        invites(live, beta=True).create(email="ADA@example.com", role="developer")
    assert excinfo.value.status_code == 400
    assert excinfo.value.error_code == "invite_already_exists"
    assert excinfo.value.api_message == (
        f"ADA@example.com already has a pending invitation ({first.id})"
    )


def test_inviting_a_member_raises_already_member(live):
    invites(live).create(email="ada@example.com", role="user")
    accept_on_page(live.app, deliver_and_read_link(live.app, "ada@example.com"))
    with pytest.raises(AlreadyMemberError) as excinfo:
        invites(live).create(email="ada@example.com", role="user")
    assert excinfo.value.api_message == "ada@example.com is already a member of Acme"


def test_unknown_invite(live):
    with pytest.raises(anthropic.NotFoundError) as excinfo:
        invites(live).retrieve("inv_nope")
    assert excinfo.value.api_message == "no invitation 'inv_nope'"
    theirs = invites(live, live.other_key).create(email="x@example.com", role="user")
    with pytest.raises(anthropic.NotFoundError):
        invites(live).delete(theirs.id)


def test_invalid_email_and_list_parameters(live):
    with pytest.raises(anthropic.BadRequestError) as excinfo:
        invites(live).create(email="ada@", role="user")
    assert excinfo.value.error_code is None
    assert excinfo.value.api_message.startswith("email: 'ada@' is not valid")
    for kwargs, words in (
        ({"limit": 1001}, "limit: limit must be between 1 and 1000"),
        ({"after_id": "inv_nope"}, "after_id: 'inv_nope' is not an invitation in this list"),
        ({"roles": ["chief"]}, "roles: 'chief' is not a role"),
        ({"statuses": ["deleted"]}, "statuses: 'deleted' is not a status"),
        ({"after_id": "inv_a", "before_id": "inv_b"}, "give after_id or before_id, not both"),
    ):
        with pytest.raises(anthropic.BadRequestError) as excinfo:
            invites(live).list(**kwargs)
        assert words in excinfo.value.api_message, kwargs


def test_wrong_key_and_instance_key(live):
    with pytest.raises(anthropic.AuthenticationError) as excinfo:
        invites(live, "oik_wrong").list()
    assert excinfo.value.type == "authentication_error"
    assert excinfo.value.api_message.startswith("invalid x-api-key")
    with pytest.raises(anthropic.PermissionDeniedError) as excinfo:
        invites(live, live.instance_key).create(email="ada@example.com", role="user")
    assert excinfo.value.type == "permission_error"


def test_the_key_also_works_as_a_bearer_token(live):
    response = httpx.get(
        f"{live.base}/compat/anthropic/v1/organizations/invites?beta=true",
        headers={"Authorization": f"Bearer {live.key}", "anthropic-version": "2023-06-01"},
    )
    assert response.status_code == 200
    assert response.json() == {"data": [], "has_more": False, "first_id": None, "last_id": None}
