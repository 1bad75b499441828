"""The rules the compat APIs add: role and status mappings, and the service additions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.dashboard_support import make_member
from webapp.compat import roles
from webapp.compat import statuses
from webapp.models import Invitation
from webapp.services.actors import SYSTEM
from webapp.services.actors import Actor
from webapp.services.actors import acting_for
from webapp.services.errors import InvalidTransition
from webapp.services.errors import ValidationFailed
from webapp.services.invitation_listing import InvitationQuery
from webapp.services.invitation_listing import list_invitations
from webapp.services.invitation_transitions import accept_invitation
from webapp.services.invitation_transitions import decline_invitation
from webapp.services.invitation_transitions import revoke_invitation
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import create_invitation
from webapp.services.organizations import RoleSpec
from webapp.services.organizations import add_role
from webapp.services.organizations import admin_role
from webapp.services.organizations import create_organization
from webapp.services.users import get_or_create_user


def invite(session, org, email, **fields) -> tuple[str, str]:
    """Create an invitation; return ``(its link token, its id)``."""
    fields.setdefault("notify", False)
    issued = create_invitation(session, org, InvitationRequest(email=email, **fields), actor=SYSTEM)
    session.commit()
    return issued.accept_url.rsplit("/", 1)[1], issued.invitation.id


def field_error(excinfo) -> tuple[str, str, str]:
    error = excinfo.value.errors[0]
    return error.field, error.code, error.message


def spec(key: str, is_admin: bool = False) -> RoleSpec:
    return RoleSpec(key, key.title(), is_admin)


# --- roles ---------------------------------------------------------------------------


def test_admin_role_is_the_first_role_that_administers(session, org):
    assert admin_role(org).key == "admin"
    bare = create_organization(session, name="Bare", roles=[spec("viewer")])
    assert admin_role(bare) is None


def test_clerk_roles_map_onto_an_org_that_does_not_define_them(org):
    """org:admin is the admin role, org:member the default one, org:<key> the role <key>."""
    assert roles.clerk_role_key(org, "org:admin") == "admin"
    assert roles.clerk_role_key(org, "org:member") == "member"
    assert roles.clerk_role_key(org, "member") == "member"
    assert roles.clerk_role(org, "admin") == "org:admin"
    assert roles.clerk_role(org, "member") == "org:member"


def test_clerk_roles_that_are_real_roles_of_the_org_are_used_as_they_are(session, org):
    add_role(session, org, "org:admin", "Clerk admin", is_admin=True)
    add_role(session, org, "billing", "Billing")
    assert roles.clerk_role_key(org, "org:admin") == "org:admin"
    assert roles.clerk_role_key(org, "org:billing") == "billing"
    assert roles.clerk_role(org, "org:admin") == "org:admin"
    assert roles.clerk_role(org, "billing") == "org:billing"
    # org:admin is taken by the real role: the plain admin role reads as its bare key,
    # which maps back to it.
    assert roles.clerk_role(org, "admin") == "admin"
    assert roles.clerk_role_key(org, "admin") == "admin"


def test_clerk_unknown_and_missing_roles_are_refused_with_the_choices(org):
    with pytest.raises(ValidationFailed) as excinfo:
        roles.clerk_role_key(org, "org:owner")
    field, code, message = field_error(excinfo)
    assert (field, code) == ("role", "unknown_role")
    assert "'org:owner'" in message and "org:admin, org:member" in message
    with pytest.raises(ValidationFailed) as excinfo:
        roles.clerk_role_key(org, None)
    assert field_error(excinfo)[:2] == ("role", "required")


def test_openai_owner_is_the_admin_role_and_reader_the_default(session, org):
    assert roles.openai_role_key(org, "owner") == "admin"
    assert roles.openai_role_key(org, "reader") == "member"
    assert roles.openai_role(org, "admin") == "owner"
    assert roles.openai_role(org, "member") == "reader"
    add_role(session, org, "reader", "Reader")
    add_role(session, org, "billing", "Billing")
    assert roles.openai_role_key(org, "reader") == "reader"
    assert roles.openai_role(org, "billing") == "reader"
    with pytest.raises(ValidationFailed) as excinfo:
        roles.openai_role_key(org, "admin")
    assert field_error(excinfo)[:2] == ("role", "invalid_role")


def test_openai_owner_needs_an_admin_role(session):
    org = create_organization(session, name="Flat", roles=[spec("viewer")])
    with pytest.raises(ValidationFailed) as excinfo:
        roles.openai_role_key(org, "owner")
    assert field_error(excinfo)[:2] == ("role", "no_admin_role")


def test_anthropic_roles_map_to_same_key_else_default_never_to_an_admin_role(session, org):
    assert roles.anthropic_role_key(org, "developer") == "member"
    add_role(session, org, "developer", "Developer")
    add_role(session, org, "billing", "Billing", is_admin=True)
    assert roles.anthropic_role_key(org, "developer") == "developer"
    assert roles.anthropic_role_key(org, "user") == "member"
    # A same-named role that administers the org is refused, like admin itself.
    for refused in ("admin", "billing"):
        with pytest.raises(ValidationFailed) as excinfo:
            roles.anthropic_role_key(org, refused)
        field, code, message = field_error(excinfo)
        assert (field, code) == ("role", "role_not_assignable")
        assert "cannot be assigned through the API" in message
    with pytest.raises(ValidationFailed) as excinfo:
        roles.anthropic_role_key(org, "owner")
    assert field_error(excinfo)[:2] == ("role", "invalid_role")


def test_anthropic_refuses_when_the_default_role_administers(session):
    org = create_organization(
        session, name="Admins only", roles=[spec("boss", True)], default_role="boss"
    )
    with pytest.raises(ValidationFailed) as excinfo:
        roles.anthropic_role_key(org, "user")
    assert field_error(excinfo)[:2] == ("role", "role_not_assignable")


def test_anthropic_role_read_back_and_filter_keys(session, org):
    add_role(session, org, "developer", "Developer")
    add_role(session, org, "support", "Support")
    assert roles.anthropic_role(org, "admin") == "admin"
    assert roles.anthropic_role(org, "developer") == "developer"
    assert roles.anthropic_role(org, "member") == "user"
    assert roles.anthropic_role(org, "support") == "user"
    assert roles.anthropic_role_keys(org, ["user"]) == ["member", "support"]
    assert roles.anthropic_role_keys(org, ["admin", "developer"]) == ["admin", "developer"]
    assert roles.anthropic_role_keys(org, ["billing"]) == []
    with pytest.raises(ValidationFailed) as excinfo:
        roles.anthropic_role_keys(org, ["chief"])
    assert field_error(excinfo)[:2] == ("roles", "invalid_role")


# --- statuses ------------------------------------------------------------------------


def test_status_tables_cover_every_status_and_agree_with_their_filters():
    from webapp.models.invitations import STATUS_VALUES

    for table in (statuses.CLERK, statuses.OPENAI, statuses.ANTHROPIC):
        assert set(table) == set(STATUS_VALUES)
        for native, shown in table.items():
            if shown is not None:
                assert native in statuses.native_statuses(table, [shown])
    assert statuses.native_statuses(statuses.CLERK, ["expired"]) == ["expired", "declined"]
    assert statuses.native_statuses(statuses.ANTHROPIC, ["deleted"]) == ["revoked"]
    assert "revoked" not in statuses.visible_statuses(statuses.OPENAI)


def test_vendor_statuses_of_real_invitations(session, org):
    """Revoked: hidden from OpenAI, deleted to Anthropic; declined reads as expired."""
    token, _ = invite(session, org, "declines@example.com")
    declined, _ = decline_invitation(session, token)
    _, revoked_id = invite(session, org, "revoked@example.com")
    revoked = revoke_invitation(session, org, revoked_id, actor=SYSTEM)
    session.commit()
    now = revoked.updated_at
    assert statuses.vendor_status(statuses.CLERK, declined, now) == "expired"
    assert statuses.vendor_status(statuses.OPENAI, declined, now) == "expired"
    assert statuses.vendor_status(statuses.ANTHROPIC, declined, now) == "expired"
    assert statuses.vendor_status(statuses.CLERK, revoked, now) == "revoked"
    assert statuses.vendor_status(statuses.OPENAI, revoked, now) is None
    assert statuses.vendor_status(statuses.ANTHROPIC, revoked, now) == "deleted"
    # A pending invitation past its expiry is expired to every vendor.
    _, lapsing_id = invite(session, org, "late@example.com")
    lapsing = session.get(Invitation, lapsing_id)
    later = lapsing.expires_at + timedelta(seconds=1)
    for table in (statuses.CLERK, statuses.OPENAI, statuses.ANTHROPIC):
        assert statuses.vendor_status(table, lapsing, later) == "expired"


# --- service additions ---------------------------------------------------------------


def test_list_by_exact_address_and_by_role_keys(session, org):
    add_role(session, org, "developer", "Developer")
    invite(session, org, "Ada@Example.com")
    invite(session, org, "ada@example.community")
    invite(session, org, "dev@example.com", role="developer")
    page = list_invitations(session, org, InvitationQuery(email="ADA@example.com"))
    assert [i.email for i in page.items] == ["Ada@example.com"] and page.total == 1
    page = list_invitations(session, org, InvitationQuery(roles=["developer"]))
    assert [i.email for i in page.items] == ["dev@example.com"] and page.total == 1
    # An empty list of roles matches nothing (no role is wanted), unlike no filter.
    assert list_invitations(session, org, InvitationQuery(roles=[])).items == []
    assert list_invitations(session, org, InvitationQuery()).total == 3


def test_page_size_cap_is_the_callers(session, org):
    with pytest.raises(ValidationFailed) as excinfo:
        list_invitations(session, org, InvitationQuery(limit=101, max_limit=100))
    assert field_error(excinfo) == ("limit", "out_of_range", "limit must be between 1 and 100")
    assert list_invitations(session, org, InvitationQuery(limit=1000, max_limit=1000)).items == []


def test_an_accepted_invitation_cannot_be_deleted(session, org):
    token, _ = invite(session, org, "ada@example.com")
    result = accept_invitation(session, token, name="Ada")
    session.commit()
    with pytest.raises(InvalidTransition) as excinfo:
        revoke_invitation(session, org, result.invitation.id, actor=SYSTEM, verb="deleted")
    assert str(excinfo.value) == (
        f"invitation {result.invitation.id} is accepted; only pending invitations can be deleted"
    )


def test_acting_for_an_admin_accepts_only_admins_of_the_org(session, org, make_org):
    """Clerk's inviter_user_id/requesting_user_id: the member named must administer."""
    make_member(org, "boss@example.com", "admin")
    make_member(org, "staff@example.com", "member")
    boss = get_or_create_user(session, "boss@example.com", "boss@example.com", None)
    staff = get_or_create_user(session, "staff@example.com", "staff@example.com", None)
    key = Actor.api_key("key_1")
    acting = acting_for(session, org, key, boss.id, "inviter_user_id", must_administer=True)
    assert (acting.api_key_id, acting.user_id) == ("key_1", boss.id)
    # Without must_administer (the native API) any member will do.
    assert acting_for(session, org, key, staff.id, "inviter_user_id").user_id == staff.id
    other = make_org("Other", "other")
    refused = [
        (org, staff.id, "not_an_admin", f"{staff.id!r} is not an admin of Acme"),
        (org, "user_nope", "unknown_user", "'user_nope' is not a member of Acme"),
        (org, 5, "unknown_user", "5 is not a member of Acme"),
        (other, boss.id, "unknown_user", f"{boss.id!r} is not a member of Other"),
    ]
    for where, who, code, message in refused:
        with pytest.raises(ValidationFailed) as excinfo:
            acting_for(session, where, key, who, "inviter_user_id", must_administer=True)
        assert field_error(excinfo) == ("inviter_user_id", code, message)
