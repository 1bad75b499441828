"""A live OrgInvites server for SDK and remote-CLI tests: two organizations, their
API keys, an instance key and an admin member, served over real HTTP on 127.0.0.1."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import httpx
from flask import Flask

from tests.conftest import APP_ORIGIN
from tests.live import free_port
from tests.live import serve
from webapp.extensions import db
from webapp.sdk import Client
from webapp.services.actors import SYSTEM
from webapp.services.api_keys import create_api_key
from webapp.services.organizations import add_admin_member
from webapp.services.organizations import create_organization
from webapp.services.organizations import update_organization
from webapp.services.users import get_or_create_user

OWNER_EMAIL = "owner@example.com"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@dataclass
class LiveApi:
    app: Flask
    url: str
    org_id: str
    org_key: str
    other_org_id: str
    other_key: str
    instance_key: str
    owner_user_id: str

    def key(self, which: str) -> str:
        return {"org": self.org_key, "other": self.other_key, "instance": self.instance_key}.get(
            which, which
        )

    def client(self, key: str = "org", **options: Any) -> Client:
        return Client(self.url, self.key(key), **options)


def _populate(app: Flask) -> dict[str, str]:
    """Organizations, keys and a member, created with the services; the context is left
    before any request is made."""
    with app.app_context():
        acme = create_organization(db.session, name="Acme", slug="acme")
        update_organization(db.session, acme, allowed_redirect_origins=[APP_ORIGIN])
        globex = create_organization(db.session, name="Globex", slug="globex")
        owner = get_or_create_user(db.session, OWNER_EMAIL, OWNER_EMAIL, "Olive Owner")
        add_admin_member(db.session, acme, owner, actor=SYSTEM)
        _, org_key = create_api_key(db.session, org=acme, name="acme backend")
        _, other_key = create_api_key(db.session, org=globex, name="globex backend")
        _, instance_key = create_api_key(db.session, org=None, name="ops")
        db.session.commit()
        return {
            "org_id": acme.id,
            "org_key": org_key,
            "other_org_id": globex.id,
            "other_key": other_key,
            "instance_key": instance_key,
            "owner_user_id": owner.id,
        }


@contextmanager
def live_api(make_app, backend: str, **config: Any) -> Iterator[LiveApi]:
    """Serve a fresh app (``config`` added to the test settings) on a free port."""
    port = free_port()
    app = make_app(
        backend,
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        SESSION_COOKIE_SECURE=False,
        **config,
    )
    ids = _populate(app)
    with serve(app, port) as url:
        yield LiveApi(app=app, url=url, **ids)


@dataclass
class Exchange:
    """One HTTP exchange as the client's transport saw it."""

    method: str
    path: str
    idempotency_key: str | None
    status: int | None
    headers: dict[str, str]
    sent_at: float
    body: bytes = b""


@dataclass
class RecordingTransport(httpx.BaseTransport):
    """A real HTTP transport that records every exchange (the server is never faked).

    ``drop_responses`` makes the first N POST answers get lost after the server has
    handled them, as when a connection breaks on the way back. ``gateway_failures``
    answers N requests with a 503 from a "load balancer" in front of the server,
    without reaching it, after letting ``gateway_passes`` requests through.
    """

    drop_responses: int = 0
    gateway_failures: int = 0
    gateway_passes: int = 0
    exchanges: list[Exchange] = field(default_factory=list)
    inner: httpx.HTTPTransport = field(default_factory=httpx.HTTPTransport)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        record = Exchange(
            method=request.method,
            path=request.url.path,
            idempotency_key=request.headers.get("Idempotency-Key"),
            status=None,
            headers={},
            sent_at=time.monotonic(),
        )
        self.exchanges.append(record)
        if self.gateway_failures and self.gateway_passes:
            self.gateway_passes -= 1
        elif self.gateway_failures:
            self.gateway_failures -= 1
            record.status = 503
            return httpx.Response(
                503,
                headers={"Content-Type": "text/html", "Retry-After": "0"},
                text="<html><body><h1>503 Service Unavailable</h1></body></html>",
                request=request,
            )
        response = self.inner.handle_request(request)
        record.status = response.status_code
        record.headers = dict(response.headers)
        if request.method == "POST" and self.drop_responses:
            self.drop_responses -= 1
            record.body = response.read()
            response.close()
            raise httpx.ReadError("connection reset after the server answered", request=request)
        return response

    def close(self) -> None:
        self.inner.close()

    def posts(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.method == "POST"]


def accept_over_http(base_url: str, accept_url: str) -> dict[str, str]:
    """Accept an invitation as the invitee does (GET the page, POST the form); return
    the query of the redirect to the product (invitation_id, status, ticket)."""
    path = urlsplit(accept_url).path
    with httpx.Client(base_url=base_url, follow_redirects=False) as browser:
        page = browser.get(path)
        assert page.status_code == 200, page.text
        match = CSRF.search(page.text)
        assert match, page.text
        answer = browser.post(path, data={"csrf_token": match.group(1)})
    assert answer.status_code == 303, answer.text
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    return {k: v[0] for k, v in query.items()}
