"""Typed errors raised by services; each surface maps them to its own response."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field (``field`` uses the API's field names)."""

    field: str
    code: str
    message: str


class ServiceError(Exception):
    """Base of every rule violation a caller can show to a user."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code

    def __str__(self) -> str:
        return self.message


class ValidationFailed(ServiceError):
    """The input breaks one or more field rules; ``errors`` lists them all."""

    code = "validation_failed"

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))

    @classmethod
    def single(cls, field: str, code: str, message: str) -> ValidationFailed:
        return cls([FieldError(field, code, message)])


class NotFound(ServiceError):
    code = "not_found"


class Conflict(ServiceError):
    code = "conflict"


class AlreadyInvited(Conflict):
    """A pending invitation for this address already exists in the organization."""

    code = "already_invited"

    def __init__(self, email: str, existing_invitation_id: str | None) -> None:
        # None: a concurrent caller's invitation won, then changed before it could be read.
        shown = f" ({existing_invitation_id})" if existing_invitation_id else ""
        super().__init__(f"{email} already has a pending invitation{shown}")
        self.email = email
        self.existing_invitation_id = existing_invitation_id


class AlreadyMember(Conflict):
    code = "already_member"

    def __init__(self, email: str, org_name: str) -> None:
        super().__init__(f"{email} is already a member of {org_name}")
        self.email = email


class InvalidTransition(Conflict):
    """The invitation's status does not allow this action (terminal states are final)."""

    code = "invalid_status"

    def __init__(self, invitation_id: str, status: str, action: str, allowed: str) -> None:
        super().__init__(
            f"invitation {invitation_id} is {status}; only {allowed} invitations can be {action}"
        )
        self.invitation_id = invitation_id
        self.status = status


class InvitationUnavailable(ServiceError):
    """Unknown, revoked, declined or expired link: one error so nothing can be enumerated."""

    code = "invitation_unavailable"

    def __init__(self) -> None:
        super().__init__("This invitation is no longer valid. Ask your admin for a new one.")


class Throttled(ServiceError):
    code = "throttled"

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class QuotaExceeded(ServiceError):
    code = "quota_exceeded"


class InvalidResetLink(ServiceError):
    """Unknown, used or expired password-reset link."""

    code = "invalid_reset_link"

    def __init__(self) -> None:
        super().__init__("This password reset link is no longer valid. Ask for a new one.")


class Forbidden(ServiceError):
    code = "forbidden"
