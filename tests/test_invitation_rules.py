"""Invitation rules through the services, on SQLite and PostgreSQL (``session``/``org``)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from flask import current_app
from sqlalchemy import func
from sqlalchemy import select

from webapp.models import AuditEvent
from webapp.models import Invitation
from webapp.models import InvitationCounter
from webapp.models import Membership
from webapp.models import OutboxMessage
from webapp.models import ProjectMembership
from webapp.models import User
from webapp.models.invitations import STATUS_VALUES
from webapp.services.actors import SYSTEM
from webapp.services.counters import rebuild_counters
from webapp.services.counters import status_totals
from webapp.services.errors import AlreadyInvited
from webapp.services.errors import AlreadyMember
from webapp.services.errors import InvalidTransition
from webapp.services.errors import InvitationUnavailable
from webapp.services.errors import NotFound
from webapp.services.errors import QuotaExceeded
from webapp.services.errors import Throttled
from webapp.services.errors import ValidationFailed
from webapp.services.expiry import expire_due_invitations
from webapp.services.invitation_listing import InvitationQuery
from webapp.services.invitation_listing import list_invitations
from webapp.services.invitation_transitions import accept_invitation
from webapp.services.invitation_transitions import decline_invitation
from webapp.services.invitation_transitions import redirect_target
from webapp.services.invitation_transitions import resend_invitation
from webapp.services.invitation_transitions import revoke_invitation
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import create_invitation
from webapp.services.invitations import create_invitations
from webapp.services.invitations import get_invitation_by_token
from webapp.services.organizations import create_project
from webapp.services.organizations import update_organization
from webapp.services.users import create_admin_user
from webapp.services.users import verify_password

T0 = datetime(2030, 1, 15, 12, 0, 0, tzinfo=UTC)
ACCEPT_PREFIX = "https://invites.example.com/invitations/accept/"
WELCOME = "https://app.example.com/welcome?team=7"
PASSWORD = "correct horse battery staple"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


@pytest.fixture
def clock(time_machine):
    """The clock frozen at T0; tests move it with ``clock.shift``/``clock.move_to``."""
    time_machine.move_to(T0, tick=False)
    return time_machine


def invite(session, org, email="ann@example.com", **fields):
    """Create one invitation and commit, as one request would."""
    issued = create_invitation(session, org, InvitationRequest(email=email, **fields), actor=SYSTEM)
    session.commit()
    return issued


def token_of(issued) -> str:
    assert issued.accept_url.startswith(ACCEPT_PREFIX)
    return issued.accept_url.removeprefix(ACCEPT_PREFIX)


def refused(session, error_type, func_, *args, **kwargs):
    """Call a service expecting ``error_type``; roll back like every caller does."""
    with pytest.raises(error_type) as info:
        func_(session, *args, **kwargs)
    session.rollback()
    return info.value


def field_codes(error: ValidationFailed) -> list[tuple[str, str]]:
    return [(e.field, e.code) for e in error.errors]


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


def event_types(session, invitation_id) -> list[str]:
    return sorted(
        session.scalars(select(AuditEvent.type).where(AuditEvent.invitation_id == invitation_id))
    )


def outbox_rows(session, invitation_id) -> list[OutboxMessage]:
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.invitation_id == invitation_id)
            .order_by(OutboxMessage.created_at, OutboxMessage.id)
        )
    )


def stored_counters(session, org_id) -> dict[str, int]:
    rows = session.execute(
        select(InvitationCounter.status, InvitationCounter.count).where(
            InvitationCounter.org_id == org_id
        )
    )
    return {status: int(n) for status, n in rows}


def real_totals(session, org_id, now) -> dict[str, int]:
    """count(*) by effective status, straight from the rows."""
    found = Counter(
        inv.effective_status(now)
        for inv in session.scalars(select(Invitation).where(Invitation.org_id == org_id))
    )
    return {s: found.get(s, 0) for s in STATUS_VALUES}


def totals(**non_zero) -> dict[str, int]:
    return {s: non_zero.get(s, 0) for s in STATUS_VALUES}


def row_of(session, invitation_id) -> dict:
    session.expire_all()
    return dict(
        session.execute(
            select(Invitation.__table__).where(Invitation.__table__.c.id == invitation_id)
        )
        .mappings()
        .one()
    )


def put_in_state(session, org, clock, state, email="sam@example.com"):
    """An invitation that is accepted, declined, revoked, lapsed (unswept) or expired (swept)."""
    issued = invite(session, org, email, expires_in=timedelta(hours=1))
    inv_id, token = issued.invitation.id, token_of(issued)
    if state == "accepted":
        accept_invitation(session, token)
    elif state == "declined":
        decline_invitation(session, token)
    elif state == "revoked":
        revoke_invitation(session, org, inv_id, actor=SYSTEM)
    elif state in ("lapsed", "expired"):
        clock.shift(timedelta(hours=1))
        if state == "expired":
            assert expire_due_invitations(session) == 1
    else:  # pragma: no cover
        raise AssertionError(state)
    session.commit()
    clock.shift(timedelta(minutes=5))  # past the resend throttle
    return inv_id, token


def make_member(session, org, email):
    issued = invite(session, org, email)
    result = accept_invitation(session, token_of(issued))
    session.commit()
    return result


# ---------------------------------------------------------------------------
# create: fields
# ---------------------------------------------------------------------------


def test_create_normalizes_email_and_keeps_a_lowercased_key(session, org):
    """The stored email is normalized (case of the local part kept); email_key is lower-cased."""
    issued = invite(session, org, "  Ann.Lee@EXAMPLE.com ")
    inv = issued.invitation
    assert inv.email == "Ann.Lee@example.com"
    assert inv.email_key == "ann.lee@example.com"
    assert inv.status == "pending"
    assert inv.id.startswith("inv_")


def test_create_refuses_invalid_email_naming_the_value(session, org):
    """An invalid address is ValidationFailed on field "email" whose message names the value."""
    for bad in ("not-an-email", "<img src=x onerror=alert(1)>@x.io", "a\x00b@example.com"):
        error = refused(
            session, ValidationFailed, create_invitation, org, InvitationRequest(bad), actor=SYSTEM
        )
        assert error.code == "validation_failed"
        assert field_codes(error) == [("email", "invalid_email")], bad
        assert repr(bad) in error.errors[0].message
    assert count(session, Invitation) == 0


def test_create_reports_every_field_problem_together(session, org):
    """Several bad fields are all listed in one ValidationFailed."""
    request = InvitationRequest(
        "nope", role="owner", redirect_url="//evil.com", expires_in=timedelta(minutes=5)
    )
    error = refused(session, ValidationFailed, create_invitation, org, request, actor=SYSTEM)
    assert sorted(field_codes(error)) == [
        ("email", "invalid_email"),
        ("expires_in", "expiry_out_of_range"),
        ("redirect_url", "invalid_url"),
        ("role", "unknown_role"),
    ]


def test_create_uses_org_default_role_when_none(session, org):
    """Without a role the organization's default role is used."""
    assert invite(session, org, "a@example.com").invitation.role == "member"
    update_organization(session, org, default_role="admin")
    session.commit()
    assert invite(session, org, "b@example.com").invitation.role == "admin"
    assert invite(session, org, "c@example.com", role="member").invitation.role == "member"


