"""Email delivery against a real SMTP server (aiosmtpd), on SQLite and PostgreSQL.

The worker is driven directly (``DeliveryWorker.run_once``) or as the real
``orginvites worker`` process; time-machine moves the clock past retry backoff and
claim leases instead of sleeping. The test never holds an app context while a worker
runs: each step opens its own, as the web app and the worker do.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

import webapp.delivery.worker as worker_module
from tests.smtp_server import SmtpServer
from tests.smtp_server import free_port
from webapp.delivery.worker import DeliveryWorker
from webapp.delivery.worker import WorkerSettings
from webapp.extensions import db
from webapp.models import AuditEvent
from webapp.models import DevMailboxMessage
from webapp.models import Invitation
from webapp.models import OutboxMessage
from webapp.services.actors import Actor
from webapp.services.invitation_transitions import resend_invitation
from webapp.services.invitation_transitions import revoke_invitation
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import create_invitation
from webapp.services.invitations import create_invitations
from webapp.services.organizations import create_organization
from webapp.services.organizations import get_organization
from webapp.services.outbox import BACKOFF_BASE_SECONDS
from webapp.services.outbox import BACKOFF_CAP_SECONDS
from webapp.services.outbox import MAX_ATTEMPTS
from webapp.services.outbox import retry_delay
from webapp.services.users import get_or_create_user

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PUBLIC_BASE_URL = "https://invites.example.com"
SECRET_KEY = "test-secret-key-not-for-production"
LINK = re.compile(re.escape(PUBLIC_BASE_URL) + r"/invitations/accept/([A-Za-z0-9_-]+)")
ORG_NAME = "Acme Rockets"
INVITER_NAME = "Ada Lovelace"
INVITER_EMAIL = "ada@acme.example"


# --- helpers ---------------------------------------------------------------------------


@dataclass
class OrgRef:
    slug: str
    inviter_id: str


@dataclass
class Issued:
    invitation_id: str
    email: str
    accept_url: str

    @property
    def token(self) -> str:
        return self.accept_url.rsplit("/", 1)[1]


def smtp_config(port: int) -> dict[str, Any]:
    return {
        "MAIL_BACKEND": "smtp",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": port,
        "SMTP_SECURITY": "none",
    }


def setup_org(app: Flask) -> OrgRef:
    """An organization (default roles admin/member) and a named user who invites."""
    with app.app_context():
        org = create_organization(db.session, name=ORG_NAME)
        user = get_or_create_user(db.session, INVITER_EMAIL, INVITER_EMAIL, INVITER_NAME)
        db.session.commit()
        return OrgRef(org.slug, user.id)


def invite(
    app: Flask, org: OrgRef, emails: list[str], *, role: str | None = None, notify: bool = True
) -> list[Issued]:
    """Create one invitation per address in one transaction (committed)."""
    with app.app_context():
        session = db.session
        organization = get_organization(session, org.slug)
        issued = [
            create_invitation(
                session,
                organization,
                InvitationRequest(email=address, role=role, notify=notify),
                actor=Actor.user(org.inviter_id),
            )
            for address in emails
        ]
        session.commit()
        return [Issued(i.invitation.id, i.invitation.email, i.accept_url) for i in issued]


def invite_many(app: Flask, org: OrgRef, count: int, batch: int = 250) -> list[Issued]:
    """Queue ``count`` invitations through ``create_invitations``, ``batch`` per transaction."""
    issued: list[Issued] = []
    emails = [f"user{i:04d}@example.org" for i in range(count)]
    for start in range(0, count, batch):
        with app.app_context():
            session = db.session
            organization = get_organization(session, org.slug)
            result = create_invitations(
                session,
                organization,
                [InvitationRequest(email=e) for e in emails[start : start + batch]],
                actor=Actor.user(org.inviter_id),
            )
            session.commit()
            assert not result.failures
            issued += [
                Issued(i.invitation.id, i.invitation.email, i.accept_url)
                for _, i in result.successes
            ]
    return issued


def revoke(app: Flask, org: OrgRef, invitation_id: str) -> None:
    with app.app_context():
        organization = get_organization(db.session, org.slug)
        revoke_invitation(db.session, organization, invitation_id, actor=Actor.user(org.inviter_id))
        db.session.commit()


def in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any], list[BaseException]]:
    """Run ``target`` in a started thread; its result or exception is collected."""
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(target())
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, results, errors


def table(app: Flask, model, *where) -> list[dict[str, Any]]:
    """Rows of ``model`` as plain dicts, read in a fresh app context."""
    with app.app_context():
        statement = select(model.__table__)
        if where:
            statement = statement.where(*where)
        return [dict(row) for row in db.session.execute(statement).mappings()]


def outbox(app: Flask) -> list[dict[str, Any]]:
    return table(app, OutboxMessage)


def only(rows: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(rows) == 1, rows
    return rows[0]


def invitation(app: Flask, invitation_id: str) -> dict[str, Any]:
    return only(table(app, Invitation, Invitation.id == invitation_id))


def message_id(outbox_id: str) -> str:
    return f"<{outbox_id}@invites.example.com>"


def drain(worker: DeliveryWorker, rounds: int = 100) -> int:
    """run_once until nothing is due; return how many items were handled."""
    total = 0
    for _ in range(rounds):
        handled = worker.run_once()
        total += handled
        if handled == 0:
            return total
    raise AssertionError(f"the outbox was not empty after {rounds} rounds")


def step_seconds(attempts: int) -> int:
    return min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))


def worker_env(app: Flask, port: int, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORGINVITES_", "FLASK_"))}
    env.update(
        ORGINVITES_DATABASE_URL=app.config["DATABASE_URL"],
        ORGINVITES_SECRET_KEY=SECRET_KEY,
        ORGINVITES_PUBLIC_BASE_URL=PUBLIC_BASE_URL,
        ORGINVITES_MAIL_BACKEND="smtp",
        ORGINVITES_SMTP_HOST="127.0.0.1",
        ORGINVITES_SMTP_PORT=str(port),
        ORGINVITES_INSTANCE_PATH=str(tmp_path / "worker-instance"),
    )
    return env


@pytest.fixture
def worker_process(tmp_path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start ``orginvites worker`` as a real process; killed and reaped at the end."""
    started: list[tuple[subprocess.Popen, Any]] = []

    def start(app: Flask, port: int) -> subprocess.Popen:
        log = (tmp_path / f"worker-{len(started)}.log").open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from webapp.cli import main; main()",
                "worker",
                "--poll-interval",
                "0.05",
                "--lease-seconds",
                "10",
            ],
            env=worker_env(app, port, tmp_path),
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append((process, log))
        return process

    yield start
    for process, log in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        log.close()


