"""Every table of OrgInvites; importing this module registers them all on ``Base.metadata``."""

from webapp.models.api_keys import ApiKey
from webapp.models.audit import AuditEvent
from webapp.models.idempotency import IdempotentRequest
from webapp.models.imports import ImportJob
from webapp.models.imports import ImportJobData
from webapp.models.imports import ImportStatus
from webapp.models.invitations import AcceptanceTicketUse
from webapp.models.invitations import DeliveryStatus
from webapp.models.invitations import Invitation
from webapp.models.invitations import InvitationCounter
from webapp.models.invitations import InvitationStatus
from webapp.models.organizations import Organization
from webapp.models.organizations import OrgRole
from webapp.models.organizations import Project
from webapp.models.organizations import ProjectMembership
from webapp.models.outbox import DevMailboxMessage
from webapp.models.outbox import OutboxMessage
from webapp.models.outbox import OutboxStatus
from webapp.models.users import Membership
from webapp.models.users import PasswordResetToken
from webapp.models.users import User

__all__ = [
    "AcceptanceTicketUse",
    "DevMailboxMessage",
    "ApiKey",
    "AuditEvent",
    "DeliveryStatus",
    "IdempotentRequest",
    "ImportJob",
    "ImportJobData",
    "ImportStatus",
    "Invitation",
    "InvitationCounter",
    "InvitationStatus",
    "Membership",
    "OrgRole",
    "Organization",
    "OutboxMessage",
    "OutboxStatus",
    "PasswordResetToken",
    "Project",
    "ProjectMembership",
    "User",
]
