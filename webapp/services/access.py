"""Who may manage which organization from the dashboard."""

from __future__ import annotations

from functools import cache

from sqlalchemy import Select
from sqlalchemy import bindparam
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm import selectinload

from webapp.models import Membership
from webapp.models import Organization
from webapp.models import OrgRole
from webapp.models import User
from webapp.services.errors import Forbidden
from webapp.services.errors import NotFound


def managed_organizations(session: Session, user: User) -> list[Organization]:
    """Superusers: every organization; others: those where their role administers."""
    query = select(Organization).options(selectinload(Organization.roles))
    if not user.is_superuser:
        query = (
            query.join(Membership, Membership.org_id == Organization.id)
            .join(
                OrgRole,
                (OrgRole.org_id == Organization.id) & (OrgRole.key == Membership.role),
            )
            .where(Membership.user_id == user.id, OrgRole.is_admin.is_(True))
        )
    return list(session.scalars(query.order_by(Organization.name)))


def organization_for_admin(session: Session, user: User, slug: str) -> Organization:
    """The organization ``slug`` if ``user`` manages it.

    NotFound when it does not exist or the user has nothing to do with it (no hint it
    exists); Forbidden when the user is a member without an admin role.
    """
    org = session.scalar(_organization_by_slug(), {"slug": slug})
    if org is None:
        raise NotFound(f"no organization {slug!r}")
    if user.is_superuser:
        return org
    member_role = session.scalar(_member_role(), {"org_id": org.id, "user_id": user.id})
    if member_role is None:
        raise NotFound(f"no organization {slug!r}")
    role = org.role(member_role)
    if role is None or not role.is_admin:
        raise Forbidden(f"you are not an admin of {org.name}")
    return org


@cache
def _organization_by_slug() -> Select:
    """Built once: every dashboard page of an organization runs it. The roles load when
    first used (the list fragment has no use for them)."""
    return select(Organization).where(Organization.slug == bindparam("slug"))


@cache
def _member_role() -> Select:
    return select(Membership.role).where(
        Membership.org_id == bindparam("org_id"), Membership.user_id == bindparam("user_id")
    )
