"""Email search: indexed on both databases, same answers on every path."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect
from sqlalchemy import text

from webapp.services import search as search_module
from webapp.services.actors import SYSTEM
from webapp.services.invitation_listing import InvitationQuery
from webapp.services.invitation_listing import list_invitations
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import create_invitations

ADDRESSES = [
    "ada.lovelace@example.com",
    "Alan.Turing@Example.org",
    "grace_hopper@navy.example",
    "linus%t@kernel.example",
    "ada.byron@poets.example",
]


@pytest.fixture
def invited(session, org):
    create_invitations(
        session,
        org,
        [InvitationRequest(email=a, notify=False) for a in ADDRESSES],
        actor=SYSTEM,
    )
    session.commit()
    return org


def found(session, org, q):
    page = list_invitations(session, org, InvitationQuery(query=q, limit=500))
    return sorted(i.email_key for i in page.items)


@pytest.mark.parametrize("selective", [True, False])
def test_substring_search_is_case_insensitive_and_literal(session, invited, monkeypatch, selective):
    """Same results whether the trigram index or the ordered scan serves the query."""
    if not selective:
        monkeypatch.setattr(search_module, "SELECTIVE_MATCHES", 0)
    both_adas = ["ada.byron@poets.example", "ada.lovelace@example.com"]
    assert found(session, invited, "ADA.") == both_adas
    assert found(session, invited, "turing@ex") == ["alan.turing@example.org"]
    assert found(session, invited, "r_h") == []  # "_" is not a wildcard
    assert found(session, invited, "e_h") == ["grace_hopper@navy.example"]
    assert found(session, invited, "s%t") == ["linus%t@kernel.example"]
    assert found(session, invited, 'a"b') == []
    assert found(session, invited, "ad") == both_adas


def test_search_total_is_capped_for_common_terms(session, invited, monkeypatch):
    """A search matching more than the cap reports the cap as a floor, not a full count."""
    from webapp.services import invitation_listing

    monkeypatch.setattr(invitation_listing, "SEARCH_TOTAL_CAP", 2)
    page = list_invitations(session, invited, InvitationQuery(query="example", limit=1))
    assert page.total == 2 and page.total_exact is False
    exact = list_invitations(session, invited, InvitationQuery(query="navy"))
    assert exact.total == 1 and exact.total_exact is True
    whole = list_invitations(session, invited, InvitationQuery(query="example"))
    assert whole.total == 5 and whole.total_exact is True  # all on one page: no count


def test_the_search_index_exists(session, backend):
    """pg_trgm GIN index on PostgreSQL; FTS5 trigram table kept by triggers on SQLite."""
    bind = session.get_bind()
    if backend == "postgresql":
        indexes = {i["name"] for i in inspect(bind).get_indexes("invitations")}
        assert "ix_invitations_email_trgm" in indexes
    else:
        assert (
            session.execute(
                text("SELECT count(*) FROM sqlite_master WHERE name = 'invitation_email_search'")
            ).scalar_one()
            == 1
        )


def test_sqlite_search_table_follows_inserts(session, invited, backend):
    """Every new invitation is searchable at once (the insert trigger)."""
    if backend != "sqlite":
        pytest.skip("SQLite's FTS5 table only")
    rows = session.execute(
        text(
            "SELECT count(*) FROM invitation_email_search"
            ' WHERE invitation_email_search MATCH \'"nav" AND "avy"\''
        )
    ).scalar_one()
    assert rows == 1


SAMPLE_TERMS = [
    "person1",
    "person12@",
    "company5.",
    "company",
    "Y5.EX",
    "@company1",
    "5.e",
    "x%y",
    "a_b",
    "pe",
    "q",
    "rson3",
    "n1@c",
    "example",
    "nobody-here",
]


@pytest.fixture
def sample(session, org):
    """Addresses shaped like the benchmark's (``personN@companyM.example``) with a few
    oddities (``%``, ``_``, capitals), and statistics as a database would have them."""
    requests = [
        InvitationRequest(email=f"Person{n}@Company{n % 7}.example", notify=False)
        for n in range(150)
    ]
    requests += [
        InvitationRequest(email=e, notify=False)
        for e in ["x%y@odd.example", "xzy@odd.example", "a_b@odd.example", "axb@odd.example"]
    ]
    create_invitations(session, org, requests, actor=SYSTEM)
    session.commit()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE invitations"))
        session.commit()
        search_module._statistics_cache.clear()
    return org


def expected(session, org, term):
    keys = session.scalars(
        text("SELECT email_key FROM invitations WHERE org_id = :o"), {"o": org.id}
    ).all()
    return sorted(k for k in keys if term.lower() in k)


@pytest.mark.parametrize("selective_matches", [2000, 10, 0])
def test_search_answers_like_a_substring_test(session, sample, monkeypatch, selective_matches):
    """Whichever trigrams drive the index (all rare, some rare, none), the answer is
    exactly the addresses containing the term: same as Python's ``in``."""
    monkeypatch.setattr(search_module, "SELECTIVE_MATCHES", selective_matches)
    for term in SAMPLE_TERMS:
        assert found(session, sample, term) == expected(session, sample, term), term


