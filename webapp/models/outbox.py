"""The outbox: each email to send, written in the transaction that causes it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from webapp.clock import utcnow
from webapp.database import Base
from webapp.database import JSONDocument
from webapp.database import UTCDateTime


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"
    CANCELLED = "cancelled"


class OutboxMessage(Base):
    """One email waiting for (or done with) delivery by ``orginvites worker``.

    The link's token travels encrypted (AES-GCM, key derived from the secret key)
    and is erased once the message is sent, dead or cancelled.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (
        sa.CheckConstraint("status IN ('pending', 'sent', 'dead', 'cancelled')", name="status"),
        sa.Index("ix_outbox_messages_status_next_attempt", "status", "next_attempt_at"),
        sa.Index("ix_outbox_messages_invitation", "invitation_id"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    # "invitation", "invitation_resend", "password_reset"
    kind: Mapped[str] = mapped_column(sa.String(32))
    org_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE")
    )
    invitation_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("invitations.id", ondelete="CASCADE")
    )
    to_email: Mapped[str] = mapped_column(sa.String(254))
    token_ciphertext: Mapped[str | None] = mapped_column(sa.Text)
    context: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    status: Mapped[str] = mapped_column(sa.String(16), default=OutboxStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    # A worker's claim: other workers skip the row until the lease runs out, so a
    # worker killed mid-batch (kill -9) only delays its rows, never loses them.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_by: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DevMailboxMessage(Base):
    """A message the ``dev`` mail backend kept instead of sending (shown at /dev/mailbox)."""

    __tablename__ = "dev_mailbox_messages"
    __table_args__ = (sa.Index("ix_dev_mailbox_messages_created", "created_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_id: Mapped[str] = mapped_column(sa.String(40))
    message_id: Mapped[str] = mapped_column(sa.String(255))
    to_email: Mapped[str] = mapped_column(sa.String(254))
    subject: Mapped[str] = mapped_column(sa.String(500))
    raw: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
