"""What the three vendor-compatible APIs share: key authentication, rate limits, bodies.

Each vendor module is a thin mapping over the services: it reads the vendor's fields,
calls the same service functions as the native API and the dashboard, and writes the
vendor's shapes. This module holds the plumbing they have in common, so that each of
them only says what differs (field names, envelopes, status codes).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask import Blueprint
from flask import Response
from flask import g
from flask import request
from werkzeug.exceptions import HTTPException

from webapp.api.json_input import TOO_DEEP
from webapp.api.json_input import document_problem
from webapp.api.json_input import parameter_problem
from webapp.api.principals import ApiPrincipal
from webapp.api.principals import authenticate_request
from webapp.api.rate_limits import count_request
from webapp.extensions import SELF_LIMITED_BLUEPRINTS
from webapp.extensions import csrf
from webapp.extensions import db
from webapp.services.errors import FieldError
from webapp.services.errors import ServiceError
from webapp.services.errors import Throttled
from webapp.services.errors import ValidationFailed


class NotAuthenticated(ServiceError):
    """No API key, or one that is unknown or revoked."""

    code = "unauthenticated"


def compat_blueprint(
    name: str,
    url_prefix: str,
    *,
    accept_x_api_key: bool,
    unauthenticated_message: str,
    render_error: Callable[[ServiceError], Response],
) -> Blueprint:
    """A blueprint whose every request needs an API key and whose errors are the vendor's.

    CSRF-exempt (no cookie ever authenticates these requests); each request counts
    against its key's and organization's budgets, the native API's too (a refusal is a
    Throttled error, with ``Retry-After``); any ServiceError rolls the transaction back
    before ``render_error`` answers.
    """
    blueprint = Blueprint(name, __name__, url_prefix=url_prefix)
    csrf.exempt(blueprint)
    SELF_LIMITED_BLUEPRINTS.add(blueprint.name)

    @blueprint.before_request
    def _authenticate() -> None:
        principal = authenticate_request(accept_x_api_key=accept_x_api_key)
        if principal is None:
            raise NotAuthenticated(unauthenticated_message)
        counted = count_request(principal)
        g.rate_limit_headers = counted.headers
        if counted.refusal is not None:
            raise Throttled(counted.refusal, counted.retry_after)
        refused = parameter_problem(
            [*(request.view_args or {}).items(), *request.args.items(multi=True)]
        )
        if refused is not None:
            raise ValidationFailed([refused])

    @blueprint.errorhandler(ServiceError)
    def _service_error(error: ServiceError) -> Response:
        db.session.rollback()
        return render_error(error)

    @blueprint.after_request
    def _rate_limit_headers(response: Response) -> Response:
        for header, value in g.get("rate_limit_headers", {}).items():
            response.headers.setdefault(header, value)
        return response

    return blueprint


def http_error_response(error: HTTPException, body: Any) -> Response:
    """An HTTP error (404, 405 with its Allow, 413, 500…) answered with a JSON ``body``."""
    response = error.get_response()
    response.set_data(json.dumps(body))
    response.mimetype = "application/json"
    return response


def principal() -> ApiPrincipal:
    """The API key this request was authenticated with."""
    return g.api_principal


# --- request bodies and query strings --------------------------------------------------


def json_body(*, required: bool = True) -> Any:
    """The request's JSON document (None when absent and not required)."""
    if not request.get_data(cache=True):
        if required:
            raise ValidationFailed.single("body", "required", "the request needs a JSON body")
        return None
    try:
        body = request.get_json(force=True, silent=True)
    except RecursionError:
        body = TOO_DEEP
    if body is None:
        raise ValidationFailed.single("body", "invalid_json", "the request body is not valid JSON")
    refused = document_problem(body)
    if refused is not None:
        raise ValidationFailed([refused])
    return body


def json_object(
    value: Any, allowed: Iterable[str], *, where: str = "the request body"
) -> dict[str, Any]:
    """``value`` as a JSON object with only ``allowed`` fields (others are named in the error)."""
    if not isinstance(value, dict):
        raise ValidationFailed.single("body", "invalid_body", f"{where} must be a JSON object")
    allowed = tuple(allowed)
    unknown = [k for k in value if k not in allowed]
    if unknown:
        raise ValidationFailed(
            [
                FieldError(
                    k, "unknown_field", f"{k!r} is not a field of {where} ({', '.join(allowed)})"
                )
                for k in unknown
            ]
        )
    return value


def query_int(name: str, default: int) -> int:
    """An integer query parameter (``default`` when absent)."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationFailed.single(
            name, "invalid_integer", f"{name} must be a whole number, not {raw[:40]!r}"
        ) from None


def query_list(name: str) -> list[str]:
    """A repeatable query parameter, as ``name=a&name=b`` or ``name[]=a&name[]=b``."""
    return [v for v in request.args.getlist(name) + request.args.getlist(name + "[]") if v]


def renamed(errors: Iterable[FieldError], names: Mapping[str, str]) -> list[FieldError]:
    """Field errors with the vendor's names for OrgInvites' fields."""
    return [FieldError(names.get(e.field, e.field), e.code, e.message) for e in errors]


# --- timestamps ----------------------------------------------------------------------


def unix_ms(moment: datetime | None) -> int | None:
    """Milliseconds since the epoch (Clerk)."""
    return None if moment is None else int(moment.timestamp() * 1000)


def unix_seconds(moment: datetime | None) -> int | None:
    """Seconds since the epoch (OpenAI)."""
    return None if moment is None else int(moment.timestamp())
