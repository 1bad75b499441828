"""failed delivery index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 04:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = ()
depends_on = None

FAILED_ONLY = sa.text("delivery_status = 'failed'")


def upgrade() -> None:
    # The overview lists an organization's failed emails newest first; without this
    # (small, partial) index that is a scan of all of the organization's rows.
    op.create_index(
        "ix_invitations_org_delivery_failed",
        "invitations",
        ["org_id", "last_sent_at", "id"],
        unique=False,
        sqlite_where=FAILED_ONLY,
        postgresql_where=FAILED_ONLY,
    )


def downgrade() -> None:
    op.drop_index("ix_invitations_org_delivery_failed", table_name="invitations")