def worker_log(tmp_path: Path, index: int = 0) -> str:
    return (tmp_path / f"worker-{index}.log").read_text(errors="replace")


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp_app(make_app, backend, smtp) -> Flask:
    return make_app(backend, **smtp_config(smtp.port))


@pytest.fixture
def acme(smtp_app) -> OrgRef:
    return setup_org(smtp_app)


@pytest.fixture
def clock(time_machine):
    """time-machine started at the real now (ticking), ready to move past backoffs."""
    time_machine.move_to(datetime.now(UTC))
    return time_machine


@pytest.fixture
def make_worker() -> Iterator[Callable[..., DeliveryWorker]]:
    workers: list[DeliveryWorker] = []

    def factory(app: Flask, worker_id: str | None = None, **settings) -> DeliveryWorker:
        settings.setdefault("poll_interval", 0.05)
        worker = DeliveryWorker(app, settings=WorkerSettings(**settings), worker_id=worker_id)
        workers.append(worker)
        return worker

    yield factory
    for worker in workers:
        worker.transport.close()


# --- delivering ------------------------------------------------------------------------


def test_each_invitation_email_arrives_with_its_own_link(smtp_app, smtp, acme, make_worker, caplog):
    """Three invitations give three complete emails; rows, invitations and audit say sent."""
    caplog.set_level(logging.INFO, logger="orginvites.worker")
    emails = ["ana@example.org", "bo@example.org", "cy@example.org"]
    issued = invite(smtp_app, acme, emails, role="admin")
    assert not table(smtp_app, AuditEvent, AuditEvent.actor_type == "system")

    worker = make_worker(smtp_app)
    assert worker.run_once() == 3

    assert smtp.handler.count == 3
    rows = {r["invitation_id"]: r for r in outbox(smtp_app)}
    for item in issued:
        [received] = smtp.handler.to(item.email)
        row = rows[item.invitation_id]
        stored = invitation(smtp_app, item.invitation_id)
        assert received.message_id == message_id(row["id"])
        assert received.message["To"] == item.email
        assert received.message["Subject"] == (
            f"{INVITER_NAME} ({INVITER_EMAIL}) invited you to join {ORG_NAME}"
        )
        assert received.message.get_content_type() == "multipart/alternative"
        expires_on = stored["expires_at"].strftime("%A %d %B %Y, %H:%M UTC")
        text, html = received.text(), received.html()
        for body in (text, html):
            for fragment in (ORG_NAME, "Admin", INVITER_NAME, "expires in 7 days", expires_on):
                assert fragment in body
        assert set(LINK.findall(text)) == set(LINK.findall(html)) == {item.token}
        assert hashlib.sha256(item.token.encode()).hexdigest() == stored["token_hash"]
        assert f"{PUBLIC_BASE_URL}/invitations/accept/{item.token}" in text
        assert row["status"] == "sent"
        assert row["token_ciphertext"] is None
        assert row["attempts"] == 1
        assert row["sent_at"] is not None and row["locked_until"] is None
        assert stored["delivery_status"] == "sent"
        assert stored["delivery_error"] is None

    sent_events = table(
        smtp_app,
        AuditEvent,
        AuditEvent.type == "invitation.sent",
        AuditEvent.actor_type == "system",
    )
    assert sorted(e["invitation_id"] for e in sent_events) == sorted(
        i.invitation_id for i in issued
    )
    audit_data = json.dumps([e["data"] for e in table(smtp_app, AuditEvent)])
    log_lines = [r.getMessage() for r in caplog.records if r.name == "orginvites.worker"]
    assert sum("outbox.sent" in line for line in log_lines) == 3
    for item in issued:
        assert item.token not in audit_data
        assert all(item.token not in line for line in log_lines)


