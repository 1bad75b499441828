"""Anthropic Admin API (organization invites) at /compat/anthropic.

For ``anthropic.Anthropic(api_key=KEY, base_url=BASE + "/compat/anthropic")`` and both
``client.organization.invites`` and ``client.beta.organization.invites`` (the SDK adds
``?beta=true`` and an ``anthropic-version`` header; both are ignored). The key is an
org-scoped OrgInvites API key, sent as ``X-Api-Key`` (what the SDK does) or
``Authorization: Bearer``. Anthropic's shapes: ``type: "invite"``, RFC 3339 timestamps,
``{data, has_more, first_id, last_id}`` lists with ``after_id``/``before_id``, errors as
``{"type": "error", "error": {"type", "message", "details"?}}``.
"""

from __future__ import annotations

from typing import Any

from flask import Response
from flask import jsonify
from flask import request
from werkzeug.exceptions import HTTPException

from webapp.api.principals import own_organization
from webapp.api.serializers import timestamp
from webapp.clock import utcnow
from webapp.compat import roles
from webapp.compat import statuses
from webapp.compat.common import NotAuthenticated
from webapp.compat.common import compat_blueprint
from webapp.compat.common import http_error_response
from webapp.compat.common import json_body
from webapp.compat.common import json_object
from webapp.compat.common import principal
from webapp.compat.common import query_int
from webapp.compat.common import query_list
from webapp.compat.common import renamed
from webapp.extensions import db
from webapp.models import Invitation
from webapp.models import Organization
from webapp.services.errors import AlreadyInvited
from webapp.services.errors import AlreadyMember
from webapp.services.errors import Forbidden
from webapp.services.errors import NotFound
from webapp.services.errors import ServiceError
from webapp.services.errors import Throttled
from webapp.services.errors import ValidationFailed
from webapp.services.invitation_listing import InvitationQuery
from webapp.services.invitation_listing import list_invitations
from webapp.services.invitation_transitions import revoke_invitation
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import create_invitation
from webapp.services.invitations import get_invitation

PREFIX = "/compat/anthropic"
SOURCE = "anthropic"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 20
FILTER_STATUSES = ("accepted", "expired", "pending")
FIELD_NAMES = {"starting_after": "after_id", "ending_before": "before_id"}


def _error(status: int, type_: str, message: str, error_code: str | None = None) -> Response:
    error: dict[str, Any] = {"type": type_, "message": message}
    if error_code:
        error["details"] = {"error_code": error_code}
    response = jsonify({"type": "error", "error": error})
    response.status_code = status
    return response


def _render_service_error(error: ServiceError) -> Response:
    if isinstance(error, ValidationFailed):
        problems = renamed(error.errors, FIELD_NAMES)
        message = "; ".join(f"{p.field}: {p.message}" for p in problems)
        return _error(400, "invalid_request_error", message)
    if isinstance(error, AlreadyInvited):
        return _error(400, "invalid_request_error", str(error), "invite_already_exists")
    if isinstance(error, AlreadyMember):
        return _error(400, "invalid_request_error", str(error), "already_member")
    if isinstance(error, NotFound):
        return _error(404, "not_found_error", str(error))
    if isinstance(error, Throttled):
        response = _error(429, "rate_limit_error", str(error))
        response.headers["Retry-After"] = str(error.retry_after_seconds)
        return response
    if isinstance(error, NotAuthenticated):
        return _error(401, "authentication_error", str(error))
    if isinstance(error, Forbidden):
        return _error(403, "permission_error", str(error))
    # Invalid transitions, quota and other refusals: Anthropic has no 409.
    return _error(400, "invalid_request_error", str(error))


blueprint = compat_blueprint(
    "compat_anthropic",
    PREFIX,
    accept_x_api_key=True,
    unauthenticated_message=(
        "invalid x-api-key: send an organization's OrgInvites API key as 'X-Api-Key' "
        "(Anthropic(api_key=KEY)) or 'Authorization: Bearer <key>'"
    ),
    render_error=_render_service_error,
)


