"""Email search that stays fast at a million invitations.

PostgreSQL: ``email_key LIKE '%q%'`` is served by a pg_trgm GIN index.
SQLite: an FTS5 trigram table (``invitation_email_search``, kept by triggers) finds rare
substrings at once; for a common one, scanning the list's own index in order finds a
page of matches sooner than collecting every match, so that is used instead.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement
from sqlalchemy import text
from sqlalchemy.orm import Session

from webapp.models import Invitation

# Below this many matches (over all organizations) the trigram table drives the query.
SELECTIVE_MATCHES = 2000
TRIGRAM = 3
SEARCH_TABLE = "invitation_email_search"


def escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains(column: ColumnElement[str], text_: str) -> ColumnElement[bool]:
    """``column`` contains ``text_`` literally (``%`` and ``_`` are not wildcards)."""
    return column.like(f"%{escape_like(text_)}%", escape="\\")


def _like(search: str) -> ColumnElement[bool]:
    return contains(Invitation.email_key, search)


def _fts_phrase(search: str) -> str:
    return '"' + search.replace('"', '""') + '"'


def email_search_condition(session: Session, search: str) -> ColumnElement[bool]:
    """SQL for "the (lower-cased) address contains ``search``"."""
    search = search.lower()
    if session.get_bind().dialect.name != "sqlite" or len(search) < TRIGRAM:
        return _like(search)
    phrase = _fts_phrase(search)
    # One trigram match, reused: it is the expensive part for a term made of common
    # trigrams, so the page and its count must not repeat it.
    ids = (
        session.execute(
            text(
                f"SELECT invitation_id FROM {SEARCH_TABLE} "
                f"WHERE {SEARCH_TABLE} MATCH :phrase LIMIT :cap"
            ),
            {"phrase": phrase, "cap": SELECTIVE_MATCHES + 1},
        )
        .scalars()
        .all()
    )
    if len(ids) > SELECTIVE_MATCHES:
        return _like(search)
    # The trigram match is case-insensitive like email_key; LIKE keeps the exact rule.
    return Invitation.id.in_(ids) & _like(search)
