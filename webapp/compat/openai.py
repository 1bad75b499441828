"""OpenAI Admin API (organization invites) at /compat/openai/v1.

For ``openai.OpenAI(admin_api_key=KEY, base_url=BASE + "/compat/openai/v1")`` and
``client.admin.organization.invites``. The key is an organization's OpenAI-style admin
key: an org-scoped OrgInvites API key. OpenAI's shapes: ``object: "organization.invite"``,
second timestamps, cursor lists (``after``, ``limit``, ``has_more``, ``first_id``,
``last_id``), errors as ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from typing import Any

from flask import Response
from flask import jsonify
from flask import request
from werkzeug.exceptions import HTTPException

from webapp.api.principals import own_organization
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
from webapp.compat.common import renamed
from webapp.compat.common import unix_seconds
from webapp.extensions import db
from webapp.models import Invitation
from webapp.models import Organization
from webapp.services.errors import AlreadyInvited
from webapp.services.errors import AlreadyMember
from webapp.services.errors import Forbidden
from webapp.services.errors import InvalidTransition
from webapp.services.errors import NotFound
from webapp.services.errors import QuotaExceeded
from webapp.services.errors import ServiceError
from webapp.services.errors import Throttled
from webapp.services.errors import ValidationFailed
from webapp.services.invitation_listing import InvitationQuery
from webapp.services.invitation_listing import list_invitations
from webapp.services.invitation_transitions import revoke_invitation
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import create_invitation
from webapp.services.invitations import get_invitation
from webapp.services.organizations import list_projects

PREFIX = "/compat/openai/v1"
SOURCE = "openai"
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
FIELD_NAMES = {"starting_after": "after"}


def _error(status: int, message: str, type_: str, param: str | None, code: str | None):
    response = jsonify({"error": {"message": message, "type": type_, "param": param, "code": code}})
    response.status_code = status
    return response


def _render_service_error(error: ServiceError) -> Response:
    if isinstance(error, ValidationFailed):
        problems = renamed(error.errors, FIELD_NAMES)
        message = "; ".join(f"{p.field}: {p.message}" for p in problems)
        return _error(400, message, "invalid_request_error", problems[0].field, problems[0].code)
    if isinstance(error, AlreadyInvited):
        return _error(409, str(error), "invalid_request_error", "email", "invite_already_exists")
    if isinstance(error, AlreadyMember):
        return _error(409, str(error), "invalid_request_error", "email", "user_already_member")
    if isinstance(error, NotFound):
        return _error(404, str(error), "invalid_request_error", None, "not_found")
    if isinstance(error, InvalidTransition):
        return _error(409, str(error), "invalid_request_error", None, "invalid_invite_status")
    if isinstance(error, QuotaExceeded):
        return _error(400, str(error), "invalid_request_error", None, "invite_quota_exceeded")
    if isinstance(error, Throttled):
        response = _error(429, str(error), "requests", None, "rate_limit_exceeded")
        response.headers["Retry-After"] = str(error.retry_after_seconds)
        return response
    if isinstance(error, NotAuthenticated):
        return _error(401, str(error), "invalid_request_error", None, "invalid_api_key")
    if isinstance(error, Forbidden):
        return _error(403, str(error), "invalid_request_error", None, "insufficient_permissions")
    return _error(400, str(error), "invalid_request_error", None, error.code)


blueprint = compat_blueprint(
    "compat_openai",
    PREFIX,
    accept_x_api_key=False,
    unauthenticated_message=(
        "Incorrect API key provided. Send an organization's OrgInvites API key as "
        "'Authorization: Bearer <key>' (OpenAI(admin_api_key=KEY))."
    ),
    render_error=_render_service_error,
)


def render_http_error(error: HTTPException) -> Response:
    """Routing, size and rate-limit errors under the prefix, in OpenAI's envelope."""
    code = error.code or 500
    type_ = "server_error" if code >= 500 else "invalid_request_error"
    if code == 429:
        type_ = "requests"
    body = {
        "error": {
            "message": error.description or error.name,
            "type": type_,
            "param": None,
            "code": error.name.lower().replace(" ", "_"),
        }
    }
    return http_error_response(error, body)


