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
from webapp.services.prepared import PreparedStatement
from webapp.services.prepared import WholeRow


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
    member_role = None
    if org is not None and not user.is_superuser:
        member_role = session.scalar(_member_role(), {"org_id": org.id, "user_id": user.id})
    return managed_organization(user, org, member_role, slug)


def managed_organization(
    user: User, org: Organization | None, member_role: str | None, slug: str
) -> Organization:
    """The rule of :func:`organization_for_admin`, given what it reads: the organization
    ``slug`` (None if there is none) and the user's role in it (None if not a member)."""
    if org is None:
        raise NotFound(f"no organization {slug!r}")
    if user.is_superuser:
        return org
    if member_role is None:
        raise NotFound(f"no organization {slug!r}")
    role = org.role(member_role)
    if role is None or not role.is_admin:
        raise Forbidden(f"you are not an admin of {org.name}")
    return org


def user_with_organization(
    session: Session, user_id: str, slug: str
) -> tuple[User, Organization | None, str | None] | None:
    """The user ``user_id``, the organization ``slug`` and the user's role in it, in one
    query (a dashboard page of an organization needs all three; None when there is no
    such user). Feed them to :func:`managed_organization`.

    Read on the driver's cursor and attached to ``session`` as loaded objects: every
    dashboard page of an organization runs it, and the ORM's own loading costs more
    than the query."""
    rows = _USER_WITH_ORGANIZATION.run(session.connection(), {"user_id": user_id, "slug": slug})
    if not rows:
        return None
    row = rows[0]
    user_values = row[: len(_USER_ROW)]
    org_values = row[len(_USER_ROW) : len(_USER_ROW) + len(_ORGANIZATION_ROW)]
    return (
        _USER_ROW.attach(session, user_values),
        _ORGANIZATION_ROW.attach(session, org_values) if org_values[0] is not None else None,
        row[-1],
    )


_USER_ROW = WholeRow(User)
_ORGANIZATION_ROW = WholeRow(Organization)
_USER_WITH_ORGANIZATION = PreparedStatement(
    lambda: (
        select(*_USER_ROW.columns, *_ORGANIZATION_ROW.columns, Membership.role)
        .select_from(User)
        .outerjoin(Organization, Organization.slug == bindparam("slug"))
        .outerjoin(
            Membership,
            (Membership.org_id == Organization.id) & (Membership.user_id == User.id),
        )
        .where(User.id == bindparam("user_id"))
    )
)


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
