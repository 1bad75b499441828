"""How an API endpoint runs: authenticate, rate-limit, parse, (idempotently) call, answer.

Each endpoint is declared with ``@operation(...)``: its method and path, its query
and body models, its response model and the problems it can answer. The same
declaration drives the request handling here and the OpenAPI document
(``webapp.api.openapi``), so the document cannot drift from the code.
"""

from __future__ import annotations

import hashlib
import json
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from functools import cache
from functools import wraps
from typing import Any

from flask import Blueprint
from flask import Response
from flask import request
from pydantic import BaseModel
from pydantic import ValidationError

from webapp.api.json_input import TOO_DEEP
from webapp.api.json_input import document_problem
from webapp.api.json_input import parameter_problem
from webapp.api.principals import ApiPrincipal
from webapp.api.principals import authenticate_request
from webapp.api.principals import require_instance_key
from webapp.api.problems import ApiProblem
from webapp.api.problems import problem_from_service_error
from webapp.api.rate_limits import count_request
from webapp.api.serializers import to_json
from webapp.clock import utcnow
from webapp.database import in_late_writes
from webapp.extensions import db
from webapp.services.errors import FieldError
from webapp.services.errors import ServiceError
from webapp.services.idempotency import MAX_KEY_LENGTH
from webapp.services.idempotency import claim_key
from webapp.services.idempotency import release_key
from webapp.services.idempotency import store_answer
from webapp.web.transactions import late_writer

JSON_MEDIA_TYPE = "application/json"
# Printable ASCII, no spaces at the ends: what clients put in a header.
_IDEMPOTENCY_KEY = re.compile(r"^[!-~](?:[ -~]*[!-~])?$")


@dataclass
class Operation:
    """One endpoint, as the router and the OpenAPI document see it."""

    method: str
    rule: str
    endpoint: str
    summary: str
    description: str
    tag: str
    response: type[BaseModel] | None
    status: int = 200
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    # A body that is not one model (the bulk array): its JSON Schema and item model.
    body_array_of: type[BaseModel] | None = None
    body_array_max: int = 0
    problems: tuple[str, ...] = ()
    instance_only: bool = False
    # Reads first, writes at the end (see webapp.database.in_late_writes).
    late_writes: bool = False

    @property
    def has_body(self) -> bool:
        return self.body is not None or self.body_array_of is not None


OPERATIONS: list[Operation] = []


@dataclass
class ApiCall:
    """What a view receives: who calls, and the parsed query and body."""

    principal: ApiPrincipal
    query: Any = None
    body: Any = None


@dataclass
class Answer:
    """A view's successful result: JSON-able ``payload`` with its status."""

    payload: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def operation(
    blueprint: Blueprint,
    method: str,
    rule: str,
    *,
    summary: str,
    tag: str,
    response: type[BaseModel] | None,
    status: int = 200,
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    body_array_of: type[BaseModel] | None = None,
    body_array_max: int = 0,
    problems: tuple[str, ...] = (),
    instance_only: bool = False,
    late_writes: bool = False,
):
    """Declare and register an API endpoint (see the module docstring).

    ``late_writes``: the view's service opens the write transaction itself, after its
    reads (``webapp.database.begin_writes``; see ``webapp.database.in_late_writes``): on
    SQLite the write lock is then held for the writes only, on PostgreSQL a write that
    is one statement runs without BEGIN and COMMIT.
    """

    def decorate(view: Callable[..., Answer]) -> Callable[..., Response]:
        spec = Operation(
            method=method,
            rule=(blueprint.url_prefix or "") + rule,
            endpoint=f"{blueprint.name}.{view.__name__}",
            summary=summary,
            description=(view.__doc__ or "").strip(),
            tag=tag,
            response=response,
            status=status,
            query=query,
            body=body,
            body_array_of=body_array_of,
            body_array_max=body_array_max,
            problems=problems,
            instance_only=instance_only,
            late_writes=late_writes,
        )
        OPERATIONS.append(spec)

        @wraps(view)
        def handle(**path_args: str) -> Response:
            if not spec.late_writes:
                return _run(spec, view, path_args)
            token = in_late_writes.set(True)
            try:
                return _run(spec, view, path_args)
            finally:
                in_late_writes.reset(token)

        if spec.late_writes:
            late_writer(handle)
        blueprint.add_url_rule(rule, view.__name__, handle, methods=[method])
        return handle

    return decorate


# ------------------------------------------------------------------ running