def test_one_smtp_connection_serves_a_whole_batch(smtp_app, smtp, acme, make_worker):
    """Ten messages go over a single SMTP connection."""
    invite(smtp_app, acme, [f"p{i}@example.org" for i in range(10)])
    worker = make_worker(smtp_app)
    assert worker.run_once() == 10
    assert smtp.handler.count == 10
    assert len(smtp.handler.message_id_counts()) == 10
    assert worker.transport.connections_opened == 1


def test_a_451_at_rcpt_is_retried_after_the_backoff(smtp_app, smtp, acme, make_worker, clock):
    """A temporary refusal leaves the row pending with a backoff; later it is delivered."""
    [item] = invite(smtp_app, acme, ["later@example.org"])
    smtp.handler.refuse("later@example.org", "451 4.7.1 try later", times=1)
    worker = make_worker(smtp_app)

    assert worker.run_once() == 1
    failed_at = datetime.now(UTC)
    row = only(outbox(smtp_app))
    assert smtp.handler.count == 0
    assert row["status"] == "pending"
    assert row["attempts"] == 1
    assert "451" in row["last_error"]
    assert row["locked_until"] is None
    assert row["token_ciphertext"] is not None
    wait = row["next_attempt_at"] - failed_at
    assert timedelta(seconds=step_seconds(1) * 0.5 - 2) <= wait <= timedelta(seconds=30)
    assert invitation(smtp_app, item.invitation_id)["delivery_status"] == "queued"

    assert worker.run_once() == 0  # not due yet
    assert smtp.handler.count == 0

    clock.move_to(row["next_attempt_at"] + timedelta(seconds=1))
    assert worker.run_once() == 1
    [received] = smtp.handler.to("later@example.org")
    assert received.message_id == message_id(row["id"])
    assert set(LINK.findall(received.text())) == {item.token}
    row = only(outbox(smtp_app))
    assert row["status"] == "sent"
    assert row["attempts"] == 2
    assert row["last_error"] is None
    assert invitation(smtp_app, item.invitation_id)["delivery_status"] == "sent"


@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
def test_a_550_is_permanent_and_shows_on_the_invitation(
    smtp_app, smtp, acme, make_worker, clock, stage
):
    """A 5xx reply makes the row dead and the invitation 'failed', and is never retried."""
    [ok, bad] = invite(smtp_app, acme, ["ok@example.org", "nobody@example.org"])
    smtp.handler.refuse("nobody@example.org", "550 5.1.1 no such user", stage=stage)
    worker = make_worker(smtp_app)
    assert worker.run_once() == 2

    assert [m.rcpt_tos for m in smtp.handler.messages()] == [["ok@example.org"]]
    rows = {r["invitation_id"]: r for r in outbox(smtp_app)}
    dead = rows[bad.invitation_id]
    assert dead["status"] == "dead"
    assert dead["attempts"] == 1
    assert dead["token_ciphertext"] is None
    assert "550 5.1.1" in dead["last_error"]
    assert rows[ok.invitation_id]["status"] == "sent"
    stored = invitation(smtp_app, bad.invitation_id)
    assert stored["delivery_status"] == "failed"
    assert "550 5.1.1" in stored["delivery_error"]
    event = only(table(smtp_app, AuditEvent, AuditEvent.type == "invitation.delivery_failed"))
    assert event["invitation_id"] == bad.invitation_id
    assert "550 5.1.1" in event["data"]["reason"]
    assert bad.token not in json.dumps(event["data"])

    clock.shift(timedelta(days=1))
    assert worker.run_once() == 0
    assert smtp.handler.count == 1
    assert len(smtp.handler.refusals) == 1


