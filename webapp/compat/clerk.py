"""Clerk Backend API (organization invitations) at /compat/clerk/v1.

For ``clerk_backend_api.Clerk(bearer_auth=KEY, server_url=BASE + "/compat/clerk/v1")``.
Clerk's shapes: ``object: "organization_invitation"``, millisecond timestamps,
``{data, total_count}`` lists with ``limit``/``offset``, and errors as
``{"errors": [{"message", "long_message", "code", "meta"}]}`` with, for each operation,
only the status codes Clerk documents for it (so the SDK raises ``ClerkErrors``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Response
from flask import current_app
from flask import jsonify
from flask import request
from werkzeug.exceptions import HTTPException

from webapp.api.principals import organization_for
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
from webapp.compat.common import query_list
from webapp.compat.common import renamed
from webapp.compat.common import unix_ms
from webapp.extensions import db
from webapp.models import Invitation
from webapp.models import Organization
from webapp.models import User
from webapp.services.actors import Actor
from webapp.services.actors import acting_for
from webapp.services.errors import AlreadyInvited
from webapp.services.errors import AlreadyMember
from webapp.services.errors import FieldError
from webapp.services.errors import Forbidden
from webapp.services.errors import InvalidTransition
from webapp.services.errors import NotFound
from webapp.services.errors import QuotaExceeded
from webapp.services.errors import ServiceError
from webapp.services.errors import Throttled
from webapp.services.errors import ValidationFailed
from webapp.services.invitation_listing import InvitationPage
from webapp.services.invitation_listing import InvitationQuery
from webapp.services.invitation_listing import list_invitations
from webapp.services.invitation_transitions import revoke_invitation
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import IssuedInvitation
from webapp.services.invitations import create_invitation
from webapp.services.invitations import create_invitations
from webapp.services.invitations import get_invitation
from webapp.services.organizations import organizations_by_id

PREFIX = "/compat/clerk/v1"
SOURCE = "clerk"
MAX_LIMIT = 500
DEFAULT_LIMIT = 10
MAX_BULK = 10
MAX_EXPIRES_IN_DAYS = 365
FILTER_STATUSES = ("pending", "accepted", "revoked", "expired")
ORDER_FIELDS = {"created_at": "created_at", "email_address": "email"}
CREATE_FIELDS = (
    "email_address",
    "inviter_user_id",
    "role",
    "public_metadata",
    "private_metadata",
    "redirect_url",
    "expires_in_days",
    "notify",
)
# OrgInvites' field names -> Clerk's, in error messages.
FIELD_NAMES = {"email": "email_address", "expires_in": "expires_in_days"}
_STATUSES_ATTRIBUTE = "clerk_documented_statuses"


def _render_service_error(error: ServiceError) -> Response:
    return _errors_response(*_clerk_errors(error))


blueprint = compat_blueprint(
    "compat_clerk",
    PREFIX,
    accept_x_api_key=False,
    unauthenticated_message=(
        "The API key is missing, unknown or revoked. Send an OrgInvites API key as "
        "'Authorization: Bearer <key>' (Clerk(bearer_auth=KEY))."
    ),
    render_error=_render_service_error,
)


def documents(*codes: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The error status codes Clerk's OpenAPI document lists for this operation."""

    def mark(view: Callable[..., Any]) -> Callable[..., Any]:
        setattr(view, _STATUSES_ATTRIBUTE, frozenset(codes))
        return view

    return mark


# --- errors --------------------------------------------------------------------------


@dataclass
class _ClerkError:
    message: str
    long_message: str
    code: str
    meta: dict[str, Any]


class BulkRefused(ServiceError):
    """A bulk request in which some items cannot be created: none is."""

    code = "bulk_refused"

    def __init__(self, failures: list[tuple[int, str, ServiceError]]) -> None:
        self.failures = failures
        super().__init__("; ".join(f"item {i} ({email}): {e}" for i, email, e in failures))


