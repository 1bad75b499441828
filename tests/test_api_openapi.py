"""The OpenAPI document describes the API exactly; schemathesis holds the code to it.

The schemathesis run drives every operation on the live app (in-process WSGI) with
generated valid and invalid input, on SQLite and on PostgreSQL: no 5xx, and every
status, content type, header and body must match the document.
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings
from markupsafe import escape
from openapi_spec_validator import validate
from schemathesis.checks import content_type_conformance
from schemathesis.checks import not_a_server_error
from schemathesis.checks import response_headers_conformance
from schemathesis.checks import response_schema_conformance
from schemathesis.checks import status_code_conformance

from tests.api_support import build_world
from webapp.api import load_operations
from webapp.api.openapi import build_openapi
from webapp.api.openapi import openapi_path
from webapp.api.operations import OPERATIONS
from webapp.extensions import db
from webapp.services.organizations import create_project
from webapp.services.organizations import get_organization

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _world(app):
    world = build_world(app)
    with app.app_context():
        create_project(db.session, get_organization(db.session, "acme"), "Research")
        db.session.commit()
    for i in range(3):
        world.invite(f"seed{i}@example.com")
    return world


@pytest.fixture
def sqlite_world(make_app):
    # Generous limits: hypothesis sends hundreds of requests with one key.
    return _world(
        make_app(
            "sqlite", API_RATE_LIMIT_PER_KEY="100000/minute", API_RATE_LIMIT_PER_ORG="100000/minute"
        )
    )


@pytest.fixture
def postgres_world(make_app):
    return _world(
        make_app(
            "postgresql",
            API_RATE_LIMIT_PER_KEY="100000/minute",
            API_RATE_LIMIT_PER_ORG="100000/minute",
        )
    )


load_operations()
schema = schemathesis.openapi.from_dict(build_openapi())


HYPOTHESIS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def _call(case, world) -> None:
    # Mostly the real organization (so bodies reach the services), sometimes another.
    if "org" in (case.path_parameters or {}) and not case.path_parameters["org"].startswith("z"):
        case.path_parameters["org"] = "acme"
    key = world.instance_key if case.operation.path in ("/api/v1/invitations",) else world.org_key
    case.call_and_validate(app=world.app, headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)


@schema.parametrize()
@HYPOTHESIS
def test_every_operation_matches_the_document_on_sqlite(case, sqlite_world):
    _call(case, sqlite_world)


@schema.parametrize()
@HYPOTHESIS
def test_every_operation_matches_the_document_on_postgresql(case, postgres_world):
    _call(case, postgres_world)


def test_document_lists_every_api_route_and_nothing_else(app):
    rules = {
        (openapi_path(rule.rule), method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(op.rule and openapi_path(op.rule), op.method) for op in OPERATIONS}
    assert rules == documented
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    paths = {(p, m.upper()) for p, methods in document["paths"].items() for m in methods}
    assert paths == rules
    assert document["openapi"] == "3.1.0"


def test_document_is_valid_openapi_3_1(app):
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    validate(document)  # the OpenAPI 3.1 meta-schema, JSON Schema 2020-12 for bodies
    for path, methods in document["paths"].items():
        for method, spec in methods.items():
            assert spec["responses"], (path, method)
            assert "401" in spec["responses"] and "429" in spec["responses"]
            names = re.findall(r"{(\w+)}", path)
            declared = [p["name"] for p in spec["parameters"] if p["in"] == "path"]
            assert declared == names


def test_docs_page_explains_every_operation_and_error_without_inline_code(app):
    response = app.test_client().get("/api/docs")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for op in OPERATIONS:
        assert openapi_path(op.rule) in page, op.rule
        assert str(escape(op.summary)) in page
    for code in ("already_invited", "idempotency_key_reused", "rate_limited", "invalid_ticket"):
        assert f'id="problem-{code}"' in page
    assert "<script>" not in page and " style=" not in page and "hx-on" not in page
    assert re.findall(r'(?:src|href)="(https?://[^"]*)"', page) == []
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