def test_create_refuses_role_not_of_the_org(session, org):
    """A role key the org does not define is ValidationFailed on "role" naming the key."""
    request = InvitationRequest("a@example.com", role="owner")
    error = refused(session, ValidationFailed, create_invitation, org, request, actor=SYSTEM)
    assert field_codes(error) == [("role", "unknown_role")]
    assert "'owner'" in error.errors[0].message
    assert "admin, member" in error.errors[0].message


def test_create_accepts_project_grants_of_the_org(session, org):
    """Project grants naming the org's projects are stored with their roles."""
    apollo = create_project(session, org, "Apollo")
    gemini = create_project(session, org, "Gemini")
    session.commit()
    grants = [{"project_id": apollo.id, "role": "owner"}, {"project_id": gemini.id}]
    inv = invite(session, org, project_grants=grants).invitation
    assert inv.project_grants == [
        {"project_id": apollo.id, "role": "owner"},
        {"project_id": gemini.id, "role": "member"},
    ]


def test_create_refuses_another_orgs_project(session, org, make_org):
    """A grant naming another org's project is ValidationFailed on "projects" naming the id."""
    other = make_org("Other", slug="other")
    foreign = create_project(session, other, "Secret")
    session.commit()
    request = InvitationRequest("a@example.com", project_grants=[{"project_id": foreign.id}])
    error = refused(session, ValidationFailed, create_invitation, org, request, actor=SYSTEM)
    assert field_codes(error) == [("projects", "unknown_project")]
    assert foreign.id in error.errors[0].message


def test_create_refuses_malformed_project_grants(session, org):
    """Malformed, unknown, duplicated or badly-roled project grants are refused on "projects"."""
    project = create_project(session, org, "Apollo")
    session.commit()
    cases = [
        ("proj_x", "invalid"),
        ([{"role": "member"}], "invalid"),
        ([{"project_id": "proj_missing"}], "unknown_project"),
        ([{"project_id": project.id, "role": "admin"}], "invalid_project_role"),
        ([{"project_id": project.id}, {"project_id": project.id}], "duplicate_project"),
    ]
    for grants, code in cases:
        request = InvitationRequest("a@example.com", project_grants=grants)
        error = refused(session, ValidationFailed, create_invitation, org, request, actor=SYSTEM)
        assert field_codes(error) == [("projects", code)], grants
    assert count(session, Invitation) == 0


def test_create_stores_allowlisted_redirect_url(session, org):
    """A redirect URL on the allowlist is stored as given."""
    assert invite(session, org, redirect_url=WELCOME).invitation.redirect_url == WELCOME


def test_create_refuses_redirect_url_off_the_allowlist(session, org):
    """A redirect URL off the allowlist is ValidationFailed on "redirect_url" naming the URL."""
    cases = [
        ("https://evil.com/welcome", "redirect_not_allowed"),
        ("https://app.example.com.evil.com/", "redirect_not_allowed"),
        ("//evil.com", "invalid_url"),
        ("https://app.example.com@evil.com", "invalid_url"),
        ("http://app.example.com/", "insecure_url"),
    ]
    for url, code in cases:
        request = InvitationRequest("a@example.com", redirect_url=url)
        error = refused(session, ValidationFailed, create_invitation, org, request, actor=SYSTEM)
        assert field_codes(error) == [("redirect_url", code)], url
        assert url in error.errors[0].message


def test_create_default_expiry_is_seven_days(session, org, clock):
    """Without an expiry the org default (7 days) applies."""
    inv = invite(session, org).invitation
    assert inv.expires_at == T0 + timedelta(days=7)
    assert inv.created_at == T0


def test_create_uses_the_orgs_own_default_expiry(session, org, clock):
    """An org's default expiry setting is used for invitations without one."""
    update_organization(session, org, default_expiry_seconds=2 * 86400)
    session.commit()
    assert invite(session, org).invitation.expires_at == T0 + timedelta(days=2)


def test_create_accepts_expires_in_at_the_bounds(session, org, clock):
    """expires_in of exactly 1 hour and exactly 30 days are accepted."""
    for n, expires_in in enumerate([timedelta(hours=1), timedelta(days=30)]):
        inv = invite(session, org, f"u{n}@example.com", expires_in=expires_in).invitation
        assert inv.expires_at == T0 + expires_in


def test_create_refuses_expires_in_out_of_range(session, org, clock):
    """expires_in outside 1 hour..30 days is ValidationFailed on "expires_in"."""
    for expires_in in (
        timedelta(minutes=59, seconds=59),
        timedelta(days=30, seconds=1),
        timedelta(0),
        -timedelta(1),
    ):
        request = InvitationRequest("a@example.com", expires_in=expires_in)
        error = refused(session, ValidationFailed, create_invitation, org, request, actor=SYSTEM)
        assert field_codes(error) == [("expires_in", "expiry_out_of_range")], expires_in
        assert "1 hour to 30 days" in error.errors[0].message


def test_create_accepts_expires_at_in_range(session, org, clock):
    """An aware expires_at between 1 hour and 30 days ahead is stored as given."""
    for n, ahead in enumerate([timedelta(hours=1), timedelta(hours=2), timedelta(days=30)]):
        inv = invite(session, org, f"u{n}@example.com", expires_at=T0 + ahead).invitation
        assert inv.expires_at == T0 + ahead


def test_create_refuses_expires_at_out_of_range(session, org, clock):
    """expires_at too soon, too far or in the past is ValidationFailed on "expires_at"."""
    for ahead in (timedelta(minutes=30), timedelta(days=30, seconds=1), -timedelta(hours=2)):
        when = T0 + ahead
        request = InvitationRequest("a@example.com", expires_at=when)
        error = refused(session, ValidationFailed, create_invitation, org, request, actor=SYSTEM)
        assert field_codes(error) == [("expires_at", "expiry_out_of_range")], ahead
        assert when.isoformat() in error.errors[0].message


