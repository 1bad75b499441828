"""delivery and acceptance

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 02:58:08.386704
"""

import sqlalchemy as sa
from alembic import op

import webapp.database

revision = "0002"
down_revision = "0001"
branch_labels = ()
depends_on = None


def upgrade() -> None:

    op.create_table(
        "dev_mailbox_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("to_email", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", webapp.database.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dev_mailbox_messages")),
    )
    op.create_index(
        "ix_dev_mailbox_messages_created",
        "dev_mailbox_messages",
        ["created_at", "id"],
        unique=False,
    )
    op.create_table(
        "acceptance_ticket_uses",
        sa.Column("invitation_id", sa.String(length=40), nullable=False),
        sa.Column("used_at", webapp.database.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["invitation_id"],
            ["invitations.id"],
            name=op.f("fk_acceptance_ticket_uses_invitation_id_invitations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("invitation_id", name=op.f("pk_acceptance_ticket_uses")),
    )
    op.add_column(
        "outbox_messages",
        sa.Column("locked_until", webapp.database.UTCDateTime(timezone=True), nullable=True),
    )
    op.add_column("outbox_messages", sa.Column("locked_by", sa.String(length=64), nullable=True))


def downgrade() -> None:

    op.drop_column("outbox_messages", "locked_by")
    op.drop_column("outbox_messages", "locked_until")
    op.drop_table("acceptance_ticket_uses")
    op.drop_index("ix_dev_mailbox_messages_created", table_name="dev_mailbox_messages")
    op.drop_table("dev_mailbox_messages")
