"""Idempotency keys: a retried POST gets the first answer instead of acting twice.

The claim is committed on its own before the work starts, so a concurrent duplicate
sees it (and is told the first is still in flight); the answer is stored in the same
transaction as the work, so a crash leaves either both or an unfinished claim, which
another attempt may take over after IN_FLIGHT_TIMEOUT.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

from sqlalchemy import Connection
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy import update

from webapp.database import insert_ignoring_conflicts
from webapp.models import IdempotentRequest
from webapp.services.errors import Conflict
from webapp.services.errors import ServiceError

RETENTION = timedelta(hours=24)
IN_FLIGHT_TIMEOUT = timedelta(minutes=2)
MAX_KEY_LENGTH = 255


class IdempotencyKeyInUse(Conflict):
    code = "idempotency_key_in_use"


class IdempotencyKeyReused(ServiceError):
    code = "idempotency_key_reused"


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: str
    headers: dict[str, str]


_table = IdempotentRequest.__table__


def claim_key(
    connection: Connection, api_key_id: str, key: str, fingerprint: str, now: datetime
) -> StoredAnswer | None:
    """Claim ``key`` for this request, or return the answer stored for it.

    None means: go ahead (the caller must later ``store_answer`` or ``release_key``).
    Raises IdempotencyKeyReused (same key, different request) or IdempotencyKeyInUse.
    """
    statement = insert_ignoring_conflicts(
        _table, ["api_key_id", "idempotency_key"], connection.dialect.name
    ).values(
        api_key_id=api_key_id,
        idempotency_key=key,
        fingerprint=fingerprint,
        created_at=now,
        expires_at=now + RETENTION,
    )
    if connection.execute(statement.returning(_table.c.id)).first() is not None:
        return None
    row = connection.execute(
        select(_table).where(_table.c.api_key_id == api_key_id, _table.c.idempotency_key == key)
    ).one()
    if row.expires_at <= now or (
        row.response_status is None and row.created_at <= now - IN_FLIGHT_TIMEOUT
    ):
        # Expired, or abandoned by a process that died mid-request: start afresh.
        taken = connection.execute(
            update(_table)
            .where(_table.c.id == row.id, _table.c.created_at == row.created_at)
            .values(
                fingerprint=fingerprint,
                response_status=None,
                response_body=None,
                response_headers=None,
                created_at=now,
                expires_at=now + RETENTION,
            )
        ).rowcount
        if taken == 1:
            return None
        raise IdempotencyKeyInUse(
            f"a request with Idempotency-Key {key!r} is still in progress; retry shortly"
        )
    if row.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {key!r} was already used for a different request "
            "(another path or body); use a new key for a new request"
        )
    if row.response_status is None:
        raise IdempotencyKeyInUse(
            f"a request with Idempotency-Key {key!r} is still in progress; retry shortly"
        )
    return StoredAnswer(
        status=row.response_status,
        body=row.response_body or "",
        headers=json.loads(row.response_headers or "{}"),
    )


def store_answer(
    connection: Connection,
    api_key_id: str,
    key: str,
    *,
    status: int,
    body: str,
    headers: dict[str, str],
) -> None:
    connection.execute(
        update(_table)
        .where(_table.c.api_key_id == api_key_id, _table.c.idempotency_key == key)
        .values(response_status=status, response_body=body, response_headers=json.dumps(headers))
    )


def release_key(connection: Connection, api_key_id: str, key: str) -> None:
    """Forget an unfinished claim (the request failed in a way worth retrying)."""
    connection.execute(
        delete(_table).where(
            _table.c.api_key_id == api_key_id,
            _table.c.idempotency_key == key,
            _table.c.response_status.is_(None),
        )
    )


def purge_expired_keys(connection: Connection, now: datetime, batch_size: int = 1000) -> int:
    """Delete up to ``batch_size`` keys older than RETENTION; return how many."""
    ids = select(_table.c.id).where(_table.c.expires_at <= now).limit(batch_size)
    return connection.execute(delete(_table).where(_table.c.id.in_(ids))).rowcount
