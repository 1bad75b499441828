"""Python SDK of the OrgInvites REST API (``/api/v1``).

    from webapp.sdk import Client

    with Client("https://invites.example.com", api_key="oik_…") as client:
        invitation = client.organization_invitations.create("acme", email="ada@example.com")
        successes, errors = client.organization_invitations.create_many(
            "acme", emails=["a@example.com", "b@example.com"], role="member"
        )
        for invitation in client.organization_invitations.list("acme", status="pending"):
            print(invitation.email, invitation.expires_at)

Importing it does no network I/O; errors are :class:`OrgInvitesError` subclasses.
"""

from webapp.sdk.client import Client
from webapp.sdk.errors import AlreadyInvitedError
from webapp.sdk.errors import AlreadyMemberError
from webapp.sdk.errors import APIConnectionError
from webapp.sdk.errors import APITimeoutError
from webapp.sdk.errors import AuthenticationError
from webapp.sdk.errors import BadRequestError
from webapp.sdk.errors import ConflictError
from webapp.sdk.errors import IdempotencyKeyInUseError
from webapp.sdk.errors import IdempotencyKeyReusedError
from webapp.sdk.errors import InvalidStatusError
from webapp.sdk.errors import InvalidTicketError
from webapp.sdk.errors import NotFoundError
from webapp.sdk.errors import OrgInvitesError
from webapp.sdk.errors import PermissionDeniedError
from webapp.sdk.errors import QuotaExceededError
from webapp.sdk.errors import RateLimitError
from webapp.sdk.errors import ServerError
from webapp.sdk.errors import ThrottledError
from webapp.sdk.errors import UnexpectedResponseError
from webapp.sdk.errors import ValidationError
from webapp.sdk.models import AcceptanceResult
from webapp.sdk.models import BulkError
from webapp.sdk.models import BulkSuccess
from webapp.sdk.models import Delivery
from webapp.sdk.models import FieldError
from webapp.sdk.models import Invitation
from webapp.sdk.models import InvitationPage
from webapp.sdk.models import Inviter
from webapp.sdk.models import Member
from webapp.sdk.models import Organization
from webapp.sdk.models import OrganizationSummary
from webapp.sdk.models import ProjectGrant
from webapp.sdk.models import Role
from webapp.sdk.models import StatusTotals
from webapp.sdk.models import User
from webapp.sdk.resources import NOT_GIVEN
from webapp.sdk.resources import InvitationPager

__all__ = [
    "NOT_GIVEN",
    "APIConnectionError",
    "APITimeoutError",
    "AcceptanceResult",
    "AlreadyInvitedError",
    "AlreadyMemberError",
    "AuthenticationError",
    "BadRequestError",
    "BulkError",
    "BulkSuccess",
    "Client",
    "ConflictError",
    "Delivery",
    "FieldError",
    "IdempotencyKeyInUseError",
    "IdempotencyKeyReusedError",
    "InvalidStatusError",
    "InvalidTicketError",
    "Invitation",
    "InvitationPage",
    "InvitationPager",
    "Inviter",
    "Member",
    "NotFoundError",
    "OrgInvitesError",
    "Organization",
    "OrganizationSummary",
    "PermissionDeniedError",
    "ProjectGrant",
    "QuotaExceededError",
    "RateLimitError",
    "Role",
    "ServerError",
    "StatusTotals",
    "ThrottledError",
    "UnexpectedResponseError",
    "User",
    "ValidationError",
]
