"""Remembered answers to API POSTs sent with an ``Idempotency-Key`` header."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from webapp.clock import utcnow
from webapp.database import Base
from webapp.database import UTCDateTime


class IdempotentRequest(Base):
    """One (API key, Idempotency-Key) pair: in flight until its answer is stored, kept 24 h.

    ``fingerprint`` is the SHA-256 of method, path and body, so the same key with a
    different request is told apart from a retry.
    """

    __tablename__ = "idempotent_requests"
    __table_args__ = (sa.UniqueConstraint("api_key_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    api_key_id: Mapped[str] = mapped_column(sa.ForeignKey("api_keys.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str] = mapped_column(sa.String(255))
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    # Null while the first request is still being answered.
    response_status: Mapped[int | None] = mapped_column(sa.Integer)
    response_body: Mapped[str | None] = mapped_column(sa.Text)
    response_headers: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