def test_create_refuses_naive_expires_at_and_both_expiry_fields(session, org, clock):
    """A naive expires_at, or both expires_in and expires_at, are refused."""
    naive = InvitationRequest("a@example.com", expires_at=datetime(2030, 1, 16, 12))
    error = refused(session, ValidationFailed, create_invitation, org, naive, actor=SYSTEM)
    assert field_codes(error) == [("expires_at", "invalid")]
    both = InvitationRequest(
        "a@example.com", expires_in=timedelta(days=1), expires_at=T0 + timedelta(days=1)
    )
    error = refused(session, ValidationFailed, create_invitation, org, both, actor=SYSTEM)
    assert field_codes(error) == [("expires_in", "conflicting_fields")]


def _metadata_of_size(size: int) -> dict:
    value = {"k": "x" * (size - len('{"k":""}'))}
    assert len(json.dumps(value, separators=(",", ":")).encode()) == size
    return value


@pytest.mark.parametrize("field", ["public_metadata", "private_metadata"])
def test_create_caps_metadata_size(session, org, field):
    """Metadata of METADATA_MAX_BYTES (8192) is kept; one byte more is refused on that field."""
    assert current_app.config["METADATA_MAX_BYTES"] == 8192
    at_cap = _metadata_of_size(8192)
    inv = invite(session, org, "a@example.com", **{field: at_cap}).invitation
    assert getattr(inv, field) == at_cap
    request = InvitationRequest("b@example.com", **{field: _metadata_of_size(8193)})
    error = refused(session, ValidationFailed, create_invitation, org, request, actor=SYSTEM)
    assert field_codes(error) == [(field, "metadata_too_large")]
    assert "8193" in error.errors[0].message


def test_create_metadata_cap_follows_config(session, org, app):
    """The cap is read from the METADATA_MAX_BYTES setting."""
    app.config["METADATA_MAX_BYTES"] = 100
    request = InvitationRequest("a@example.com", public_metadata=_metadata_of_size(101))
    error = refused(session, ValidationFailed, create_invitation, org, request, actor=SYSTEM)
    assert field_codes(error) == [("public_metadata", "metadata_too_large")]
    invite(session, org, public_metadata=_metadata_of_size(100))


def test_create_refuses_non_object_metadata(session, org):
    """Metadata must be a JSON object of JSON values."""
    request = InvitationRequest("a@example.com", public_metadata=["x"], private_metadata={"s": {1}})
    error = refused(session, ValidationFailed, create_invitation, org, request, actor=SYSTEM)
    assert sorted(field_codes(error)) == [
        ("private_metadata", "invalid_metadata"),
        ("public_metadata", "invalid_metadata"),
    ]


# ---------------------------------------------------------------------------
# create: duplicates, members, quota
# ---------------------------------------------------------------------------


def test_create_refuses_second_pending_invitation_for_same_address(session, org):
    """A pending invitation for the address (any case) makes a new one AlreadyInvited."""
    first = invite(session, org, "ann@example.com").invitation
    error = refused(
        session,
        AlreadyInvited,
        create_invitation,
        org,
        InvitationRequest("ANN@Example.COM"),
        actor=SYSTEM,
    )
    assert error.code == "already_invited"
    assert error.existing_invitation_id == first.id
    assert first.id in error.message and "ANN@example.com" in error.message
    assert count(session, Invitation) == 1
    assert count(session, OutboxMessage) == 1
    assert stored_counters(session, org.id)["pending"] == 1


def test_duplicate_refusal_leaves_the_transaction_usable(session, org):
    """After AlreadyInvited (savepoint rolled back) the same transaction can go on and commit."""
    invite(session, org, "ann@example.com")
    with pytest.raises(AlreadyInvited):
        create_invitation(session, org, InvitationRequest("ann@example.com"), actor=SYSTEM)
    create_invitation(session, org, InvitationRequest("bob@example.com"), actor=SYSTEM)
    session.commit()
    assert sorted(session.scalars(select(Invitation.email_key))) == [
        "ann@example.com",
        "bob@example.com",
    ]
    assert stored_counters(session, org.id)["pending"] == 2


def test_reinvite_after_revoke_is_allowed(session, org):
    """The one-pending rule covers only pending rows: after a revoke the address can be invited."""
    first = invite(session, org, "ann@example.com").invitation
    revoke_invitation(session, org, first.id, actor=SYSTEM)
    session.commit()
    second = invite(session, org, "Ann@example.com").invitation
    assert second.id != first.id
    statuses = dict(session.execute(select(Invitation.id, Invitation.status)).all())
    assert statuses == {first.id: "revoked", second.id: "pending"}


def test_same_address_may_be_pending_in_two_orgs(session, org, make_org):
    """The one-pending rule is per organization."""
    other = make_org("Other", slug="other")
    invite(session, org, "ann@example.com")
    invite(session, other, "ann@example.com")
    assert count(session, Invitation, Invitation.status == "pending") == 2


def test_create_refuses_current_member(session, org):
    """Inviting someone who is already a member (any case) is AlreadyMember."""
    make_member(session, org, "ann@example.com")
    error = refused(
        session,
        AlreadyMember,
        create_invitation,
        org,
        InvitationRequest("Ann@EXAMPLE.com"),
        actor=SYSTEM,
    )
    assert error.code == "already_member"
    assert "Ann@example.com" in error.message and org.name in error.message
    assert count(session, Invitation) == 1


def test_member_of_another_org_can_be_invited(session, org, make_org):
    """Membership of another organization does not block an invitation."""
    other = make_org("Other", slug="other")
    make_member(session, other, "ann@example.com")
    assert invite(session, org, "ann@example.com").invitation.status == "pending"


def test_create_enforces_invite_quota(session, org):
    """With invite_quota=2, a third pending invitation is QuotaExceeded until one is revoked."""
    update_organization(session, org, invite_quota=2)
    session.commit()
    first = invite(session, org, "a@example.com").invitation
    invite(session, org, "b@example.com")
    error = refused(
        session,
        QuotaExceeded,
        create_invitation,
        org,
        InvitationRequest("c@example.com"),
        actor=SYSTEM,
    )
    assert error.code == "quota_exceeded"
    assert "quota is 2" in error.message
    assert count(session, Invitation) == 2
    revoke_invitation(session, org, first.id, actor=SYSTEM)
    session.commit()
    assert invite(session, org, "c@example.com").invitation.status == "pending"


def test_lapsed_invitations_do_not_use_quota(session, org, clock):
    """A pending invitation past its expiry no longer counts against the quota."""
    update_organization(session, org, invite_quota=1)
    session.commit()
    invite(session, org, "a@example.com", expires_in=timedelta(hours=1))
    refused(
        session,
        QuotaExceeded,
        create_invitation,
        org,
        InvitationRequest("b@example.com"),
        actor=SYSTEM,
    )
    clock.shift(timedelta(hours=1))
    assert invite(session, org, "b@example.com").invitation.status == "pending"


# ---------------------------------------------------------------------------
# create: audit, outbox, token, transaction
# ---------------------------------------------------------------------------


