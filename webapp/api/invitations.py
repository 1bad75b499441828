"""Invitation endpoints: create, bulk create, list, get, revoke, resend; instance list."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from typing import Literal

from pydantic import BaseModel
from pydantic import BeforeValidator
from pydantic import ConfigDict
from pydantic import Field

from webapp.api import schemas
from webapp.api.blueprint import blueprint
from webapp.api.operations import Answer
from webapp.api.operations import ApiCall
from webapp.api.operations import operation
from webapp.api.operations import validate_item
from webapp.api.principals import organization_for
from webapp.api.principals import organization_id_for
from webapp.api.problems import ApiProblem
from webapp.api.problems import problem_from_service_error
from webapp.api.serializers import INVITATION_JSON_COLUMNS
from webapp.api.serializers import invitation_json
from webapp.api.serializers import invitation_list_json
from webapp.clock import utcnow
from webapp.extensions import db
from webapp.models import Organization
from webapp.services.actors import Actor
from webapp.services.actors import acting_for
from webapp.services.invitation_listing import MAX_LIMIT
from webapp.services.invitation_listing import InvitationQuery
from webapp.services.invitation_listing import list_invitations
from webapp.services.invitation_transitions import resend_invitation
from webapp.services.invitation_transitions import revoke_invitation
from webapp.services.invitation_transitions import revoke_pending_by_email
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import create_invitation
from webapp.services.invitations import create_invitations
from webapp.services.invitations import get_invitation
from webapp.services.organizations import organizations_by_id

BULK_MAX = 1000
TAG = "Invitations"
ORG_PATH = "/organizations/<org>/invitations"


def _plus_from_query_string(value: object) -> object:
    """An unencoded '+' in a query string arrives as a space: ' email' means '+email'."""
    if isinstance(value, str) and value.startswith(" "):
        return "+" + value.strip()
    return value


class InvitationListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    status: list[schemas.InvitationStatusName] | None = Field(
        None,
        description="Only these statuses; repeat the parameter or separate with commas.",
    )
    query: str | None = Field(None, max_length=254, description="Part of the email address.")
    order_by: Annotated[
        Literal["created_at", "+created_at", "-created_at", "email", "+email", "-email"],
        BeforeValidator(_plus_from_query_string),
    ] = Field("-created_at", description="Sort key; `-` for descending (default newest first).")
    limit: int = Field(20, ge=1, le=MAX_LIMIT)
    offset: int | None = Field(None, ge=0, description="Skip this many (not with cursors).")
    starting_after: str | None = Field(
        None, max_length=40, description="Cursor: the page after this invitation id."
    )
    ending_before: str | None = Field(
        None, max_length=40, description="Cursor: the page before this invitation id."
    )


def _listing(q: InvitationListQuery) -> InvitationQuery:
    order = q.order_by.removeprefix("+")
    return InvitationQuery(
        statuses=q.status or (),
        query=q.query,
        order_by=order,
        limit=q.limit,
        offset=q.offset,
        starting_after=q.starting_after,
        ending_before=q.ending_before,
        plain_rows=True,
        columns=INVITATION_JSON_COLUMNS,
        json_as_text=True,  # written out as stored (webapp.api.serializers.json_field)
    )


def _acting(call: ApiCall, organization: Organization, field: str) -> Actor:
    """The calling key, acting for the member named in the body's ``field`` (if any)."""
    return acting_for(
        db.session, organization, call.principal.actor, getattr(call.body, field), field
    )


def _request(body: schemas.InvitationCreate) -> InvitationRequest:
    return InvitationRequest(
        email=body.email,
        role=body.role,
        expires_in=timedelta(days=body.expires_in_days) if body.expires_in_days else None,
        expires_at=body.expires_at,
        redirect_url=body.redirect_url,
        public_metadata=body.public_metadata,
        private_metadata=body.private_metadata,
        project_grants=(
            [{"project_id": p.id, "role": p.role} for p in body.projects]
            if body.projects is not None
            else None
        ),
        message=body.message,
        notify=body.notify,
    )