def test_transient_failures_end_dead_after_max_attempts(smtp_app, smtp, acme, make_worker, clock):
    """Every retry is spaced by the capped backoff; the MAX_ATTEMPTS-th failure is final."""
    [item] = invite(smtp_app, acme, ["flaky@example.org"])
    smtp.handler.refuse("flaky@example.org", "451 4.3.0 mailbox busy")
    worker = make_worker(smtp_app)
    for attempt in range(1, MAX_ATTEMPTS):
        assert worker.run_once() == 1
        failed_at = datetime.now(UTC)
        row = only(outbox(smtp_app))
        assert (row["status"], row["attempts"]) == ("pending", attempt)
        wait = (row["next_attempt_at"] - failed_at).total_seconds()
        assert step_seconds(attempt) * 0.5 - 2 <= wait <= step_seconds(attempt)
        clock.move_to(row["next_attempt_at"] + timedelta(seconds=1))
    assert worker.run_once() == 1
    row = only(outbox(smtp_app))
    assert row["status"] == "dead"
    assert row["attempts"] == MAX_ATTEMPTS
    assert "451 4.3.0" in row["last_error"]
    stored = invitation(smtp_app, item.invitation_id)
    assert stored["delivery_status"] == "failed"
    assert "451 4.3.0" in stored["delivery_error"]
    assert len(smtp.handler.refusals) == MAX_ATTEMPTS
    assert smtp.handler.count == 0
    clock.shift(timedelta(days=1))
    assert worker.run_once() == 0


def test_an_unreachable_server_is_a_transient_failure(make_app, backend, make_worker, clock):
    """With nothing listening the row is retried, not dead; once the server is up it arrives."""
    port = free_port()
    app = make_app(backend, **smtp_config(port))
    org = setup_org(app)
    [item] = invite(app, org, ["patient@example.org"])
    worker = make_worker(app)

    for attempt in (1, 2):
        assert worker.run_once() == 1
        row = only(outbox(app))
        assert (row["status"], row["attempts"]) == ("pending", attempt)
        assert "connection" in row["last_error"]
        assert invitation(app, item.invitation_id)["delivery_status"] == "queued"
        clock.move_to(row["next_attempt_at"] + timedelta(seconds=1))

    server = SmtpServer(port=port)
    server.start()
    try:
        assert worker.run_once() == 1
    finally:
        server.stop()
    [received] = server.handler.to("patient@example.org")
    assert set(LINK.findall(received.text())) == {item.token}
    assert only(outbox(app))["status"] == "sent"


def test_the_transport_reconnects_after_the_server_dropped_the_connection(
    smtp_app, smtp, acme, make_worker
):
    """A connection the server closed between runs is re-opened; nothing is lost or failed."""
    worker = make_worker(smtp_app)
    invite(smtp_app, acme, ["first@example.org"])
    assert worker.run_once() == 1
    assert worker.transport.connections_opened == 1

    smtp.restart()  # drops the worker's open connection, listens again on the same port

    invite(smtp_app, acme, ["second@example.org"])
    assert worker.run_once() == 1
    assert [m.rcpt_tos for m in smtp.handler.messages()] == [
        ["first@example.org"],
        ["second@example.org"],
    ]
    assert worker.transport.connections_opened == 2
    rows = outbox(smtp_app)
    assert {(r["status"], r["attempts"], r["last_error"]) for r in rows} == {("sent", 1, None)}


def test_a_message_that_cannot_be_rebuilt_is_dead(smtp_app, smtp, acme, make_worker):
    """A secret key changed since queueing makes the link unrecoverable: dead, not retried."""
    [item] = invite(smtp_app, acme, ["lost@example.org"])
    smtp_app.config["SECRET_KEY"] = "a-different-secret-key-than-before"
    worker = make_worker(smtp_app)
    assert worker.run_once() == 1
    row = only(outbox(smtp_app))
    assert row["status"] == "dead"
    assert "cannot be rebuilt" in row["last_error"]
    assert invitation(smtp_app, item.invitation_id)["delivery_status"] == "failed"
    assert smtp.handler.count == 0


def test_an_internationalized_address_is_delivered_over_smtputf8(make_app, backend, make_worker):
    """A non-ASCII address goes out through a server that offers SMTPUTF8."""
    server = SmtpServer(smtputf8=True)
    server.start()
    try:
        app = make_app(backend, **smtp_config(server.port))
        org = setup_org(app)
        [item] = invite(app, org, ["josé@bücher.example"])
        assert drain(make_worker(app)) == 1
    finally:
        server.stop()
    [received] = server.handler.messages()
    assert received.rcpt_tos == ["josé@bücher.example"]
    assert set(LINK.findall(received.text())) == {item.token}
    assert only(outbox(app))["status"] == "sent"


def test_an_internationalized_address_without_smtputf8_is_dead_not_retried(
    make_app, backend, make_worker
):
    """A server without SMTPUTF8 can never take a non-ASCII address: dead, with the reason."""
    server = SmtpServer(smtputf8=False)
    server.start()
    try:
        app = make_app(backend, **smtp_config(server.port))
        org = setup_org(app)
        invite(app, org, ["josé@bücher.example"])
        make_worker(app).run_once()
    finally:
        server.stop()
    row = only(outbox(app))
    assert row["status"] == "dead"
    assert "SMTPUTF8" in row["last_error"]


