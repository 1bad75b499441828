"""Email search that bulk inserts can afford: FTS5 detail=none (SQLite), trigram
statistics for choosing selective trigrams (PostgreSQL).

SQLite: the FTS5 trigram table is rebuilt with ``detail=none`` and ``columnsize=0``:
it keeps which rows hold each trigram but no positions and no per-row sizes (about half
the size, cheaper to write). Phrase queries need positions, so the search now ANDs the
rare trigrams of the term and re-checks the address with LIKE (webapp/services/search.py).

PostgreSQL: statistics on ``show_trgm(email_key)`` (no index, nothing to maintain on
insert; ANALYZE and autovacuum collect them) tell which trigrams are frequent, so the
search can hand the GIN index only a selective part of the term.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22 09:00:00
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = ()
depends_on = None

TABLE = "invitation_email_search"
TRIGGERS = [
    f"CREATE TRIGGER {TABLE}_insert AFTER INSERT ON invitations BEGIN "
    f"INSERT INTO {TABLE} (email_key, invitation_id) VALUES (new.email_key, new.id); END",
    f"CREATE TRIGGER {TABLE}_delete AFTER DELETE ON invitations BEGIN "
    f"DELETE FROM {TABLE} WHERE invitation_id = old.id; END",
]


def _rebuild_sqlite(options: str) -> None:
    op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_delete")
    op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_insert")
    op.execute(f"DROP TABLE IF EXISTS {TABLE}")
    op.execute(
        f"CREATE VIRTUAL TABLE {TABLE} USING fts5("
        f"email_key, invitation_id UNINDEXED, tokenize = 'trigram'{options})"
    )
    op.execute(
        f"INSERT INTO {TABLE} (email_key, invitation_id) SELECT email_key, id FROM invitations"
    )
    for statement in TRIGGERS:
        op.execute(statement)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            "CREATE STATISTICS IF NOT EXISTS invitations_email_trigrams "
            "ON (show_trgm(email_key)) FROM invitations"
        )
        op.execute("ANALYZE invitations")
    elif dialect == "sqlite":
        _rebuild_sqlite(", detail = none, columnsize = 0")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP STATISTICS IF EXISTS invitations_email_trigrams")
    elif dialect == "sqlite":
        _rebuild_sqlite("")
