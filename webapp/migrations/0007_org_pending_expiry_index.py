"""Index for counting an organization's lapsed pending invitations.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 04:12:00

Totals per status read the counters plus the pending rows already past expiry; with
a generic (prepared) plan PostgreSQL otherwise walked every pending row of the org.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = ()
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_invitations_org_status_expires",
        "invitations",
        ["org_id", "status", "expires_at"],
        unique=False,
    )
    if op.get_bind().dialect.name == "sqlite":
        # SQLite's planner trusts sqlite_stat1; an index missing from it looks perfectly
        # selective and can be chosen for the list query (then a sort of every row).
        op.execute("ANALYZE invitations")


def downgrade() -> None:
    op.drop_index("ix_invitations_org_status_expires", table_name="invitations")
