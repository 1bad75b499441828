"""Email search indexes: pg_trgm on PostgreSQL, an FTS5 trigram table on SQLite.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 03:40:00
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = ()
depends_on = None

SQLITE_UP = [
    # Its own rows (email_key, invitation_id), not external content: rowids of a table
    # without an INTEGER PRIMARY KEY may change on VACUUM, invitation ids never do.
    "CREATE VIRTUAL TABLE invitation_email_search USING fts5("
    "email_key, invitation_id UNINDEXED, tokenize = 'trigram')",
    "INSERT INTO invitation_email_search (email_key, invitation_id) "
    "SELECT email_key, id FROM invitations",
    "CREATE TRIGGER invitation_email_search_insert AFTER INSERT ON invitations BEGIN "
    "INSERT INTO invitation_email_search (email_key, invitation_id) "
    "VALUES (new.email_key, new.id); END",
    "CREATE TRIGGER invitation_email_search_delete AFTER DELETE ON invitations BEGIN "
    "DELETE FROM invitation_email_search WHERE invitation_id = old.id; END",
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX ix_invitations_email_trgm ON invitations "
            "USING gin (email_key gin_trgm_ops)"
        )
    elif dialect == "sqlite":
        for statement in SQLITE_UP:
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_invitations_email_trgm")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS invitation_email_search_delete")
        op.execute("DROP TRIGGER IF EXISTS invitation_email_search_insert")
        op.execute("DROP TABLE IF EXISTS invitation_email_search")
