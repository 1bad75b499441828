"""Members page index: (org_id, created_at, id).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 03:55:00
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = ()
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_memberships_org_created", "memberships", ["org_id", "created_at", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_memberships_org_created", table_name="memberships")