def render_http_error(error: HTTPException) -> Response:
    """Routing, size and rate-limit errors under the prefix, in Anthropic's envelope."""
    code = error.code or 500
    types = {404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error"}
    type_ = types.get(code, "api_error" if code >= 500 else "invalid_request_error")
    body = {"type": "error", "error": {"type": type_, "message": error.description or error.name}}
    return http_error_response(error, body)


def invite_json(invitation: Invitation, org: Organization, status: str | None) -> dict[str, Any]:
    """An Anthropic ``OrganizationInvite``."""
    return {
        "type": "invite",
        "id": invitation.id,
        "email": invitation.email,
        "role": roles.anthropic_role(org, invitation.role),
        "status": status,
        "invited_at": timestamp(invitation.created_at),
        "expires_at": timestamp(invitation.expires_at),
        "accepted_at": timestamp(invitation.accepted_at),
        "rbac_group_ids": [],
    }


def _org() -> Organization:
    return own_organization(db.session, principal())


def _status(invitation: Invitation) -> str | None:
    return statuses.vendor_status(statuses.ANTHROPIC, invitation, utcnow())


@blueprint.post("/v1/organizations/invites")
def create():
    """Invite someone as user, developer, billing or claude_code_user (never admin)."""
    org = _org()
    fields = json_object(json_body(), ("email", "role", "rbac_group_ids"))
    if fields.get("rbac_group_ids") not in (None, []):
        raise ValidationFailed.single(
            "rbac_group_ids",
            "not_supported",
            "RBAC groups are not supported (Claude Enterprise only); send [] or leave it out",
        )
    role = roles.anthropic_role_key(org, fields.get("role"))
    issued = create_invitation(
        db.session,
        org,
        InvitationRequest(email=fields.get("email"), role=role),
        actor=principal().actor,
        source=SOURCE,
    )
    body = invite_json(issued.invitation, org, _status(issued.invitation))
    db.session.commit()
    return jsonify(body)


@blueprint.get("/v1/organizations/invites/<invite_id>")
def retrieve(invite_id: str):
    """One invite (a revoked one reads as ``deleted``)."""
    org = _org()
    invitation = get_invitation(db.session, org, invite_id)
    return jsonify(invite_json(invitation, org, _status(invitation)))


@blueprint.get("/v1/organizations/invites")
def list_invites():
    """Invites newest first; filter by email, roles and statuses; page by id cursors."""
    org = _org()
    wanted = query_list("statuses") or FILTER_STATUSES
    if request.args.get("after_id") and request.args.get("before_id"):
        raise ValidationFailed.single(
            "before_id", "conflicting_fields", "give after_id or before_id, not both"
        )
    role_names = query_list("roles")
    page = list_invitations(
        db.session,
        org,
        InvitationQuery(
            statuses=statuses.filter_statuses(
                statuses.ANTHROPIC, "statuses", wanted, FILTER_STATUSES
            ),
            email=request.args.get("email") or None,
            roles=roles.anthropic_role_keys(org, role_names) if role_names else None,
            limit=query_int("limit", DEFAULT_LIMIT),
            starting_after=request.args.get("after_id") or None,
            ending_before=request.args.get("before_id") or None,
            max_limit=MAX_LIMIT,
        ),
    )
    data = [
        invite_json(i, org, statuses.vendor_status(statuses.ANTHROPIC, i, page.now))
        for i in page.items
    ]
    return jsonify(
        {
            "data": data,
            "has_more": page.has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


@blueprint.delete("/v1/organizations/invites/<invite_id>")
def delete(invite_id: str):
    """Delete (revoke) a pending invite; an accepted one cannot be deleted."""
    org = _org()
    invitation = get_invitation(db.session, org, invite_id)
    if _status(invitation) == "deleted":
        raise NotFound(f"invite {invite_id!r} was already deleted")
    revoke_invitation(db.session, org, invitation.id, actor=principal().actor, verb="deleted")
    db.session.commit()
    return jsonify({"id": invitation.id, "type": "invite_deleted"})
