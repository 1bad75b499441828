"""Organization members: listing, changing roles, removing (never the last admin)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm import joinedload

from webapp.models import Membership
from webapp.models import Organization
from webapp.models import Project
from webapp.models import ProjectMembership
from webapp.models import User
from webapp.services.actors import Actor
from webapp.services.audit import record_event
from webapp.services.errors import Conflict
from webapp.services.errors import FieldError
from webapp.services.errors import NotFound
from webapp.services.errors import ValidationFailed
from webapp.services.organizations import role_exists
from webapp.services.organizations import unknown_role_error
from webapp.services.paging import newest_first_page
from webapp.services.search import contains

MAX_LIMIT = 100
MAX_QUERY_LENGTH = 254


@dataclass
class MemberPage:
    """Members newest first; ``total`` counts every match, over all pages."""

    items: list[Membership]
    has_more: bool
    total: int


@dataclass(frozen=True)
class RemovedMember:
    user_id: str
    email: str
    role: str
    project_memberships_removed: int


def list_members(
    session: Session,
    org: Organization,
    *,
    query: str | None = None,
    limit: int = 25,
    starting_after: str | None = None,
    ending_before: str | None = None,
) -> MemberPage:
    """One page of members, newest first, keyset-paged on ``(created_at, id)``.

    ``query`` matches part of the email address; the cursors are membership ids.
    """
    errors: list[FieldError] = []
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        errors.append(
            FieldError("limit", "out_of_range", f"limit must be between 1 and {MAX_LIMIT}")
        )
    if query is not None and len(query) > MAX_QUERY_LENGTH:
        errors.append(FieldError("query", "too_long", "the search is too long"))
    if starting_after and ending_before:
        errors.append(
            FieldError("ending_before", "conflicting_fields", "use starting_after or ending_before")
        )
    if errors:
        raise ValidationFailed(errors)

    conditions = [Membership.org_id == org.id]
    search = (query or "").strip().lower()
    if search:
        conditions.append(contains(User.email_key, search))
    total = (
        session.scalar(
            select(func.count())
            .select_from(Membership)
            .join(User, User.id == Membership.user_id)
            .where(*conditions)
        )
        or 0
    )

    rows, has_more = newest_first_page(
        session,
        select(Membership)
        .join(User, User.id == Membership.user_id)
        .where(*conditions)
        .options(joinedload(Membership.user)),
        Membership,
        org_id=org.id,
        limit=limit,
        starting_after=starting_after,
        ending_before=ending_before,
        noun="a member",
    )
    return MemberPage(items=rows, has_more=has_more, total=total)


def get_member(session: Session, org: Organization, member_id: str) -> Membership:
    """A membership of this organization by id (another org's is NotFound too)."""
    member = session.scalar(
        select(Membership)
        .where(Membership.id == member_id, Membership.org_id == org.id)
        .options(joinedload(Membership.user))
        .execution_options(populate_existing=True)
    )
    if member is None:
        raise NotFound(f"{org.name} has no member {member_id!r}")
    return member


def _lock_admins(session: Session, org: Organization) -> None:
    """Serialize changes to who administers ``org``.

    Two admins demoting each other at once would otherwise both see the other as
    "another admin" and leave the org with none. PostgreSQL: a row lock on the org;
    SQLite: every write transaction is already ``BEGIN IMMEDIATE``.
    """
    session.execute(
        select(Organization.id).where(Organization.id == org.id).with_for_update()
    ).all()


def _admin_keys(org: Organization) -> set[str]:
    return {r.key for r in org.roles if r.is_admin}


def _other_admins(session: Session, org: Organization, member: Membership) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Membership)
            .where(
                Membership.org_id == org.id,
                Membership.role.in_(_admin_keys(org)),
                Membership.id != member.id,
            )
        )
        or 0
    )


def _last_admin(org: Organization, member: Membership, actor: Actor, doing: str) -> Conflict:
    if actor.kind == "user" and actor.id == member.user_id:
        who = "You are"
    else:
        who = f"{member.user.email} is"
    return Conflict(
        f"{who} the last admin of {org.name}; make someone else an admin before {doing}",
        code="last_admin",
    )


def change_member_role(
    session: Session, org: Organization, member_id: str, role: str, *, actor: Actor
) -> Membership:
    """Give a member another of the org's roles; the last admin keeps an admin role."""
    _lock_admins(session, org)
    member = get_member(session, org, member_id)
    # After the lock, which remove_role also takes: the role as committed now.
    if not isinstance(role, str) or not role_exists(session, org, role):
        raise ValidationFailed([unknown_role_error(org, role)])
    old = member.role
    if role == old:
        return member
    admins = _admin_keys(org)
    if old in admins and role not in admins and not _other_admins(session, org, member):
        doing = "giving up yours" if actor.id == member.user_id else "changing their role"
        raise _last_admin(org, member, actor, doing)
    member.role = role
    session.flush()
    record_event(
        session,
        "member.role_changed",
        actor=actor,
        org_id=org.id,
        invitation_id=member.invitation_id,
        data={"user_id": member.user_id, "email": member.user.email, "from": old, "to": role},
    )
    return member


def remove_member(
    session: Session, org: Organization, member_id: str, *, actor: Actor
) -> RemovedMember:
    """Remove a member and their project memberships in this org; never the last admin."""
    _lock_admins(session, org)
    member = get_member(session, org, member_id)
    if member.role in _admin_keys(org) and not _other_admins(session, org, member):
        doing = "leaving" if actor.id == member.user_id else "removing them"
        raise _last_admin(org, member, actor, doing)
    projects = select(Project.id).where(Project.org_id == org.id)
    removed_projects = session.execute(
        delete(ProjectMembership)
        .where(
            ProjectMembership.user_id == member.user_id,
            ProjectMembership.project_id.in_(projects),
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    result = RemovedMember(
        user_id=member.user_id,
        email=member.user.email,
        role=member.role,
        project_memberships_removed=removed_projects or 0,
    )
    session.delete(member)
    session.flush()
    record_event(
        session,
        "member.removed",
        actor=actor,
        org_id=org.id,
        invitation_id=member.invitation_id,
        data={
            "user_id": result.user_id,
            "email": result.email,
            "role": result.role,
            "project_memberships_removed": result.project_memberships_removed,
        },
    )
    return result
