"""Fixtures for the vendor-compatible APIs: a live server and the vendors' real SDKs.

The SDKs (the ``compat-test`` extra) talk HTTP to a server started by the test on
127.0.0.1, never to the vendors: their environment variables are cleared, HOME points at
a temporary folder (no profile or config file is read), their telemetry is off and
proxies are bypassed for localhost.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from flask import Flask
from sqlalchemy import select

from tests.conftest import APP_ORIGIN
from tests.dashboard_support import csrf_from
from tests.live import free_port
from tests.live import serve
from webapp.delivery.worker import DeliveryWorker
from webapp.extensions import db
from webapp.models import DevMailboxMessage
from webapp.services.api_keys import create_api_key
from webapp.services.organizations import create_organization
from webapp.services.organizations import create_project
from webapp.services.organizations import update_organization

VENDOR_PREFIXES = ("OPENAI_", "ANTHROPIC_", "CLERK_", "AZURE_OPENAI_", "OTEL_")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")
ACCEPT_LINK = re.compile(r"https?://\S+/invitations/accept/[A-Za-z0-9_-]+")


@pytest.fixture
def vendor_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No vendor variable, no home configuration, no telemetry, no proxy for localhost."""
    for name in list(os.environ):
        if name.startswith(VENDOR_PREFIXES) or name in PROXY_VARIABLES:
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("ANTHROPIC_OPEN_TELEMETRY", "false")
    monkeypatch.setenv("ANTHROPIC_OPEN_TELEMETRY_PROPAGATION", "false")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@dataclass
class Live:
    """A served app with an organization, its default project and API keys."""

    app: Flask
    base: str
    org_id: str
    org_slug: str
    project_id: str
    key: str  # the organization's key
    instance_key: str
    other_org_id: str
    other_key: str  # another organization's key


def build_compat_world(app: Flask) -> dict[str, str]:
    """Acme (with a default project and a key), Globex (with a key) and an instance key."""
    with app.app_context():
        session = db.session
        org = create_organization(session, name="Acme", slug="acme")
        update_organization(session, org, allowed_redirect_origins=[APP_ORIGIN])
        project = create_project(session, org, "Default project", is_default=True)
        other = create_organization(session, name="Globex", slug="globex")
        _, key = create_api_key(session, org=org, name="compat tests")
        _, instance_key = create_api_key(session, org=None, name="instance")
        _, other_key = create_api_key(session, org=other, name="globex")
        session.commit()
        return {
            "org_id": org.id,
            "org_slug": org.slug,
            "project_id": project.id,
            "key": key,
            "instance_key": instance_key,
            "other_org_id": other.id,
            "other_key": other_key,
        }


@pytest.fixture
def make_live(make_app, backend, vendor_env) -> Iterator[Callable[..., Live]]:
    """Start the app (with extra settings) on a free port, its emails in the dev mailbox."""
    with ExitStack() as servers:

        def start(**config) -> Live:
            port = free_port()
            app = make_app(
                backend, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", MAIL_BACKEND="dev", **config
            )
            world = build_compat_world(app)
            return Live(app=app, base=servers.enter_context(serve(app, port)), **world)

        yield start


@pytest.fixture
def live(make_live) -> Live:
    return make_live()


def deliver_and_read_link(app: Flask, to: str) -> str:
    """Run the delivery worker once; return the accept link mailed to ``to`` (its path)."""
    DeliveryWorker(app).run_once()
    with app.app_context():
        rows = db.session.scalars(
            select(DevMailboxMessage)
            .where(DevMailboxMessage.to_email == to)
            .order_by(DevMailboxMessage.id.desc())
        ).all()
        assert rows, f"no email to {to}"
        message = email.message_from_bytes(rows[0].raw, policy=email.policy.default)
        text = message.get_body(preferencelist=("plain",)).get_content()
    match = ACCEPT_LINK.search(text)
    assert match, text
    return urlsplit(match.group(0)).path


def accept_on_page(app: Flask, path: str, name: str = "Invitee") -> None:
    """Accept an invitation on its acceptance page, as a browser would (CSRF included)."""
    client = app.test_client()
    token = csrf_from(client, path)
    response = client.post(path, data={"csrf_token": token, "name": name})
    assert response.status_code in (200, 303), response.get_data(as_text=True)
