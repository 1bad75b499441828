"""Helpers for dashboard tests: users with roles, signing in with CSRF, fragment headers."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import insert

from webapp.clock import utcnow
from webapp.extensions import db
from webapp.ids import new_id
from webapp.models import Membership
from webapp.models import Organization
from webapp.services.users import create_admin_user
from webapp.services.users import get_or_create_user
from webapp.services.users import hash_password

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')

FRAGMENT = {"HX-Request": "true"}
BOOSTED = {"HX-Request": "true", "HX-Boosted": "true"}
HISTORY_RESTORE = {"HX-Request": "true", "HX-History-Restore-Request": "true"}


@dataclass
class Person:
    email: str
    password: str = PASSWORD


def make_superuser(email: str = "root@example.com") -> Person:
    create_admin_user(db.session, email=email, password=PASSWORD, name="Root")
    db.session.commit()
    return Person(email)


def make_member(org: Organization, email: str, role: str) -> Person:
    """A user with a password and a membership with ``role`` in ``org``."""
    user = get_or_create_user(db.session, email, email.lower(), name=email.split("@")[0])
    user.password_hash = hash_password(PASSWORD)
    now = utcnow()
    db.session.execute(
        insert(Membership),
        [
            {
                "id": new_id("mem"),
                "org_id": org.id,
                "user_id": user.id,
                "role": role,
                "public_metadata": {},
                "private_metadata": {},
                "created_at": now,
                "updated_at": now,
            }
        ],
    )
    db.session.commit()
    return Person(email)


def csrf_from(client, path: str) -> str:
    page = client.get(path)
    match = CSRF.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def sign_in(client, person: Person) -> None:
    token = csrf_from(client, "/login")
    response = client.post(
        "/login", data={"csrf_token": token, "email": person.email, "password": person.password}
    )
    assert response.status_code == 303, response.get_data(as_text=True)
