"""API keys: created once and shown once, stored as SHA-256, revocable."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import Select
from sqlalchemy import bindparam
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from webapp.clock import utcnow
from webapp.ids import new_id
from webapp.models import ApiKey
from webapp.models import Organization
from webapp.services.errors import FieldError
from webapp.services.errors import NotFound
from webapp.services.errors import ValidationFailed
from webapp.services.prepared import PreparedStatement
from webapp.services.prepared import WholeRow
from webapp.services.validation import required_text

KEY_PREFIX = "oik_"


def _hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def create_api_key(
    session: Session,
    *,
    org: Organization | None,
    name: str,
    created_by_user_id: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key for ``org`` (or instance-wide when None); return it and the raw secret."""
    clean = required_text(name, "name", 200)
    if isinstance(clean, FieldError):
        raise ValidationFailed([clean])
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=new_id("key"),
        org_id=org.id if org else None,
        name=clean,
        key_hash=_hash_key(raw),
        key_prefix=raw[:12],
        created_by_user_id=created_by_user_id,
    )
    session.add(key)
    session.flush()
    return key, raw


# last_used_at is written at most this often per key: a read request should not
# have to take the database's write lock every time.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class LiveKey:
    id: str
    org_id: str | None
    name: str
    last_used_at: datetime | None
    # An org key's organization, every column as a read gives it: read by the same
    # statement as the key, since nearly every request of an org key acts on it.
    organization: Mapping[str, Any] | None = None


_ORGANIZATION_ROW = WholeRow(Organization)


def find_live_api_key(connection: Connection, raw: str) -> LiveKey | None:
    """The unrevoked key matching ``raw`` (with its organization's row, for an org key);
    None for anything else (reads only)."""
    if not isinstance(raw, str) or not raw.startswith(KEY_PREFIX) or len(raw) > 100:
        return None
    rows = _LIVE_KEY.run(connection, {"key_hash": _hash_key(raw)})
    if not rows:
        return None
    key_id, org_id, name, last_used_at, *organization = rows[0]
    return LiveKey(
        key_id,
        org_id,
        name,
        last_used_at,
        # (an outer join: no organization row, no values)
        _ORGANIZATION_ROW.as_dict(organization) if organization[0] is not None else None,
    )


def _live_key_statement() -> Select:
    keys = ApiKey.__table__
    return (
        select(
            ApiKey.id, ApiKey.org_id, ApiKey.name, ApiKey.last_used_at, *_ORGANIZATION_ROW.columns
        )
        .select_from(keys.outerjoin(Organization.__table__, Organization.id == ApiKey.org_id))
        .where(ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at.is_(None))
    )


# Compiled once, run on the driver's cursor: every API request runs it.
_LIVE_KEY = PreparedStatement(_live_key_statement)


def last_used_is_stale(key: LiveKey, now: datetime) -> bool:
    return key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION


def record_key_use(connection: Connection, key_id: str, now: datetime) -> None:
    """Move last_used_at forward (conditional, so racing processes write it once)."""
    connection.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= now - LAST_USED_RESOLUTION),
        )
        .values(last_used_at=now)
    )


def list_api_keys(session: Session, org: Organization | None) -> list[ApiKey]:
    """Keys of ``org`` (instance keys when None), newest first, revoked ones included."""
    condition = ApiKey.org_id.is_(None) if org is None else ApiKey.org_id == org.id
    return list(session.scalars(select(ApiKey).where(condition).order_by(ApiKey.created_at.desc())))


def revoke_api_key(session: Session, key_id: str, org: Organization | None) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None or (org is not None and key.org_id != org.id):
        raise NotFound(f"no API key {key_id!r}")
    session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.refresh(key)
    return key