def test_an_unreachable_server_stops_the_batch_after_one_try(make_app, backend, make_worker):
    """With the server down, one message is charged an attempt; the rest wait untouched."""
    app = make_app(backend, **smtp_config(free_port()))
    org = setup_org(app)
    invite(app, org, [f"waiting{n}@example.org" for n in range(5)])
    worker = make_worker(app)
    worker.run_once()
    rows = outbox(app)
    assert sorted(r["attempts"] for r in rows) == [0, 0, 0, 0, 1]
    assert all(r["status"] == "pending" and r["locked_until"] is None for r in rows)
    assert worker.server_down_rounds == 1


def test_a_database_error_does_not_stop_the_worker_loop(
    smtp_app, smtp, acme, make_worker, monkeypatch
):
    """After a failed round (database error) the running worker goes on delivering."""
    invite(smtp_app, acme, ["steady@example.org"])
    real_claim = worker_module.claim_batch
    calls: list[int] = []

    def flaky_claim(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("SELECT …", {}, Exception("database is locked"))
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(worker_module, "claim_batch", flaky_claim)
    worker = make_worker(smtp_app)
    thread, _, errors = in_thread(worker.run)
    try:
        deadline = time.monotonic() + 5
        while thread.is_alive() and smtp.handler.count == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        delivered = smtp.handler.count == 1
    finally:
        worker.stop()
        thread.join(10)
    assert not errors, errors
    assert delivered
    assert only(outbox(smtp_app))["status"] == "sent"


# --- cancelling and not sending --------------------------------------------------------


def test_a_revoked_invitations_email_is_never_delivered(smtp_app, smtp, acme, make_worker):
    """Revoking before the worker runs cancels the queued email and erases its token."""
    keep, revoked = invite(smtp_app, acme, ["keep@example.org", "gone@example.org"])
    revoke(smtp_app, acme, revoked.invitation_id)

    worker = make_worker(smtp_app)
    assert drain(worker) == 1
    assert [m.rcpt_tos for m in smtp.handler.messages()] == [["keep@example.org"]]
    rows = {r["invitation_id"]: r for r in outbox(smtp_app)}
    assert rows[revoked.invitation_id]["status"] == "cancelled"
    assert rows[revoked.invitation_id]["token_ciphertext"] is None
    assert rows[keep.invitation_id]["status"] == "sent"


def test_a_revoke_while_the_batch_is_being_sent_cancels_the_rest(smtp_app, smtp, acme, make_worker):
    """A revoke committed while another message of the batch is in flight still cancels."""
    issued = invite(smtp_app, acme, ["a@example.org", "b@example.org"])
    arrived, release = smtp.handler.hold_next_message()
    worker = make_worker(smtp_app)
    thread, results, errors = in_thread(worker.run_once)
    try:
        assert arrived.wait(10)
        [held] = smtp.handler.held_rcpts
        other = next(i for i in issued if i.email != held)
        revoke(smtp_app, acme, other.invitation_id)
    finally:
        release.set()
        thread.join(10)
    assert not errors, errors
    assert results == [2]
    assert [m.rcpt_tos for m in smtp.handler.messages()] == [[held]]
    rows = {r["invitation_id"]: r for r in outbox(smtp_app)}
    assert rows[other.invitation_id]["status"] == "cancelled"


def test_resend_cancels_the_older_unsent_email(smtp_app, smtp, acme, make_worker, clock):
    """After a resend only the newest link is delivered, as a reminder."""
    [first] = invite(smtp_app, acme, ["twice@example.org"])
    clock.shift(timedelta(seconds=61))  # past RESEND_MIN_INTERVAL_SECONDS
    with smtp_app.app_context():
        organization = get_organization(db.session, acme.slug)
        resent = resend_invitation(
            db.session, organization, first.invitation_id, actor=Actor.user(acme.inviter_id)
        )
        db.session.commit()
        new_url = resent.accept_url

    worker = make_worker(smtp_app)
    assert drain(worker) == 1
    [received] = smtp.handler.messages()
    links = set(LINK.findall(received.text()))
    assert links == {new_url.rsplit("/", 1)[1]}
    assert first.token not in received.raw.decode("utf-8", "replace")
    # A long Subject is folded after "Subject:"; the parser keeps the fold's space.
    assert str(received.message["Subject"]).strip().startswith("Reminder: ")
    stored = invitation(smtp_app, first.invitation_id)
    assert hashlib.sha256(next(iter(links)).encode()).hexdigest() == stored["token_hash"]
    assert sorted(r["status"] for r in outbox(smtp_app)) == ["cancelled", "sent"]


def test_notify_false_queues_and_delivers_nothing(smtp_app, smtp, acme, make_worker):
    """An invitation created with notify=False writes no outbox row and sends no email."""
    [item] = invite(smtp_app, acme, ["quiet@example.org"], notify=False)
    assert outbox(smtp_app) == []
    assert drain(make_worker(smtp_app)) == 0
    assert smtp.handler.count == 0
    assert invitation(smtp_app, item.invitation_id)["delivery_status"] == "not_sent"


# --- overlapping work with the server's waits -------------------------------------------
#
# The worker checks a row while the server handles MAIL and builds the next email while
# the server takes in the current one. These tests pin what that must never change.


def outbox_in_claim_order(app: Flask) -> list[dict[str, Any]]:
    return sorted(outbox(app), key=lambda r: (r["next_attempt_at"], r["id"]))


def test_a_message_is_marked_sent_only_after_the_servers_250(smtp_app, smtp, acme, make_worker):
    """While the server holds a message's content (and the next email is being built
    meanwhile), nothing is marked sent, even with a commit after every message."""
    invite(smtp_app, acme, ["first@example.org", "second@example.org", "third@example.org"])
    arrived, release = smtp.handler.hold_next_message()
    worker = make_worker(smtp_app, commit_every=1)
    thread, results, errors = in_thread(worker.run_once)
    try:
        assert arrived.wait(10)
        time.sleep(0.05)  # give a wrongly early "sent" the chance to be committed
        while_held = outbox(smtp_app)
        events_while_held = table(smtp_app, AuditEvent, AuditEvent.type == "invitation.sent")
    finally:
        release.set()
        thread.join(10)
    assert not errors, errors
    assert results == [3]
    assert {r["status"] for r in while_held} == {"pending"}
    assert events_while_held == []
    assert {r["status"] for r in outbox(smtp_app)} == {"sent"}
    assert smtp.handler.count == 3


def test_a_revoke_of_the_next_message_withdraws_it_and_keeps_the_connection(
    smtp_app, smtp, acme, make_worker
):
    """The next message, revoked while the current one is held, is withdrawn after its
    MAIL command (RSET, no content); the message after it goes over the same connection."""
    issued = invite(smtp_app, acme, ["a@example.org", "b@example.org", "c@example.org"])
    by_invitation = {i.invitation_id: i for i in issued}
    first, second, third = (
        by_invitation[r["invitation_id"]] for r in outbox_in_claim_order(smtp_app)
    )
    arrived, release = smtp.handler.hold_next_message()
    worker = make_worker(smtp_app)
    thread, results, errors = in_thread(worker.run_once)
    try:
        assert arrived.wait(10)
        assert smtp.handler.held_rcpts == [first.email]
        revoke(smtp_app, acme, second.invitation_id)
    finally:
        release.set()
        thread.join(10)
    assert not errors, errors
    assert results == [3]
    assert [m.rcpt_tos for m in smtp.handler.messages()] == [[first.email], [third.email]]
    assert smtp.handler.commands == ["MAIL", "DATA", "MAIL", "RSET", "MAIL", "DATA"]
    assert worker.transport.connections_opened == 1
    rows = {r["invitation_id"]: r for r in outbox(smtp_app)}
    assert rows[second.invitation_id]["status"] == "cancelled"
    assert rows[second.invitation_id]["attempts"] == 0
    assert rows[first.invitation_id]["status"] == rows[third.invitation_id]["status"] == "sent"


def test_a_connection_dropped_before_the_250_is_resent_once_on_a_new_one(
    smtp_app, smtp, acme, make_worker
):
    """The server drops the connection after taking in a message's content but before
    its 250: that message goes again on a new connection, and every message arrives once."""
    issued = invite(smtp_app, acme, ["one@example.org", "two@example.org", "three@example.org"])
    smtp.handler.drop_connection_at_data("two@example.org")
    worker = make_worker(smtp_app)
    assert worker.run_once() == 3
    assert sorted(r for m in smtp.handler.messages() for r in m.rcpt_tos) == sorted(
        i.email for i in issued
    )
    assert max(smtp.handler.message_id_counts().values()) == 1
    assert worker.transport.connections_opened == 2
    rows = outbox(smtp_app)
    assert {(r["status"], r["attempts"], r["last_error"]) for r in rows} == {("sent", 1, None)}


def test_a_failure_while_building_the_next_email_keeps_what_was_sent(
    smtp_app, smtp, acme, make_worker, monkeypatch
):
    """An unexpected error while the next email is built (during the current one's DATA)
    surfaces after the current message was accepted, and that message is recorded sent."""
    import webapp.delivery.messages as messages_module

    invite(smtp_app, acme, ["ok@example.org", "boom@example.org", "later@example.org"])
    real_open = messages_module.open_from_outbox
    calls: list[int] = []

    def failing_second_open(sealed: str) -> str | None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("unexpected")
        return real_open(sealed)

    monkeypatch.setattr(messages_module, "open_from_outbox", failing_second_open)
    worker = make_worker(smtp_app)
    with pytest.raises(RuntimeError, match="unexpected"):
        worker.run_once()
    assert smtp.handler.count == 1
    statuses = [r["status"] for r in outbox_in_claim_order(smtp_app)]
    assert statuses == ["sent", "pending", "pending"]


def test_the_claim_check_sees_later_commits_and_leaves_its_connection_usable(smtp_app, acme):
    """Checks answer for the worker that claimed; a cancel committed elsewhere after a
    check shows in the next one; the checking connection can still write meanwhile."""
    from webapp.services.outbox import ClaimCheck
    from webapp.services.outbox import claim_batch

    [item] = invite(smtp_app, acme, ["checked@example.org"])
    with smtp_app.app_context():
        [outbox_id] = claim_batch(db.session, worker_id="w1", limit=10, lease=timedelta(minutes=5))
        db.session.commit()
        autocommit = db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        with autocommit as connection, ClaimCheck(connection, "w1") as claimed:
            assert ClaimCheck(connection, "w2")(outbox_id) is False
            assert claimed(outbox_id) is True
            revoke(smtp_app, acme, item.invitation_id)  # another connection commits
            connection.exec_driver_sql(
                "UPDATE outbox_messages SET attempts = attempts WHERE id = 'msg_none'"
            )
            assert claimed(outbox_id) is False


def test_lines_starting_with_a_dot_arrive_intact(smtp_app, smtp, acme, make_worker):
    """SMTP dot-stuffing on the raw path: a note line that starts with '.' is not cut."""
    with smtp_app.app_context():
        organization = get_organization(db.session, acme.slug)
        create_invitation(
            db.session,
            organization,
            InvitationRequest(email="dots@example.org", message="Hi\n.hidden line\n..two dots"),
            actor=Actor.user(acme.inviter_id),
        )
        db.session.commit()
    assert drain(make_worker(smtp_app)) == 1
    [received] = smtp.handler.messages()
    assert "\n.hidden line\n..two dots\n" in received.text().replace("\r\n", "\n")


def test_the_smtp_payload_doubles_leading_dots_and_ends_the_data():
    from webapp.delivery.transports import _smtp_payload

    assert _smtp_payload(b"a\r\nb\r\n") == b"a\r\nb\r\n.\r\n"
    assert _smtp_payload(b".a\r\n.\r\nb.c\r\n..d") == b"..a\r\n..\r\nb.c\r\n...d\r\n.\r\n"


# --- backoff ---------------------------------------------------------------------------


class _Pick:
    """A stand-in RNG whose ``uniform`` returns the low or the high end."""

    def __init__(self, high: bool) -> None:
        self.high = high

    def uniform(self, low: float, high: float) -> float:
        return high if self.high else low


@pytest.mark.parametrize(
    ("attempts", "step"),
    [
        (0, 30),
        (1, 30),
        (2, 60),
        (3, 120),
        (5, 480),
        (7, 1920),
        (8, 3840),
        (9, 7200),
        (12, 7200),
        (50, 7200),
    ],
)
def test_retry_delay_is_capped_exponential_with_jitter(attempts, step):
    """Each delay lies in [50 %, 100 %] of min(cap, base * 2^(attempts-1)) and varies."""
    assert retry_delay(attempts, _Pick(high=False)) == timedelta(seconds=step / 2)
    assert retry_delay(attempts, _Pick(high=True)) == timedelta(seconds=step)
    rng = random.Random(attempts)
    delays = [retry_delay(attempts, rng).total_seconds() for _ in range(200)]
    assert all(step / 2 <= d <= step for d in delays)
    assert min(delays) < step * 0.6 and max(delays) > step * 0.9
    assert len(set(delays)) > 150
    assert all(step / 2 <= retry_delay(attempts).total_seconds() <= step for _ in range(20))


# --- the dev backend -------------------------------------------------------------------


def test_the_dev_backend_keeps_messages_in_the_dev_mailbox(make_app, backend, make_worker):
    """MAIL_BACKEND=dev stores the email; /dev/mailbox lists it and shows the accept link."""
    app = make_app(backend, MAIL_BACKEND="dev")
    org = setup_org(app)
    [item] = invite(app, org, ["dev@example.org"])
    assert drain(make_worker(app)) == 1

    row = only(outbox(app))
    assert row["status"] == "sent"
    kept = only(table(app, DevMailboxMessage))
    assert kept["outbox_id"] == row["id"]
    assert kept["message_id"] == message_id(row["id"])
    assert kept["to_email"] == "dev@example.org"
    assert item.accept_url.encode() in kept["raw"] or item.token.encode() in kept["raw"]

    client = app.test_client()
    listing = client.get("/dev/mailbox")
    assert listing.status_code == 200
    page = listing.get_data(as_text=True)
    assert "dev@example.org" in page
    assert f"/dev/mailbox/{kept['id']}" in page
    shown = client.get(f"/dev/mailbox/{kept['id']}")
    assert shown.status_code == 200
    assert item.accept_url in shown.get_data(as_text=True)


def test_the_dev_mailbox_is_404_with_the_smtp_backend(smtp_app, acme, make_worker):
    """With MAIL_BACKEND=smtp there is no /dev/mailbox, and nothing is kept there."""
    invite(smtp_app, acme, ["real@example.org"])
    assert drain(make_worker(smtp_app)) == 1
    client = smtp_app.test_client()
    assert client.get("/dev/mailbox").status_code == 404
    assert client.get("/dev/mailbox/1").status_code == 404
    assert table(smtp_app, DevMailboxMessage) == []


# --- several workers, crashes and signals ----------------------------------------------


@pytest.mark.postgres_only
def test_two_workers_deliver_1000_messages_exactly_once(make_app, smtp, make_worker):
    """PostgreSQL: two concurrent workers (SKIP LOCKED) share 1,000 messages, none twice."""
    app = make_app("postgresql", **smtp_config(smtp.port))
    org = setup_org(app)
    issued = invite_many(app, org, 1000)
    workers = [make_worker(app, worker_id=f"worker-{i}", batch_size=50) for i in (1, 2)]
    handled = [0, 0]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def loop(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            handled[index] = drain(workers[index], rounds=1000)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)

    counts = smtp.handler.message_id_counts()
    rows = outbox(app)
    assert len(rows) == 1000
    assert set(counts) == {message_id(r["id"]) for r in rows}
    assert [mid for mid, n in counts.items() if n > 1] == []
    assert {r["status"] for r in rows} == {"sent"}
    assert {r["locked_by"] for r in rows} == {"worker-1", "worker-2"}
    assert sum(handled) == 1000 and min(handled) > 0
    delivered_to = sorted(r for m in smtp.handler.messages() for r in m.rcpt_tos)
    assert delivered_to == sorted(i.email for i in issued)


def test_kill_9_of_a_worker_loses_no_email(
    smtp_app, smtp, acme, make_worker, worker_process, clock, tmp_path
):
    """A worker killed mid-batch leaves its claims to lapse; a new worker delivers the rest."""
    issued = invite_many(smtp_app, acme, 300)
    smtp.handler.delay = 0.02
    process = worker_process(smtp_app, smtp.port)
    assert smtp.handler.wait_for(40, timeout=30), worker_log(tmp_path)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=10) == -signal.SIGKILL
    delivered_before = smtp.handler.count
    assert 40 <= delivered_before < 300
    rows = outbox(smtp_app)
    assert any(r["status"] == "pending" and r["locked_by"] for r in rows)  # orphaned claims

    smtp.handler.delay = 0
    worker = make_worker(smtp_app)
    drain(worker)  # what the dead worker never claimed
    assert any(r["status"] == "pending" for r in outbox(smtp_app))  # still under lease
    clock.shift(timedelta(seconds=11))  # past --lease-seconds 10
    drain(worker)

    rows = outbox(smtp_app)
    assert {r["status"] for r in rows} == {"sent"}
    counts = smtp.handler.message_id_counts()
    assert set(counts) == {message_id(r["id"]) for r in rows}
    delivered_to = {r for m in smtp.handler.messages() for r in m.rcpt_tos}
    assert delivered_to == {i.email for i in issued}
    # At-least-once: only the batch in hand at the kill may arrive twice.
    assert sum(counts.values()) - len(counts) <= 50


