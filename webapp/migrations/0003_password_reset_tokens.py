"""password reset tokens

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 03:16:28.541999
"""

import sqlalchemy as sa
from alembic import op

import webapp.database

revision = "0003"
down_revision = "0002"
branch_labels = ()
depends_on = None


def upgrade() -> None:

    op.create_table(
        "password_reset_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", webapp.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", webapp.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", webapp.database.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_password_reset_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_reset_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_password_reset_tokens_token_hash")),
    )
    op.create_index(
        op.f("ix_password_reset_tokens_user_id"), "password_reset_tokens", ["user_id"], unique=False
    )


def downgrade() -> None:

    op.drop_index(op.f("ix_password_reset_tokens_user_id"), table_name="password_reset_tokens")
    op.drop_table("password_reset_tokens")
