"""Who performs an action: a dashboard user, an API key, or the system itself."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.models import Membership
from webapp.models import Organization
from webapp.services.errors import ValidationFailed


@dataclass(frozen=True)
class Actor:
    kind: Literal["user", "api_key", "system"]
    id: str | None = None
    # An API key may act for a member of the organization (Clerk's inviter_user_id,
    # requesting_user_id): that user is then recorded as the inviter or revoker.
    on_behalf_of_user_id: str | None = None

    @classmethod
    def user(cls, user_id: str) -> Actor:
        return cls("user", user_id)

    @classmethod
    def api_key(cls, key_id: str) -> Actor:
        return cls("api_key", key_id)

    @property
    def user_id(self) -> str | None:
        """The person behind the action, when there is one."""
        return self.id if self.kind == "user" else self.on_behalf_of_user_id

    @property
    def api_key_id(self) -> str | None:
        return self.id if self.kind == "api_key" else None


SYSTEM = Actor("system", None)


def acting_for(
    session: Session,
    org: Organization,
    actor: Actor,
    user_id: str | None,
    field: str,
    *,
    must_administer: bool = False,
) -> Actor:
    """``actor`` acting for ``user_id``, who must be a member of ``org``; unchanged when None.

    With ``must_administer`` the member's role must administer the organization (Clerk:
    only admins may invite or revoke).
    """
    if user_id is None:
        return actor
    role_key = isinstance(user_id, str) and session.scalar(
        select(Membership.role).where(Membership.org_id == org.id, Membership.user_id == user_id)
    )
    if not role_key:
        raise ValidationFailed.single(
            field, "unknown_user", f"{user_id!r} is not a member of {org.name}"
        )
    if must_administer:
        role = org.role(role_key)
        if role is None or not role.is_admin:
            raise ValidationFailed.single(
                field, "not_an_admin", f"{user_id!r} is not an admin of {org.name}"
            )
    return replace(actor, on_behalf_of_user_id=user_id)