def test_create_writes_audit_events_and_outbox_row_in_same_transaction(session, org, clock):
    """Creating writes invitation.created and one outbox row before commit ('sent' comes later)."""
    issued = create_invitation(session, org, InvitationRequest("ann@example.com"), actor=SYSTEM)
    inv_id = issued.invitation.id
    # Visible inside the still-open transaction...
    assert event_types(session, inv_id) == ["invitation.created"]
    assert len(outbox_rows(session, inv_id)) == 1
    session.commit()
    # ...and committed together.
    inv = session.get(Invitation, inv_id)
    assert (inv.delivery_status, inv.send_count, inv.last_sent_at) == ("queued", 1, T0)
    [message] = outbox_rows(session, inv_id)
    assert message.kind == "invitation"
    assert message.status == "pending"
    assert message.to_email == "ann@example.com"
    assert message.org_id == org.id
    assert message.token_ciphertext
    assert token_of(issued) not in message.token_ciphertext
    created = session.scalar(select(AuditEvent).where(AuditEvent.type == "invitation.created"))
    assert created.data == {"email": "ann@example.com", "role": "member", "source": "api"}
    assert (created.actor_type, created.org_id) == ("system", org.id)


def test_create_without_notify_queues_no_email(session, org):
    """notify=False writes no outbox row, no invitation.sent event, delivery_status not_sent."""
    issued = invite(session, org, notify=False)
    inv = issued.invitation
    assert inv.delivery_status == "not_sent"
    assert outbox_rows(session, inv.id) == []
    assert event_types(session, inv.id) == ["invitation.created"]
    assert issued.accept_url.startswith(ACCEPT_PREFIX)


def test_token_is_stored_only_as_sha256(session, org):
    """The link is on PUBLIC_BASE_URL and only the SHA-256 of its token is stored."""
    issued = invite(session, org)
    token = token_of(issued)
    assert len(token) >= 43  # 32 random bytes, url-safe base64
    row = row_of(session, issued.invitation.id)
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps(row, default=str)
    assert get_invitation_by_token(session, token).id == issued.invitation.id
    assert get_invitation_by_token(session, row["token_hash"]) is None


def test_audit_events_never_contain_a_token(session, org, clock):
    """No audit event of create, resend, accept holds a raw token, its hash or the link."""
    project = create_project(session, org, "Apollo")
    session.commit()
    first = invite(session, org, project_grants=[{"project_id": project.id}])
    clock.shift(timedelta(minutes=2))
    second = resend_invitation(session, org, first.invitation.id, actor=SYSTEM)
    session.commit()
    accept_invitation(session, token_of(second))
    session.commit()
    secrets_ = {
        token_of(first),
        token_of(second),
        row_of(session, first.invitation.id)["token_hash"],
    }
    secrets_.add(hashlib.sha256(token_of(first).encode()).hexdigest())
    events = list(session.scalars(select(AuditEvent)))
    assert {e.type for e in events} >= {
        "invitation.created",
        "invitation.resent",
        "invitation.accepted",
    }
    for event in events:
        dumped = json.dumps(event.data)
        assert "invitations/accept" not in dumped
        for secret in secrets_:
            assert secret not in dumped, event.type


def test_rolled_back_create_leaves_nothing(session, org):
    """A rolled-back transaction leaves no invitation, outbox row, audit event or counter change."""
    create_invitation(session, org, InvitationRequest("ann@example.com"), actor=SYSTEM)
    session.rollback()
    assert count(session, Invitation) == 0
    assert count(session, OutboxMessage) == 0
    assert count(session, AuditEvent) == 0
    assert stored_counters(session, org.id) == totals()


# ---------------------------------------------------------------------------
# create_invitations
# ---------------------------------------------------------------------------


def test_bulk_create_reports_each_item_in_input_order(session, org):
    """create_invitations returns successes and failures per item, in input order."""
    requests = [
        InvitationRequest("a@example.com"),
        InvitationRequest("not an email"),
        InvitationRequest("b@example.com"),
        InvitationRequest("A@EXAMPLE.com"),  # duplicate of item 0 within the batch
        InvitationRequest("c@example.com", role="owner"),
        InvitationRequest("d@example.com"),
    ]
    result = create_invitations(session, org, requests, actor=SYSTEM)
    session.commit()
    assert [i for i, _ in result.successes] == [0, 2, 5]
    assert [issued.invitation.email for _, issued in result.successes] == [
        "a@example.com",
        "b@example.com",
        "d@example.com",
    ]
    assert [(f.index, f.email, type(f.error)) for f in result.failures] == [
        (1, "not an email", ValidationFailed),
        (3, "A@EXAMPLE.com", AlreadyInvited),
        (4, "c@example.com", ValidationFailed),
    ]
    assert field_codes(result.failures[0].error) == [("email", "invalid_email")]
    assert result.failures[1].error.existing_invitation_id == result.successes[0][1].invitation.id
    assert field_codes(result.failures[2].error) == [("role", "unknown_role")]
    assert sorted(session.scalars(select(Invitation.email))) == [
        "a@example.com",
        "b@example.com",
        "d@example.com",
    ]
    assert count(session, OutboxMessage) == 3
    assert stored_counters(session, org.id)["pending"] == 3
    for _, issued in result.successes:
        assert get_invitation_by_token(session, token_of(issued)).id == issued.invitation.id


# ---------------------------------------------------------------------------
# revoke
# ---------------------------------------------------------------------------


def test_revoke_pending_cancels_its_unsent_email(session, org, clock):
    """Revoking a pending invitation marks it revoked and cancels the unsent outbox row."""
    issued = invite(session, org)
    inv = revoke_invitation(session, org, issued.invitation.id, actor=SYSTEM)
    session.commit()
    assert (inv.status, inv.revoked_at) == ("revoked", T0)
    [message] = outbox_rows(session, inv.id)
    assert (message.status, message.token_ciphertext) == ("cancelled", None)
    assert "invitation.revoked" in event_types(session, inv.id)
    assert stored_counters(session, org.id) == totals(revoked=1)
    assert get_invitation_by_token(session, token_of(issued)).status == "revoked"


@pytest.mark.parametrize("state", ["accepted", "declined", "revoked", "lapsed", "expired"])
def test_revoke_only_pending(session, org, clock, state):
    """Revoking a non-pending invitation is InvalidTransition and changes nothing."""
    inv_id, _ = put_in_state(session, org, clock, state)
    before = row_of(session, inv_id)
    counters = stored_counters(session, org.id)
    events = event_types(session, inv_id)
    with pytest.raises(InvalidTransition) as info:
        revoke_invitation(session, org, inv_id, actor=SYSTEM)
    session.commit()  # even a caller that commits writes nothing
    effective = "expired" if state == "lapsed" else state
    assert info.value.code == "invalid_status"
    assert info.value.status == effective
    assert f"is {effective}" in info.value.message
    assert row_of(session, inv_id) == before
    assert stored_counters(session, org.id) == counters
    assert event_types(session, inv_id) == events


