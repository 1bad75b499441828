"""Queueing and cancelling emails; the delivery worker reads what this writes."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime
from datetime import timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import Row
from sqlalchemy import Select
from sqlalchemy import bindparam
from sqlalchemy import insert
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from webapp.clock import utcnow
from webapp.ids import new_id
from webapp.models import AuditEvent
from webapp.models import DeliveryStatus
from webapp.models import Invitation
from webapp.models import OutboxMessage
from webapp.models import OutboxStatus
from webapp.services.bulk_rows import DriverRows
from webapp.services.bulk_rows import insert_rows
from webapp.services.tokens import seal_for_outbox


def outbox_row(
    *,
    kind: str,
    to_email: str,
    sealed_token: str | None,
    org_id: str | None,
    invitation_id: str | None = None,
    context: dict[str, Any] | None = None,
    now: datetime | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """The values of one pending outbox row; ``sealed_token`` comes from ``seal_for_outbox``."""
    now = now or utcnow()
    return {
        "id": message_id or new_id("msg"),
        "kind": kind,
        "org_id": org_id,
        "invitation_id": invitation_id,
        "to_email": to_email,
        "token_ciphertext": sealed_token,
        "context": context or {},
        "status": OutboxStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def enqueue_emails(session: Session, rows: list[dict[str, Any]] | DriverRows) -> None:
    """Write many outbox rows (built by ``outbox_row``, maybe converted by
    ``driver_rows``) in the caller's transaction."""
    if rows:
        insert_rows(session, OutboxMessage.__table__, rows)


def enqueue_email(
    session: Session,
    *,
    kind: str,
    to_email: str,
    raw_token: str | None,
    org_id: str | None,
    invitation_id: str | None = None,
    context: dict[str, Any] | None = None,
) -> str:
    """Write an outbox row in the caller's transaction and return its id."""
    row = outbox_row(
        kind=kind,
        to_email=to_email,
        sealed_token=seal_for_outbox(raw_token) if raw_token else None,
        org_id=org_id,
        invitation_id=invitation_id,
        context=context,
    )
    enqueue_emails(session, [row])
    return row["id"]


