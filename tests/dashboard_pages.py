"""Shared set-up of the settings, members and activity page tests.

Acme (slug ``acme``) with an admin, a plain member, an admin of another organization
and a superuser; signed-in test clients that remember their CSRF token.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import TypeVar

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from tests.conftest import APP_ORIGIN
from tests.dashboard_support import Person
from tests.dashboard_support import make_member
from tests.dashboard_support import make_superuser
from tests.dashboard_support import sign_in
from webapp.extensions import db
from webapp.services.organizations import create_organization
from webapp.services.organizations import update_organization

T = TypeVar("T")
HOSTILE = "<img src=x onerror=alert(1)>"
# Every page of the layout carries the token for htmx (hx-headers); forms carry it too.
TOKEN = re.compile(r'"X-CSRFToken": "([^"]+)"|name="csrf_token" type="hidden" value="([^"]+)"')


def quick_hash(password: str) -> str:
    """A cheap hash: these tests are about pages, not the KDF (scrypt costs ~0.1 s)."""
    return generate_password_hash(password, method="pbkdf2:sha256:1000")


def use_quick_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tests.dashboard_support.hash_password", quick_hash)
    monkeypatch.setattr("webapp.services.users.hash_password", quick_hash)


def in_db(app: Flask, work: Callable[[Any], T]) -> T:
    """Run ``work(session)`` in its own app context, committed, so no lock outlives it.

    Objects it returns stay readable (detached, loaded) after the commit.
    """
    with app.app_context():
        result = work(db.session)
        db.session.flush()
        db.session.expunge_all()
        db.session.commit()
        return result


@dataclass
class World:
    org_id: str
    admin: Person
    member: Person
    outsider: Person  # an admin of another organization
    root: Person  # a superuser


def make_world(app: Flask) -> World:
    def build(session) -> World:
        org = create_organization(session, name="Acme", slug="acme")
        update_organization(session, org, allowed_redirect_origins=[APP_ORIGIN])
        other = create_organization(session, name="Globex", slug="globex")
        session.commit()
        world = World(
            org_id=org.id,
            admin=make_member(org, "ada@example.com", "admin"),
            member=make_member(org, "bob@example.com", "member"),
            outsider=make_member(other, "olga@example.com", "admin"),
            root=make_superuser("root@example.com"),
        )
        return world

    return in_db(app, build)


class Client:
    """A signed-in test client that adds its CSRF token to every POST."""

    def __init__(self, app: Flask, person: Person | None, token_page: str = "/") -> None:
        self.raw: FlaskClient = app.test_client()
        if person is not None:
            sign_in(self.raw, person)
        else:
            token_page = "/login"
        page = self.raw.get(token_page, follow_redirects=True).get_data(as_text=True)
        match = TOKEN.search(page)
        assert match, f"no CSRF token on {token_page}"
        self.token = match.group(1) or match.group(2)

    def get(self, path: str, headers: dict[str, str] | None = None, **kwargs):
        return self.raw.get(path, headers=headers or {}, **kwargs)

    def post(
        self,
        path: str,
        data: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        *,
        csrf: bool = True,
    ):
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = self.token
        return self.raw.post(path, data=form, headers=headers or {})


def words(markup: str) -> str:
    """Markup as a user reads it: no tags, entities decoded, spaces collapsed."""
    plain = html.unescape(re.sub(r"<[^>]*>", " ", markup))
    return re.sub(r"\s+", " ", plain).replace(" .", ".").replace(" ,", ",")


def text(response) -> str:
    return words(response.get_data(as_text=True))


def body(response) -> str:
    return response.get_data(as_text=True)


# Fixtures the settings, members and activity tests share (a pytest plugin loaded by
# tests/conftest.py; ``admin`` opens the requesting module's PAGE).


@pytest.fixture
def quick_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    use_quick_passwords(monkeypatch)


@pytest.fixture
def world(app: Flask) -> World:
    return make_world(app)


@pytest.fixture
def admin(app: Flask, world: World, request: pytest.FixtureRequest) -> Client:
    return Client(app, world.admin, request.module.PAGE)
