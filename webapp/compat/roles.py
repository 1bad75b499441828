"""How each vendor's role names map onto an organization's roles, and back.

An organization defines its own role keys (default ``admin`` and ``member``). A vendor
role that is also a key of the organization is that role; otherwise:

- Clerk: ``org:admin`` is the org's admin role, ``org:member`` its default role, and
  ``org:<key>`` the role ``<key>``. Read back as ``org:<key>`` (``org:admin`` and
  ``org:member`` for the roles those names stand for).
- OpenAI: ``owner`` is the admin role, ``reader`` the default role. Read back as
  ``owner`` for a role that administers, ``reader`` for any other.
- Anthropic: ``user``, ``developer``, ``billing`` and ``claude_code_user`` are the org
  role of the same key when there is one that does not administer, else the default
  role; ``admin`` (or any role that administers) cannot be given through the API. Read
  back as the key itself when it is one of Anthropic's role names, ``admin`` for a role
  that administers, ``user`` for any other.

docs/compat.md says the same for users of these APIs.
"""

from __future__ import annotations

from collections.abc import Iterable

from webapp.models import Organization
from webapp.services.errors import ValidationFailed
from webapp.services.organizations import admin_role

CLERK_ADMIN = "org:admin"
CLERK_MEMBER = "org:member"
CLERK_PREFIX = "org:"

OPENAI_OWNER = "owner"
OPENAI_READER = "reader"
OPENAI_ROLES = (OPENAI_OWNER, OPENAI_READER)

ANTHROPIC_ADMIN = "admin"
ANTHROPIC_USER = "user"
# What Anthropic's Admin API lets a key invite someone as (Console organizations).
ANTHROPIC_INVITE_ROLES = ("user", "developer", "billing", "claude_code_user")
# Every role name Anthropic's SDK accepts in a response.
ANTHROPIC_ROLES = (
    "admin",
    "billing",
    "claude_code_user",
    "developer",
    "managed",
    "membership_admin",
    "owner",
    "primary_owner",
    "user",
)


def _unknown(role: object, org: Organization, choices: str) -> ValidationFailed:
    return ValidationFailed.single(
        "role", "unknown_role", f"{role!r} is not a role of {org.name} (roles: {choices})"
    )


def _admin_role_key(org: Organization) -> str:
    role = admin_role(org)
    if role is None:
        raise ValidationFailed.single(
            "role", "no_admin_role", f"{org.name} has no role that administers it"
        )
    return role.key


def _is_admin(org: Organization, key: str) -> bool:
    role = org.role(key)
    return bool(role and role.is_admin)


# --- Clerk ---------------------------------------------------------------------------


def clerk_role_key(org: Organization, role: object) -> str:
    """The org role key for a Clerk role name (``org:admin``, ``org:member``, ``org:<key>``)."""
    if not isinstance(role, str) or not role:
        raise ValidationFailed.single("role", "required", "role is required, e.g. org:member")
    if org.role(role) is not None:
        return role
    if role == CLERK_ADMIN:
        return _admin_role_key(org)
    if role == CLERK_MEMBER:
        return org.default_role
    if role.startswith(CLERK_PREFIX) and org.role(role[len(CLERK_PREFIX) :]) is not None:
        return role[len(CLERK_PREFIX) :]
    choices = ", ".join(sorted({clerk_role(org, r.key) for r in org.roles}))
    raise _unknown(role, org, choices)


def clerk_role(org: Organization, key: str) -> str:
    """The Clerk role name an invitation with role ``key`` reads as."""
    if key.startswith(CLERK_PREFIX):
        return key
    admin = admin_role(org)
    if org.role(CLERK_ADMIN) is None and admin is not None and admin.key == key:
        return CLERK_ADMIN
    if org.role(CLERK_MEMBER) is None and org.default_role == key:
        return CLERK_MEMBER
    # If org:<key> is another role of the org, the bare key is the unambiguous name.
    return key if org.role(CLERK_PREFIX + key) is not None else CLERK_PREFIX + key


# --- OpenAI --------------------------------------------------------------------------


def openai_role_key(org: Organization, role: object) -> str:
    """The org role key for OpenAI's ``owner`` or ``reader``."""
    if role not in OPENAI_ROLES:
        raise ValidationFailed.single(
            "role", "invalid_role", f"{role!r} is not a role: use owner or reader"
        )
    assert isinstance(role, str)
    if org.role(role) is not None:
        return role
    return _admin_role_key(org) if role == OPENAI_OWNER else org.default_role


def openai_role(org: Organization, key: str) -> str:
    """``owner`` for a role that administers the org (or is called owner), else ``reader``."""
    return OPENAI_OWNER if key == OPENAI_OWNER or _is_admin(org, key) else OPENAI_READER


# --- Anthropic -----------------------------------------------------------------------


def anthropic_role_key(org: Organization, role: object) -> str:
    """The org role key for an Anthropic invite role; never a role that administers."""
    if role == ANTHROPIC_ADMIN or (isinstance(role, str) and _is_admin(org, role)):
        raise ValidationFailed.single(
            "role",
            "role_not_assignable",
            f"{role!r} cannot be assigned through the API; invite as one of "
            f"{', '.join(ANTHROPIC_INVITE_ROLES)}",
        )
    if role not in ANTHROPIC_INVITE_ROLES:
        raise ValidationFailed.single(
            "role",
            "invalid_role",
            f"{role!r} is not a role you can invite as (one of: "
            f"{', '.join(ANTHROPIC_INVITE_ROLES)})",
        )
    assert isinstance(role, str)
    if org.role(role) is not None:
        return role
    if _is_admin(org, org.default_role):
        raise ValidationFailed.single(
            "role",
            "role_not_assignable",
            f"{org.name} has no role {role!r} and its default role administers it",
        )
    return org.default_role


def anthropic_role(org: Organization, key: str) -> str:
    """The Anthropic role name an invitation with role ``key`` reads as."""
    if _is_admin(org, key):
        return ANTHROPIC_ADMIN
    if key in ANTHROPIC_ROLES:
        return key
    return ANTHROPIC_USER


def anthropic_role_keys(org: Organization, roles: Iterable[str]) -> list[str]:
    """The org role keys that read as any of these Anthropic role names (a list filter)."""
    wanted = set(roles)
    unknown = sorted(wanted - set(ANTHROPIC_ROLES))
    if unknown:
        raise ValidationFailed.single(
            "roles",
            "invalid_role",
            f"{unknown[0]!r} is not a role (one of: {', '.join(ANTHROPIC_ROLES)})",
        )
    return [r.key for r in org.roles if anthropic_role(org, r.key) in wanted]
