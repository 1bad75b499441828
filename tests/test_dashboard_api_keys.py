"""API keys on the settings page: created and shown once, listed by prefix, revocable."""

from __future__ import annotations

import re

import pytest

from tests.dashboard_pages import Client
from tests.dashboard_pages import body
from tests.dashboard_pages import in_db
from tests.dashboard_pages import text
from tests.dashboard_support import FRAGMENT
from webapp.services.api_keys import create_api_key
from webapp.services.organizations import get_organization

PAGE = "/orgs/acme/settings"
KEYS = f"{PAGE}/api-keys"
SECRET = re.compile(r'id="new-key-secret">(oik_[^<]+)<')

pytestmark = pytest.mark.usefixtures("quick_passwords")


def _api_status(app, secret: str) -> int:
    response = app.test_client().get(
        "/api/v1/organizations/acme", headers={"Authorization": f"Bearer {secret}"}
    )
    return response.status_code


def test_create_shows_the_key_once_and_it_works(app, admin):
    response = admin.post(KEYS, {"name": "backend"}, headers=FRAGMENT)
    assert response.status_code == 200
    assert body(response).lstrip().startswith('<section id="settings-keys"')
    assert response.headers["Cache-Control"] == "no-store"
    secret = SECRET.search(body(response)).group(1)
    assert "Copy it now: it is not shown again." in text(response)
    assert _api_status(app, secret) == 200
    page = admin.get(PAGE)
    assert secret not in body(page)
    assert secret[:12] + "…" in text(page)
    assert "backend" in text(page)


def test_plain_post_answers_the_page_itself_not_a_redirect(app, admin):
    """Without htmx the key is shown in the answer: it never goes through the session."""
    response = admin.post(KEYS, {"name": "crm sync"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    secret = SECRET.search(body(response)).group(1)
    assert secret not in (response.headers.get("Set-Cookie") or "")
    assert _api_status(app, secret) == 200


def test_a_name_is_required(app, admin):
    response = admin.post(KEYS, {"name": "  "}, headers=FRAGMENT)
    assert response.status_code == 422
    assert "name" in text(response).lower()
    assert SECRET.search(body(response)) is None


def test_revoke_stops_the_key_at_once(app, admin):
    secret = SECRET.search(body(admin.post(KEYS, {"name": "temp"}, headers=FRAGMENT))).group(1)
    key_id = re.search(r'id="key-(key_[^"]+)"', body(admin.get(PAGE))).group(1)
    response = admin.post(f"{KEYS}/{key_id}/revoke", headers=FRAGMENT)
    assert response.status_code == 200
    assert "Revoked the key temp." in text(response)
    assert "Revoked" in text(response)
    assert _api_status(app, secret) == 401


def test_another_orgs_key_is_404_and_csrf_is_required(app, admin):
    def other_key(session):
        key, _ = create_api_key(session, org=get_organization(session, "globex"), name="theirs")
        return key.id

    key_id = in_db(app, other_key)
    assert admin.post(f"{KEYS}/{key_id}/revoke").status_code == 404
    assert admin.post(KEYS, {"name": "x"}, csrf=False).status_code == 400


def test_members_cannot_manage_keys(app, world):
    member = Client(app, world.member)
    assert member.post(KEYS, {"name": "sneaky"}).status_code in (403, 404)
