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
    page = list_invitations(session, org, InvitationQuery(query=q, limit=100))
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
            " WHERE invitation_email_search MATCH '\"navy\"'"
        )
    ).scalar_one()
    assert rows == 1
