"""Model objects → the API's JSON shapes (see ``webapp.api.schemas`` for the contract)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import Any

import orjson

from webapp.models import ApiKey
from webapp.models import Invitation
from webapp.models import Membership
from webapp.models import Organization
from webapp.models import Project
from webapp.models import User
from webapp.models.invitations import effective_status
from webapp.services.invitation_listing import InvitationPage
from webapp.services.invitation_listing import InvitationRow


def to_json(document: Any) -> bytes:
    """The API's encoding of a document built here: compact UTF-8 JSON, datetimes as
    RFC 3339 in UTC with a ``Z``, stored JSON text (``json_field``) verbatim."""
    return orjson.dumps(document, option=orjson.OPT_UTC_Z)


def as_sent(document: Any) -> Any:
    """A document as a client decodes it (plain JSON values): the CLI's local mode
    shows exactly what the API would send."""
    return orjson.loads(to_json(document))


def timestamp(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a ``Z`` (microseconds kept: they order cursors)."""
    if value is None:
        return None
    if value.tzinfo is not UTC:  # the database layer already gives UTC
        value = value.astimezone(UTC)
    return value.isoformat().replace("+00:00", "Z")


def utc(value: datetime | None) -> datetime | None:
    """The moment in UTC, left for ``to_json`` to write (as ``timestamp`` would, faster:
    a list page has 140 of them)."""
    if value is None or value.tzinfo is UTC:  # the database layer already gives UTC
        return value
    return value.astimezone(UTC)


def json_field(value: Any, empty: Any) -> Any:
    """A JSON column's value as a response carries it: decoded values as they are, the
    stored JSON text (a list read with ``json_as_text``) verbatim, a null as ``empty``."""
    if type(value) is str:
        return empty if value == "null" else orjson.Fragment(value)
    return value or empty


def _project_grants(value: Any) -> list[dict[str, str]]:
    if not value:
        return []
    if type(value) is str:
        if value in ("[]", "null"):
            return []
        value = orjson.loads(value)
    return [{"id": g["project_id"], "role": g["role"]} for g in value]


# The columns invitation_json reads: all a list page needs to select.
INVITATION_JSON_COLUMNS = (
    "id",
    "org_id",
    "email",
    "role",
    "status",
    "public_metadata",
    "private_metadata",
    "redirect_url",
    "project_grants",
    "message",
    "inviter_user_id",
    "inviter_api_key_id",
    "source",
    "created_at",
    "updated_at",
    "expires_at",
    "accepted_at",
    "declined_at",
    "revoked_at",
    "accepted_user_id",
    "delivery_status",
    "delivery_error",
    "send_count",
    "last_sent_at",
)


def invitation_json(
    invitation: Invitation | InvitationRow,
    now: datetime,
    *,
    accept_url: str | None = None,
    organization: Organization | None = None,
) -> dict[str, Any]:
    expires_at = utc(invitation.expires_at)
    document: dict[str, Any] = {
        "object": "invitation",
        "id": invitation.id,
        "organization_id": invitation.org_id,
        "email": invitation.email,
        "role": invitation.role,
        "status": effective_status(invitation.status, expires_at, now),
        "public_metadata": json_field(invitation.public_metadata, {}),
        "private_metadata": json_field(invitation.private_metadata, {}),
        "redirect_url": invitation.redirect_url,
        "projects": _project_grants(invitation.project_grants),
        "message": invitation.message,
        "inviter": {
            "user_id": invitation.inviter_user_id,
            "api_key_id": invitation.inviter_api_key_id,
        },
        "source": invitation.source,
        "created_at": utc(invitation.created_at),
        "updated_at": utc(invitation.updated_at),
        "expires_at": expires_at,
        "accepted_at": utc(invitation.accepted_at),
        "declined_at": utc(invitation.declined_at),
        "revoked_at": utc(invitation.revoked_at),
        "accepted_user_id": invitation.accepted_user_id,
        "delivery": {
            "status": invitation.delivery_status,
            "error": invitation.delivery_error,
            "send_count": invitation.send_count,
            "last_sent_at": utc(invitation.last_sent_at),
        },
    }
    if accept_url is not None:
        document["accept_url"] = accept_url
    if organization is not None:
        document["organization"] = {
            "id": organization.id,
            "name": organization.name,
            "slug": organization.slug,
        }
    return document


def cursor_page_json(data: list[dict[str, Any]], items: list, has_more: bool) -> dict[str, Any]:
    """The list envelope: data, has_more, and the ids to pass as the next cursors."""
    return {
        "object": "list",
        "data": data,
        "has_more": has_more,
        "first_id": items[0].id if items else None,
        "last_id": items[-1].id if items else None,
    }


def invitation_list_json(
    page: InvitationPage, organizations: dict[str, Organization] | None = None
) -> dict[str, Any]:
    data = [
        invitation_json(
            item,
            page.now,
            organization=organizations.get(item.org_id) if organizations is not None else None,
        )
        for item in page.items
    ]
    return {
        **cursor_page_json(data, page.items, page.has_more),
        "total_count": page.total,
        "total_count_exact": page.total_exact,
        "totals": page.totals_by_status,
    }


def organization_json(org: Organization) -> dict[str, Any]:
    return {
        "object": "organization",
        "id": org.id,
        "name": org.name,
        "slug": org.slug,
        "roles": [role_json(r) for r in org.roles],
        "default_role": org.default_role,
        "default_expiry_days": round(org.default_expiry_seconds / 86400, 4),
        "allowed_redirect_origins": list(org.allowed_redirect_origins or []),
        "default_redirect_url": org.default_redirect_url,
        "invite_quota": org.invite_quota,
        "created_at": timestamp(org.created_at),
    }


def role_json(role) -> dict[str, Any]:
    return {"key": role.key, "name": role.name, "administers": role.is_admin}


def project_json(project: Project) -> dict[str, Any]:
    return {
        "object": "project",
        "id": project.id,
        "organization_id": project.org_id,
        "name": project.name,
        "is_default": project.is_default,
        "created_at": timestamp(project.created_at),
    }


def member_json(membership: Membership) -> dict[str, Any]:
    return {
        "object": "member",
        "id": membership.id,
        "organization_id": membership.org_id,
        "user_id": membership.user_id,
        "email": membership.user.email,
        "name": membership.user.name,
        "role": membership.role,
        "public_metadata": membership.public_metadata or {},
        "private_metadata": membership.private_metadata or {},
        "invitation_id": membership.invitation_id,
        "created_at": timestamp(membership.created_at),
    }


def user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "name": user.name}


def api_key_json(key: ApiKey, *, secret: str | None = None) -> dict[str, Any]:
    document = {
        "object": "api_key",
        "id": key.id,
        "organization_id": key.org_id,
        "name": key.name,
        "prefix": key.key_prefix,
        "created_at": timestamp(key.created_at),
        "last_used_at": timestamp(key.last_used_at),
        "revoked_at": timestamp(key.revoked_at),
    }
    if secret is not None:
        document["secret"] = secret
    return document