def test_revoke_another_orgs_invitation_is_not_found(session, org, make_org):
    """Another organization's invitation id is NotFound and stays pending."""
    other = make_org("Other", slug="other")
    foreign = invite(session, other).invitation
    error = refused(session, NotFound, revoke_invitation, org, foreign.id, actor=SYSTEM)
    assert error.code == "not_found"
    assert foreign.id in error.message
    refused(session, NotFound, revoke_invitation, org, "inv_doesnotexist", actor=SYSTEM)
    assert session.get(Invitation, foreign.id).status == "pending"


# ---------------------------------------------------------------------------
# resend
# ---------------------------------------------------------------------------


def test_resend_rotates_token_and_resets_expiry(session, org, clock):
    """Resend kills the old link, issues a new one, resets expiry, counts and queues the email."""
    first = invite(session, org)
    inv_id = first.invitation.id
    clock.shift(timedelta(days=2))
    second = resend_invitation(session, org, inv_id, actor=SYSTEM)
    session.commit()
    now = T0 + timedelta(days=2)
    assert second.accept_url != first.accept_url
    assert get_invitation_by_token(session, token_of(first)) is None
    assert get_invitation_by_token(session, token_of(second)).id == inv_id
    inv = session.get(Invitation, inv_id)
    assert inv.expires_at == now + timedelta(days=7)
    assert (inv.send_count, inv.last_sent_at, inv.status) == (2, now, "pending")
    old, new = outbox_rows(session, inv_id)
    assert (old.status, old.token_ciphertext) == ("cancelled", None)
    assert (new.status, new.kind) == ("pending", "invitation_resend")
    resent = session.scalar(select(AuditEvent).where(AuditEvent.type == "invitation.resent"))
    assert resent.invitation_id == inv_id
    assert resent.data["send_count"] == 2
    assert resent.data["reopened"] is False
    assert stored_counters(session, org.id) == totals(pending=1)


def test_resend_with_custom_expiry_and_without_email(session, org, clock):
    """Resend takes an expires_in and, with notify=False, queues no new email."""
    first = invite(session, org)
    clock.shift(timedelta(minutes=5))
    resend_invitation(
        session, org, first.invitation.id, actor=SYSTEM, notify=False, expires_in=timedelta(days=1)
    )
    session.commit()
    inv = session.get(Invitation, first.invitation.id)
    assert inv.expires_at == T0 + timedelta(minutes=5, days=1)
    assert inv.delivery_status == "not_sent"
    assert [m.status for m in outbox_rows(session, inv.id)] == ["cancelled"]
    clock.shift(timedelta(minutes=5))
    error = refused(
        session,
        ValidationFailed,
        resend_invitation,
        org,
        inv.id,
        actor=SYSTEM,
        expires_in=timedelta(days=31),
    )
    assert field_codes(error) == [("expires_in", "expiry_out_of_range")]


def test_resend_is_throttled(session, org, clock):
    """A resend within RESEND_MIN_INTERVAL_SECONDS is Throttled with retry_after_seconds."""
    assert current_app.config["RESEND_MIN_INTERVAL_SECONDS"] == 60
    issued = invite(session, org)
    clock.shift(timedelta(seconds=20.5))
    error = refused(session, Throttled, resend_invitation, org, issued.invitation.id, actor=SYSTEM)
    assert error.code == "throttled"
    assert error.retry_after_seconds == 40
    assert session.get(Invitation, issued.invitation.id).send_count == 1
    assert get_invitation_by_token(session, token_of(issued)) is not None
    clock.shift(timedelta(seconds=39.5))  # exactly 60 s after the last send
    resend_invitation(session, org, issued.invitation.id, actor=SYSTEM)
    session.commit()
    assert session.get(Invitation, issued.invitation.id).send_count == 2


def test_resend_retry_after_is_the_remaining_wait(session, org, clock):
    """retry_after_seconds is the remaining wait rounded up, never more than the interval."""
    issued = invite(session, org)
    error = refused(session, Throttled, resend_invitation, org, issued.invitation.id, actor=SYSTEM)
    assert error.retry_after_seconds == 60
    clock.shift(timedelta(seconds=20))
    error = refused(session, Throttled, resend_invitation, org, issued.invitation.id, actor=SYSTEM)
    assert error.retry_after_seconds == 40


@pytest.mark.parametrize("swept", [False, True])
def test_resend_reopens_expired_invitation(session, org, clock, swept):
    """Resend of an expired invitation (swept or not) re-opens it as pending with a working link."""
    first = invite(session, org, expires_in=timedelta(hours=1))
    inv_id = first.invitation.id
    clock.shift(timedelta(days=3))
    if swept:
        assert expire_due_invitations(session) == 1
        session.commit()
        assert stored_counters(session, org.id) == totals(expired=1)
    second = resend_invitation(session, org, inv_id, actor=SYSTEM)
    session.commit()
    inv = session.get(Invitation, inv_id)
    now = T0 + timedelta(days=3)
    assert inv.status == "pending"
    assert inv.effective_status(now) == "pending"
    assert inv.expires_at == now + timedelta(days=7)
    assert stored_counters(session, org.id) == totals(pending=1)
    resent = session.scalar(select(AuditEvent).where(AuditEvent.type == "invitation.resent"))
    assert resent.data["reopened"] is True
    refused(session, InvitationUnavailable, accept_invitation, token_of(first))
    assert accept_invitation(session, token_of(second)).invitation.status == "accepted"


@pytest.mark.parametrize("state", ["accepted", "revoked", "declined"])
def test_resend_refuses_final_states(session, org, clock, state):
    """Resend of an accepted, revoked or declined invitation is InvalidTransition, no change."""
    inv_id, _ = put_in_state(session, org, clock, state)
    before = row_of(session, inv_id)
    outbox_before = count(session, OutboxMessage)
    with pytest.raises(InvalidTransition) as info:
        resend_invitation(session, org, inv_id, actor=SYSTEM)
    session.commit()
    assert info.value.status == state
    assert "pending or expired" in info.value.message
    assert row_of(session, inv_id) == before
    assert count(session, OutboxMessage) == outbox_before


def test_resend_expired_when_newer_pending_exists(session, org, clock):
    """Re-opening an expired invitation while a newer one is pending is AlreadyInvited."""
    old = invite(session, org, "ann@example.com", expires_in=timedelta(hours=1)).invitation
    clock.shift(timedelta(hours=2))
    expire_due_invitations(session)
    session.commit()
    newer = invite(session, org, "Ann@example.com").invitation
    error = refused(session, AlreadyInvited, resend_invitation, org, old.id, actor=SYSTEM)
    assert error.existing_invitation_id == newer.id
    assert row_of(session, old.id)["status"] == "expired"
    assert stored_counters(session, org.id) == totals(pending=1, expired=1)