def test_worker_once_delivers_what_is_due_and_says_how_many(smtp_app, smtp, acme):
    """`orginvites worker --once` delivers the due emails, prints the count and exits."""
    invite(smtp_app, acme, ["one@example.org", "two@example.org", "three@example.org"])
    runner = smtp_app.test_cli_runner()
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "Handled 3 items." in result.output
    assert smtp.handler.count == 3
    assert {r["status"] for r in outbox(smtp_app)} == {"sent"}
    again = runner.invoke(args=["worker", "--once"])
    assert again.exit_code == 0, again.output
    assert "Handled 0 items." in again.output
    assert smtp.handler.count == 3


def test_sigterm_stops_a_running_worker_and_releases_its_claims(
    smtp_app, smtp, acme, make_worker, worker_process, tmp_path
):
    """SIGTERM: the worker finishes the message in hand, gives back its claims, exits 0."""
    invite_many(smtp_app, acme, 150)
    smtp.handler.delay = 0.02
    process = worker_process(smtp_app, smtp.port)
    assert smtp.handler.wait_for(10, timeout=30), worker_log(tmp_path)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=5) == 0, worker_log(tmp_path)
    assert "worker.stopped" in worker_log(tmp_path)

    rows = outbox(smtp_app)
    pending = [r for r in rows if r["status"] == "pending"]
    sent = [r for r in rows if r["status"] == "sent"]
    assert pending, "the worker should have stopped before the end"
    assert all(r["locked_by"] is None and r["locked_until"] is None for r in pending)
    assert {message_id(r["id"]) for r in sent} == set(smtp.handler.message_id_counts())
    assert smtp.handler.count == len(sent)

    # Released claims are due at once: no waiting for a lease to lapse.
    smtp.handler.delay = 0
    assert drain(make_worker(smtp_app)) == len(pending)
    assert {r["status"] for r in outbox(smtp_app)} == {"sent"}
    assert max(smtp.handler.message_id_counts().values()) == 1
