"""Sign-in, sign-out, password reset and who may see which organization."""

from __future__ import annotations

import contextlib
import re

import pytest
from sqlalchemy import select

from tests.dashboard_support import PASSWORD
from tests.dashboard_support import csrf_from
from tests.dashboard_support import make_member
from tests.dashboard_support import make_superuser
from tests.dashboard_support import sign_in
from tests.statements import driver_statements
from webapp.delivery.messages import build_email
from webapp.extensions import db
from webapp.models import OutboxMessage
from webapp.models import User
from webapp.services.organizations import create_organization
from webapp.web.dashboard.auth import safe_next


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


def test_sign_in_lands_on_the_first_organization(client, ctx):
    """A superuser signs in and starts on an organization's invitations."""
    create_organization(db.session, name="Acme")
    db.session.commit()
    sign_in(client, make_superuser())
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/orgs/acme/invitations")


def test_wrong_password_and_unknown_address_get_the_same_answer(client, ctx):
    """No message tells which addresses have an account."""
    make_superuser("root@example.com")
    answers = []
    for email, password in (
        ("root@example.com", "wrong password!"),
        ("nobody@example.com", PASSWORD),
    ):
        token = csrf_from(client, "/login")
        response = client.post(
            "/login", data={"csrf_token": token, "email": email, "password": password}
        )
        answers.append((response.status_code, response.get_data(as_text=True).replace(email, "")))
    assert answers[0][0] == answers[1][0] == 422
    assert "That email and password do not match an account." in answers[0][1]
    strip = lambda html: re.sub(r'value="[^"]*"', "", html)  # noqa: E731 (CSRF tokens differ)
    assert strip(answers[0][1]) == strip(answers[1][1])


def test_login_post_without_csrf_token_fails(client, ctx):
    """CSRF is on for the sign-in form too."""
    make_superuser()
    response = client.post("/login", data={"email": "root@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/").headers["Location"].endswith("/login")


def test_login_is_rate_limited(make_app, backend):
    """Too many sign-in attempts from one address: 429 with Retry-After."""
    app = make_app(backend, LOGIN_RATE_LIMIT="3/minute")
    client = app.test_client()
    codes = [client.post("/login", data={}).status_code for _ in range(4)]
    assert codes[-1] == 429
    assert "Retry-After" in client.post("/login", data={}).headers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/orgs/acme/invitations?status=pending", "/orgs/acme/invitations?status=pending"),
        ("https://evil.example/", None),
        ("//evil.example/", None),
        ("/\\evil.example", None),
        ("\\\\evil.example", None),
        ("javascript:alert(1)", None),
        ("/ok\r\nSet-Cookie: x", None),
        ("", None),
    ],
)
def test_next_after_login_is_a_local_path_only(value, expected):
    """The `next` parameter cannot send anyone off the site."""
    assert safe_next(value) == expected


def test_next_is_followed_after_sign_in(client, ctx):
    """Signing in from a protected page returns there."""
    create_organization(db.session, name="Acme")
    db.session.commit()
    person = make_superuser()
    first = client.get("/orgs/acme/invitations?status=pending")
    assert first.status_code == 302 and "/login?next=" in first.headers["Location"]
    token = csrf_from(client, first.headers["Location"])
    response = client.post(
        first.headers["Location"],
        data={"csrf_token": token, "email": person.email, "password": PASSWORD},
    )
    assert response.headers["Location"] == "/orgs/acme/invitations?status=pending"


def test_sign_out_needs_a_post_with_csrf(app, client):
    """A GET or a token-less POST does not sign you out; a proper POST does."""
    # Set up in its own app context: requests inside a held one would share its ``g``.
    with app.app_context():
        create_organization(db.session, name="Acme")
        db.session.commit()
        person = make_superuser()
    sign_in(client, person)
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert client.get("/orgs/acme/invitations").status_code == 200
    token = csrf_from(client, "/orgs/acme/invitations")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/orgs/acme/invitations").status_code == 302


def test_session_cookie_flags(make_app, backend):
    """HttpOnly, SameSite=Lax and Secure (outside local development)."""
    app = make_app(backend)
    with app.app_context():
        make_superuser()
    client = app.test_client()
    client.get("/login")
    token = csrf_from(client, "/login")
    response = client.post(
        "/login", data={"csrf_token": token, "email": "root@example.com", "password": PASSWORD}
    )
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    assert app.permanent_session_lifetime.total_seconds() <= 8 * 3600