def _status_for(preferred: int) -> int:
    """``preferred`` if the operation documents it, else the nearest status it does."""
    view = current_app.view_functions.get(request.endpoint or "")
    documented = getattr(view, _STATUSES_ATTRIBUTE, None)
    if documented is None or preferred in documented or preferred == 429 or preferred >= 500:
        return preferred
    if preferred == 401 and 403 in documented:
        return 403
    return 400


_FIELD_CODES = {
    "required": "form_param_missing",
    "unknown_field": "form_param_unknown",
    "invalid_email": "form_param_format_invalid",
    "invalid_url": "form_param_format_invalid",
    "invalid_json": "form_param_format_invalid",
    "invalid_body": "form_param_format_invalid",
    "invalid_integer": "form_param_format_invalid",
}


def _field_error(error: FieldError, meta: dict[str, Any] | None = None) -> _ClerkError:
    long_message = (
        error.message
        if error.message.startswith(error.field)
        else f"{error.field}: {error.message}"
    )
    return _ClerkError(
        message="is invalid",
        long_message=long_message,
        code=_FIELD_CODES.get(error.code, "form_param_value_invalid"),
        meta={"param_name": error.field, "reason": error.code, **(meta or {})},
    )


def _single(
    error: ServiceError, extra: dict[str, Any] | None = None
) -> tuple[int, list[_ClerkError]]:
    """Status and Clerk errors for one service error (``extra`` adds to each error's meta)."""
    extra = extra or {}
    if isinstance(error, ValidationFailed):
        return 422, [_field_error(e, extra) for e in renamed(error.errors, FIELD_NAMES)]
    if isinstance(error, AlreadyInvited):
        meta = {"invitation_id": error.existing_invitation_id, **extra}
        return 400, [_ClerkError("duplicate invitation", str(error), "duplicate_record", meta)]
    if isinstance(error, AlreadyMember):
        return 400, [
            _ClerkError("already a member", str(error), "already_a_member_in_organization", extra)
        ]
    if isinstance(error, NotFound):
        return 404, [_ClerkError("not found", str(error), "resource_not_found", extra)]
    if isinstance(error, InvalidTransition):
        meta = {"status": error.status, **extra}
        return 400, [
            _ClerkError(
                "invitation is not pending", str(error), "organization_invitation_not_pending", meta
            )
        ]
    if isinstance(error, QuotaExceeded):
        return 400, [_ClerkError("quota exceeded", str(error), "quota_exceeded", extra)]
    if isinstance(error, Throttled):
        meta = {"retry_after_seconds": error.retry_after_seconds, **extra}
        return 429, [_ClerkError("too many requests", str(error), "too_many_requests", meta)]
    if isinstance(error, NotAuthenticated):
        return 401, [
            _ClerkError("Invalid authentication", str(error), "authentication_invalid", extra)
        ]
    if isinstance(error, Forbidden):
        return 403, [
            _ClerkError("Unauthorized request", str(error), "authorization_invalid", extra)
        ]
    return 400, [_ClerkError(error.code.replace("_", " "), str(error), error.code, extra)]


def _clerk_errors(error: ServiceError) -> tuple[int, list[_ClerkError], dict[str, str]]:
    headers = {}
    if isinstance(error, Throttled):
        headers["Retry-After"] = str(error.retry_after_seconds)
    if isinstance(error, BulkRefused):
        errors = []
        for index, email, item_error in error.failures:
            _, item_errors = _single(item_error, {"index": index})
            for item in item_errors:
                item.long_message = f"item {index} ({email}): {item.long_message}"
            errors.extend(item_errors)
        # One status per answer: the first refused item's.
        status, _ = _single(error.failures[0][2])
        return status, errors, headers
    status, errors = _single(error)
    return status, errors, headers