def cancel_unsent_for_invitations(session: Session, invitation_ids: Sequence[str]) -> int:
    """Cancel every not-yet-sent email of these invitations and erase their tokens."""
    if not invitation_ids:
        return 0
    result = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.invitation_id.in_(list(invitation_ids)),
            OutboxMessage.status == OutboxStatus.PENDING.value,
        )
        .values(status=OutboxStatus.CANCELLED.value, token_ciphertext=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


# --- delivery bookkeeping (used by the worker) -------------------------------------

# 30 s doubling to 2 h: about 9 to 18 hours of retries before a message is dead.
MAX_ATTEMPTS = 16
BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 7200


def retry_delay(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Capped exponential backoff with full jitter in [50 %, 100 %] of the step."""
    step = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))
    factor = (rng or random).uniform(0.5, 1.0)
    return timedelta(seconds=step * factor)


def claim_batch(session: Session, *, worker_id: str, limit: int, lease: timedelta) -> list[str]:
    """Claim up to ``limit`` due messages for ``worker_id`` until the lease ends.

    On PostgreSQL, ``FOR UPDATE SKIP LOCKED`` lets several workers claim at once
    without waiting on or taking each other's rows; on SQLite the transaction's
    BEGIN IMMEDIATE serialises claimers. A claim outlives a killed worker only
    until its lease ends.
    """
    now = utcnow()
    due = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.status == OutboxStatus.PENDING.value,
            OutboxMessage.next_attempt_at <= now,
            or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now),
        )
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(session.scalars(due))
    if ids:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(locked_until=now + lease, locked_by=worker_id)
            .execution_options(synchronize_session=False)
        )
    return ids


def claimed_rows(session: Session, outbox_ids: Sequence[str], worker_id: str) -> list[Row]:
    """The rows among these that are still pending and claimed by ``worker_id``, in order.

    Plain rows (read-only, attribute access like the model), not ORM objects: the worker
    reads hundreds per batch and needs no identity map for them.
    """
    if not outbox_ids:
        return []
    table = OutboxMessage.__table__
    found = {
        row.id: row
        for row in session.execute(
            select(table).where(
                table.c.id.in_(list(outbox_ids)),
                table.c.status == OutboxStatus.PENDING.value,
                table.c.locked_by == worker_id,
            )
        )
    }
    return [found[i] for i in outbox_ids if i in found]


@cache
def _still_claimed_statement() -> Select:
    return select(OutboxMessage.id).where(
        OutboxMessage.id == bindparam("outbox_id"),
        OutboxMessage.status == OutboxStatus.PENDING.value,
        OutboxMessage.locked_by == bindparam("worker_id"),
    )


class ClaimCheck:
    """Answers, one message at a time, whether it is still pending and claimed by us.

    The worker asks just before each message's content goes out, so a revoke (or any
    cancel) committed while earlier messages of the batch were being sent still holds.
    It asks once per message, so the statement is compiled once for the connection's
    dialect and run straight on its DBAPI cursor (SQLAlchemy's per-execution work was
    most of the cost). ``connection`` should be in AUTOCOMMIT: each check is then a
    single read that takes no lock.
    """

    def __init__(self, connection: Connection, worker_id: str) -> None:
        compiled = _still_claimed_statement().compile(dialect=connection.dialect)
        self._sql = compiled.string
        self._params = compiled.construct_params({"outbox_id": "", "worker_id": worker_id})
        self._order = compiled.positiontup if compiled.positional else None
        self._cursor = connection.connection.cursor()

    def __call__(self, outbox_id: str) -> bool:
        params = self._params | {"outbox_id": outbox_id}
        cursor = self._cursor
        if self._order is not None:
            cursor.execute(self._sql, tuple(params[name] for name in self._order))
        else:
            cursor.execute(self._sql, params)
        # Read to the end (at most one row): no statement is left open on the connection.
        return bool(cursor.fetchall())

    def close(self) -> None:
        self._cursor.close()

    def __enter__(self) -> ClaimCheck:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def record_sent(session: Session, outbox_ids: Sequence[str], *, worker_id: str) -> int:
    """Mark messages the server accepted as sent, erase their tokens, update invitations."""
    if not outbox_ids:
        return 0
    now = utcnow()
    rows = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id.in_(list(outbox_ids)),
            OutboxMessage.status == OutboxStatus.PENDING.value,
        )
        .values(
            status=OutboxStatus.SENT.value,
            sent_at=now,
            token_ciphertext=None,
            locked_until=None,
            attempts=OutboxMessage.attempts + 1,
            last_error=None,
        )
        .returning(OutboxMessage.invitation_id, OutboxMessage.org_id, OutboxMessage.kind)
        .execution_options(synchronize_session=False)
    ).all()
    invitation_ids = [r[0] for r in rows if r[0]]
    if invitation_ids:
        session.execute(
            update(Invitation)
            .where(Invitation.id.in_(invitation_ids))
            .values(delivery_status=DeliveryStatus.SENT.value, delivery_error=None)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            insert(AuditEvent.__table__),
            [
                {
                    "id": new_id("evt"),
                    "org_id": org_id,
                    "invitation_id": invitation_id,
                    "type": "invitation.sent",
                    "actor_type": "system",
                    "actor_id": None,
                    "data": {"kind": kind},
                    "created_at": now,
                }
                for invitation_id, org_id, kind in rows
                if invitation_id
            ],
        )
    return len(rows)


def record_failure(session: Session, outbox_id: str, reason: str, *, permanent: bool) -> str:
    """Schedule a retry, or (permanent, or out of attempts) mark the message dead.

    Returns the row's new status. A dead message shows on its invitation as
    "delivery failed" with the reason, and writes ``invitation.delivery_failed``.
    """
    row = session.get(OutboxMessage, outbox_id, populate_existing=True)
    if row is None or row.status != OutboxStatus.PENDING.value:
        return row.status if row else "missing"
    attempts = row.attempts + 1
    reason = reason[:500]
    if not permanent and attempts < MAX_ATTEMPTS:
        row.attempts = attempts
        row.last_error = reason
        row.next_attempt_at = utcnow() + retry_delay(attempts)
        row.locked_until = None
        return row.status
    row.attempts = attempts
    row.last_error = reason
    row.status = OutboxStatus.DEAD.value
    row.token_ciphertext = None
    row.locked_until = None
    if row.invitation_id:
        session.execute(
            update(Invitation)
            .where(Invitation.id == row.invitation_id)
            .values(delivery_status=DeliveryStatus.FAILED.value, delivery_error=reason)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            insert(AuditEvent),
            [
                {
                    "id": new_id("evt"),
                    "org_id": row.org_id,
                    "invitation_id": row.invitation_id,
                    "type": "invitation.delivery_failed",
                    "actor_type": "system",
                    "actor_id": None,
                    "data": {"reason": reason, "attempts": attempts},
                    "created_at": utcnow(),
                }
            ],
        )
    return row.status


def release_claims(session: Session, worker_id: str) -> int:
    """Give back every row this worker claimed and did not finish (graceful stop)."""
    result = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.locked_by == worker_id,
            OutboxMessage.status == OutboxStatus.PENDING.value,
        )
        .values(locked_until=None, locked_by=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount
