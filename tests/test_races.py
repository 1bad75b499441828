"""Concurrent callers, released together by a barrier on separate connections.

These run on PostgreSQL (Read Committed, where a naive check-then-update loses) and on
SQLite (where BEGIN IMMEDIATE serialises writers). Each race is repeated.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import text

from webapp.database import in_late_writes
from webapp.extensions import db
from webapp.models import Invitation
from webapp.models import InvitationStatus
from webapp.models import Membership
from webapp.models import Organization
from webapp.models import OrgRole
from webapp.services.actors import SYSTEM
from webapp.services.counters import status_totals
from webapp.services.errors import ServiceError
from webapp.services.invitation_transitions import accept_invitation
from webapp.services.invitation_transitions import revoke_invitation
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import create_invitation
from webapp.services.members import change_member_role
from webapp.services.organizations import add_admin_member
from webapp.services.organizations import add_role
from webapp.services.organizations import create_organization
from webapp.services.organizations import get_organization
from webapp.services.organizations import remove_role
from webapp.services.organizations import update_organization
from webapp.services.users import get_or_create_user

REPEATS = 3


def race(app, count: int, action: Callable[[], Any]) -> list[tuple[str, Any]]:
    """Run ``action`` in ``count`` threads, each in its own app context and connection.

    Every thread opens its connection first, then all wait on a barrier, then act and
    commit. Returns ``("ok", result)`` or ``("error", exception)`` per thread.
    """
    barrier = threading.Barrier(count)
    results: list[tuple[str, Any]] = [("missing", None)] * count

    def worker(index: int) -> None:
        with app.app_context():
            db.session.execute(text("SELECT 1"))  # hold a connection before the start
            db.session.commit()
            barrier.wait(timeout=30)
            try:
                outcome = action()
                db.session.commit()
                results[index] = ("ok", outcome)
            except ServiceError as exc:
                db.session.rollback()
                results[index] = ("error", exc)
            except Exception as exc:  # noqa: BLE001 - surfaced by the assertions
                db.session.rollback()
                results[index] = ("crash", exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.fixture
def race_org(app):
    with app.app_context():
        org = create_organization(db.session, name="Race Org")
        db.session.commit()
        return org.slug


def _invite(app, slug: str, email: str) -> str:
    """Create an invitation and return the raw token from its link."""
    with app.app_context():
        org = get_organization(db.session, slug)
        issued = create_invitation(
            db.session, org, InvitationRequest(email=email, notify=False), actor=SYSTEM
        )
        db.session.commit()
        return issued.accept_url.rsplit("/", 1)[1], issued.invitation.id


@pytest.mark.parametrize("attempt", range(REPEATS))
def test_forty_simultaneous_accepts_make_exactly_one_member(app, race_org, attempt):
    """40 accepts of one link: one membership, one winner, 39 see 'already accepted'."""
    token, invitation_id = _invite(app, race_org, f"racer{attempt}@example.com")

    def accept():
        result = accept_invitation(db.session, token)
        return result.already_accepted, result.membership.id, result.redirect_url

    results = race(app, 40, accept)

    assert [kind for kind, _ in results].count("ok") == 40, results
    fresh = [r for kind, r in results if not r[0]]
    assert len(fresh) == 1
    # Every caller gets the same answer: the same membership and the same redirect.
    assert len({(membership, redirect) for _, (_, membership, redirect) in results}) == 1
    with app.app_context():
        members = db.session.scalar(select(func.count()).select_from(Membership))
        assert members == 1
        invitation = db.session.get(Invitation, invitation_id)
        assert invitation.status == InvitationStatus.ACCEPTED
        totals = status_totals(db.session, invitation.org_id)
        assert totals["accepted"] == 1 and totals["pending"] == 0


@pytest.mark.parametrize("attempt", range(REPEATS))
def test_forty_simultaneous_creates_make_one_pending_invitation(app, race_org, attempt):
    """40 invites of one address: one pending invitation and 39 clean 'already invited'."""
    email = f"Same.Person{attempt}@Example.com"

    def create():
        org = get_organization(db.session, race_org)
        return create_invitation(
            db.session, org, InvitationRequest(email=email, notify=False), actor=SYSTEM
        ).invitation.id

    results = race(app, 40, create)

    outcomes = Counter(kind for kind, _ in results)
    assert outcomes == {"ok": 1, "error": 39}, results
    created_id = next(r for kind, r in results if kind == "ok")
    for kind, error in results:
        if kind == "error":
            assert error.code == "already_invited"
            assert error.existing_invitation_id == created_id
    with app.app_context():
        pending = db.session.scalar(
            select(func.count())
            .select_from(Invitation)
            .where(Invitation.email_key == email.lower(), Invitation.status == "pending")
        )
        assert pending == 1
        org = get_organization(db.session, race_org)
        assert status_totals(db.session, org.id)["pending"] == 1


@pytest.mark.parametrize("attempt", range(REPEATS * 3))
def test_revoke_racing_accept_ends_in_exactly_one(app, race_org, attempt):
    """A revoke and an accept at the same moment: exactly one of them wins."""
    token, invitation_id = _invite(app, race_org, f"contested{attempt}@example.com")

    def act(index: int):
        if index == 0:
            org = get_organization(db.session, race_org)
            return ("revoked", revoke_invitation(db.session, org, invitation_id, actor=SYSTEM).id)
        result = accept_invitation(db.session, token)
        return ("accepted", result.already_accepted)

    counter = iter(range(2))
    lock = threading.Lock()

    def action():
        with lock:
            index = next(counter)
        return act(index)

    results = race(app, 2, action)

    kinds = Counter(kind for kind, _ in results)
    assert kinds == {"ok": 1, "error": 1}, results
    winner = next(r for kind, r in results if kind == "ok")
    with app.app_context():
        invitation = db.session.get(Invitation, invitation_id)
        members = db.session.scalar(select(func.count()).select_from(Membership))
        if winner[0] == "revoked":
            assert invitation.status == "revoked" and members == 0
        else:
            assert invitation.status == "accepted" and members == 1
        totals = status_totals(db.session, invitation.org_id)
        assert totals["pending"] == 0
        assert totals["accepted"] + totals["revoked"] == 1


@pytest.mark.parametrize("attempt", range(REPEATS * 3))
def test_removing_a_role_racing_making_it_the_default_leaves_no_dangling_default(
    app, race_org, attempt
):
    """One admin removes the role 'guest' while another makes it the default: one of
    them wins, and the organization's default role is always one of its roles."""
    with app.app_context():
        add_role(db.session, get_organization(db.session, race_org), "guest", "Guest")
        db.session.commit()
    turns = itertools.count()

    def remove_or_make_default():
        org = get_organization(db.session, race_org)
        if next(turns) % 2 == 0:
            remove_role(db.session, org, "guest")
        else:
            update_organization(db.session, org, default_role="guest")

    results = race(app, 2, remove_or_make_default)
    assert [kind for kind, _ in results].count("crash") == 0, results
    with app.app_context():
        org = get_organization(db.session, race_org)
        assert org.role(org.default_role) is not None, (org.default_role, results)