def _errors_response(
    status: int, errors: list[_ClerkError], headers: dict[str, str] | None = None
) -> Response:
    response = jsonify({"errors": [asdict(e) for e in errors], "meta": {}})
    response.status_code = _status_for(status)
    response.headers.update(headers or {})
    return response


def render_http_error(error: HTTPException) -> Response:
    """Routing, size and rate-limit errors under the prefix, in Clerk's envelope."""
    code = error.code or 500
    codes = {
        404: "resource_not_found",
        405: "method_not_allowed",
        413: "request_body_too_large",
        429: "too_many_requests",
    }
    body = {
        "errors": [
            {
                "message": error.name.lower(),
                "long_message": error.description or error.name,
                "code": codes.get(code, "internal_clerk_error" if code >= 500 else "bad_request"),
                "meta": {},
            }
        ],
        "meta": {},
    }
    return http_error_response(error, body)


# --- shapes --------------------------------------------------------------------------


def _inviter_data(invitation: Invitation) -> dict[str, Any] | None:
    user = invitation.inviter
    if user is None:
        return None
    first, _, last = (user.name or "").partition(" ")
    return {
        "user_id": user.id,
        "first_name": first or None,
        "last_name": last or None,
        "image_url": "",
        "has_image": False,
        "identifier": user.email,
    }


def invitation_json(
    invitation: Invitation,
    org: Organization,
    *,
    url: str | None = None,
    with_organization: bool = False,
) -> dict[str, Any]:
    """A Clerk ``OrganizationInvitation`` (``url``: the link, only when created unsent)."""
    role = org.role(invitation.role)
    data: dict[str, Any] = {
        "object": "organization_invitation",
        "id": invitation.id,
        "email_address": invitation.email,
        "role": roles.clerk_role(org, invitation.role),
        "role_name": role.name if role else invitation.role,
        "organization_id": invitation.org_id,
        "inviter_id": invitation.inviter_user_id,
        "public_inviter_data": _inviter_data(invitation),
        "status": statuses.vendor_status(statuses.CLERK, invitation, utcnow()),
        "public_metadata": invitation.public_metadata or {},
        "private_metadata": invitation.private_metadata or {},
        "url": url,
        "expires_at": unix_ms(invitation.expires_at),
        "created_at": unix_ms(invitation.created_at),
        "updated_at": unix_ms(invitation.updated_at),
    }
    if with_organization:
        data["public_organization_data"] = {
            "id": org.id,
            "name": org.name,
            "slug": org.slug,
            "has_image": False,
        }
    return data


def _list_json(page: InvitationPage, org: Organization | None, *, with_organization: bool):
    orgs = (
        {org.id: org}
        if org is not None
        else organizations_by_id(db.session, [i.org_id for i in page.items])
    )
    return jsonify(
        {
            "data": [
                invitation_json(i, orgs[i.org_id], with_organization=with_organization)
                for i in page.items
            ],
            "total_count": page.total,
        }
    )


# --- reading requests ----------------------------------------------------------------


def _statuses_filter() -> list[str]:
    wanted = [s.strip() for v in query_list("status") for s in v.split(",") if s.strip()]
    return statuses.filter_statuses(statuses.CLERK, "status", wanted, FILTER_STATUSES)


def _order_by() -> str:
    # A raw "+" in a query string arrives as a space: strip it like the "+" it was.
    raw = (request.args.get("order_by") or "-created_at").strip()
    name = raw.lstrip("+-")
    if name not in ORDER_FIELDS:
        raise ValidationFailed.single(
            "order_by",
            "invalid_order",
            f"{raw!r} is not an ordering: use created_at or email_address, "
            "optionally with + or - in front",
        )
    return ("-" if raw.startswith("-") else "") + ORDER_FIELDS[name]


def _page(org: Organization | None, **filters: Any) -> InvitationPage:
    query = InvitationQuery(
        limit=query_int("limit", DEFAULT_LIMIT),
        offset=query_int("offset", 0),
        max_limit=MAX_LIMIT,
        **filters,
    )
    return list_invitations(db.session, org, query)