def _run(spec: Operation, view: Callable[..., Answer], path_args: dict[str, str]) -> Response:
    principal = authenticate_request()
    if principal is None:
        problem = ApiProblem(
            "unauthenticated",
            "send a valid API key as 'Authorization: Bearer <key>' "
            "(create one with `orginvites api-keys create`)",
            headers={"WWW-Authenticate": 'Bearer realm="orginvites"'},
        )
        return problem.response()
    limit_headers: dict[str, str] = {}
    try:
        limit_headers = _check_rate_limits(principal)
        refused = parameter_problem([*path_args.items(), *request.args.items(multi=True)])
        if refused is not None:
            raise _invalid(refused)
        if spec.instance_only:
            require_instance_key(principal)
        call = ApiCall(
            principal=principal,
            query=_parse_query(spec.query) if spec.query else None,
            body=_parse_body(spec) if spec.has_body else None,
        )
    except ServiceError as error:
        return _with_headers(problem_from_service_error(error).response(), limit_headers)
    except ApiProblem as problem:
        problem.headers.update(limit_headers)
        return problem.response()

    idempotency_key = request.headers.get("Idempotency-Key") if spec.method == "POST" else None
    if idempotency_key is not None:
        replay = _claim_idempotency_key(principal, idempotency_key)
        if replay is not None:
            return _with_headers(replay, limit_headers)

    try:
        answer = view(call, **path_args)
        # The view's own headers win over the rate limit's (as in _with_headers).
        headers = {**limit_headers, **answer.headers} if answer.headers else limit_headers
        response = json_response(answer.payload, answer.status, headers)
        if spec.method != "GET":
            if idempotency_key is not None:
                _remember(db.session.connection(), principal, idempotency_key, response)
            db.session.commit()
    except (ServiceError, ApiProblem) as error:
        db.session.rollback()
        problem = error if isinstance(error, ApiProblem) else problem_from_service_error(error)
        response = _with_headers(problem.response(), limit_headers)
        if idempotency_key is not None:
            _settle_failed(principal, idempotency_key, response)
    except Exception:
        db.session.rollback()
        if idempotency_key is not None:
            release_key(db.session.connection(), principal.key_id, idempotency_key)
            db.session.commit()
        raise
    return response


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None):
    """``payload`` as compact UTF-8 JSON; datetimes as RFC 3339 in UTC with a ``Z``."""
    return Response(to_json(payload), status=status, headers=headers, mimetype=JSON_MEDIA_TYPE)


def _with_headers(response: Response, headers: dict[str, str]) -> Response:
    for name, value in headers.items():
        response.headers.setdefault(name, value)
    return response


# ------------------------------------------------------------- rate limits


def _check_rate_limits(principal: ApiPrincipal) -> dict[str, str]:
    """Count the request against its key's limit and its organization's; 429 past either."""
    counted = count_request(principal)
    if counted.refusal is not None:
        raise ApiProblem(
            "rate_limited",
            counted.refusal,
            headers={**counted.headers, "Retry-After": str(counted.retry_after)},
        )
    return counted.headers


# ------------------------------------------------------------------ parsing


def field_errors(error: ValidationError, prefix: str = "") -> list[FieldError]:
    """Pydantic's errors in the API's words: field path, code, and the offending value."""
    found = []
    for item in error.errors(include_url=False):
        path = ".".join(str(p) for p in item["loc"])
        name = f"{prefix}{path}" if path else prefix.rstrip(".") or "body"
        kind = item["type"]
        if kind == "extra_forbidden":
            found.append(FieldError(name, "unknown_field", f"unknown field {name!r}"))
        elif kind == "missing":
            found.append(FieldError(name, "required", f"{name} is required"))
        else:
            value = repr(item.get("input"))
            if len(value) > 60:
                value = value[:57] + "..."
            message = item["msg"][0].lower() + item["msg"][1:]
            found.append(FieldError(name, "invalid", f"{name}: {message} (got {value})"))
    return found


def _is_list_field(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_list_field(a) for a in typing.get_args(annotation))
    return typing.get_origin(annotation) is list


@cache
def _defaults(model: type[BaseModel]) -> BaseModel:
    """``model`` with no parameters given: shared by every such request, so frozen."""
    if not model.model_config.get("frozen"):
        raise TypeError(f"{model.__name__} must be frozen (model_config frozen=True)")
    return model.model_validate({})