@pytest.mark.parametrize("attempt", range(REPEATS))
def test_two_admins_removing_one_role_get_one_removal_and_one_not_found(app, race_org, attempt):
    with app.app_context():
        add_role(db.session, get_organization(db.session, race_org), "guest", "Guest")
        db.session.commit()

    def remove():
        remove_role(db.session, get_organization(db.session, race_org), "guest")

    results = race(app, 2, remove)
    kinds = sorted(kind for kind, _ in results)
    assert kinds == ["error", "ok"], results
    assert [type(e).__name__ for kind, e in results if kind == "error"] == ["NotFound"]


class HeldTransaction(threading.Thread):
    """Runs ``action`` in its own app context and connection, keeps its transaction open
    (its locks held) until ``commit`` is set, then commits. ``acted`` is set when the
    action has returned or failed; ``outcome`` is ``("ok", result)``, ``("error",
    ServiceError)`` or ``("crash", exception)`` once the thread ends."""

    def __init__(self, app, action: Callable[[], Any], *, late_writes: bool = False) -> None:
        super().__init__(daemon=True)
        self.app = app
        self.action = action
        self.late_writes = late_writes
        self.acted = threading.Event()
        self.commit = threading.Event()
        self.outcome: tuple[str, Any] = ("missing", None)

    def run(self) -> None:
        with self.app.app_context():
            token = in_late_writes.set(self.late_writes)
            try:
                result = self.action()
                self.acted.set()
                assert self.commit.wait(timeout=30)
                db.session.commit()
                self.outcome = ("ok", result)
            except ServiceError as exc:
                db.session.rollback()
                self.outcome = ("error", exc)
            except Exception as exc:  # noqa: BLE001 - surfaced by the assertions
                db.session.rollback()
                self.outcome = ("crash", exc)
            finally:
                self.acted.set()
                in_late_writes.reset(token)


def _add_guest_role(app, slug: str) -> None:
    with app.app_context():
        add_role(db.session, get_organization(db.session, slug), "guest", "Guest")
        db.session.commit()


