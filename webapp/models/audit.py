"""The audit trail: one row per transition or delivery outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from webapp.clock import utcnow
from webapp.database import Base
from webapp.database import JSONDocument
from webapp.database import UTCDateTime


class AuditEvent(Base):
    """Something that happened, who did it and when. Never holds a token."""

    __tablename__ = "audit_events"
    __table_args__ = (
        sa.Index("ix_audit_events_org_created", "org_id", "created_at", "id"),
        sa.Index("ix_audit_events_invitation", "invitation_id"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    org_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE")
    )
    invitation_id: Mapped[str | None] = mapped_column(sa.String(40))
    type: Mapped[str] = mapped_column(sa.String(64))
    # "user", "api_key" or "system"
    actor_type: Mapped[str] = mapped_column(sa.String(16))
    actor_id: Mapped[str | None] = mapped_column(sa.String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