@operation(
    blueprint,
    "POST",
    ORG_PATH,
    summary="Create an invitation",
    tag=TAG,
    body=schemas.InvitationCreate,
    response=schemas.Invitation,
    status=201,
    problems=("validation_failed", "already_invited", "already_member", "quota_exceeded"),
    late_writes=True,
)
def create(call: ApiCall, org: str) -> Answer:
    """Invite one address. The email is queued in the same transaction (unless
    `notify` is false, in which case the answer carries `accept_url` once)."""
    organization = organization_for(db.session, call.principal, org)
    actor = _acting(call, organization, "inviter_user_id")
    issued = create_invitation(db.session, organization, _request(call.body), actor=actor)
    payload = invitation_json(
        issued.invitation,
        utcnow(),
        accept_url=None if call.body.notify else issued.accept_url,
    )
    location = f"/api/v1/organizations/{org}/invitations/{issued.invitation.id}"
    return Answer(payload, 201, {"Location": location})


@operation(
    blueprint,
    "POST",
    ORG_PATH + "/bulk",
    summary="Create up to 1,000 invitations",
    tag=TAG,
    body_array_of=schemas.InvitationCreate,
    body_array_max=BULK_MAX,
    response=schemas.BulkResult,
    status=200,
    problems=("validation_failed",),
)
def create_bulk(call: ApiCall, org: str) -> Answer:
    """Each item succeeds or fails on its own. The answer lists `successes` and
    `errors`, each with the item's `index` in the request, in input order."""
    organization = organization_for(db.session, call.principal, org)
    errors: list[dict] = []
    requests: list[tuple[int, InvitationRequest]] = []
    for index, item in enumerate(call.body):
        email = item.get("email") if isinstance(item, dict) else None
        try:
            body = validate_item(schemas.InvitationCreate, item, prefix=f"[{index}].")
            if body.inviter_user_id is not None:
                raise ApiProblem(
                    "validation_failed",
                    f"[{index}].inviter_user_id: not supported in bulk; "
                    "create these invitations one by one",
                )
        except ApiProblem as problem:
            errors.append(_bulk_error(index, email, problem))
            continue
        requests.append((index, _request(body)))
    result = create_invitations(
        db.session, organization, [r for _, r in requests], actor=call.principal.actor
    )
    now = utcnow()
    successes = [
        {
            "index": requests[position][0],
            "invitation": invitation_json(
                issued.invitation,
                now,
                accept_url=None if requests[position][1].notify else issued.accept_url,
            ),
        }
        for position, issued in result.successes
    ]
    for failure in result.failures:
        index = requests[failure.index][0]
        errors.append(_bulk_error(index, failure.email, problem_from_service_error(failure.error)))
    errors.sort(key=lambda e: e["index"])
    return Answer({"object": "bulk_result", "successes": successes, "errors": errors})


def _bulk_error(index: int, email: object, problem: ApiProblem) -> dict:
    document = {
        "index": index,
        "email": email if isinstance(email, str) else None,
        "code": problem.code,
        "status": problem.status,
        "detail": problem.detail,
        "errors": [
            {"field": e.field, "code": e.code, "message": e.message} for e in problem.errors
        ],
    }
    if "existing_invitation_id" in problem.extra:
        document["existing_invitation_id"] = problem.extra["existing_invitation_id"]
    return document


@operation(
    blueprint,
    "GET",
    ORG_PATH,
    summary="List an organization's invitations",
    tag=TAG,
    query=InvitationListQuery,
    response=schemas.InvitationList,
    problems=("validation_failed",),
)
def list_(call: ApiCall, org: str) -> Answer:
    """Newest first by default. Page with `limit` and either `offset` or the cursors
    `starting_after` / `ending_before` (ids from `last_id` / `first_id`); `has_more`
    says whether another page follows in that direction."""
    org_id = organization_id_for(db.session, call.principal, org)
    page = list_invitations(db.session, org_id, _listing(call.query))
    return Answer(invitation_list_json(page))