def _invite_as_guest(slug: str, email: str):
    # As the API does: the organization without its roles loaded.
    org = db.session.get(Organization, get_organization(db.session, slug).id)
    db.session.expire(org, ["roles"])
    return create_invitation(
        db.session, org, InvitationRequest(email=email, role="guest", notify=False), actor=SYSTEM
    )


def _guest_references(app, slug: str) -> tuple[bool, int]:
    """Whether the role 'guest' exists, and how many pending invitations carry it."""
    with app.app_context():
        org = get_organization(db.session, slug)
        pending = db.session.scalar(
            select(func.count()).where(
                Invitation.org_id == org.id,
                Invitation.role == "guest",
                Invitation.status == InvitationStatus.PENDING.value,
            )
        )
        exists = db.session.scalar(
            select(func.count()).where(OrgRole.org_id == org.id, OrgRole.key == "guest")
        )
        return bool(exists), pending


def first_holds_then_second(
    app,
    first: Callable[[], Any],
    second: Callable[[], Any],
    *,
    first_late_writes: bool = False,
    second_late_writes: bool = False,
) -> tuple[tuple[str, Any], tuple[str, Any]]:
    """``first`` acts and keeps its transaction open; ``second`` then acts and commits
    (given a second to finish, which it does unless it waits for ``first``'s locks);
    then ``first`` commits. Both outcomes, first's and second's."""
    holder = HeldTransaction(app, first, late_writes=first_late_writes)
    holder.start()
    assert holder.acted.wait(timeout=30)
    assert holder.outcome == ("missing", None)  # holding its transaction open
    follower = HeldTransaction(app, second, late_writes=second_late_writes)
    follower.commit.set()
    follower.start()
    follower.acted.wait(timeout=1)  # without a lock to wait for, it is done by now
    holder.commit.set()
    holder.join(timeout=30)
    follower.join(timeout=30)
    return holder.outcome, follower.outcome


def _remove_guest(slug: str):
    return lambda: remove_role(db.session, get_organization(db.session, slug), "guest")


@pytest.mark.parametrize("late_writes", [False, True], ids=["dashboard", "api"])
def test_an_invitation_created_while_its_role_is_being_removed_is_refused(
    app, race_org, late_writes
):
    """The removal has checked that no one uses the role and has not committed yet; an
    invitation with that role (checked against the still-committed role) must wait and
    then be refused, not go in with a role that no longer exists."""
    _add_guest_role(app, race_org)
    removed, created = first_holds_then_second(
        app,
        _remove_guest(race_org),
        lambda: _invite_as_guest(race_org, "late@example.com"),
        second_late_writes=late_writes,
    )

    assert removed[0] == "ok", removed
    kind, error = created
    assert kind == "error", created
    assert [(e.field, e.code) for e in error.errors] == [("role", "unknown_role")]
    assert error.errors[0].message == "'guest' is not a role of Race Org (roles: admin, member)"
    assert _guest_references(app, race_org) == (False, 0)


@pytest.mark.parametrize("late_writes", [False, True], ids=["dashboard", "api"])
def test_removing_a_role_waits_for_the_invitation_being_created_with_it(app, race_org, late_writes):
    _add_guest_role(app, race_org)
    created, removed = first_holds_then_second(
        app,
        lambda: _invite_as_guest(race_org, "first@example.com"),
        _remove_guest(race_org),
        first_late_writes=late_writes,
    )

    assert created[0] == "ok", created
    kind, error = removed
    assert kind == "error" and error.code == "role_in_use", removed
    assert _guest_references(app, race_org) == (True, 1)


def test_a_member_cannot_be_given_a_role_being_removed(app, race_org):
    _add_guest_role(app, race_org)
    with app.app_context():
        org = get_organization(db.session, race_org)
        user = get_or_create_user(db.session, "m@example.com", "m@example.com", "M")
        member_id = add_admin_member(db.session, org, user, actor=SYSTEM).id
        add_admin_member(
            db.session,
            org,
            get_or_create_user(db.session, "a@example.com", "a@example.com", "A"),
            actor=SYSTEM,
        )
        db.session.commit()

    def give_guest():
        org = get_organization(db.session, race_org)
        org.roles  # noqa: B018 - loaded before the removal commits, as a view would
        return change_member_role(db.session, org, member_id, "guest", actor=SYSTEM)

    removed, changed = first_holds_then_second(app, _remove_guest(race_org), give_guest)

    assert removed[0] == "ok", removed
    kind, error = changed
    assert kind == "error", changed
    assert [(e.field, e.code) for e in error.errors] == [("role", "unknown_role")]
    with app.app_context():
        assert db.session.get(Membership, member_id).role == "admin"