def _scope() -> Organization | None:
    """The organization an instance-wide list covers: all (instance key) or the key's own."""
    key = principal()
    return None if key.is_instance else own_organization(db.session, key)


def _org(organization_id: str) -> Organization:
    return organization_for(db.session, principal(), organization_id)


def _acting(org: Organization, user_id: Any, field: str) -> Actor:
    """The key, acting for the admin a request names (``inviter_user_id``, …) if any."""
    return acting_for(db.session, org, principal().actor, user_id, field, must_administer=True)


def _invitation_request(org: Organization, fields: dict[str, Any]) -> InvitationRequest:
    """Clerk's create fields as an InvitationRequest (every rule is checked by the service)."""
    problems: list[FieldError] = []
    if fields.get("email_address") is None:
        problems.append(FieldError("email_address", "required", "email_address is required"))
    role = None
    try:
        role = roles.clerk_role_key(org, fields.get("role"))
    except ValidationFailed as error:
        problems.extend(error.errors)
    days = fields.get("expires_in_days")
    if days is not None and (
        not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_EXPIRES_IN_DAYS
    ):
        problems.append(
            FieldError(
                "expires_in_days",
                "invalid",
                f"expires_in_days must be a whole number from 1 to {MAX_EXPIRES_IN_DAYS}",
            )
        )
        days = None
    notify = fields.get("notify")
    if notify is not None and not isinstance(notify, bool):
        problems.append(FieldError("notify", "invalid", "notify must be true or false"))
    if problems:
        raise ValidationFailed(problems)
    return InvitationRequest(
        email=fields["email_address"],
        role=role,
        expires_in=timedelta(days=days) if days is not None else None,
        redirect_url=fields.get("redirect_url"),
        public_metadata=fields.get("public_metadata"),
        private_metadata=fields.get("private_metadata"),
        notify=True if notify is None else notify,
    )


# --- views ---------------------------------------------------------------------------


@blueprint.get("/organization_invitations")
@documents(400, 404, 422)
def list_instance_invitations():
    """Every organization's invitations (an org key: its own), newest first by default."""
    org = _scope()
    page = _page(
        org,
        statuses=_statuses_filter(),
        query=request.args.get("query") or None,
        order_by=_order_by(),
    )
    return _list_json(page, org, with_organization=True)


@blueprint.get("/users/<user_id>/organization_invitations")
@documents(400, 403, 404)
def list_user_invitations(user_id: str):
    """The invitations sent to a user's email address."""
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id!r}")
    org = _scope()
    page = _page(org, statuses=_statuses_filter(), email=user.email_key)
    return _list_json(page, org, with_organization=True)


@blueprint.post("/organizations/<organization_id>/invitations")
@documents(400, 402, 403, 404, 422)
def create(organization_id: str):
    """Create and (unless ``notify`` is false) send one invitation."""
    org = _org(organization_id)
    fields = json_object(json_body(), CREATE_FIELDS)
    actor = _acting(org, fields.get("inviter_user_id"), "inviter_user_id")
    invitation_request = _invitation_request(org, fields)
    issued = create_invitation(db.session, org, invitation_request, actor=actor, source=SOURCE)
    body = invitation_json(issued.invitation, org, url=_link_for_caller(invitation_request, issued))
    db.session.commit()
    return jsonify(body)


