"""Organizations and what a backend needs to automate onboarding: roles, settings,
projects, members and API keys."""

from __future__ import annotations

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field

from webapp.api import schemas
from webapp.api.blueprint import blueprint
from webapp.api.operations import Answer
from webapp.api.operations import ApiCall
from webapp.api.operations import operation
from webapp.api.principals import organization_for
from webapp.api.serializers import api_key_json
from webapp.api.serializers import cursor_page_json
from webapp.api.serializers import member_json
from webapp.api.serializers import organization_json
from webapp.api.serializers import project_json
from webapp.api.serializers import role_json
from webapp.extensions import db
from webapp.models import Organization
from webapp.services.api_keys import create_api_key
from webapp.services.api_keys import list_api_keys
from webapp.services.api_keys import revoke_api_key
from webapp.services.members import MAX_LIMIT as MEMBERS_MAX_LIMIT
from webapp.services.members import change_member_role
from webapp.services.members import get_member
from webapp.services.members import list_members
from webapp.services.members import remove_member
from webapp.services.organizations import UNSET
from webapp.services.organizations import add_role
from webapp.services.organizations import create_organization
from webapp.services.organizations import create_project
from webapp.services.organizations import list_organizations
from webapp.services.organizations import list_projects
from webapp.services.organizations import remove_role
from webapp.services.organizations import rename_role
from webapp.services.organizations import update_organization

ORGS = "Organizations"
PEOPLE = "Members"
KEYS = "API keys"


def _org(call: ApiCall, ref: str) -> Organization:
    return organization_for(db.session, call.principal, ref)


@operation(
    blueprint,
    "GET",
    "/organizations",
    summary="List organizations",
    tag=ORGS,
    response=schemas.OrganizationList,
)
def organizations(call: ApiCall) -> Answer:
    """Every organization for an instance key; its own one for an organization key."""
    if call.principal.is_instance:
        found = list_organizations(db.session)
    else:
        found = [_org(call, call.principal.org_id or "")]
    return Answer({"object": "list", "data": [organization_json(o) for o in found]})


@operation(
    blueprint,
    "POST",
    "/organizations",
    summary="Create an organization",
    tag=ORGS,
    body=schemas.OrganizationCreate,
    response=schemas.Organization,
    status=201,
    problems=("validation_failed", "conflict"),
    instance_only=True,
)
def create_org(call: ApiCall) -> Answer:
    """Instance keys only. The organization starts with the roles `admin` and `member`."""
    org = create_organization(db.session, name=call.body.name, slug=call.body.slug)
    return Answer(organization_json(org), 201)


@operation(
    blueprint,
    "GET",
    "/organizations/<org>",
    summary="Get an organization and its settings",
    tag=ORGS,
    response=schemas.Organization,
)
def get_org(call: ApiCall, org: str) -> Answer:
    """`org` is the organization's id (`org_…`) or its slug."""
    return Answer(organization_json(_org(call, org)))


@operation(
    blueprint,
    "PATCH",
    "/organizations/<org>",
    summary="Change an organization's settings",
    tag=ORGS,
    body=schemas.OrganizationUpdate,
    response=schemas.Organization,
    problems=("validation_failed",),
)
def update_org(call: ApiCall, org: str) -> Answer:
    """Only the fields you send change. `allowed_redirect_origins` replaces the list;
    `default_redirect_url` and `invite_quota` accept null to clear them."""
    organization = _org(call, org)
    sent = call.body.model_fields_set
    update_organization(
        db.session,
        organization,
        name=call.body.name,
        default_role=call.body.default_role,
        default_expiry_seconds=(
            call.body.default_expiry_days * 86400 if call.body.default_expiry_days else None
        ),
        allowed_redirect_origins=call.body.allowed_redirect_origins,
        default_redirect_url=(
            call.body.default_redirect_url if "default_redirect_url" in sent else UNSET
        ),
        invite_quota=call.body.invite_quota if "invite_quota" in sent else UNSET,
        actor=call.principal.actor,
    )
    return Answer(organization_json(organization))


@operation(
    blueprint,
    "GET",
    "/organizations/<org>/roles",
    summary="List roles",
    tag=ORGS,
    response=schemas.RoleList,
)
def roles(call: ApiCall, org: str) -> Answer:
    """The organization's role keys, in order; `administers` roles manage the org."""
    organization = _org(call, org)
    return Answer({"object": "list", "data": [role_json(r) for r in organization.roles]})


@operation(
    blueprint,
    "POST",
    "/organizations/<org>/roles",
    summary="Add a role",
    tag=ORGS,
    body=schemas.RoleCreate,
    response=schemas.Role,
    status=201,
    problems=("validation_failed", "conflict"),
)
def create_role(call: ApiCall, org: str) -> Answer:
    """Keys are free strings (`org:admin`, `owner`, `developer`…) checked for shape."""
    organization = _org(call, org)
    role = add_role(
        db.session,
        organization,
        call.body.key,
        call.body.name,
        is_admin=call.body.administers,
        actor=call.principal.actor,
    )
    return Answer(role_json(role), 201)


@operation(
    blueprint,
    "PATCH",
    "/organizations/<org>/roles/<key>",
    summary="Rename a role",
    tag=ORGS,
    body=schemas.RoleUpdate,
    response=schemas.Role,
    problems=("validation_failed",),
)
def update_role(call: ApiCall, org: str, key: str) -> Answer:
    """The key stays; only the display name changes."""
    organization = _org(call, org)
    role = rename_role(db.session, organization, key, call.body.name, actor=call.principal.actor)
    return Answer(role_json(role))