def test_resend_does_not_reopen_for_a_current_member(session, org, clock):
    """Re-opening an expired invitation is refused once the address is a member (AlreadyMember)."""
    old = invite(session, org, "ann@example.com", expires_in=timedelta(hours=1)).invitation.id
    clock.shift(timedelta(hours=2))
    expire_due_invitations(session)
    session.commit()
    make_member(session, org, "ann@example.com")
    clock.shift(timedelta(minutes=5))
    refused(session, AlreadyMember, resend_invitation, org, old, actor=SYSTEM)
    assert row_of(session, old)["status"] == "expired"


def test_resend_reopen_respects_invite_quota(session, org, clock):
    """Re-opening an expired invitation counts against the invite quota like a new one."""
    update_organization(session, org, invite_quota=1)
    session.commit()
    old = invite(session, org, "a@example.com", expires_in=timedelta(hours=1)).invitation.id
    clock.shift(timedelta(hours=2))
    invite(session, org, "b@example.com")  # allowed: a has lapsed
    refused(session, QuotaExceeded, resend_invitation, org, old, actor=SYSTEM)
    assert status_totals(session, org.id)["pending"] == 1


def test_resend_limit_per_invitation(session, org, clock, app):
    """After MAX_SENDS_PER_INVITATION sends, resend is Throttled."""
    app.config["MAX_SENDS_PER_INVITATION"] = 3
    inv_id = invite(session, org).invitation.id
    for _ in range(2):
        clock.shift(timedelta(minutes=2))
        resend_invitation(session, org, inv_id, actor=SYSTEM)
        session.commit()
    clock.shift(timedelta(minutes=2))
    error = refused(session, Throttled, resend_invitation, org, inv_id, actor=SYSTEM)
    assert "3 times" in error.message
    assert error.retry_after_seconds > 0
    assert session.get(Invitation, inv_id).send_count == 3


def test_resend_another_orgs_invitation_is_not_found(session, org, make_org, clock):
    """Resend of another organization's invitation is NotFound."""
    other = make_org("Other", slug="other")
    foreign = invite(session, other).invitation
    clock.shift(timedelta(minutes=5))
    refused(session, NotFound, resend_invitation, org, foreign.id, actor=SYSTEM)
    assert session.get(Invitation, foreign.id).send_count == 1


# ---------------------------------------------------------------------------
# accept
# ---------------------------------------------------------------------------


def test_accept_creates_user_membership_and_project_memberships(session, org, clock):
    """Accepting creates the user, the membership (role, metadata) and project memberships."""
    apollo = create_project(session, org, "Apollo")
    gemini = create_project(session, org, "Gemini")
    session.commit()
    issued = invite(
        session,
        org,
        "Ann.Lee@Example.com",
        public_metadata={"team": "blue"},
        private_metadata={"plan": "pro"},
        project_grants=[{"project_id": apollo.id, "role": "owner"}, {"project_id": gemini.id}],
        redirect_url=WELCOME,
    )
    clock.shift(timedelta(hours=3))
    result = accept_invitation(session, token_of(issued), name="  Ann Lee ")
    session.commit()
    assert result.already_accepted is False
    assert result.redirect_url == WELCOME
    user = session.get(User, result.user.id)
    assert (user.email, user.email_key, user.name) == (
        "Ann.Lee@example.com",
        "ann.lee@example.com",
        "Ann Lee",
    )
    assert user.password_hash is None
    membership = session.get(Membership, result.membership.id)
    assert (membership.org_id, membership.user_id, membership.role) == (org.id, user.id, "member")
    assert membership.public_metadata == {"team": "blue"}
    assert membership.private_metadata == {"plan": "pro"}
    assert membership.invitation_id == issued.invitation.id
    grants = dict(
        session.execute(
            select(ProjectMembership.project_id, ProjectMembership.role).where(
                ProjectMembership.user_id == user.id
            )
        ).all()
    )
    assert grants == {apollo.id: "owner", gemini.id: "member"}
    inv = session.get(Invitation, issued.invitation.id)
    assert inv.status == "accepted"
    assert inv.accepted_at == T0 + timedelta(hours=3)
    assert inv.accepted_user_id == user.id
    assert stored_counters(session, org.id) == totals(accepted=1)
    assert status_totals(session, org.id) == totals(accepted=1)
    assert "invitation.accepted" in event_types(session, inv.id)
    assert [m.status for m in outbox_rows(session, inv.id)] == ["cancelled"]


def test_second_accept_returns_the_same_result(session, org):
    """A repeated accept returns already_accepted=True with the same user, membership, redirect."""
    issued = invite(session, org, redirect_url=WELCOME)
    first = accept_invitation(session, token_of(issued))
    session.commit()
    ids = (first.user.id, first.membership.id)
    again = accept_invitation(session, token_of(issued))
    session.commit()
    assert again.already_accepted is True
    assert (again.user.id, again.membership.id) == ids
    assert again.redirect_url == first.redirect_url == WELCOME
    assert count(session, Membership) == 1
    assert count(session, User) == 1
    assert event_types(session, issued.invitation.id).count("invitation.accepted") == 1
    assert stored_counters(session, org.id) == totals(accepted=1)


def test_accept_existing_user_links_it(session, org):
    """An address that already has a user (member elsewhere) is linked, not duplicated."""
    admin, _ = create_admin_user(session, email="Ann@example.com", password=PASSWORD)
    session.commit()
    result = accept_invitation(session, token_of(invite(session, org, "ann@EXAMPLE.com")))
    session.commit()
    assert result.user.id == admin.id
    assert count(session, User) == 1


def test_accept_after_expiry_is_unavailable_before_any_sweep(session, org, clock):
    """Once the clock passes expires_at, accept is InvitationUnavailable even before the sweep."""
    issued = invite(session, org, "a@example.com", expires_in=timedelta(hours=1))
    twin = invite(session, org, "b@example.com", expires_in=timedelta(hours=1))
    clock.shift(timedelta(minutes=59, seconds=59))
    assert accept_invitation(session, token_of(twin)).invitation.status == "accepted"
    session.commit()
    clock.shift(timedelta(seconds=1))
    error = refused(session, InvitationUnavailable, accept_invitation, token_of(issued))
    assert error.code == "invitation_unavailable"
    assert row_of(session, issued.invitation.id)["status"] == "pending"
    assert count(session, User, User.email_key == "a@example.com") == 0


