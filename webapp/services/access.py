"""Who may manage which organization (from the dashboard, or on whose behalf an API acts)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm import selectinload

from webapp.models import Membership
from webapp.models import Organization
from webapp.models import OrgRole
from webapp.models import User
from webapp.services.errors import Forbidden
from webapp.services.errors import NotFound
from webapp.services.errors import ValidationFailed


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
    org = session.scalar(
        select(Organization)
        .where(Organization.slug == slug)
        .options(selectinload(Organization.roles))
    )
    if org is None:
        raise NotFound(f"no organization {slug!r}")
    if user.is_superuser:
        return org
    membership = session.scalar(
        select(Membership).where(Membership.org_id == org.id, Membership.user_id == user.id)
    )
    if membership is None:
        raise NotFound(f"no organization {slug!r}")
    role = org.role(membership.role)
    if role is None or not role.is_admin:
        raise Forbidden(f"you are not an admin of {org.name}")
    return org


def org_admin_user(session: Session, org: Organization, user_id: object, field: str) -> User:
    """The user ``user_id`` if their role administers ``org``, else ValidationFailed on ``field``.

    For APIs that name the person they act for (Clerk's ``inviter_user_id``): only an
    admin of the organization may invite or revoke.
    """
    user = session.get(User, user_id) if isinstance(user_id, str) else None
    if user is None:
        raise ValidationFailed.single(field, "unknown_user", f"no user {user_id!r}")
    membership = session.scalar(
        select(Membership).where(Membership.org_id == org.id, Membership.user_id == user.id)
    )
    role = org.role(membership.role) if membership is not None else None
    if role is None or not role.is_admin:
        raise ValidationFailed.single(
            field, "not_an_admin", f"{user.id} is not an admin of {org.name}"
        )
    return user
