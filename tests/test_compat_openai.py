"""OpenAI's own Python SDK against /compat/openai/v1 on a live server (strict validation)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.compat_support import accept_on_page
from tests.compat_support import deliver_and_read_link
from webapp.extensions import db
from webapp.models import Invitation
from webapp.models import Organization
from webapp.models import ProjectMembership
from webapp.services.organizations import create_project

openai = pytest.importorskip("openai", reason="the compat-test extra provides OpenAI's SDK")

WEEK = 7 * 24 * 3600


def client_for(live, key: str | None = None):
    return openai.OpenAI(
        admin_api_key=key or live.key,
        base_url=live.base + "/compat/openai/v1",
        max_retries=0,
        _strict_response_validation=True,
    )


def invites(live, key: str | None = None):
    return client_for(live, key).admin.organization.invites


def test_create_retrieve_and_delete(live):
    """OpenAI's fields and second timestamps; owner is the org's admin role."""
    created = invites(live).create(email="ada@example.com", role="owner")
    assert created.object == "organization.invite"
    assert (created.email, created.role, created.status) == ("ada@example.com", "owner", "pending")
    assert created.expires_at - created.created_at == WEEK  # the org's default expiry
    assert created.accepted_at is None
    # Projects omitted: the org's default project, as a member.
    assert [(p.id, p.role) for p in created.projects] == [(live.project_id, "member")]

    fetched = invites(live).retrieve(created.id)
    assert fetched == created
    with live.app.app_context():
        stored = db.session.get(Invitation, created.id)
        assert (stored.source, stored.role, stored.delivery_status) == ("openai", "admin", "queued")

    deleted = invites(live).delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (
        created.id,
        "organization.invite.deleted",
        True,
    )
    with live.app.app_context():
        assert db.session.get(Invitation, created.id).status == "revoked"
    # A deleted invite is gone, as with OpenAI.
    with pytest.raises(openai.NotFoundError):
        invites(live).retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        invites(live).delete(created.id)
    assert created.id not in [i.id for i in invites(live).list()]


def test_projects_given_or_none(live):
    """Projects as given (member or owner); an empty list grants none, not even the default."""
    with live.app.app_context():
        org = db.session.get(Organization, live.org_id)
        research = create_project(db.session, org, "Research").id
        db.session.commit()
    granted = invites(live).create(
        email="grace@example.com",
        role="reader",
        projects=[{"id": research, "role": "owner"}, {"id": live.project_id, "role": "member"}],
    )
    assert granted.role == "reader"
    assert [(p.id, p.role) for p in granted.projects] == [
        (research, "owner"),
        (live.project_id, "member"),
    ]
    none = invites(live).create(email="linus@example.com", role="reader", projects=[])
    assert none.projects == []

    # Accepting grants the projects.
    path = deliver_and_read_link(live.app, "grace@example.com")
    accept_on_page(live.app, path)
    with live.app.app_context():
        memberships = db.session.scalars(select(ProjectMembership)).all()
        assert sorted((m.project_id, m.role) for m in memberships) == sorted(
            [(research, "owner"), (live.project_id, "member")]
        )
    accepted = invites(live).retrieve(granted.id)
    assert accepted.status == "accepted" and accepted.accepted_at >= accepted.created_at


def test_list_pages_with_after_and_hides_deleted_invites(live):
    ids = [invites(live).create(email=f"p{i}@example.com", role="reader").id for i in range(5)]
    invites(live).delete(ids[2])
    first = invites(live).list(limit=2)
    assert [i.id for i in first.data] == [ids[4], ids[3]]
    assert first.has_more is True and first.last_id == ids[3]
    second = first.get_next_page()
    assert [i.id for i in second.data] == [ids[1], ids[0]]
    assert second.has_more is False
    # Auto-pagination walks every page.
    assert [i.id for i in invites(live).list(limit=1)] == [ids[4], ids[3], ids[1], ids[0]]
    assert [i.id for i in invites(live).list(after=ids[3])] == [ids[1], ids[0]]
    raw = client_for(live).get(
        "/organization/invites", cast_to=object, options={"params": {"limit": 2}}
    )
    assert raw["object"] == "list" and raw["first_id"] == ids[4]


def test_an_accepted_invite_cannot_be_deleted(live):
    created = invites(live).create(email="ada@example.com", role="reader")
    accept_on_page(live.app, deliver_and_read_link(live.app, "ada@example.com"))
    with pytest.raises(openai.ConflictError) as excinfo:
        invites(live).delete(created.id)
    assert excinfo.value.code == "invalid_invite_status"
    assert excinfo.value.message == (
        f"Error code: 409 - invitation {created.id} is accepted; "
        "only pending invitations can be deleted"
    )


# --- typed errors a user can act on --------------------------------------------------


def test_duplicate_invite(live):
    first = invites(live).create(email="ada@example.com", role="reader")
    with pytest.raises(openai.ConflictError) as excinfo:
        invites(live).create(email="Ada@Example.com", role="owner")
    assert excinfo.value.status_code == 409
    assert excinfo.value.code == "invite_already_exists"
    assert excinfo.value.param == "email"
    assert f"already has a pending invitation ({first.id})" in excinfo.value.message


def test_unknown_invite(live):
    with pytest.raises(openai.NotFoundError) as excinfo:
        invites(live).retrieve("inv_nope")
    assert excinfo.value.message == "Error code: 404 - no invitation 'inv_nope'"
    # Another organization's invite is unknown to this key.
    theirs = invites(live, live.other_key).create(email="x@example.com", role="reader")
    with pytest.raises(openai.NotFoundError):
        invites(live).delete(theirs.id)


def test_invalid_email_role_project_and_page(live):
    with pytest.raises(openai.BadRequestError) as excinfo:
        invites(live).create(email="not an address", role="reader")
    assert excinfo.value.param == "email" and excinfo.value.code == "invalid_email"
    assert "'not an address' is not valid" in excinfo.value.message
    with pytest.raises(openai.BadRequestError) as excinfo:
        invites(live).create(email="ada@example.com", role="admin")  # type: ignore[arg-type]
    assert excinfo.value.param == "role"
    assert "'admin' is not a role: use owner or reader" in excinfo.value.message
    with pytest.raises(openai.BadRequestError) as excinfo:
        invites(live).create(
            email="ada@example.com", role="reader", projects=[{"id": "proj_nope", "role": "member"}]
        )
    assert excinfo.value.param == "projects"
    assert "'proj_nope' is not a project of Acme" in excinfo.value.message
    with pytest.raises(openai.BadRequestError) as excinfo:
        invites(live).list(limit=101)
    assert excinfo.value.param == "limit"
    assert "limit must be between 1 and 100" in excinfo.value.message
    with pytest.raises(openai.BadRequestError) as excinfo:
        invites(live).list(after="inv_nope")
    assert excinfo.value.param == "after"


def test_wrong_key_and_instance_key(live):
    with pytest.raises(openai.AuthenticationError) as excinfo:
        invites(live, "oik_wrong").list()
    assert excinfo.value.code == "invalid_api_key"
    assert "Incorrect API key provided" in excinfo.value.message
    with pytest.raises(openai.PermissionDeniedError) as excinfo:
        invites(live, live.instance_key).create(email="ada@example.com", role="reader")
    assert "use an API key created with --org" in excinfo.value.message
