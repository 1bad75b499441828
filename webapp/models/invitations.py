"""Invitations and their per-organization status counters."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from webapp.clock import utcnow
from webapp.database import Base
from webapp.database import JSONDocument
from webapp.database import UTCDateTime
from webapp.models.organizations import Organization
from webapp.models.users import User


class InvitationStatus(enum.StrEnum):
    """Where an invitation is in its life; only ``pending`` ever changes."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    REVOKED = "revoked"
    EXPIRED = "expired"


STATUS_VALUES = tuple(s.value for s in InvitationStatus)


class DeliveryStatus(enum.StrEnum):
    """What happened to the invitation's latest email."""

    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    NOT_SENT = "not_sent"  # created with notify=false: the caller delivers the link


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


PENDING_ONLY = sa.text("status = 'pending'")
DELIVERY_FAILED_ONLY = sa.text("delivery_status = 'failed'")


class Invitation(Base):
    """An invitation of one email address into one organization."""

    __tablename__ = "invitations"
    __table_args__ = (
        sa.CheckConstraint(_in("status", STATUS_VALUES), name="status"),
        sa.CheckConstraint(
            "status <> 'accepted' OR accepted_at IS NOT NULL", name="accepted_has_time"
        ),
        sa.CheckConstraint(
            "status <> 'declined' OR declined_at IS NOT NULL", name="declined_has_time"
        ),
        sa.CheckConstraint(
            "status <> 'revoked' OR revoked_at IS NOT NULL", name="revoked_has_time"
        ),
        sa.CheckConstraint(
            "delivery_status IS NULL OR "
            + _in("delivery_status", tuple(d.value for d in DeliveryStatus)),
            name="delivery_status",
        ),
        # At most one pending invitation per (org, address), enforced by the database.
        sa.Index(
            "uq_invitations_one_pending_per_email",
            "org_id",
            "email_key",
            unique=True,
            sqlite_where=PENDING_ONLY,
            postgresql_where=PENDING_ONLY,
        ),
        # Keyset pagination: newest first, optionally within a status.
        sa.Index("ix_invitations_org_created", "org_id", "created_at", "id"),
        sa.Index("ix_invitations_org_status_created", "org_id", "status", "created_at", "id"),
        sa.Index("ix_invitations_org_email", "org_id", "email_key", "id"),
        # The overview's "emails that failed", newest first (few rows: a partial index).
        sa.Index(
            "ix_invitations_org_delivery_failed",
            "org_id",
            "last_sent_at",
            "id",
            sqlite_where=DELIVERY_FAILED_ONLY,
            postgresql_where=DELIVERY_FAILED_ONLY,
        ),
        # Instance-wide list and the expiry sweep.
        sa.Index("ix_invitations_created", "created_at", "id"),
        sa.Index("ix_invitations_status_expires", "status", "expires_at"),
        # Per-org totals count the pending rows already past expiry (see counters.py).
        sa.Index("ix_invitations_org_status_expires", "org_id", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(sa.ForeignKey("organizations.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(sa.String(254))
    email_key: Mapped[str] = mapped_column(sa.String(254))
    role: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(16), default=InvitationStatus.PENDING.value)
    source: Mapped[str] = mapped_column(sa.String(16), default="api")
    inviter_user_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    inviter_api_key_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    public_metadata: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    private_metadata: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    redirect_url: Mapped[str | None] = mapped_column(sa.String(2048))
    # [{"project_id": "proj_…", "role": "member" | "owner"}]
    project_grants: Mapped[list[dict[str, str]]] = mapped_column(JSONDocument, default=list)
    message: Mapped[str | None] = mapped_column(sa.Text)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    declined_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by_user_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    revoked_by_api_key_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    accepted_user_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    send_count: Mapped[int] = mapped_column(default=0)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivery_status: Mapped[str | None] = mapped_column(sa.String(16))
    delivery_error: Mapped[str | None] = mapped_column(sa.String(500))

    organization: Mapped[Organization] = relationship()
    inviter: Mapped[User | None] = relationship(foreign_keys=[inviter_user_id])

    def effective_status(self, now: datetime) -> str:
        """The status a reader sees: a pending invitation past its expiry is expired."""
        return effective_status(self.status, self.expires_at, now)

    def __repr__(self) -> str:
        return f"<Invitation {self.id} {self.status}>"


def effective_status(status: str, expires_at: datetime, now: datetime) -> str:
    """The status a reader sees: a pending invitation past its expiry is expired."""
    if status == InvitationStatus.PENDING and expires_at <= now:
        return InvitationStatus.EXPIRED.value
    return status


class AcceptanceTicketUse(Base):
    """Marks an acceptance ticket as verified, so each ticket verifies only once."""

    __tablename__ = "acceptance_ticket_uses"

    invitation_id: Mapped[str] = mapped_column(
        sa.ForeignKey("invitations.id", ondelete="CASCADE"), primary_key=True
    )
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InvitationCounter(Base):
    """How many invitations of an org are stored with each status.

    Kept in the same transaction as every insert and transition, so totals per
    status never need a ``count(*)`` over the table.
    """

    __tablename__ = "invitation_counters"

    org_id: Mapped[str] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    count: Mapped[int] = mapped_column(sa.BigInteger, default=0)