@blueprint.post("/organizations/<organization_id>/invitations/bulk")
@documents(400, 403, 404, 422)
def bulk_create(organization_id: str):
    """Create 1 to 10 invitations: all of them, or none and an error naming each bad item."""
    org = _org(organization_id)
    items = json_body()
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BULK:
        raise ValidationFailed.single(
            "body", "invalid_body", f"the body must be a JSON array of 1 to {MAX_BULK} invitations"
        )
    failures: list[tuple[int, str, ServiceError]] = []
    requests: list[tuple[InvitationRequest, Actor]] = []
    for index, item in enumerate(items):
        email = str(item.get("email_address")) if isinstance(item, dict) else "?"
        try:
            fields = json_object(item, CREATE_FIELDS, where=f"item {index}")
            actor = _acting(org, fields.get("inviter_user_id"), "inviter_user_id")
            requests.append((_invitation_request(org, fields), actor))
        except ServiceError as error:
            failures.append((index, email, error))
    if failures:
        raise BulkRefused(failures)
    created: list[tuple[InvitationRequest, IssuedInvitation]] = []
    ids: dict[str, int] = {}
    for index, (invitation_request, actor) in enumerate(requests):
        # Items may name different inviters, so one at a time; each in its own savepoint
        # (create_invitations), so that one refused item leaves the others' checks intact.
        result = create_invitations(
            db.session, org, [invitation_request], actor=actor, source=SOURCE
        )
        for failure in result.failures:
            failures.append((index, failure.email, _within_batch(failure.error, ids)))
        for _, issued in result.successes:
            created.append((invitation_request, issued))
            ids[issued.invitation.id] = index
    if failures:
        raise BulkRefused(failures)
    body = {
        "data": [
            invitation_json(issued.invitation, org, url=_link_for_caller(asked, issued))
            for asked, issued in created
        ],
        "total_count": len(created),
    }
    db.session.commit()
    return jsonify(body)


def _link_for_caller(asked: InvitationRequest, issued: IssuedInvitation) -> str | None:
    """The link, shown this once, to a caller who sends the email itself (notify=false)."""
    return None if asked.notify else issued.accept_url


def _within_batch(error: ServiceError, ids: dict[str, int]) -> ServiceError:
    """A duplicate of an earlier item of the same request says so (that one is not kept)."""
    if isinstance(error, AlreadyInvited) and error.existing_invitation_id in ids:
        return ValidationFailed.single(
            "email_address",
            "duplicate_in_request",
            f"{error.email} is also item {ids[error.existing_invitation_id]} of this request",
        )
    return error


@blueprint.get("/organizations/<organization_id>/invitations")
@documents(400, 404, 422)
def list_org_invitations(organization_id: str):
    """One organization's invitations: several statuses, one address, ordering, offset."""
    org = _org(organization_id)
    email = request.args.get("email_address")
    page = _page(
        org,
        statuses=_statuses_filter(),
        email=email if email else None,
        order_by=_order_by(),
    )
    return _list_json(page, org, with_organization=False)


@blueprint.get("/organizations/<organization_id>/invitations/pending")
@documents(400, 404)
def list_pending(organization_id: str):
    """Pending invitations, newest first (deprecated by Clerk; kept for old callers)."""
    org = _org(organization_id)
    page = _page(org, statuses=statuses.native_statuses(statuses.CLERK, ["pending"]))
    return _list_json(page, org, with_organization=False)


@blueprint.get("/organizations/<organization_id>/invitations/<invitation_id>")
@documents(400, 403, 404)
def get(organization_id: str, invitation_id: str):
    """One invitation of the organization."""
    org = _org(organization_id)
    return jsonify(invitation_json(get_invitation(db.session, org, invitation_id), org))


@blueprint.post("/organizations/<organization_id>/invitations/<invitation_id>/revoke")
@documents(400, 403, 404)
def revoke(organization_id: str, invitation_id: str):
    """Revoke a pending invitation (its link dies)."""
    org = _org(organization_id)
    body = json_body(required=False)
    fields = json_object(body if body is not None else {}, ("requesting_user_id",))
    actor = _acting(org, fields.get("requesting_user_id"), "requesting_user_id")
    invitation = revoke_invitation(db.session, org, invitation_id, actor=actor)
    data = invitation_json(invitation, org)
    db.session.commit()
    return jsonify(data)