def test_unavailable_links_are_indistinguishable(session, org, clock):
    """Unknown, revoked, declined and expired links raise the same error with the same message."""
    _, revoked = put_in_state(session, org, clock, "revoked", "r@example.com")
    _, declined = put_in_state(session, org, clock, "declined", "d@example.com")
    _, expired = put_in_state(session, org, clock, "expired", "e@example.com")
    _, lapsed = put_in_state(session, org, clock, "lapsed", "l@example.com")
    tokens = [revoked, declined, lapsed, expired, "no-such-token", "", "x" * 500]
    messages = set()
    for token in tokens:
        error = refused(session, InvitationUnavailable, accept_invitation, token)
        assert error.code == "invitation_unavailable"
        messages.add(error.message)
    assert messages == {"This invitation is no longer valid. Ask your admin for a new one."}
    assert count(session, Membership) == 0


def test_admin_role_requires_a_password(session, org, clock):
    """Accepting an admin role without a password is ValidationFailed on "password", no change."""
    issued = invite(session, org, role="admin")
    for password in (None, "short"):
        error = refused(
            session, ValidationFailed, accept_invitation, token_of(issued), password=password
        )
        assert field_codes(error) == [("password", "password_too_short")]
    assert row_of(session, issued.invitation.id)["status"] == "pending"
    assert count(session, User) == 0
    result = accept_invitation(session, token_of(issued), password=PASSWORD)
    session.commit()
    assert result.membership.role == "admin"
    assert verify_password(session.get(User, result.user.id), PASSWORD)


def test_admin_role_without_password_when_user_has_one(session, org):
    """A user who already has a password accepts an admin role without giving one."""
    user, _ = create_admin_user(session, email="boss@example.com", password=PASSWORD)
    session.commit()
    old_hash = user.password_hash
    result = accept_invitation(
        session, token_of(invite(session, org, "boss@example.com", role="admin"))
    )
    session.commit()
    assert result.membership.role == "admin"
    assert session.get(User, user.id).password_hash == old_hash


def test_member_role_needs_no_password(session, org):
    """A non-admin role is accepted without a password and none is stored."""
    result = accept_invitation(session, token_of(invite(session, org)), password=PASSWORD)
    session.commit()
    assert session.get(User, result.user.id).password_hash is None


def test_redirect_is_rechecked_at_accept_time(session, org):
    """An origin removed from the allowlist after creation gives redirect_url None at accept."""
    issued = invite(session, org, redirect_url=WELCOME)
    update_organization(session, org, allowed_redirect_origins=[])
    session.commit()
    result = accept_invitation(session, token_of(issued))
    session.commit()
    assert result.redirect_url is None
    assert redirect_target(session, session.get(Invitation, issued.invitation.id)) is None
    assert accept_invitation(session, token_of(issued)).redirect_url is None


def test_org_default_redirect_is_used_and_rechecked(session, org):
    """Without its own redirect the org's default is used, subject to the current allowlist."""
    update_organization(session, org, default_redirect_url="https://app.example.com/home")
    session.commit()
    issued = invite(session, org)
    assert accept_invitation(session, token_of(issued)).redirect_url == (
        "https://app.example.com/home"
    )
    session.commit()
    org.allowed_redirect_origins = ["https://other.example.com"]
    session.commit()
    assert accept_invitation(session, token_of(issued)).redirect_url is None


def test_accept_refuses_bad_name(session, org):
    """A name with control characters is ValidationFailed on "name" and nothing is accepted."""
    issued = invite(session, org)
    error = refused(session, ValidationFailed, accept_invitation, token_of(issued), name="a\x00b")
    assert field_codes(error) == [("name", "invalid")]
    assert row_of(session, issued.invitation.id)["status"] == "pending"


# ---------------------------------------------------------------------------
# decline
# ---------------------------------------------------------------------------


def test_decline_once_then_already_declined(session, org, clock):
    """Decline works once; a second decline says already_declined; accept then fails."""
    issued = invite(session, org)
    inv, already = decline_invitation(session, token_of(issued))
    session.commit()
    assert (inv.status, inv.declined_at, already) == ("declined", T0, False)
    assert [m.status for m in outbox_rows(session, inv.id)] == ["cancelled"]
    assert stored_counters(session, org.id) == totals(declined=1)
    again, already = decline_invitation(session, token_of(issued))
    session.commit()
    assert (again.id, already) == (inv.id, True)
    assert event_types(session, inv.id).count("invitation.declined") == 1
    refused(session, InvitationUnavailable, accept_invitation, token_of(issued))
    assert row_of(session, inv.id)["status"] == "declined"
    assert count(session, Membership) == 0


@pytest.mark.parametrize("state", ["accepted", "revoked", "lapsed"])
def test_decline_of_non_pending_is_unavailable(session, org, clock, state):
    """Declining an accepted, revoked or expired link is InvitationUnavailable and no change."""
    inv_id, token = put_in_state(session, org, clock, state)
    before = row_of(session, inv_id)
    refused(session, InvitationUnavailable, decline_invitation, token)
    refused(session, InvitationUnavailable, decline_invitation, "unknown-token")
    assert row_of(session, inv_id) == before


# ---------------------------------------------------------------------------
# expiry
# ---------------------------------------------------------------------------


def test_lapsed_invitation_is_expired_everywhere_before_the_sweep(session, org, clock):
    """Past expires_at, a pending invitation is expired in status, lists and totals at once."""
    inv_id = invite(session, org, expires_in=timedelta(hours=1)).invitation.id
    clock.shift(timedelta(minutes=59))
    now = T0 + timedelta(minutes=59)
    assert session.get(Invitation, inv_id).effective_status(now) == "pending"
    assert status_totals(session, org.id) == totals(pending=1)
    clock.shift(timedelta(minutes=1))
    now = T0 + timedelta(hours=1)
    inv = session.get(Invitation, inv_id)
    assert inv.status == "pending"  # nothing swept yet
    assert inv.effective_status(now) == "expired"
    expired_page = list_invitations(session, org, InvitationQuery(statuses=["expired"]))
    pending_page = list_invitations(session, org, InvitationQuery(statuses=["pending"]))
    assert [i.id for i in expired_page.items] == [inv_id]
    assert pending_page.items == []
    assert (expired_page.total, pending_page.total) == (1, 0)
    assert status_totals(session, org.id) == totals(expired=1)
    assert expired_page.totals_by_status == totals(expired=1)
    assert stored_counters(session, org.id) == totals(pending=1)


