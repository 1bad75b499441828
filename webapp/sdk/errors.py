"""Exceptions raised by the SDK, each carrying the server's problem details (RFC 9457).

Catch :class:`OrgInvitesError` for everything, a status class (``NotFoundError``,
``ValidationError``…) for a kind of failure, or a code class (``AlreadyInvitedError``,
``ThrottledError``…) for one case. The server's stable machine ``code`` is on every
error, so ``error.code == "already_member"`` works as well as a class check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webapp.sdk.models import FieldError


class OrgInvitesError(Exception):
    """Base of every SDK error.

    ``status`` is the HTTP status (None when no answer arrived), ``code`` the stable
    machine code, ``detail`` the human explanation, ``errors`` the per-field problems,
    ``body`` the whole problem document and ``headers`` the response headers.
    """

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str = "error",
        title: str | None = None,
        errors: list[FieldError] | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.code = code
        self.title = title
        self.errors: list[FieldError] = list(errors or [])
        self.body: dict[str, Any] = dict(body or {})
        self.headers: dict[str, str] = dict(headers or {})
        # Set by create_many when a chunk fails after earlier chunks were created:
        # (successes, errors) of the chunks that completed.
        self.partial_results: tuple[list[Any], list[Any]] | None = None

    def __str__(self) -> str:
        where = f"{self.status} {self.code}" if self.status is not None else self.code
        return f"{self.detail} ({where})"

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(status={self.status!r}, code={self.code!r}, detail={self.detail!r})"


# --------------------------------------------------------------- no answer


class APIConnectionError(OrgInvitesError):
    """No HTTP answer: the server could not be reached or the connection broke."""

    def __init__(self, detail: str, *, code: str = "connection_error") -> None:
        super().__init__(detail, code=code)


class APITimeoutError(APIConnectionError):
    """The server did not answer within the client's timeout."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, code="timeout")


class UnexpectedResponseError(OrgInvitesError):
    """An answer that is not what the API sends (not JSON, or the wrong shape)."""


# ------------------------------------------------------------- per status


class BadRequestError(OrgInvitesError):
    """400: the request could not be parsed (or its Idempotency-Key is malformed)."""


class AuthenticationError(OrgInvitesError):
    """401: no API key, or an unknown or revoked one."""


class PermissionDeniedError(OrgInvitesError):
    """403: the key may not do this (e.g. an organization key on an instance endpoint)."""


class QuotaExceededError(PermissionDeniedError):
    """403 ``quota_exceeded``: the organization's invitation quota is used up."""


class NotFoundError(OrgInvitesError):
    """404: unknown id or slug, or one of another organization."""


class ConflictError(OrgInvitesError):
    """409: the request conflicts with the current state."""


class AlreadyInvitedError(ConflictError):
    """409 ``already_invited``: ``existing_invitation_id`` is the pending invitation."""

    @property
    def existing_invitation_id(self) -> str | None:
        value = self.body.get("existing_invitation_id")
        return value if isinstance(value, str) else None


class AlreadyMemberError(ConflictError):
    """409 ``already_member``: the address belongs to a member of the organization."""


class InvalidStatusError(ConflictError):
    """409 ``invalid_status``: e.g. revoking an invitation that is no longer pending."""


class IdempotencyKeyInUseError(ConflictError):
    """409 ``idempotency_key_in_use``: a request with this key is still being processed."""


class ValidationError(OrgInvitesError):
    """422: invalid fields; ``errors`` names each field and what is wrong with it."""


class IdempotencyKeyReusedError(ValidationError):
    """422 ``idempotency_key_reused``: the key was used for a different request."""


class InvalidTicketError(ValidationError):
    """422 ``invalid_ticket``: ``reason`` says whether it expired, was used or is invalid."""

    @property
    def reason(self) -> str | None:
        value = self.body.get("reason")
        return value if isinstance(value, str) else None


class RateLimitError(OrgInvitesError):
    """429: too many requests; ``retry_after`` is the wait in seconds the server asked for."""

    def __init__(self, detail: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after


class ThrottledError(RateLimitError):
    """429 ``throttled``: too soon to repeat this action (e.g. resending an invitation)."""


class ServerError(OrgInvitesError):
    """5xx: the server failed; the SDK has already retried."""


_BY_CODE: dict[str, type[OrgInvitesError]] = {
    "quota_exceeded": QuotaExceededError,
    "already_invited": AlreadyInvitedError,
    "already_member": AlreadyMemberError,
    "invalid_status": InvalidStatusError,
    "idempotency_key_in_use": IdempotencyKeyInUseError,
    "idempotency_key_reused": IdempotencyKeyReusedError,
    "invalid_ticket": InvalidTicketError,
    "throttled": ThrottledError,
}

_BY_STATUS: dict[int, type[OrgInvitesError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitError,
}


def error_class(status: int, code: str) -> type[OrgInvitesError]:
    """The exception class for an answer's status and problem code."""
    by_code = _BY_CODE.get(code)
    if by_code is not None and _status_of(by_code) in (None, status):
        return by_code
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, OrgInvitesError)


def _status_of(cls: type[OrgInvitesError]) -> int | None:
    for status, base in _BY_STATUS.items():
        if issubclass(cls, base):
            return status
    return None


def error_from_response(
    status: int,
    body: Mapping[str, Any] | None,
    headers: Mapping[str, str],
    text: str,
    retry_after: float | None,
) -> OrgInvitesError:
    """Build the exception for an error answer (a problem document, or anything else)."""
    problem = body if isinstance(body, Mapping) else {}
    code = problem.get("code")
    if not isinstance(code, str) or not code:
        code = _fallback_code(status)
    detail = problem.get("detail")
    if not isinstance(detail, str) or not detail:
        snippet = " ".join(text.split())[:200]
        detail = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    raw_errors = problem.get("errors")
    errors = [
        FieldError.from_dict(item)
        for item in (raw_errors if isinstance(raw_errors, list) else [])
        if isinstance(item, Mapping)
    ]
    title = problem.get("title") if isinstance(problem.get("title"), str) else None
    cls = error_class(status, code)
    kwargs: dict[str, Any] = {
        "status": status,
        "code": code,
        "title": title,
        "errors": errors,
        "body": problem,
        "headers": headers,
    }
    if issubclass(cls, RateLimitError):
        body_wait = problem.get("retry_after")
        if isinstance(body_wait, int | float) and not isinstance(body_wait, bool):
            retry_after = float(body_wait)
        return cls(detail, retry_after=retry_after, **kwargs)
    return cls(detail, **kwargs)


def _fallback_code(status: int) -> str:
    """The code of an answer that is not a problem document (say, a proxy's 502 page)."""
    return f"http_{status}"
