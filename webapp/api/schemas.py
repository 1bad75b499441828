"""Shapes of the API's bodies: request models (strict, unknown fields refused by name)
and response models (what the OpenAPI document promises and the serializers produce).

Request bodies are parsed by these models; responses are built by
``webapp.api.serializers`` as plain dicts (faster) and held to these models by the
schemathesis run and the serializer tests.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field

from webapp.models.invitations import STATUS_VALUES
from webapp.services.organizations import MAX_INVITE_QUOTA

InvitationStatusName = Literal["pending", "accepted", "declined", "revoked", "expired"]
assert set(InvitationStatusName.__args__) == set(STATUS_VALUES)  # type: ignore[attr-defined]

Metadata = Annotated[
    dict[str, Any],
    Field(description="A JSON object, at most ORGINVITES_METADATA_MAX_BYTES (8 KiB) encoded."),
]
Timestamp = Annotated[
    datetime, Field(description="RFC 3339 time in UTC, e.g. 2026-11-22T09:30:00Z")
]


class RequestModel(BaseModel):
    """A request body: every field is declared; anything else is an error naming it."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- requests


class ProjectGrantIn(RequestModel):
    id: str = Field(description="A project of the organization (`proj_…`).", max_length=40)
    role: Literal["member", "owner"] = "member"


class InvitationCreate(RequestModel):
    """Invite one address."""

    email: str = Field(description="The address to invite.", max_length=320)
    role: str | None = Field(
        None, description="One of the organization's role keys; its default role when omitted."
    )
    expires_in_days: int | None = Field(
        None, ge=1, le=30, description="Days until the link expires (org default when omitted)."
    )
    expires_at: Timestamp | None = Field(
        None,
        description="When the link expires (1 hour to 30 days ahead); not with expires_in_days.",
    )
    redirect_url: str | None = Field(
        None,
        max_length=2048,
        description="Where the invitee lands after accepting; its origin must be on the "
        "organization's allowlist.",
    )
    public_metadata: Metadata | None = None
    private_metadata: Metadata | None = None
    projects: list[ProjectGrantIn] | None = Field(
        None, max_length=100, description="Project memberships granted on acceptance."
    )
    inviter_user_id: str | None = Field(
        None, description="A member of the organization recorded as the inviter."
    )
    message: str | None = Field(None, max_length=1000, description="Shown in the email.")
    notify: bool = Field(
        True,
        description="Send the invitation email. When false no email is sent and the "
        "response carries `accept_url`, this once.",
    )


class InvitationRevoke(RequestModel):
    requesting_user_id: str | None = Field(
        None, description="A member of the organization recorded as the one who revoked."
    )


class InvitationRevokeByEmail(InvitationRevoke):
    email: str = Field(max_length=320, description="Revoke this address's pending invitation.")


class InvitationResend(RequestModel):
    notify: bool = Field(
        True, description="Send the email again; when false the response carries `accept_url`."
    )
    expires_in_days: int | None = Field(None, ge=1, le=30)


class TicketVerify(RequestModel):
    ticket: str = Field(
        max_length=2000, description="The `ticket` query parameter of the redirect."
    )


class OrganizationCreate(RequestModel):
    name: str = Field(max_length=200)
    slug: str | None = Field(None, max_length=64)


class OrganizationUpdate(RequestModel):
    name: str | None = Field(None, max_length=200)
    default_role: str | None = None
    default_expiry_days: int | None = Field(None, ge=1, le=30)
    allowed_redirect_origins: list[Annotated[str, Field(max_length=2048)]] | None = Field(
        None, max_length=100
    )
    default_redirect_url: str | None = Field(None, max_length=2048)
    invite_quota: int | None = Field(None, ge=0, le=MAX_INVITE_QUOTA)


class RoleCreate(RequestModel):
    key: str = Field(max_length=64)
    name: str | None = Field(None, max_length=100)
    administers: bool = Field(False, description="Members with this role manage the org.")


class RoleUpdate(RequestModel):
    name: str = Field(max_length=100)


class ProjectCreate(RequestModel):
    name: str = Field(max_length=200)
    is_default: bool = False


class MemberUpdate(RequestModel):
    role: str = Field(max_length=64)


class ApiKeyCreate(RequestModel):
    name: str = Field(max_length=200)


# --------------------------------------------------------------- responses


class ProjectGrantOut(ResponseModel):
    id: str
    role: Literal["member", "owner"]


class Inviter(ResponseModel):
    user_id: str | None
    api_key_id: str | None


class Delivery(ResponseModel):
    status: Literal["queued", "sent", "failed", "not_sent"] | None = Field(
        description="What happened to the latest email."
    )
    error: str | None
    send_count: int
    last_sent_at: Timestamp | None


