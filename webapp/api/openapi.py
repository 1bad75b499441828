"""The OpenAPI 3.1 document, generated from the declared operations and their models."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from webapp.api import schemas
from webapp.api.operations import OPERATIONS
from webapp.api.operations import Operation
from webapp.api.problems import PROBLEM_MEDIA_TYPE
from webapp.api.problems import PROBLEMS

REF = "#/components/schemas/{model}"
PATH_PARAMETERS = {
    "org": "The organization's id (`org_…`) or slug.",
    "invitation_id": "An invitation id (`inv_…`).",
    "member_id": "A membership id (`mem_…`).",
    "key": "A role key.",
    "key_id": "An API key id (`key_…`).",
}
RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": "Requests allowed per window for this key.",
    "X-RateLimit-Remaining": "Requests left in the current window.",
    "X-RateLimit-Reset": "When the window resets (Unix time, seconds).",
}
TAG_DESCRIPTIONS = {
    "Invitations": "Invite people by email, list, revoke and resend.",
    "Acceptance": "Verify that an invitee accepted.",
    "Organizations": "Organizations, their settings, roles and projects.",
    "Members": "People who accepted an invitation.",
    "API keys": "Keys for this API (org-scoped).",
}


def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def path_parameter_names(rule: str) -> list[str]:
    return re.findall(r"<(?:[a-z]+:)?([a-z_]+)>", rule)


def _models() -> list[tuple[type[BaseModel], str]]:
    found: dict[tuple[type[BaseModel], str], None] = {(schemas.Problem, "serialization"): None}
    for op in OPERATIONS:
        if op.body is not None:
            found[(op.body, "validation")] = None
        if op.body_array_of is not None:
            found[(op.body_array_of, "validation")] = None
        if op.response is not None:
            found[(op.response, "serialization")] = None
    return list(found)


def problem_statuses(op: Operation) -> dict[int, list[str]]:
    """Every error status the operation can answer, with the codes behind each."""
    # Any parameter may be refused (a NUL character, say): 422 is always possible.
    codes = ["unauthenticated", "validation_failed", "rate_limited", "internal_error", *op.problems]
    if op.instance_only:
        codes.append("forbidden")
    if path_parameter_names(op.rule):
        codes.append("not_found")
    if op.has_body:
        codes += ["malformed_request", "unsupported_media_type"]
        codes.append("payload_too_large")
    if op.method == "POST":
        codes += ["invalid_idempotency_key", "idempotency_key_in_use", "idempotency_key_reused"]
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys(codes):
        by_status.setdefault(PROBLEMS[code][0], []).append(code)
    return dict(sorted(by_status.items()))


def _parameters(op: Operation) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": PATH_PARAMETERS.get(name, name),
            "schema": {"type": "string", "minLength": 1},
        }
        for name in path_parameter_names(op.rule)
    ]
    if op.query is not None:
        query_schema = op.query.model_json_schema(ref_template=REF)
        required = set(query_schema.get("required", []))
        for name, prop in query_schema["properties"].items():
            description = prop.pop("description", None)
            prop.pop("title", None)
            parameter = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": prop,
            }
            if description:
                parameter["description"] = description
            if "array" in str(prop):
                parameter.update(style="form", explode=True)
            parameters.append(parameter)
    if op.method == "POST":
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Any unique string (a UUID): a retry with the same key and "
                "body gets the first answer (kept 24 hours) instead of acting twice.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        )
    return parameters


def _operation(op: Operation, refs: dict) -> dict[str, Any]:
    success: dict[str, Any] = {
        "description": op.summary,
        "headers": {
            h: {"description": d, "schema": {"type": "integer"}}
            for h, d in RATE_LIMIT_HEADERS.items()
        },
    }
    if op.response is not None:
        success["content"] = {"application/json": {"schema": refs[(op.response, "serialization")]}}
    responses: dict[str, Any] = {str(op.status): success}
    problem_ref = refs[(schemas.Problem, "serialization")]
    for status, codes in problem_statuses(op).items():
        entry: dict[str, Any] = {
            "description": "Problem: " + ", ".join(f"`{c}`" for c in codes),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": problem_ref}},
        }
        if status == 429:
            entry["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "integer"},
                    "required": True,
                }
            }
        responses[str(status)] = entry
    document: dict[str, Any] = {
        "operationId": op.endpoint.split(".", 1)[1].rstrip("_"),
        "summary": op.summary,
        "description": op.description,
        "tags": [op.tag],
        "parameters": _parameters(op),
        "responses": responses,
    }
    if op.body is not None:
        document["requestBody"] = {
            "required": bool(op.body.model_json_schema().get("required")),
            "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
        }
    elif op.body_array_of is not None:
        document["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": op.body_array_max,
                        "items": refs[(op.body_array_of, "validation")],
                    }
                }
            },
        }
    return document


def _package_version() -> str:
    try:
        return version("orginvites")
    except PackageNotFoundError:  # running from a checkout that was not installed
        return "0+unknown"


def build_openapi(server_url: str = "/") -> dict[str, Any]:
    """The whole document (OpenAPI 3.1, JSON Schema 2020-12 for every body)."""
    refs, definitions = models_json_schema(_models(), ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(openapi_path(op.rule), {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "OrgInvites API",
            "version": _package_version(),
            "description": "Invite people into organizations by email. Authenticate with "
            "`Authorization: Bearer <API key>`; errors are `application/problem+json` "
            "with a stable `code`. Human-readable guide: /api/docs.",
        },
        "servers": [{"url": server_url}],
        "security": [{"apiKey": []}],
        "tags": [{"name": n, "description": d} for n, d in TAG_DESCRIPTIONS.items()],
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from `orginvites api-keys create` or the "
                    "dashboard's settings page (`oik_…`).",
                }
            },
        },
    }
