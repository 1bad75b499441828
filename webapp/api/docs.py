"""``/api/v1/openapi.json`` and ``/api/docs``, a readable guide rendered from it (no CDN,
no JavaScript: the same document, laid out for people)."""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint
from flask import current_app
from flask import render_template

from webapp.api.openapi import build_openapi
from webapp.api.operations import json_response
from webapp.api.problems import PROBLEMS

docs_blueprint = Blueprint("api_docs", __name__)


@cache
def _document() -> dict[str, Any]:
    return build_openapi()


@docs_blueprint.get("/api/v1/openapi.json")
def openapi_json():
    response = json_response(_document())
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def type_label(schema: dict[str, Any], components: dict[str, Any]) -> str:
    """A short human reading of a JSON Schema: ``string``, ``list of Invitation``…"""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[1]
    if "anyOf" in schema:
        parts = [type_label(s, components) for s in schema["anyOf"]]
        return " or ".join(p for p in parts if p != "null") + (
            " (or null)" if "null" in parts else ""
        )
    if "enum" in schema:
        return " | ".join(f"{v}" for v in schema["enum"])
    if "const" in schema:
        return str(schema["const"])
    kind = schema.get("type", "any")
    if kind == "array":
        return "list of " + type_label(schema.get("items", {}), components)
    if kind == "object":
        return "object"
    if schema.get("format") == "date-time":
        return "timestamp"
    return kind


def limits_label(schema: dict[str, Any]) -> str:
    words = []
    for key, text in (
        ("minimum", "≥ {}"),
        ("maximum", "≤ {}"),
        ("maxLength", "≤ {} chars"),
        ("maxItems", "≤ {} items"),
    ):
        if key in schema:
            words.append(text.format(schema[key]))
    if "default" in schema and schema["default"] is not None:
        words.append(f"default {schema['default']}")
    return ", ".join(words)


def fields_of(ref_or_schema: dict[str, Any], components: dict[str, Any]) -> list[dict[str, Any]]:
    schema = ref_or_schema
    if "items" in schema:
        schema = schema["items"]
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        plain = prop
        if "anyOf" in prop:
            plain = next((s for s in prop["anyOf"] if s.get("type") != "null"), prop)
        rows.append(
            {
                "name": name,
                "type": type_label(prop, components),
                "required": name in required,
                "description": prop.get("description", ""),
                # The limits sit on the non-null branch; the default on the field itself.
                "limits": limits_label({**plain, "default": prop.get("default")}),
            }
        )
    return rows


@docs_blueprint.get("/api/docs")
def guide():
    document = _document()
    components = document["components"]["schemas"]
    sections: dict[str, list[dict[str, Any]]] = {t["name"]: [] for t in document["tags"]}
    for path, methods in document["paths"].items():
        for method, spec in methods.items():
            body = spec.get("requestBody", {}).get("content", {}).get("application/json")
            success = next(iter(spec["responses"].items()))
            response_schema = (
                success[1].get("content", {}).get("application/json", {}).get("schema")
            )
            sections[spec["tags"][0]].append(
                {
                    "id": spec["operationId"],
                    "method": method.upper(),
                    "path": path,
                    "spec": spec,
                    "parameters": [
                        {
                            **p,
                            "type": type_label(p["schema"], components),
                            "limits": limits_label(p["schema"]),
                        }
                        for p in spec["parameters"]
                    ],
                    "body_fields": fields_of(body["schema"], components) if body else [],
                    "body_is_array": bool(body and body["schema"].get("type") == "array"),
                    "success_status": success[0],
                    "response_type": type_label(response_schema, components)
                    if response_schema
                    else None,
                    "errors": [
                        (status, r["description"].removeprefix("Problem: "))
                        for status, r in spec["responses"].items()
                        if status != success[0]
                    ],
                }
            )
    models = {
        name: fields_of({"$ref": f"#/components/schemas/{name}"}, components)
        for name in ("Invitation", "InvitationList", "BulkResult", "Problem")
    }
    return render_template(
        "api/docs.html",
        sections=sections,
        tags=document["tags"],
        problems=PROBLEMS,
        models=models,
        base_url=current_app.config["PUBLIC_BASE_URL"],
    )
