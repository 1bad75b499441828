"""Email search that stays fast at a million invitations.

The rule is always the same: the lower-cased address contains the term literally
(``%`` and ``_`` are not wildcards), re-checked with LIKE on ``invitations``. What
differs is how candidates are found. A term's trigrams are not equally useful: on
addresses such as ``person123@company5.example`` the trigrams of ``person`` and
``company`` are in every row, and an index that reads their row lists costs tens of
milliseconds whatever the term. So both databases hand their trigram index only the
*selective* trigrams of the term:

* SQLite: the FTS5 trigram table (``invitation_email_search``, ``detail=none``, kept by
  triggers) is asked how many rows each trigram of the term has, capped at
  ``SELECTIVE_MATCHES`` (one statement; reading a capped row list is cheap); the rare
  ones are ANDed. When every trigram is common the AND of all of them is tried,
  capped; too many candidates means the term is common, and scanning the list's own
  index in order finds a page of matches sooner.
* PostgreSQL: extended statistics on ``show_trgm(email_key)`` (migration 0010; kept
  by ANALYZE/autovacuum) give each frequent trigram's share of rows. The part of the
  term with the cheapest selective trigrams goes to the ``pg_trgm`` GIN index, the
  whole term is re-checked by a LIKE the index cannot serve; a term whose trigrams are
  all frequent walks the list's index in order instead. Without statistics (a new
  table) the plain LIKE is used, as before.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from dataclasses import dataclass

from sqlalchemy import ColumnElement
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.orm import Session

from webapp.models import Invitation

# Below this many candidates (over all organizations) the trigram table drives the query.
SELECTIVE_MATCHES = 2000
TRIGRAM = 3
SEARCH_TABLE = "invitation_email_search"
# FTS5 keeps a copy of the indexed rows in the "%_content" table, one column ``c<n>`` per
# declared column (migration 0010 declares email_key, invitation_id), keyed by rowid.
SEARCH_CONTENT_TABLE = f"{SEARCH_TABLE}_content"
CONTENT_EMAIL_KEY = "c0"
CONTENT_INVITATION_ID = "c1"
# At most this many trigrams of a long term are probed (spread over the term).
MAX_PROBED_TRIGRAMS = 16

# PostgreSQL: statistics object of migration 0010, how long a process reuses what it
# read, and the estimated share of matching rows above which the ordered scan wins.
TRIGRAM_STATISTICS = "invitations_email_trigrams"
STATISTICS_TTL_SECONDS = 300.0
DENSE_SHARE = 0.02
# Longest part of the term considered for the index (longer parts add trigrams).
MAX_INDEXED_PART = 12
MAX_SCANNED_CHARS = 48
# A matching row re-checked on the heap costs about this many posting-list entries.
HEAP_ROW_COST = 20.0


def escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains(column: ColumnElement[str], text_: str) -> ColumnElement[bool]:
    """``column`` contains ``text_`` literally (``%`` and ``_`` are not wildcards)."""
    return column.like(f"%{escape_like(text_)}%", escape="\\")


def _like(search: str) -> ColumnElement[bool]:
    return contains(Invitation.email_key, search)


def _unindexed_like(search: str) -> ColumnElement[bool]:
    """The same rule written so that no index on ``email_key`` can serve it."""
    return contains(Invitation.email_key.concat(""), search)


@dataclass(frozen=True)
class EmailSearch:
    """SQL for "the (lower-cased) address contains the term"."""

    condition: ColumnElement[bool]
    # True when the condition names its candidates (at most SELECTIVE_MATCHES rows, read
    # from the trigram table): counting every match then costs no more than sorting
    # them for a page, so a caller can count them in the page's own query.
    bounded: bool = False


def email_search(session: Session, search: str) -> EmailSearch:
    """The search for addresses that contain ``search`` (case-insensitive)."""
    search = search.lower()
    if len(search) < TRIGRAM:
        return EmailSearch(_like(search))
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        return _sqlite_search(session, search)
    if dialect == "postgresql":
        return _postgres_search(session, search)
    return EmailSearch(_like(search))


# --- SQLite: FTS5 -------------------------------------------------------------------


def _trigrams(search: str) -> list[str]:
    """The distinct trigrams of the term, at most MAX_PROBED_TRIGRAMS spread over it."""
    grams = list(dict.fromkeys(search[i : i + TRIGRAM] for i in range(len(search) - 2)))
    if len(grams) > MAX_PROBED_TRIGRAMS:
        step = len(grams) / MAX_PROBED_TRIGRAMS
        grams = [grams[int(n * step)] for n in range(MAX_PROBED_TRIGRAMS)]
    return grams


def _fts_term(trigram: str) -> str:
    return '"' + trigram.replace('"', '""') + '"'


_statistics_lock = threading.Lock()

# Capped row counts of trigrams: {(database, cap, trigram): (read at, count)}.
# They only choose which trigrams drive the match (the answer is the same whichever
# do), so a few minutes' staleness costs nothing but speed, and search as you type,
# whose terms share most trigrams keystroke after keystroke, probes each trigram once.
_trigram_counts: dict[tuple[str, int, str], tuple[float, int]] = {}
TRIGRAM_COUNTS_KEPT = 20_000


def _trigram_counts_for(session: Session, grams: list[str], cap: int) -> list[int]:
    """How many rows hold each trigram, counted up to ``cap``: remembered for
    STATISTICS_TTL_SECONDS, the others probed in one statement."""
    database = str(session.get_bind().url)
    now = time.monotonic()
    known = {}
    for gram in grams:
        cached = _trigram_counts.get((database, cap, gram))
        if cached is not None and now - cached[0] < STATISTICS_TTL_SECONDS:
            known[gram] = cached[1]
    missing = [g for g in grams if g not in known]
    if missing:
        probes = ", ".join(
            f"(SELECT count(*) FROM (SELECT 1 FROM {SEARCH_TABLE} "
            f"WHERE {SEARCH_TABLE} MATCH :t{n} LIMIT {cap}))"
            for n in range(len(missing))
        )
        counts = session.execute(
            text(f"SELECT {probes}"), {f"t{n}": _fts_term(g) for n, g in enumerate(missing)}
        ).one()
        with _statistics_lock:
            if len(_trigram_counts) > TRIGRAM_COUNTS_KEPT:
                _trigram_counts.clear()
            for gram, count in zip(missing, counts, strict=True):
                _trigram_counts[(database, cap, gram)] = (now, count)
                known[gram] = count
    return [known[g] for g in grams]


def _sqlite_search(session: Session, search: str) -> EmailSearch:
    grams = _trigrams(search)
    cap = SELECTIVE_MATCHES + 1
    counts = _trigram_counts_for(session, grams, cap)
    ranked = sorted(zip(counts, grams, strict=True))
    rare = [g for count, g in ranked if count <= SELECTIVE_MATCHES]
    chosen = rare or [g for _, g in ranked]
    # One trigram match, reused by the page and its count. The invitation ids are read
    # from the FTS5 table's own content table by rowid (asking the virtual table for its
    # UNINDEXED column costs FTS5 a content lookup per row), with the address stored
    # beside them: LIKE marks the rows that hold the trigrams but not the term, before
    # any invitation is read.
    candidates = session.execute(
        text(
            f"SELECT {CONTENT_INVITATION_ID}, "
            f"{CONTENT_EMAIL_KEY} LIKE :pattern ESCAPE '\\' FROM {SEARCH_CONTENT_TABLE} "
            f"WHERE id IN (SELECT rowid FROM {SEARCH_TABLE} "
            f"WHERE {SEARCH_TABLE} MATCH :terms LIMIT :cap)"
        ),
        {
            "terms": " AND ".join(_fts_term(g) for g in chosen),
            "cap": cap,
            "pattern": f"%{escape_like(search)}%",
        },
    ).all()
    if len(candidates) > SELECTIVE_MATCHES:
        return EmailSearch(_like(search))
    ids = [invitation_id for invitation_id, matches in candidates if matches]
    # The trigrams only find candidates; LIKE keeps the exact rule. The ids travel as one
    # JSON parameter read by json_each: as many bound parameters (up to 2,000, in the
    # page and again in its count) cost more to bind than the lookups themselves.
    listed = func.json_each(json.dumps(ids)).table_valued("value")
    return EmailSearch(Invitation.id.in_(select(listed.c.value)) & _like(search), bounded=True)


# --- PostgreSQL: pg_trgm --------------------------------------------------------------


@dataclass(frozen=True)
class TrigramStatistics:
    """Share of rows holding each frequent trigram; rarer ones hold at most ``floor``."""

    shares: dict[str, float]
    floor: float

    def share(self, trigram: str) -> float:
        return self.shares.get(trigram, self.floor)


_statistics_cache: dict[str, tuple[float, TrigramStatistics | None]] = {}


def _read_statistics(session: Session) -> TrigramStatistics | None:
    row = session.execute(
        text(
            "SELECT most_common_elems::text::text[], most_common_elem_freqs "
            "FROM pg_stats_ext_exprs WHERE statistics_name = :name"
        ),
        {"name": TRIGRAM_STATISTICS},
    ).first()
    if row is None or row[0] is None or row[1] is None:
        return None
    elems, freqs = list(row[0]), [float(f) for f in row[1]]
    # The frequencies end with the minimum, maximum and null share of the list.
    if len(freqs) < len(elems) + 1:
        return None
    return TrigramStatistics(dict(zip(elems, freqs, strict=False)), freqs[len(elems)])


def trigram_statistics(session: Session) -> TrigramStatistics | None:
    """The PostgreSQL trigram statistics, read at most every STATISTICS_TTL_SECONDS."""
    key = str(session.get_bind().url)
    now = time.monotonic()
    cached = _statistics_cache.get(key)
    if cached is not None and now - cached[0] < STATISTICS_TTL_SECONDS:
        return cached[1]
    statistics = _read_statistics(session)
    with _statistics_lock:
        _statistics_cache[key] = (now, statistics)
    return statistics


_WORD = re.compile(r"[^\W_]+")


def pg_like_trigrams(part: str) -> set[str]:
    """The trigrams pg_trgm looks up for ``LIKE '%part%'`` (ASCII words exactly).

    Words are runs of letters and digits; a word with a separator before it inside
    ``part`` starts with two blanks, one with a separator after it ends with one, and
    words touching the ``%`` at either end are open on that side.
    """
    grams: set[str] = set()
    for match in _WORD.finditer(part):
        padded = (
            ("  " if match.start() > 0 else "")
            + match.group()
            + (" " if match.end() < len(part) else "")
        )
        grams.update(padded[i : i + TRIGRAM] for i in range(len(padded) - 2))
    return grams


def best_indexed_part(search: str, statistics: TrigramStatistics) -> tuple[str, float] | None:
    """The part of ``search`` cheapest to look up in the GIN index, and the estimated
    share of rows matching the whole term (None if no part has a trigram)."""
    candidates = {search}
    head = search[:MAX_SCANNED_CHARS]  # any part of it is a part of the term
    for length in range(TRIGRAM, min(MAX_INDEXED_PART, len(head)) + 1):
        candidates.update(head[i : i + length] for i in range(len(head) - length + 1))
    best: tuple[float, str] | None = None
    for part in candidates:
        grams = pg_like_trigrams(part)
        if not grams:
            continue
        shares = [statistics.share(g) for g in grams]
        # Posting lists read, plus rows re-checked (trigrams taken as independent).
        cost = sum(shares) + HEAP_ROW_COST * math.prod(shares)
        if best is None or (cost, len(part)) < (best[0], len(best[1])):
            best = (cost, part)
    if best is None:
        return None
    whole = [statistics.share(g) for g in pg_like_trigrams(search)]
    return best[1], (math.prod(whole) if whole else 1.0)


def _postgres_search(session: Session, search: str) -> EmailSearch:
    statistics = trigram_statistics(session)
    if statistics is None:
        return EmailSearch(_like(search))
    chosen = best_indexed_part(search, statistics)
    if chosen is None:
        return EmailSearch(_like(search))
    part, matching_share = chosen
    if matching_share >= DENSE_SHARE:
        # Matches are everywhere: walking the list's index in order finds a page soon.
        return EmailSearch(_unindexed_like(search))
    # The GIN index finds every match and the page sorts them: the page query reads
    # them all anyway, so it may as well count them.
    if part == search:
        return EmailSearch(_like(search), bounded=True)
    return EmailSearch(_like(part) & _unindexed_like(search), bounded=True)