def test_sweep_writes_status_event_and_counters(session, org, clock):
    """expire_due_invitations writes status expired, an invitation.expired event and counters."""
    due = invite(session, org, "a@example.com", expires_in=timedelta(hours=1)).invitation.id
    later = invite(session, org, "b@example.com", expires_in=timedelta(hours=2)).invitation.id
    clock.shift(timedelta(hours=1, minutes=30))
    assert expire_due_invitations(session) == 1
    session.commit()
    assert row_of(session, due)["status"] == "expired"
    assert row_of(session, later)["status"] == "pending"
    event = session.scalar(select(AuditEvent).where(AuditEvent.type == "invitation.expired"))
    assert (event.invitation_id, event.org_id, event.actor_type) == (due, org.id, "system")
    assert event.data == {"email": "a@example.com"}
    assert [m.status for m in outbox_rows(session, due)] == ["cancelled"]
    assert [m.status for m in outbox_rows(session, later)] == ["pending"]
    assert stored_counters(session, org.id) == totals(pending=1, expired=1)
    assert status_totals(session, org.id) == totals(pending=1, expired=1)
    assert expire_due_invitations(session) == 0


def test_sweep_works_in_batches(session, org, clock):
    """The sweep expires at most batch_size rows per call until none are left."""
    for n in range(5):
        invite(session, org, f"u{n}@example.com", expires_in=timedelta(hours=1), notify=False)
    clock.shift(timedelta(hours=2))
    assert expire_due_invitations(session, batch_size=2) == 2
    assert expire_due_invitations(session, batch_size=2) == 2
    assert expire_due_invitations(session, batch_size=2) == 1
    assert expire_due_invitations(session, batch_size=2) == 0
    session.commit()
    assert stored_counters(session, org.id) == totals(expired=5)
    assert count(session, AuditEvent, AuditEvent.type == "invitation.expired") == 5


@pytest.mark.parametrize("state", ["accepted", "declined", "revoked"])
def test_terminal_states_never_change(session, org, clock, state):
    """Accepted, declined and revoked invitations are untouched by time and by the sweep."""
    inv_id, _ = put_in_state(session, org, clock, state)
    before = row_of(session, inv_id)
    clock.shift(timedelta(days=60))
    assert expire_due_invitations(session) == 0
    session.commit()
    assert row_of(session, inv_id) == before
    inv = session.get(Invitation, inv_id)
    assert inv.effective_status(T0 + timedelta(days=61)) == state


def test_accept_after_sweep_fails(session, org, clock):
    """An expired (swept) invitation cannot be accepted or revoked."""
    inv_id, token = put_in_state(session, org, clock, "expired")
    refused(session, InvitationUnavailable, accept_invitation, token)
    refused(session, InvalidTransition, revoke_invitation, org, inv_id, actor=SYSTEM)
    assert row_of(session, inv_id)["status"] == "expired"


def test_reinvite_after_lapse_before_sweep(session, org, clock):
    """An address whose invitation has lapsed (not yet swept) can be invited again at once."""
    old = invite(session, org, "ann@example.com", expires_in=timedelta(hours=1)).invitation.id
    clock.shift(timedelta(hours=2))
    new = invite(session, org, "ann@example.com").invitation
    assert new.id != old
    assert new.status == "pending"
    assert row_of(session, old)["status"] == "expired"
    assert "invitation.expired" in event_types(session, old)
    assert [m.status for m in outbox_rows(session, old)] == ["cancelled"]
    assert status_totals(session, org.id) == totals(pending=1, expired=1)
    assert stored_counters(session, org.id) == totals(pending=1, expired=1)


# ---------------------------------------------------------------------------
# counters
# ---------------------------------------------------------------------------


def test_counters_match_real_counts_after_mixed_operations(session, org, make_org, clock):
    """status_totals equals count(*) by effective status after every kind of operation."""
    other = make_org("Other", slug="other")
    invite(session, other, "noise@example.com")  # another org's rows never leak in
    hour = timedelta(hours=1)
    issued = {
        name: invite(
            session, org, f"{name}@example.com", expires_in=hour if name in "efg" else None
        )
        for name in "abcdefgh"
    }
    ids = {name: i.invitation.id for name, i in issued.items()}

    def check():
        now = T0 + elapsed
        real = real_totals(session, org.id, now)
        assert status_totals(session, org.id) == real
        return real

    elapsed = timedelta(0)
    accept_invitation(session, token_of(issued["a"]))
    decline_invitation(session, token_of(issued["b"]))
    revoke_invitation(session, org, ids["c"], actor=SYSTEM)
    session.commit()
    # Refusals change nothing.
    refused(session, InvalidTransition, revoke_invitation, org, ids["c"], actor=SYSTEM)
    refused(
        session,
        AlreadyInvited,
        create_invitation,
        org,
        InvitationRequest("d@example.com"),
        actor=SYSTEM,
    )
    assert check() == totals(pending=5, accepted=1, declined=1, revoked=1)

    clock.shift(timedelta(minutes=2))
    elapsed += timedelta(minutes=2)
    resend_invitation(session, org, ids["d"], actor=SYSTEM)
    session.commit()
    assert check() == totals(pending=5, accepted=1, declined=1, revoked=1)

    clock.shift(hour)
    elapsed += hour
    assert check() == totals(pending=2, expired=3, accepted=1, declined=1, revoked=1)

    assert expire_due_invitations(session) == 3
    session.commit()
    assert stored_counters(session, org.id) == check()

    clock.shift(timedelta(minutes=5))
    elapsed += timedelta(minutes=5)
    resend_invitation(session, org, ids["e"], actor=SYSTEM)  # re-open a swept one
    revoke_invitation(session, org, ids["h"], actor=SYSTEM)
    accept_invitation(session, token_of(invite(session, org, "i@example.com", expires_in=hour)))
    invite(session, org, "j@example.com", expires_in=hour)
    session.commit()
    clock.shift(hour)
    elapsed += hour
    # e was re-opened for 7 days; j (1 hour) has lapsed but is not swept.
    expected = totals(pending=2, expired=3, accepted=2, declined=1, revoked=2)
    assert check() == expected

    stored_before = stored_counters(session, org.id)
    rebuilt = rebuild_counters(session, org.id)
    session.commit()
    assert rebuilt == stored_before
    assert stored_counters(session, org.id) == rebuilt
    assert check() == expected

    expire_due_invitations(session)
    session.commit()
    assert rebuild_counters(session, org.id) == expected == stored_counters(session, org.id)
    assert status_totals(session, other.id) == totals(pending=1)


def test_rebuild_counters_repairs_drift(session, org):
    """rebuild_counters recomputes counters that drifted from the rows."""
    invite(session, org, "a@example.com")
    invite(session, org, "b@example.com")
    row = session.get(InvitationCounter, (org.id, "pending"))
    row.count = 99
    session.commit()
    assert status_totals(session, org.id)["pending"] == 99
    assert rebuild_counters(session, org.id) == totals(pending=2)
    session.commit()
    assert status_totals(session, org.id) == totals(pending=2)