@operation(
    blueprint,
    "GET",
    "/invitations",
    summary="List invitations of every organization",
    tag=TAG,
    query=InvitationListQuery,
    response=schemas.InvitationList,
    problems=("validation_failed",),
    instance_only=True,
)
def list_all(call: ApiCall) -> Answer:
    """Instance keys only. Each invitation carries its `organization` (id, name, slug)."""
    page = list_invitations(db.session, None, _listing(call.query))
    organizations = organizations_by_id(db.session, sorted({i.org_id for i in page.items}))
    return Answer(invitation_list_json(page, organizations))


@operation(
    blueprint,
    "GET",
    ORG_PATH + "/<invitation_id>",
    summary="Get an invitation",
    tag=TAG,
    response=schemas.Invitation,
)
def get(call: ApiCall, org: str, invitation_id: str) -> Answer:
    """Another organization's invitation id answers 404, like an unknown one."""
    organization = organization_for(db.session, call.principal, org)
    invitation = get_invitation(db.session, organization, invitation_id)
    return Answer(invitation_json(invitation, utcnow()))


@operation(
    blueprint,
    "POST",
    ORG_PATH + "/<invitation_id>/revoke",
    summary="Revoke a pending invitation",
    tag=TAG,
    body=schemas.InvitationRevoke,
    response=schemas.Invitation,
    problems=("validation_failed", "invalid_status"),
)
def revoke(call: ApiCall, org: str, invitation_id: str) -> Answer:
    """The link stops working at once and an unsent email is cancelled. Only pending
    invitations can be revoked (409 `invalid_status` otherwise)."""
    organization = organization_for(db.session, call.principal, org)
    actor = _acting(call, organization, "requesting_user_id")
    invitation = revoke_invitation(db.session, organization, invitation_id, actor=actor)
    return Answer(invitation_json(invitation, utcnow()))


@operation(
    blueprint,
    "POST",
    ORG_PATH + "/revoke_by_email",
    summary="Revoke the pending invitation of an address",
    tag=TAG,
    body=schemas.InvitationRevokeByEmail,
    response=schemas.Invitation,
    problems=("validation_failed",),
)
def revoke_by_email(call: ApiCall, org: str) -> Answer:
    """What Anyscale calls deleting an invitation: find the address's pending
    invitation and revoke it (404 when it has none)."""
    organization = organization_for(db.session, call.principal, org)
    actor = _acting(call, organization, "requesting_user_id")
    invitation = revoke_pending_by_email(db.session, organization, call.body.email, actor=actor)
    return Answer(invitation_json(invitation, utcnow()))


@operation(
    blueprint,
    "POST",
    ORG_PATH + "/<invitation_id>/resend",
    summary="Resend an invitation with a new link",
    tag=TAG,
    body=schemas.InvitationResend,
    response=schemas.Invitation,
    problems=(
        "validation_failed",
        "invalid_status",
        "throttled",
        "already_invited",
        "already_member",
        "quota_exceeded",
    ),
)
def resend(call: ApiCall, org: str, invitation_id: str) -> Answer:
    """Pending or expired invitations: a new link replaces the old one (which stops
    working), the expiry restarts and the email is queued again. With `notify` false
    the answer carries the new `accept_url` once. Throttled: 429 `throttled` with
    `Retry-After`."""
    organization = organization_for(db.session, call.principal, org)
    issued = resend_invitation(
        db.session,
        organization,
        invitation_id,
        actor=call.principal.actor,
        notify=call.body.notify,
        expires_in=timedelta(days=call.body.expires_in_days) if call.body.expires_in_days else None,
    )
    return Answer(
        invitation_json(
            issued.invitation, utcnow(), accept_url=None if call.body.notify else issued.accept_url
        )
    )