def _parse_query(model: type[BaseModel]) -> BaseModel:
    """Query parameters into ``model``; lists accept repeats and commas (status=a,b)."""
    if not request.args:
        return _defaults(model)
    errors = [
        FieldError(name, "unknown_parameter", f"unknown query parameter {name!r}")
        for name in request.args
        if name not in model.model_fields
    ]
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        values = request.args.getlist(name)
        if not values:
            continue
        if _is_list_field(info.annotation):
            data[name] = [v.strip() for raw in values for v in raw.split(",") if v.strip()]
        elif len(values) > 1:
            errors.append(FieldError(name, "repeated", f"give {name} once"))
        else:
            data[name] = values[0]
    try:
        parsed = model.model_validate(data)
    except ValidationError as error:
        errors.extend(field_errors(error))
    if errors:
        raise ApiProblem("validation_failed", "; ".join(e.message for e in errors), errors=errors)
    return parsed


def _raw_json() -> Any:
    limit = request.max_content_length
    if limit is not None and (request.content_length or 0) > limit:
        raise ApiProblem("payload_too_large", f"the body is over {limit} bytes")
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    mimetype = request.mimetype or ""
    if mimetype and mimetype != JSON_MEDIA_TYPE and not mimetype.endswith("+json"):
        raise ApiProblem(
            "unsupported_media_type",
            f"send the body as JSON with Content-Type: application/json (got {mimetype!r})",
        )
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ApiProblem("malformed_request", f"the body is not valid JSON: {error}") from None
    except RecursionError:
        data = TOO_DEEP
    refused = document_problem(data)
    if refused is not None:
        raise _invalid(refused)
    return data


def _invalid(error: FieldError) -> ApiProblem:
    return ApiProblem("validation_failed", error.message, errors=[error])


def _parse_body(spec: Operation) -> Any:
    data = _raw_json()
    if spec.body_array_of is not None:
        if not isinstance(data, list):
            raise ApiProblem("malformed_request", "the body must be a JSON array of objects")
        if not 1 <= len(data) <= spec.body_array_max:
            raise ApiProblem(
                "validation_failed",
                f"send 1 to {spec.body_array_max} items (got {len(data)})",
                errors=[
                    FieldError(
                        "body",
                        "out_of_range",
                        f"send 1 to {spec.body_array_max} items (got {len(data)})",
                    )
                ],
            )
        return data  # items are validated one by one by the view
    assert spec.body is not None
    if not isinstance(data, dict):
        raise ApiProblem("malformed_request", "the body must be a JSON object")
    return validate_item(spec.body, data)


def validate_item(model: type[BaseModel], data: Any, prefix: str = "") -> BaseModel:
    """``data`` (already decoded JSON) as ``model``, or a 422 naming each bad field."""
    try:
        return model.model_validate_json(json.dumps(data))
    except ValidationError as error:
        errors = field_errors(error, prefix)
        raise ApiProblem(
            "validation_failed", "; ".join(e.message for e in errors), errors=errors
        ) from None


# -------------------------------------------------------------- idempotency


def request_fingerprint() -> str:
    """The request as far as idempotency cares: method, path, query and JSON body."""
    raw = request.get_data(cache=True)
    try:
        body = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        body = raw
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.full_path.encode(), body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _claim_idempotency_key(principal: ApiPrincipal, key: str) -> Response | None:
    """None to go ahead; otherwise the answer to send (a replay or a problem).

    The claim is committed at once, so that a concurrent duplicate sees it; the work
    then runs in a new transaction of the same session.
    """
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not _IDEMPOTENCY_KEY.match(key):
        return ApiProblem(
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
        ).response()
    try:
        stored = claim_key(
            db.session.connection(), principal.key_id, key, request_fingerprint(), utcnow()
        )
    except ServiceError as error:
        db.session.rollback()
        return problem_from_service_error(error).response()
    db.session.commit()
    if stored is None:
        return None
    response = Response(stored.body, status=stored.status, headers=stored.headers)
    response.headers["Idempotent-Replayed"] = "true"
    return response


_REMEMBERED_HEADERS = ("Content-Type", "Location", "Retry-After")


def _remember(connection, principal: ApiPrincipal, key: str, response: Response) -> None:
    store_answer(
        connection,
        principal.key_id,
        key,
        status=response.status_code,
        body=response.get_data(as_text=True),
        headers={h: response.headers[h] for h in _REMEMBERED_HEADERS if h in response.headers},
    )


def _settle_failed(principal: ApiPrincipal, key: str, response: Response) -> None:
    """A refusal is remembered (a retry gets the same answer), except the passing kinds:
    throttling (429) and conflicts with work in flight, which a retry may get past."""
    connection = db.session.connection()
    if response.status_code == 429 or response.status_code >= 500:
        release_key(connection, principal.key_id, key)
    else:
        _remember(connection, principal, key, response)
    db.session.commit()