@operation(
    blueprint,
    "DELETE",
    "/organizations/<org>/roles/<key>",
    summary="Remove a role not in use",
    tag=ORGS,
    response=schemas.RoleList,
    problems=("conflict",),
)
def delete_role(call: ApiCall, org: str, key: str) -> Answer:
    """Refused (409) while members or pending invitations hold the role, or when it is
    the default role. Answers the remaining roles."""
    organization = _org(call, org)
    remove_role(db.session, organization, key, actor=call.principal.actor)
    return Answer({"object": "list", "data": [role_json(r) for r in organization.roles]})


@operation(
    blueprint,
    "GET",
    "/organizations/<org>/projects",
    summary="List projects",
    tag=ORGS,
    response=schemas.ProjectList,
)
def projects(call: ApiCall, org: str) -> Answer:
    """Projects that invitations can grant membership of (`projects` on create)."""
    organization = _org(call, org)
    return Answer(
        {
            "object": "list",
            "data": [project_json(p) for p in list_projects(db.session, organization)],
        }
    )


@operation(
    blueprint,
    "POST",
    "/organizations/<org>/projects",
    summary="Create a project",
    tag=ORGS,
    body=schemas.ProjectCreate,
    response=schemas.Project,
    status=201,
    problems=("validation_failed", "conflict"),
)
def create_project_(call: ApiCall, org: str) -> Answer:
    """Project names are unique within the organization."""
    organization = _org(call, org)
    project = create_project(
        db.session, organization, call.body.name, is_default=call.body.is_default
    )
    return Answer(project_json(project), 201)


class MemberListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    query: str | None = Field(None, max_length=254, description="Part of the email address.")
    limit: int = Field(25, ge=1, le=MEMBERS_MAX_LIMIT)
    starting_after: str | None = Field(None, max_length=40)
    ending_before: str | None = Field(None, max_length=40)


@operation(
    blueprint,
    "GET",
    "/organizations/<org>/members",
    summary="List members",
    tag=PEOPLE,
    query=MemberListQuery,
    response=schemas.MemberList,
    problems=("validation_failed",),
)
def members(call: ApiCall, org: str) -> Answer:
    """Newest first, cursor-paged by membership id."""
    organization = _org(call, org)
    q = call.query
    page = list_members(
        db.session,
        organization,
        query=q.query,
        limit=q.limit,
        starting_after=q.starting_after,
        ending_before=q.ending_before,
    )
    data = [member_json(m) for m in page.items]
    return Answer({**cursor_page_json(data, page.items, page.has_more), "total_count": page.total})


@operation(
    blueprint,
    "GET",
    "/organizations/<org>/members/<member_id>",
    summary="Get a member",
    tag=PEOPLE,
    response=schemas.Member,
)
def member(call: ApiCall, org: str, member_id: str) -> Answer:
    """By membership id (`mem_…`)."""
    return Answer(member_json(get_member(db.session, _org(call, org), member_id)))


@operation(
    blueprint,
    "PATCH",
    "/organizations/<org>/members/<member_id>",
    summary="Change a member's role",
    tag=PEOPLE,
    body=schemas.MemberUpdate,
    response=schemas.Member,
    problems=("validation_failed", "conflict"),
)
def update_member(call: ApiCall, org: str, member_id: str) -> Answer:
    """The last member with an administering role keeps it (409)."""
    organization = _org(call, org)
    membership = change_member_role(
        db.session, organization, member_id, call.body.role, actor=call.principal.actor
    )
    return Answer(member_json(membership))


@operation(
    blueprint,
    "DELETE",
    "/organizations/<org>/members/<member_id>",
    summary="Remove a member",
    tag=PEOPLE,
    response=schemas.RemovedMember,
    problems=("conflict",),
)
def delete_member(call: ApiCall, org: str, member_id: str) -> Answer:
    """Also removes their project memberships. The last admin cannot be removed (409)."""
    removed = remove_member(db.session, _org(call, org), member_id, actor=call.principal.actor)
    return Answer(
        {
            "object": "member.removed",
            "user_id": removed.user_id,
            "email": removed.email,
            "role": removed.role,
            "project_memberships_removed": removed.project_memberships_removed,
        }
    )


@operation(
    blueprint,
    "GET",
    "/organizations/<org>/api_keys",
    summary="List the organization's API keys",
    tag=KEYS,
    response=schemas.ApiKeyList,
)
def api_keys(call: ApiCall, org: str) -> Answer:
    """Never the keys themselves: only their prefix, names and times."""
    keys = list_api_keys(db.session, _org(call, org))
    return Answer({"object": "list", "data": [api_key_json(k) for k in keys]})


@operation(
    blueprint,
    "POST",
    "/organizations/<org>/api_keys",
    summary="Create an API key for the organization",
    tag=KEYS,
    body=schemas.ApiKeyCreate,
    response=schemas.ApiKey,
    status=201,
    problems=("validation_failed",),
)
def create_key(call: ApiCall, org: str) -> Answer:
    """The answer carries `secret`, the key itself, this once; only its hash is kept."""
    key, raw = create_api_key(db.session, org=_org(call, org), name=call.body.name)
    return Answer(api_key_json(key, secret=raw), 201)


@operation(
    blueprint,
    "POST",
    "/organizations/<org>/api_keys/<key_id>/revoke",
    summary="Revoke an API key",
    tag=KEYS,
    response=schemas.ApiKey,
)
def revoke_key(call: ApiCall, org: str, key_id: str) -> Answer:
    """The key stops working at once (a key may revoke itself)."""
    key = revoke_api_key(db.session, key_id, _org(call, org))
    return Answer(api_key_json(key))
