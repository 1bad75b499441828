"""Errors as ``application/problem+json`` (RFC 9457), each with a stable machine ``code``.

Every error the API can answer is listed in PROBLEMS (code → status, title); the
OpenAPI document and the docs page are generated from the same table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from flask import Response
from werkzeug.exceptions import HTTPException

from webapp.services.errors import AlreadyInvited
from webapp.services.errors import Conflict
from webapp.services.errors import FieldError
from webapp.services.errors import Forbidden
from webapp.services.errors import InvitationUnavailable
from webapp.services.errors import NotFound
from webapp.services.errors import QuotaExceeded
from webapp.services.errors import ServiceError
from webapp.services.errors import Throttled
from webapp.services.errors import ValidationFailed

PROBLEM_MEDIA_TYPE = "application/problem+json"

# code -> (HTTP status, title). Codes are stable: clients may branch on them.
PROBLEMS: dict[str, tuple[int, str]] = {
    "malformed_request": (400, "The request could not be parsed"),
    "invalid_idempotency_key": (400, "The Idempotency-Key header is not valid"),
    "unauthenticated": (401, "A valid API key is required"),
    "forbidden": (403, "This API key may not do this"),
    "quota_exceeded": (403, "The organization's invitation quota is used up"),
    "not_found": (404, "Not found"),
    "method_not_allowed": (405, "Method not allowed"),
    "already_invited": (409, "The address already has a pending invitation"),
    "already_member": (409, "The address already belongs to a member"),
    "invalid_status": (409, "The invitation's status does not allow this"),
    "conflict": (409, "The request conflicts with the current state"),
    "idempotency_key_in_use": (409, "A request with this Idempotency-Key is still in progress"),
    "payload_too_large": (413, "The request body is too large"),
    "unsupported_media_type": (415, "The request body must be JSON"),
    "validation_failed": (422, "The request has invalid fields"),
    "idempotency_key_reused": (422, "The Idempotency-Key was used for a different request"),
    "invalid_ticket": (422, "The acceptance ticket is not valid"),
    "rate_limited": (429, "Too many requests"),
    "throttled": (429, "Too soon to repeat this"),
    "internal_error": (500, "Internal error"),
}


@dataclass
class ApiProblem(Exception):
    """An error answer; raise it anywhere in an API view."""

    code: str
    detail: str
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> int:
        return PROBLEMS[self.code][0]

    def body(self) -> dict[str, Any]:
        status, title = PROBLEMS[self.code]
        document: dict[str, Any] = {
            "type": f"/api/docs#problem-{self.code}",
            "title": title,
            "status": status,
            "code": self.code,
            "detail": self.detail,
            "errors": [
                {"field": e.field, "code": e.code, "message": e.message} for e in self.errors
            ],
        }
        document.update(self.extra)
        return document

    def response(self) -> Response:
        response = Response(
            json.dumps(self.body(), ensure_ascii=False),
            status=self.status,
            mimetype=PROBLEM_MEDIA_TYPE,
        )
        response.headers.update(self.headers)
        return response


def problem_from_service_error(error: ServiceError) -> ApiProblem:
    """The API's answer to a rule violation raised by a service."""
    if isinstance(error, ValidationFailed):
        return ApiProblem("validation_failed", str(error), errors=list(error.errors))
    if isinstance(error, AlreadyInvited):
        return ApiProblem(
            "already_invited",
            str(error),
            extra={"existing_invitation_id": error.existing_invitation_id},
        )
    if isinstance(error, Throttled):
        return ApiProblem(
            "throttled",
            str(error),
            headers={"Retry-After": str(error.retry_after_seconds)},
            extra={"retry_after": error.retry_after_seconds},
        )
    if isinstance(error, NotFound | InvitationUnavailable):
        return ApiProblem("not_found", str(error))
    if isinstance(error, QuotaExceeded):
        return ApiProblem("quota_exceeded", str(error))
    if isinstance(error, Forbidden):
        return ApiProblem("forbidden", str(error))
    if isinstance(error, Conflict):
        code = error.code if error.code in PROBLEMS else "conflict"
        return ApiProblem(code, str(error))
    if error.code in ("invalid_ticket", "ticket_expired", "ticket_used"):
        # One public code; the detail says which (expired, used, tampered).
        return ApiProblem("invalid_ticket", str(error), extra={"reason": error.code})
    if error.code in PROBLEMS:
        return ApiProblem(error.code, str(error))
    return ApiProblem("validation_failed", str(error))


_HTTP_CODES = {
    400: "malformed_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def problem_from_http_error(error: HTTPException) -> Response:
    """Routing and framework errors under /api (unknown URL, wrong method, too large)."""
    code = _HTTP_CODES.get(error.code or 500, "internal_error")
    detail = {
        "not_found": "no such API endpoint; see /api/v1/openapi.json",
        "internal_error": "the error was logged; please try again",
    }.get(code, error.description or PROBLEMS[code][1])
    problem = ApiProblem(code, detail)
    response = problem.response()
    if error.code == 405 and getattr(error, "valid_methods", None):
        response.headers["Allow"] = ", ".join(error.valid_methods)
    retry_after = getattr(error, "retry_after", None)
    if error.code == 429:
        # Flask-Limiter's own 429s carry their reset time in the response it built.
        original = error.get_response()
        response.headers["Retry-After"] = original.headers.get("Retry-After", retry_after or "1")
    return response