def invite_json(invitation: Invitation, org: Organization, status: str | None) -> dict[str, Any]:
    """An OpenAI ``Invite``."""
    return {
        "object": "organization.invite",
        "id": invitation.id,
        "email": invitation.email,
        "role": roles.openai_role(org, invitation.role),
        "status": status,
        "created_at": unix_seconds(invitation.created_at),
        "expires_at": unix_seconds(invitation.expires_at),
        "accepted_at": unix_seconds(invitation.accepted_at),
        "projects": [
            {"id": grant["project_id"], "role": grant["role"]}
            for grant in invitation.project_grants or []
        ],
    }


def _org() -> Organization:
    return own_organization(db.session, principal())


def _visible(org: Organization, invite_id: str) -> tuple[Invitation, str]:
    """The invitation and its OpenAI status; a revoked one is gone, as deleted invites are."""
    invitation = get_invitation(db.session, org, invite_id)
    status = statuses.vendor_status(statuses.OPENAI, invitation, utcnow())
    if status is None:
        raise NotFound(f"no invite {invite_id!r}")
    return invitation, status


def _project_grants(org: Organization, projects: Any) -> list[Any]:
    """OpenAI's ``projects``; omitted means the org's default project (if it has one)."""
    if projects is None:
        return [
            {"project_id": p.id, "role": "member"}
            for p in list_projects(db.session, org)
            if p.is_default
        ]
    if not isinstance(projects, list):
        return projects  # the service names what is wrong with it
    grants: list[Any] = []
    for index, item in enumerate(projects):
        if not isinstance(item, dict):
            grants.append(item)
            continue
        fields = json_object(item, ("id", "role"), where=f"projects[{index}]")
        grants.append({"project_id": fields.get("id"), "role": fields.get("role", "member")})
    return grants


@blueprint.post("/organization/invites")
def create():
    """Invite someone to the organization (the email goes out through the outbox)."""
    org = _org()
    fields = json_object(json_body(), ("email", "role", "projects"))
    role = roles.openai_role_key(org, fields.get("role"))
    issued = create_invitation(
        db.session,
        org,
        InvitationRequest(
            email=fields.get("email"),
            role=role,
            project_grants=_project_grants(org, fields.get("projects")),
        ),
        actor=principal().actor,
        source=SOURCE,
    )
    body = invite_json(issued.invitation, org, "pending")
    db.session.commit()
    return jsonify(body)


@blueprint.get("/organization/invites/<invite_id>")
def retrieve(invite_id: str):
    """One invite."""
    org = _org()
    invitation, status = _visible(org, invite_id)
    return jsonify(invite_json(invitation, org, status))


@blueprint.get("/organization/invites")
def list_invites():
    """Invites newest first, ``limit`` at a time; ``after`` is the last id of a page."""
    org = _org()
    page = list_invitations(
        db.session,
        org,
        InvitationQuery(
            statuses=statuses.visible_statuses(statuses.OPENAI),
            limit=query_int("limit", DEFAULT_LIMIT),
            starting_after=request.args.get("after") or None,
            max_limit=MAX_LIMIT,
        ),
    )
    data = [
        invite_json(i, org, statuses.vendor_status(statuses.OPENAI, i, page.now))
        for i in page.items
    ]
    return jsonify(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": page.has_more,
        }
    )


@blueprint.delete("/organization/invites/<invite_id>")
def delete(invite_id: str):
    """Delete (revoke) a pending invite; an accepted invite cannot be deleted."""
    org = _org()
    invitation, _ = _visible(org, invite_id)
    revoke_invitation(db.session, org, invitation.id, actor=principal().actor, verb="deleted")
    db.session.commit()
    return jsonify({"id": invitation.id, "object": "organization.invite.deleted", "deleted": True})
