"""CSV import jobs: the upload, its preview and its result, run by the delivery worker."""

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


class ImportStatus(enum.StrEnum):
    """``checking`` → ``ready`` → ``importing`` → ``done``; or ``rejected`` (the file),
    ``discarded`` (by the admin) or ``failed`` (an unexpected error, logged)."""

    CHECKING = "checking"
    READY = "ready"
    IMPORTING = "importing"
    DONE = "done"
    REJECTED = "rejected"
    DISCARDED = "discarded"
    FAILED = "failed"


IMPORT_STATUS_VALUES = tuple(s.value for s in ImportStatus)
# A job in one of these is waiting for (or in the hands of) a runner.
RUNNABLE = (ImportStatus.CHECKING.value, ImportStatus.IMPORTING.value)


class ImportJob(Base):
    """One uploaded file and everything the import did with it."""

    __tablename__ = "import_jobs"
    __table_args__ = (
        sa.CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in IMPORT_STATUS_VALUES) + ")",
            name="status",
        ),
        # The organization's recent imports, newest first.
        sa.Index("ix_import_jobs_org_created", "org_id", "created_at", "id"),
        # Runners look for checking/importing jobs whose lease is free.
        sa.Index("ix_import_jobs_status_locked", "status", "locked_until"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(sa.ForeignKey("organizations.id", ondelete="CASCADE"))
    # Who started it: "user" or "api_key" (and its id); invitations are created as them.
    actor_type: Mapped[str] = mapped_column(sa.String(16))
    actor_id: Mapped[str | None] = mapped_column(sa.String(64))
    source: Mapped[str] = mapped_column(sa.String(16))
    filename: Mapped[str] = mapped_column(sa.String(255))
    byte_size: Mapped[int] = mapped_column(sa.Integer)
    status: Mapped[str] = mapped_column(sa.String(16), default=ImportStatus.CHECKING.value)
    # The admin's defaults for rows that leave a field empty (None: the org's default).
    default_role: Mapped[str | None] = mapped_column(sa.String(64))
    default_expires_in_seconds: Mapped[int | None] = mapped_column(sa.Integer)
    default_redirect_url: Mapped[str | None] = mapped_column(sa.String(2048))
    notify: Mapped[bool] = mapped_column(default=True)
    # Rows in the file (after parsing) and, while importing, valid rows done of valid rows.
    total_rows: Mapped[int] = mapped_column(sa.Integer, default=0)
    progress_done: Mapped[int] = mapped_column(sa.Integer, default=0)
    progress_total: Mapped[int] = mapped_column(sa.Integer, default=0)
    # {verdict: count} of the preview, and {outcome: count} of the import.
    preview_counts: Mapped[dict[str, int]] = mapped_column(JSONDocument, default=dict)
    result_counts: Mapped[dict[str, int]] = mapped_column(JSONDocument, default=dict)
    # What the preview showed about the file: separator, header, ignored columns, warnings.
    file_summary: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    # The file's problem (rejected), why the import stopped (quota), or a failure.
    message: Mapped[str | None] = mapped_column(sa.Text)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    locked_by: Mapped[str | None] = mapped_column(sa.String(64))
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def is_running(self) -> bool:
        return self.status in RUNNABLE

    @property
    def percent(self) -> int:
        if self.status == ImportStatus.DONE:
            return 100
        if not self.progress_total:
            return 0
        return min(100, self.progress_done * 100 // self.progress_total)


class ImportJobData(Base):
    """A job's large pieces, read only when needed: ``upload``, ``preview``, ``report``."""

    __tablename__ = "import_job_data"

    job_id: Mapped[str] = mapped_column(
        sa.ForeignKey("import_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