class OrganizationSummary(ResponseModel):
    id: str
    name: str
    slug: str


class Invitation(ResponseModel):
    object: Literal["invitation"]
    id: str
    organization_id: str
    email: str
    role: str
    status: InvitationStatusName = Field(
        description="Effective status: a pending invitation past expires_at is expired."
    )
    public_metadata: dict[str, Any]
    private_metadata: dict[str, Any]
    redirect_url: str | None
    projects: list[ProjectGrantOut]
    message: str | None
    inviter: Inviter
    source: str
    created_at: Timestamp
    updated_at: Timestamp
    expires_at: Timestamp
    accepted_at: Timestamp | None
    declined_at: Timestamp | None
    revoked_at: Timestamp | None
    accepted_user_id: str | None
    delivery: Delivery
    accept_url: str | None = Field(
        None,
        description="The invitation link. Only in the answer that created or resent the "
        "invitation with notify=false; never again.",
    )
    organization: OrganizationSummary | None = Field(
        None, description="Only in the instance-wide list."
    )


class StatusTotals(ResponseModel):
    pending: int
    accepted: int
    declined: int
    revoked: int
    expired: int


class InvitationList(ResponseModel):
    object: Literal["list"]
    data: list[Invitation]
    has_more: bool
    first_id: str | None
    last_id: str | None
    total_count: int = Field(description="Invitations matching the filters over all pages.")
    total_count_exact: bool = Field(
        description="False when a search matched more than 1,000: total_count is then a floor."
    )
    totals: StatusTotals = Field(description="Invitations per status, ignoring the filters.")


class BulkError(ResponseModel):
    index: int = Field(description="Position of the item in the request array (from 0).")
    email: str | None
    code: str
    status: int
    detail: str
    errors: list[FieldErrorOut]
    existing_invitation_id: str | None = None


class BulkResult(ResponseModel):
    object: Literal["bulk_result"]
    successes: list[BulkSuccess]
    errors: list[BulkError]


class BulkSuccess(ResponseModel):
    index: int
    invitation: Invitation


class FieldErrorOut(ResponseModel):
    field: str
    code: str
    message: str


class Problem(BaseModel):
    """An error (RFC 9457 problem details)."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    code: str = Field(description="Stable machine code; see the table in /api/docs.")
    detail: str
    errors: list[FieldErrorOut]
    existing_invitation_id: str | None = Field(None, description="With code already_invited.")
    retry_after: int | None = Field(None, description="With code throttled (seconds).")
    reason: str | None = Field(None, description="With code invalid_ticket.")


class Role(ResponseModel):
    key: str
    name: str
    administers: bool


class Organization(ResponseModel):
    object: Literal["organization"]
    id: str
    name: str
    slug: str
    roles: list[Role]
    default_role: str
    default_expiry_days: float
    allowed_redirect_origins: list[str]
    default_redirect_url: str | None
    invite_quota: int | None
    created_at: Timestamp


class OrganizationList(ResponseModel):
    object: Literal["list"]
    data: list[Organization]


class RoleList(ResponseModel):
    object: Literal["list"]
    data: list[Role]


class Project(ResponseModel):
    object: Literal["project"]
    id: str
    organization_id: str
    name: str
    is_default: bool
    created_at: Timestamp


class ProjectList(ResponseModel):
    object: Literal["list"]
    data: list[Project]


class Member(ResponseModel):
    object: Literal["member"]
    id: str
    organization_id: str
    user_id: str
    email: str
    name: str | None
    role: str
    public_metadata: dict[str, Any]
    private_metadata: dict[str, Any]
    invitation_id: str | None
    created_at: Timestamp


class MemberList(ResponseModel):
    object: Literal["list"]
    data: list[Member]
    has_more: bool
    first_id: str | None
    last_id: str | None
    total_count: int


class RemovedMember(ResponseModel):
    object: Literal["member.removed"]
    user_id: str
    email: str
    role: str
    project_memberships_removed: int


class ApiKey(ResponseModel):
    object: Literal["api_key"]
    id: str
    organization_id: str | None
    name: str
    prefix: str = Field(description="The key's first characters, to recognise it.")
    created_at: Timestamp
    last_used_at: Timestamp | None
    revoked_at: Timestamp | None
    secret: str | None = Field(
        None, description="The key itself: only in the answer that created it."
    )


class ApiKeyList(ResponseModel):
    object: Literal["list"]
    data: list[ApiKey]


class User(ResponseModel):
    id: str
    email: str
    name: str | None


class VerifiedTicket(ResponseModel):
    object: Literal["acceptance"]
    invitation: Invitation
    user: User
    membership: Member


BulkError.model_rebuild()
BulkResult.model_rebuild()