def test_a_session_ends_eight_hours_after_sign_in_however_active(app, time_machine):
    """The lifetime counts from sign-in, not from the last request (absolute timeout);
    reading pages does not re-issue the session cookie."""
    time_machine.move_to("2026-06-01 08:00:00+00:00", tick=False)
    with app.app_context():
        create_organization(db.session, name="Acme")
        db.session.commit()
        admin = make_superuser()
    # No app context held across requests: each request loads its user afresh.
    client = app.test_client()
    sign_in(client, admin)
    assert client.get("/orgs/acme/invitations").status_code == 200
    time_machine.move_to("2026-06-01 15:50:00+00:00", tick=False)
    response = client.get("/orgs/acme/invitations")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    time_machine.move_to("2026-06-01 16:01:00+00:00", tick=False)
    response = client.get("/orgs/acme/invitations")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_password_reset_by_email_link_works_once(client, ctx, time_machine):
    """Reset: the same answer for any address; the emailed link works once, for an hour."""
    time_machine.move_to("2026-06-01 12:00:00+00:00", tick=False)
    make_superuser("root@example.com")
    for address in ("root@example.com", "nobody@example.com"):
        token = csrf_from(client, "/password-reset")
        response = client.post("/password-reset", data={"csrf_token": token, "email": address})
        assert response.status_code == 303
    rows = list(
        db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "password_reset"))
    )
    assert [r.to_email for r in rows] == ["root@example.com"]
    text = build_email(db.session, rows[0]).get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"https://invites\.example\.com(/password-reset/\S+)", text).group(1)

    token = csrf_from(client, link)
    short = client.post(link, data={"csrf_token": token, "password": "short"})
    assert short.status_code == 422
    assert "the password needs at least 10 characters" in short.get_data(as_text=True)
    done = client.post(link, data={"csrf_token": token, "password": "a brand new passphrase"})
    assert done.status_code == 303
    assert client.get(link).status_code == 404  # used
    user = db.session.scalar(select(User).where(User.email_key == "root@example.com"))
    db.session.refresh(user)
    from webapp.services.users import verify_password

    assert verify_password(user, "a brand new passphrase")


def test_password_reset_link_expires_after_an_hour(client, ctx, time_machine):
    """An hour later the link shows 'no longer valid'."""
    time_machine.move_to("2026-06-01 12:00:00+00:00", tick=False)
    make_superuser("root@example.com")
    token = csrf_from(client, "/password-reset")
    client.post("/password-reset", data={"csrf_token": token, "email": "root@example.com"})
    row = db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "password_reset"))
    text = build_email(db.session, row).get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"https://invites\.example\.com(/password-reset/\S+)", text).group(1)
    time_machine.shift(3601)
    assert client.get(link).status_code == 404


@pytest.mark.parametrize("held_context", [True, False], ids=["one-context", "per-request"])
@pytest.mark.parametrize(
    ("who", "expected"),
    [("anonymous", 302), ("member", 403), ("other_admin", 404), ("admin", 200), ("superuser", 200)],
)
def test_who_may_open_an_organization(app, who, expected, held_context):
    """Anonymous: sign in; plain member: 403; admin elsewhere: 404; admin and superuser: 200.
    The same whether the requests share an app context (the user already loaded) or
    each reads the user and the organization afresh, in one query, as a server does."""
    with app.app_context():
        acme = create_organization(db.session, name="Acme")
        other = create_organization(db.session, name="Globex")
        db.session.commit()
        people = {
            "member": lambda: make_member(acme, "member@example.com", "member"),
            "other_admin": lambda: make_member(other, "boss@globex.example", "admin"),
            "admin": lambda: make_member(acme, "admin@acme.example", "admin"),
            "superuser": lambda: make_superuser(),
        }
        person = people[who]() if who != "anonymous" else None
    client = app.test_client()
    with app.app_context() if held_context else contextlib.nullcontext():
        if person is not None:
            sign_in(client, person)
        for path in ("/orgs/acme/invitations", "/orgs/acme/invitations/new"):
            assert client.get(path).status_code == expected, path
        missing = client.get("/orgs/nope/invitations").status_code
        assert missing == (302 if who == "anonymous" else 404)


def test_losing_a_role_or_the_account_takes_effect_at_the_next_request(app):
    """Demoted: 403; membership removed: 404; password removed (account closed): sign
    in again; no request keeps what an earlier one read."""
    from sqlalchemy import delete
    from sqlalchemy import update

    from webapp.models import Membership

    with app.app_context():
        acme = create_organization(db.session, name="Acme")
        db.session.commit()
        admin = make_member(acme, "admin@acme.example", "admin")
    client = app.test_client()
    sign_in(client, admin)
    assert client.get("/orgs/acme/invitations").status_code == 200

    def change(statement):
        with app.app_context():
            db.session.execute(statement)
            db.session.commit()

    change(update(Membership).values(role="member"))
    assert client.get("/orgs/acme/invitations").status_code == 403
    change(delete(Membership))
    assert client.get("/orgs/acme/invitations").status_code == 404
    change(update(User).values(password_hash=None, is_superuser=True))
    response = client.get("/orgs/acme/invitations")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_an_organization_page_reads_user_and_organization_in_one_query(app):
    """One statement for the signed-in user, the organization and the membership."""
    with app.app_context():
        acme = create_organization(db.session, name="Acme")
        db.session.commit()
        admin = make_member(acme, "admin@acme.example", "admin")
        engine = db.engine
    client = app.test_client()
    sign_in(client, admin)
    with driver_statements(engine) as statements:
        assert (
            client.get("/orgs/acme/invitations", headers={"HX-Request": "true"}).status_code == 200
        )
    reads_users = [s for s in statements if "FROM users" in s]
    assert len(reads_users) == 1 and "organizations" in reads_users[0], statements
    assert not [s for s in statements if s.startswith("SELECT organizations.")], statements


def test_admin_area_is_for_superusers_only(client, ctx):
    """/admin is 404 for an org admin and 200 for a superuser."""
    acme = create_organization(db.session, name="Acme")
    db.session.commit()
    sign_in(client, make_member(acme, "admin@acme.example", "admin"))
    assert client.get("/admin").status_code == 404


def test_htmx_request_without_session_is_told_to_navigate_to_sign_in(client, ctx):
    """An expired session during an htmx request gets HX-Redirect, not a login page fragment."""
    create_organization(db.session, name="Acme")
    db.session.commit()
    response = client.get("/orgs/acme/invitations", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login?next=")
