"""The outbox worker: claims due messages, delivers them, records the outcome.

Delivery is at-least-once: a message is marked sent only after the server accepted
it, in a transaction after the SMTP conversation; a worker killed in between leaves
the row claimed until its lease ends, and then another worker (or its restart) sends
it again with the same Message-ID.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from flask import Flask
from sqlalchemy import Row

from webapp.clock import utcnow
from webapp.delivery.messages import Outgoing
from webapp.delivery.messages import iter_outgoing
from webapp.delivery.transports import DeliveryError
from webapp.delivery.transports import Transport
from webapp.delivery.transports import transport_from_config
from webapp.extensions import db
from webapp.services.expiry import expire_due_invitations
from webapp.services.idempotency import purge_expired_keys
from webapp.services.importing.jobs import run_import_round
from webapp.services.outbox import ClaimCheck
from webapp.services.outbox import claim_batch
from webapp.services.outbox import claimed_rows
from webapp.services.outbox import record_failure
from webapp.services.outbox import record_sent
from webapp.services.outbox import release_claims

log = logging.getLogger("orginvites.worker")


def log_event(event: str, **fields: object) -> None:
    """One structured line: ``event key=value …`` (never a token or a link)."""
    if not log.isEnabledFor(logging.INFO):
        return  # nothing formatted when nobody reads it
    log.info(" ".join([event, *(f"{k}={v}" for k, v in fields.items() if v is not None)]))


@dataclass
class WorkerSettings:
    batch_size: int = 100
    poll_interval: float = 1.0
    lease: timedelta = timedelta(minutes=5)
    sweep_interval: float = 60.0
    # Mark sent rows in one transaction every this many messages.
    commit_every: int = 50


class DeliveryWorker:
    """Delivers the outbox of one app through one transport (one reused connection)."""

    def __init__(
        self,
        app: Flask,
        *,
        transport: Transport | None = None,
        settings: WorkerSettings | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.app = app
        self.transport = transport or transport_from_config(app.config)
        self.settings = settings or WorkerSettings()
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.stop_event = threading.Event()
        self._last_sweep = 0.0
        self.server_down_rounds = 0

    def stop(self) -> None:
        """Ask the loop to finish the message in hand and stop."""
        self.stop_event.set()

    def run(self) -> None:
        """Deliver until stopped; sweep expired invitations now and then.

        An error in one round (a database restart, "database is locked") is logged and
        the loop carries on after a pause: the worker must outlive passing trouble.
        """
        log_event("worker.started", worker=self.worker_id)
        failures = 0
        released = 0
        try:
            while not self.stop_event.is_set():
                try:
                    self.maybe_sweep()
                    # CSV import jobs run here too, in time-boxed rounds between deliveries.
                    handled = self.run_once() + run_import_round(self.app, self.worker_id)
                    failures = 0
                except Exception:  # noqa: BLE001 - logged, then retried after a pause
                    failures += 1
                    log.exception(
                        "worker.round_failed worker=%s failures=%d", self.worker_id, failures
                    )
                    handled = 0
                    self.stop_event.wait(min(30.0, self.settings.poll_interval * 2**failures))
                    continue
                if self.server_down_rounds:
                    # Unreachable SMTP server: wait longer each time, up to a minute.
                    self.stop_event.wait(
                        min(60.0, self.settings.poll_interval * 2**self.server_down_rounds)
                    )
                elif handled == 0:
                    self.stop_event.wait(self.settings.poll_interval)
        finally:
            try:
                with self.app.app_context():
                    released = release_claims(db.session, self.worker_id)
                    db.session.commit()
            except Exception:  # noqa: BLE001 - the lease frees them anyway
                log.exception("worker.release_failed worker=%s", self.worker_id)
            self.transport.close()
            log_event("worker.stopped", worker=self.worker_id, released=released)

    def maybe_sweep(self) -> int:
        now = time.monotonic()
        if now - self._last_sweep < self.settings.sweep_interval:
            return 0
        self._last_sweep = now
        total = 0
        with self.app.app_context():
            while True:
                count = expire_due_invitations(db.session)
                db.session.commit()
                total += count
                if count == 0:
                    break
            with db.engine.begin() as connection:
                purged = purge_expired_keys(connection, utcnow())
            if db.engine.dialect.name == "sqlite":
                # Keeps the planner's statistics current (cheap when nothing changed). In a
                # write transaction of its own: run outside one, its ANALYZE could find that
                # another writer committed since it began reading and fail with "database
                # is locked" (a read cannot be upgraded to a write past a newer commit).
                with db.engine.begin() as connection:
                    connection.exec_driver_sql("PRAGMA optimize")
        if total:
            log_event("invitations.expired", count=total)
        if purged:
            log_event("idempotency_keys.purged", count=purged)
        return total

    def run_once(self) -> int:
        """Claim one batch and deliver it; return how many messages were handled.

        No database transaction is open while talking to the SMTP server (on SQLite
        an open transaction would hold the write lock for every web request).
        """
        with self.app.app_context():
            session = db.session
            ids = claim_batch(
                session,
                worker_id=self.worker_id,
                limit=self.settings.batch_size,
                lease=self.settings.lease,
            )
            session.commit()
            if not ids:
                return 0
            rows = claimed_rows(session, ids, self.worker_id)
            # Reads what the emails need now; each is built later, while the one before
            # it is with the server (building reads nothing more from the database).
            outgoing = _Lookahead(iter_outgoing(session, rows))
            session.commit()
            if not self._deliver(outgoing, {row.id: row for row in rows}):
                # The server is unreachable: give the rest back and wait a round.
                release_claims(session, self.worker_id)
                session.commit()
                self.server_down_rounds += 1
                log_event("worker.server_unreachable", worker=self.worker_id)
                return len(ids)
            self.server_down_rounds = 0
            return len(ids)

    def _deliver(self, outgoing: _Lookahead, rows: dict[str, Row]) -> bool:
        """Send a batch; return False when the server is unreachable (stop the batch).

        Sent rows are marked every ``commit_every`` messages, and at the end whatever
        ends the loop.
        """
        session = db.session
        sent: list[str] = []
        # Re-check each row just before its content goes out (a revoke since the claim,
        # even one committed while the previous message was on the wire, cancels it). The
        # transport asks while the server handles the MAIL command, so the read costs no
        # extra wait. One autocommit connection, each check a single read: no SQLite
        # write lock is taken.
        checker_connection = db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        with checker_connection as connection, ClaimCheck(connection, self.worker_id) as claimed:
            try:
                for item in outgoing:
                    if self.stop_event.is_set():
                        break
                    if isinstance(item, tuple):
                        outbox_id, exc = item
                        self._failed(
                            outbox_id, str(exc), permanent=True, to=rows[outbox_id].to_email
                        )
                        continue
                    row = rows[item.outbox_id]
                    try:
                        delivered = self.transport.send(
                            item,
                            still_wanted=partial(claimed, row.id),
                            meanwhile=outgoing.prefetch,  # build the next email meanwhile
                        )
                    except DeliveryError as exc:
                        self._failed(row.id, exc.reason, permanent=exc.permanent, to=row.to_email)
                        if exc.connection_failed:
                            return False
                        continue
                    if not delivered:
                        continue
                    sent.append(row.id)
                    log_event(
                        "outbox.sent",
                        id=row.id,
                        invitation=row.invitation_id,
                        to=row.to_email,
                        attempt=row.attempts + 1,
                    )
                    if len(sent) >= self.settings.commit_every:
                        record_sent(session, sent, worker_id=self.worker_id)
                        session.commit()
                        sent = []
            finally:
                # Also when something failed half-way: what the server took is sent.
                record_sent(session, sent, worker_id=self.worker_id)
                session.commit()
        return True

    def _failed(self, outbox_id: str, reason: str, *, permanent: bool, to: str) -> None:
        status = record_failure(db.session, outbox_id, reason, permanent=permanent)
        db.session.commit()
        log_event(
            "outbox.dead" if status == "dead" else "outbox.retry",
            id=outbox_id,
            to=to,
            reason=repr(reason),
        )


_END = object()


class _Lookahead:
    """An iterator that can compute its next item early: ``prefetch()``.

    The worker prefetches the next email while the server takes in the current one.
    An error while prefetching is raised where that item is asked for, not inside the
    SMTP conversation.
    """

    def __init__(self, items: Iterator[Outgoing]) -> None:
        self._items = items
        self._ready: list[Any] = []  # at most one: the next item, _END, or an exception

    def prefetch(self) -> None:
        if not self._ready:
            try:
                self._ready.append(next(self._items, _END))
            except Exception as exc:  # noqa: BLE001 - re-raised by __next__
                self._ready.append(exc)

    def __iter__(self) -> _Lookahead:
        return self

    def __next__(self) -> Outgoing:
        self.prefetch()
        item = self._ready.pop()
        if item is _END:
            raise StopIteration
        if isinstance(item, Exception):
            raise item
        return item


def start_background_worker(app: Flask, **kwargs) -> DeliveryWorker:
    """Run a worker in a daemon thread of this process (``orginvites run``/``demo``)."""
    worker = DeliveryWorker(app, **kwargs)
    thread = threading.Thread(target=worker.run, name="orginvites-worker", daemon=True)
    thread.start()
    return worker
