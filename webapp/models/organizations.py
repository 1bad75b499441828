"""Organizations, their roles and projects."""

from __future__ import annotations

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

DEFAULT_EXPIRY_SECONDS = 7 * 24 * 3600


class Organization(Base):
    """An organization people are invited into, with its invitation settings."""

    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    slug: Mapped[str] = mapped_column(sa.String(64), unique=True)
    default_role: Mapped[str] = mapped_column(sa.String(64))
    default_expiry_seconds: Mapped[int] = mapped_column(default=DEFAULT_EXPIRY_SECONDS)
    allowed_redirect_origins: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    default_redirect_url: Mapped[str | None] = mapped_column(sa.String(2048))
    # Most pending invitations the org may have at once; None means no limit.
    invite_quota: Mapped[int | None] = mapped_column()
    public_metadata: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    roles: Mapped[list[OrgRole]] = relationship(
        back_populates="organization",
        order_by="OrgRole.position",
        cascade="all, delete-orphan",
    )

    def role(self, key: str) -> OrgRole | None:
        """The role with this key, if the organization defines it."""
        return next((r for r in self.roles if r.key == key), None)

    def __repr__(self) -> str:
        return f"<Organization {self.slug}>"


class OrgRole(Base):
    """A role key an organization grants, e.g. ``admin`` or ``org:member``."""

    __tablename__ = "org_roles"
    __table_args__ = (sa.UniqueConstraint("org_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[str] = mapped_column(sa.ForeignKey("organizations.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(100))
    is_admin: Mapped[bool] = mapped_column(default=False)
    position: Mapped[int] = mapped_column(default=0)

    organization: Mapped[Organization] = relationship(back_populates="roles")


class Project(Base):
    """A project inside an organization (OpenAI's ``projects`` grants)."""

    __tablename__ = "projects"
    __table_args__ = (sa.UniqueConstraint("org_id", "name"),)

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(sa.ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(200))
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProjectMembership(Base):
    """A user's role (``member`` or ``owner``) in a project."""

    __tablename__ = "project_memberships"
    __table_args__ = (sa.CheckConstraint("role IN ('member', 'owner')", name="role"),)

    project_id: Mapped[str] = mapped_column(
        sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