def test_search_pages_keep_the_list_order(session, sample):
    """Results come newest first, page after page, whatever the index did."""
    seen = []
    cursor = None
    while True:
        page = list_invitations(
            session, sample, InvitationQuery(query="company3", limit=7, starting_after=cursor)
        )
        seen.extend(page.items)
        if not page.has_more:
            break
        cursor = page.items[-1].id
    keys = [(i.created_at, i.id) for i in seen]
    assert keys == sorted(keys, reverse=True)
    assert sorted(i.email_key for i in seen) == expected(session, sample, "company3")


def test_postgres_trigrams_follow_pg_trgm_like_rules():
    """Words touching the term's ends stay open; separators inside bound them."""
    like = search_module.pg_like_trigrams
    assert like("y5.") == {"y5 "}
    assert like("company5.") == {"com", "omp", "mpa", "pan", "any", "ny5", "y5 "}
    assert like("5.ex") == {"  e", " ex"}
    assert like("a.b") == {"  b"}
    assert like("a.") == set()
    assert like("x.abc.y") == {"  a", " ab", "abc", "bc ", "  y"}


def test_postgres_search_hands_the_index_the_selective_part():
    """With every trigram of ``company`` in all rows, ``company5.`` is looked up by its
    rare ending; a term made only of frequent trigrams is not looked up at all."""
    everywhere = {g: 1.0 for g in search_module.pg_like_trigrams("person@company.example")}
    everywhere.update({"ny5": 0.11, "  p": 1.0, " pe": 1.0, "n12": 0.013, "56 ": 0.019})
    statistics = search_module.TrigramStatistics(everywhere, floor=0.0047)
    part, share = search_module.best_indexed_part("company5.", statistics)
    assert part == "y5." and share < 0.001
    part, share = search_module.best_indexed_part("person123456@", statistics)
    assert len(part) >= 4 and part in "123456" and share < 0.001
    _, share = search_module.best_indexed_part("company", statistics)
    assert share >= search_module.DENSE_SHARE


def test_postgres_uses_trigram_statistics(session, sample, backend):
    """Migration 0010's statistics exist and are read (PostgreSQL only)."""
    if backend != "postgresql":
        pytest.skip("PostgreSQL's extended statistics only")
    statistics = search_module.trigram_statistics(session)
    assert statistics is not None and statistics.share("com") > 0.9


@pytest.mark.parametrize("cap", [1_000, 20])
def test_search_totals_are_the_same_for_plain_rows_and_objects(session, sample, monkeypatch, cap):
    """The API and the dashboard read plain rows, where a bounded search is counted in
    the page's own query: the totals (and where they stop being exact) are the same as
    a separate count's, first page or later, for every kind of term."""
    from webapp.services import invitation_listing

    monkeypatch.setattr(invitation_listing, "SEARCH_TOTAL_CAP", cap)
    for term in SAMPLE_TERMS:
        matching = len(expected(session, sample, term))
        for offset in (None, 3, 500):
            pages = [
                list_invitations(
                    session,
                    sample,
                    InvitationQuery(query=term, limit=3, offset=offset, plain_rows=plain),
                )
                for plain in (False, True)
            ]
            objects, plain = pages
            assert (plain.total, plain.total_exact) == (objects.total, objects.total_exact), term
            assert plain.total == min(matching, cap), (term, offset)
            assert [r.id for r in plain.items] == [i.id for i in objects.items]


def test_bounded_search_is_counted_by_the_page_query(session, sample, backend, monkeypatch):
    """A term whose matches the page query reads anyway (SQLite: candidates from the
    trigram table; PostgreSQL: a selective term found through the GIN index, then
    sorted) is counted by the page query itself, not once more by a count."""
    from sqlalchemy import event

    if backend == "postgresql":
        # Statistics saying every trigram is rare, as in a large varied address book.
        rare = search_module.TrigramStatistics({}, floor=0.0001)
        monkeypatch.setattr(search_module, "trigram_statistics", lambda session: rare)

    statements = []
    engine = session.get_bind()

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        page = list_invitations(
            session, sample, InvitationQuery(query="company3", limit=5, plain_rows=True)
        )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert page.has_more and page.total == len(expected(session, sample, "company3"))
    assert page.total_exact
    assert not [s for s in statements if "count(*) AS count_1" in s], statements


@pytest.mark.parametrize("remembered", [0, 5, 10_000])
def test_remembered_trigram_counts_never_change_the_answer(
    session, sample, backend, monkeypatch, remembered
):
    """SQLite remembers how common each trigram is for a few minutes; counts gone stale
    (every trigram rare, or every one common) choose other trigrams, not other rows."""
    if backend != "sqlite":
        pytest.skip("the trigram counts are SQLite's")
    monkeypatch.setattr(search_module, "_trigram_counts", {})
    database = str(session.get_bind().url)
    cap = search_module.SELECTIVE_MATCHES + 1
    for term in SAMPLE_TERMS:
        for gram in search_module._trigrams(term.lower()):
            search_module._trigram_counts[(database, cap, gram)] = (1e18, min(remembered, cap))
    for term in SAMPLE_TERMS:
        assert found(session, sample, term) == expected(session, sample, term), term
