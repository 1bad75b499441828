"""CSV import jobs and their data (upload, preview, error report).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import webapp.database

revision = "0009"
down_revision = "0008"
branch_labels = ()
depends_on = None

STATUSES = "'checking', 'ready', 'importing', 'done', 'rejected', 'discarded', 'failed'"


def upgrade() -> None:
    op.create_table(
        "import_jobs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("byte_size", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("default_role", sa.String(length=64), nullable=True),
        sa.Column("default_expires_in_seconds", sa.Integer(), nullable=True),
        sa.Column("default_redirect_url", sa.String(length=2048), nullable=True),
        sa.Column("notify", sa.Boolean(), nullable=False),
        sa.Column("total_rows", sa.Integer(), nullable=False),
        sa.Column("progress_done", sa.Integer(), nullable=False),
        sa.Column("progress_total", sa.Integer(), nullable=False),
        sa.Column("preview_counts", webapp.database.JSONDocument, nullable=False),
        sa.Column("result_counts", webapp.database.JSONDocument, nullable=False),
        sa.Column("file_summary", webapp.database.JSONDocument, nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("locked_by", sa.String(length=64), nullable=True),
        sa.Column("locked_until", webapp.database.UTCDateTime(), nullable=True),
        sa.Column("created_at", webapp.database.UTCDateTime(), nullable=False),
        sa.Column("updated_at", webapp.database.UTCDateTime(), nullable=False),
        sa.Column("confirmed_at", webapp.database.UTCDateTime(), nullable=True),
        sa.Column("finished_at", webapp.database.UTCDateTime(), nullable=True),
        sa.CheckConstraint(f"status IN ({STATUSES})", name=op.f("ck_import_jobs_status")),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_import_jobs_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_jobs")),
    )
    op.create_index(
        "ix_import_jobs_org_created", "import_jobs", ["org_id", "created_at", "id"], unique=False
    )
    op.create_index(
        "ix_import_jobs_status_locked", "import_jobs", ["status", "locked_until"], unique=False
    )
    op.create_table(
        "import_job_data",
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", webapp.database.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["import_jobs.id"],
            name=op.f("fk_import_job_data_job_id_import_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "kind", name=op.f("pk_import_job_data")),
    )


def downgrade() -> None:
    op.drop_table("import_job_data")
    op.drop_index("ix_import_jobs_status_locked", table_name="import_jobs")
    op.drop_index("ix_import_jobs_org_created", table_name="import_jobs")
    op.drop_table("import_jobs")
