"""A world for API tests: two organizations, their keys, an instance key, a client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import APP_ORIGIN
from webapp.extensions import db
from webapp.services.api_keys import create_api_key
from webapp.services.organizations import create_organization
from webapp.services.organizations import update_organization

PROBLEM = "application/problem+json"


@dataclass
class ApiWorld:
    app: Flask
    client: FlaskClient
    org_id: str
    org_key: str
    org_key_id: str
    other_org_id: str
    other_key: str
    instance_key: str

    def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = "org",
        json: Any = None,
        headers: dict[str, str] | None = None,
        **kwargs,
    ):
        raw = {"org": self.org_key, "other": self.other_key, "instance": self.instance_key}.get(
            key, key
        )
        all_headers = dict(headers or {})
        if raw:
            all_headers["Authorization"] = f"Bearer {raw}"
        return self.client.open(
            "/api/v1" + path, method=method, json=json, headers=all_headers, **kwargs
        )

    def invite(self, email: str, **fields) -> dict:
        response = self.call(
            "POST", "/organizations/acme/invitations", json={"email": email, **fields}
        )
        assert response.status_code == 201, response.get_json()
        return response.get_json()


def build_world(app: Flask) -> ApiWorld:
    with app.app_context():
        org = create_organization(db.session, name="Acme", slug="acme")
        update_organization(db.session, org, allowed_redirect_origins=[APP_ORIGIN])
        other = create_organization(db.session, name="Globex", slug="globex")
        org_key, org_raw = create_api_key(db.session, org=org, name="acme backend")
        _, other_raw = create_api_key(db.session, org=other, name="globex backend")
        _, instance_raw = create_api_key(db.session, org=None, name="ops")
        db.session.commit()
        world = ApiWorld(
            app=app,
            client=app.test_client(),
            org_id=org.id,
            org_key=org_raw,
            org_key_id=org_key.id,
            other_org_id=other.id,
            other_key=other_raw,
            instance_key=instance_raw,
        )
    return world


@pytest.fixture
def api(app) -> ApiWorld:
    return build_world(app)


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["detail"]
    return body
