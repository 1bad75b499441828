"""list_invitations on SQLite and PostgreSQL: filters, search, ordering, offset and cursors."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from webapp.models import Invitation
from webapp.models.invitations import STATUS_VALUES
from webapp.services.actors import SYSTEM
from webapp.services.errors import ValidationFailed
from webapp.services.invitation_listing import MAX_LIMIT
from webapp.services.invitation_listing import InvitationQuery
from webapp.services.invitation_listing import list_invitations
from webapp.services.invitation_transitions import accept_invitation
from webapp.services.invitation_transitions import decline_invitation
from webapp.services.invitation_transitions import revoke_invitation
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import create_invitation
from webapp.services.invitations import create_invitations

T0 = datetime(2030, 3, 1, 9, 0, 0, tzinfo=UTC)
ACCEPT_PREFIX = "https://invites.example.com/invitations/accept/"
ORDERINGS = ("created_at", "-created_at", "email", "-email")


@pytest.fixture
def clock(time_machine):
    """The clock frozen at T0 (so invitations of one batch share created_at exactly)."""
    time_machine.move_to(T0, tick=False)
    return time_machine


def invite(session, org, email, **fields):
    issued = create_invitation(session, org, InvitationRequest(email=email, **fields), actor=SYSTEM)
    session.commit()
    return issued


def token_of(issued) -> str:
    return issued.accept_url.removeprefix(ACCEPT_PREFIX)


def seed(session, org, clock, *, batches=6, per_batch=10, prefix="user") -> list[Invitation]:
    """``batches`` x ``per_batch`` invitations, one minute apart per batch (ties inside a batch)."""
    created: list[Invitation] = []
    for b in range(batches):
        requests = [
            InvitationRequest(f"{prefix}{b * per_batch + i:03d}@example.com", notify=False)
            for i in range(per_batch)
        ]
        result = create_invitations(session, org, requests, actor=SYSTEM)
        assert result.failures == []
        created.extend(issued.invitation for _, issued in result.successes)
        session.commit()
        clock.shift(timedelta(minutes=1))
    return created


def expected_order(invitations, order_by: str) -> list[str]:
    """Ids in the order ``order_by`` defines, ties broken by id, computed in Python."""
    if order_by.endswith("created_at"):
        rows = sorted(invitations, key=lambda i: (i.created_at, i.id))
    else:
        rows = sorted(invitations, key=lambda i: (i.email_key, i.id))
    ids = [i.id for i in rows]
    return ids[::-1] if order_by.startswith("-") else ids


def ids_of(page) -> list[str]:
    return [i.id for i in page.items]


def field_codes(error: ValidationFailed) -> list[tuple[str, str]]:
    return [(e.field, e.code) for e in error.errors]


def totals(**non_zero) -> dict[str, int]:
    return {s: non_zero.get(s, 0) for s in STATUS_VALUES}


# ---------------------------------------------------------------------------
# status filter
# ---------------------------------------------------------------------------


@pytest.fixture
def mixed(session, org, clock):
    """One invitation in each effective status (two pending), keyed by status."""
    made = {}
    for name in ("pending", "pending2", "accepted", "declined", "revoked"):
        made[name] = invite(session, org, f"{name}@example.com", notify=False)
        clock.shift(timedelta(seconds=1))
    made["expired"] = invite(session, org, "expired@example.com", expires_in=timedelta(hours=1))
    accept_invitation(session, token_of(made["accepted"]))
    decline_invitation(session, token_of(made["declined"]))
    revoke_invitation(session, org, made["revoked"].invitation.id, actor=SYSTEM)
    session.commit()
    clock.shift(timedelta(hours=1))  # "expired" lapses; nothing is swept
    return {name: issued.invitation.id for name, issued in made.items()}


STATUS_CASES = [
    (["accepted", "declined"], {"accepted", "declined"}),
    (["pending", "expired"], {"pending", "pending2", "expired"}),
    (["pending"], {"pending", "pending2"}),
    (["expired"], {"expired"}),
    (["revoked", "revoked"], {"revoked"}),
    (
        ["accepted", "declined", "revoked", "expired"],
        {"accepted", "declined", "revoked", "expired"},
    ),
    ([], {"pending", "pending2", "accepted", "declined", "revoked", "expired"}),
]


def test_status_filter_with_several_values(session, org, mixed):
    """A status filter with several values lists exactly the rows in those effective statuses."""
    for statuses, names in STATUS_CASES:
        page = list_invitations(session, org, InvitationQuery(statuses=statuses, limit=50))
        assert set(ids_of(page)) == {mixed[n] for n in names}, statuses
        assert len(page.items) == page.total == len(names), statuses
        assert page.has_more is False
        assert page.totals_by_status == totals(
            pending=2, accepted=1, declined=1, revoked=1, expired=1
        )
        for item in page.items:
            assert item.effective_status(page.now) in (statuses or STATUS_VALUES)


# ---------------------------------------------------------------------------
# email search
# ---------------------------------------------------------------------------


@pytest.fixture
def searchable(session, org, clock):
    emails = [
        "a%b@example.com",
        "axb@example.com",
        "a_c@example.com",
        "abc@example.com",
        "Bob.Smith@Example.COM",
        "carol@other.org",
    ]
    return {e: invite(session, org, e, notify=False).invitation.id for e in emails}


EXAMPLE_COM = {
    "a%b@example.com",
    "axb@example.com",
    "a_c@example.com",
    "abc@example.com",
    "Bob.Smith@Example.COM",
}
SEARCH_CASES = [
    ("A%B", {"a%b@example.com"}),
    ("%", {"a%b@example.com"}),
    ("a_c", {"a_c@example.com"}),
    ("_", {"a_c@example.com"}),
    ("BOB.smith", {"Bob.Smith@Example.COM"}),
    ("  bob  ", {"Bob.Smith@Example.COM"}),
    ("@EXAMPLE.com", EXAMPLE_COM),
    ("other.org", {"carol@other.org"}),
    ("zzz", set()),
    ("a\\b", set()),
    ("", EXAMPLE_COM | {"carol@other.org"}),
]


def test_email_search_is_case_insensitive_and_literal(session, org, searchable):
    """Search matches a substring of the address, ignoring case, with % and _ taken literally."""
    stored = {e: session.get(Invitation, i).email for e, i in searchable.items()}
    for query, expected in SEARCH_CASES:
        page = list_invitations(session, org, InvitationQuery(query=query, limit=50))
        assert {i.email for i in page.items} == {stored[e] for e in expected}, query
        assert page.total == len(expected), query


def test_search_combines_with_status_filter(session, org, searchable):
    """Search and status filter both apply, and total counts their intersection."""
    revoke_invitation(session, org, searchable["axb@example.com"], actor=SYSTEM)
    session.commit()
    page = list_invitations(
        session, org, InvitationQuery(query="example.com", statuses=["pending"], limit=50)
    )
    assert len(page.items) == page.total == 4
    assert searchable["axb@example.com"] not in ids_of(page)
    page = list_invitations(
        session, org, InvitationQuery(query="example.com", statuses=["revoked"], limit=50)
    )
    assert ids_of(page) == [searchable["axb@example.com"]]
    assert page.total == 1


# ---------------------------------------------------------------------------
# ordering
# ---------------------------------------------------------------------------


def test_order_by(session, org, clock):
    """order_by created_at, -created_at, email and -email sort the list that way."""
    for name in ("carol", "alice", "dave", "bob"):
        invite(session, org, f"{name}@example.com", notify=False)
        clock.shift(timedelta(minutes=1))
    cases = {
        "created_at": ["carol", "alice", "dave", "bob"],
        "-created_at": ["bob", "dave", "alice", "carol"],
        "email": ["alice", "bob", "carol", "dave"],
        "-email": ["dave", "carol", "bob", "alice"],
    }
    for order_by, expected in cases.items():
        page = list_invitations(session, org, InvitationQuery(order_by=order_by))
        assert [i.email.split("@")[0] for i in page.items] == expected, order_by


def test_default_order_is_newest_first(session, org, clock):
    """Without order_by the newest invitation comes first."""
    for name in ("old", "mid", "new"):
        invite(session, org, f"{name}@example.com", notify=False)
        clock.shift(timedelta(minutes=1))
    page = list_invitations(session, org, InvitationQuery())
    assert [i.email for i in page.items] == [
        "new@example.com",
        "mid@example.com",
        "old@example.com",
    ]


# ---------------------------------------------------------------------------
# offset pages
# ---------------------------------------------------------------------------


def test_limit_and_offset_pages(session, org, clock):
    """limit + offset pages cover the ordered list once, with has_more on all but the last."""
    rows = seed(session, org, clock, batches=5, per_batch=5)
    expected = expected_order(rows, "-created_at")
    seen, has_more = [], []
    for offset in (0, 10, 20):
        page = list_invitations(session, org, InvitationQuery(limit=10, offset=offset))
        seen += ids_of(page)
        has_more.append(page.has_more)
        assert page.total == 25
    assert seen == expected
    assert has_more == [True, True, False]
    beyond = list_invitations(session, org, InvitationQuery(limit=10, offset=25))
    assert (beyond.items, beyond.has_more, beyond.total) == ([], False, 25)
    exact = list_invitations(session, org, InvitationQuery(limit=25, offset=0))
    assert (len(exact.items), exact.has_more) == (25, False)
    short = list_invitations(session, org, InvitationQuery(limit=24))
    assert (len(short.items), short.has_more) == (24, True)


# ---------------------------------------------------------------------------
# cursors
# ---------------------------------------------------------------------------


@pytest.fixture
def sixty(session, org, clock):
    return seed(session, org, clock)


def test_cursor_walk_visits_every_row_once_in_order(session, org, sixty):
    """starting_after walks every ordering over 60 rows (with created_at ties) exactly once."""
    assert len({i.created_at for i in sixty}) == 6
    for order_by in ORDERINGS:
        expected = expected_order(sixty, order_by)
        seen: list[str] = []
        cursor = None
        while True:
            page = list_invitations(
                session, org, InvitationQuery(order_by=order_by, limit=7, starting_after=cursor)
            )
            seen += ids_of(page)
            assert page.total == 60
            assert page.has_more == (len(seen) < 60), (order_by, len(seen))
            if not page.has_more:
                break
            cursor = page.items[-1].id
        assert seen == expected, order_by
        assert len(set(seen)) == 60


def test_ending_before_walks_backwards(session, org, sixty):
    """ending_before walks back from the end, each page in list order, every row once."""
    for order_by in ORDERINGS:
        expected = expected_order(sixty, order_by)
        last = list_invitations(
            session, org, InvitationQuery(order_by=order_by, limit=7, starting_after=expected[-8])
        )
        assert ids_of(last) == expected[-7:]
        assert last.has_more is False
        collected = ids_of(last)
        while True:
            page = list_invitations(
                session,
                org,
                InvitationQuery(order_by=order_by, limit=7, ending_before=collected[0]),
            )
            end = len(expected) - len(collected)
            assert ids_of(page) == expected[max(end - 7, 0) : end]
            collected = ids_of(page) + collected
            assert page.has_more == (len(collected) < 60), (order_by, len(collected))
            if not page.has_more:
                break
        assert collected == expected, order_by


def test_has_more_at_the_edges(session, org, sixty):
    """has_more is false exactly when nothing lies beyond the page, on both ends."""
    expected = expected_order(sixty, "-created_at")
    whole = list_invitations(session, org, InvitationQuery(limit=60))
    assert (ids_of(whole), whole.has_more) == (expected, False)
    after_last = list_invitations(session, org, InvitationQuery(starting_after=expected[-1]))
    assert (after_last.items, after_last.has_more) == ([], False)
    before_first = list_invitations(session, org, InvitationQuery(ending_before=expected[0]))
    assert (before_first.items, before_first.has_more) == ([], False)
    tail = list_invitations(session, org, InvitationQuery(limit=5, starting_after=expected[-6]))
    assert (ids_of(tail), tail.has_more) == (expected[-5:], False)
    head = list_invitations(session, org, InvitationQuery(limit=5, ending_before=expected[5]))
    assert (ids_of(head), head.has_more) == (expected[:5], False)
    inner = list_invitations(session, org, InvitationQuery(limit=5, ending_before=expected[6]))
    assert (ids_of(inner), inner.has_more) == (expected[1:6], True)


def test_cursor_walk_with_search_and_status(session, org, sixty):
    """A cursor walk over a searched, filtered list keeps total and visits only matches."""
    for inv in sixty[:3]:  # user000..user002
        revoke_invitation(session, org, inv.id, actor=SYSTEM)
    session.commit()
    matching = [i for i in sixty if i.email.startswith("user00")][3:]  # user003..user009
    expected = expected_order(matching, "email")
    seen, cursor = [], None
    while True:
        page = list_invitations(
            session,
            org,
            InvitationQuery(
                query="USER00",
                statuses=["pending"],
                order_by="email",
                limit=3,
                starting_after=cursor,
            ),
        )
        assert page.total == 7
        seen += ids_of(page)
        if not page.has_more:
            break
        cursor = page.items[-1].id
    assert seen == expected
    assert page.totals_by_status == totals(pending=57, revoked=3)


# ---------------------------------------------------------------------------
# totals
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("plain_rows", [False, True])
def test_total_and_totals_by_status(session, org, mixed, make_org, plain_rows):
    """total counts the filtered list over all pages; totals_by_status covers every status
    (a lapsed pending invitation counts as expired). Plain rows read the stored totals
    in the page query itself: the same answers, for one organization or all."""
    page = list_invitations(session, org, InvitationQuery(limit=2, plain_rows=plain_rows))
    assert len(page.items) == 2
    assert page.has_more is True
    assert page.total == 6
    assert page.totals_by_status == totals(pending=2, accepted=1, declined=1, revoked=1, expired=1)
    assert set(page.totals_by_status) == set(STATUS_VALUES)
    filtered = list_invitations(
        session,
        org,
        InvitationQuery(statuses=["pending", "revoked"], limit=1, plain_rows=plain_rows),
    )
    assert (len(filtered.items), filtered.total, filtered.has_more) == (1, 3, True)
    empty = list_invitations(
        session, org, InvitationQuery(query="nobody", limit=1, plain_rows=plain_rows)
    )
    assert (empty.items, empty.total) == ([], 0)
    assert empty.totals_by_status == page.totals_by_status
    other = make_org("Other", slug="other")
    invite(session, other, "elsewhere@example.com", notify=False)
    session.commit()
    everywhere = list_invitations(session, None, InvitationQuery(plain_rows=plain_rows))
    assert everywhere.totals_by_status == totals(
        pending=3, accepted=1, declined=1, revoked=1, expired=1
    )


# ---------------------------------------------------------------------------
# invalid input
# ---------------------------------------------------------------------------


INVALID_CASES = [
    (InvitationQuery(statuses=["bogus"]), "status", "invalid_status", "'bogus'"),
    (InvitationQuery(statuses=["pending", "Pending"]), "status", "invalid_status", "'Pending'"),
    (InvitationQuery(order_by="x"), "order_by", "invalid_order", "'x'"),
    (InvitationQuery(order_by="created"), "order_by", "invalid_order", "'created'"),
    (InvitationQuery(limit=0), "limit", "out_of_range", "500"),
    (InvitationQuery(limit=MAX_LIMIT + 1), "limit", "out_of_range", "500"),
    (InvitationQuery(limit=-1), "limit", "out_of_range", "500"),
    (InvitationQuery(limit="10"), "limit", "out_of_range", "500"),
    (InvitationQuery(offset=-1), "offset", "out_of_range", "offset"),
    (InvitationQuery(offset=10**20), "offset", "out_of_range", "1,000,000,000"),
    (InvitationQuery(query="x" * 255), "query", "too_long", "too long"),
    (
        InvitationQuery(offset=10, starting_after="inv_x"),
        "starting_after",
        "conflicting_fields",
        "offset",
    ),
    (
        InvitationQuery(offset=10, ending_before="inv_x"),
        "ending_before",
        "conflicting_fields",
        "offset",
    ),
    (
        InvitationQuery(starting_after="inv_x", ending_before="inv_y"),
        "ending_before",
        "conflicting_fields",
        "starting_after",
    ),
]


def test_invalid_inputs_name_the_field(session, org):
    """Bad status, order_by, limit, offset, search or cursor combinations name their field."""
    for query, field, code, named in INVALID_CASES:
        with pytest.raises(ValidationFailed) as info:
            list_invitations(session, org, query)
        assert field_codes(info.value) == [(field, code)], query
        assert named in info.value.errors[0].message


def test_limit_bounds_are_inclusive(session, org):
    """limit 1 and limit 500 are valid."""
    invite(session, org, "a@example.com", notify=False)
    assert len(list_invitations(session, org, InvitationQuery(limit=1)).items) == 1
    assert len(list_invitations(session, org, InvitationQuery(limit=MAX_LIMIT)).items) == 1


def test_several_invalid_inputs_are_reported_together(session, org):
    """Every invalid field is listed in one ValidationFailed."""
    with pytest.raises(ValidationFailed) as info:
        list_invitations(session, org, InvitationQuery(statuses=["bogus"], order_by="x", limit=0))
    assert [f for f, _ in field_codes(info.value)] == ["status", "order_by", "limit"]


@pytest.mark.parametrize("cursor_field", ["starting_after", "ending_before"])
def test_unknown_cursor_is_refused(session, org, cursor_field):
    """A cursor id that is no invitation is ValidationFailed naming the cursor field and id."""
    invite(session, org, "a@example.com", notify=False)
    with pytest.raises(ValidationFailed) as info:
        list_invitations(session, org, InvitationQuery(**{cursor_field: "inv_nope"}))
    assert field_codes(info.value) == [(cursor_field, "unknown_cursor")]
    assert "'inv_nope'" in info.value.errors[0].message


@pytest.mark.parametrize("plain_rows", [False, True])
def test_a_cursor_at_either_end_gives_an_empty_page_not_an_error(session, org, plain_rows):
    """After the oldest row and before the newest there is nothing: an empty page."""
    first = invite(session, org, "a@example.com", notify=False).invitation.id
    last = invite(session, org, "b@example.com", notify=False).invitation.id
    order = [i.id for i in list_invitations(session, org, InvitationQuery()).items]
    newest, oldest = order[0], order[-1]
    assert {newest, oldest} == {first, last}
    after = list_invitations(
        session, org, InvitationQuery(starting_after=oldest, plain_rows=plain_rows)
    )
    before = list_invitations(
        session, org, InvitationQuery(ending_before=newest, plain_rows=plain_rows)
    )
    assert (after.items, after.has_more, before.items, before.has_more) == ([], False, [], False)
    assert after.total == before.total == 2


@pytest.mark.parametrize("cursor_field", ["starting_after", "ending_before"])
def test_another_orgs_invitation_is_not_a_cursor(session, org, make_org, cursor_field):
    """Another organization's invitation id is refused as a cursor (nothing leaks)."""
    other = make_org("Other", slug="other")
    foreign = invite(session, other, "x@example.com", notify=False).invitation.id
    invite(session, org, "a@example.com", notify=False)
    with pytest.raises(ValidationFailed) as info:
        list_invitations(session, org, InvitationQuery(**{cursor_field: foreign}))
    assert field_codes(info.value) == [(cursor_field, "unknown_cursor")]
    assert foreign in info.value.errors[0].message


# ---------------------------------------------------------------------------
# instance-wide list
# ---------------------------------------------------------------------------


def test_instance_wide_list_spans_organizations(session, org, make_org, clock):
    """With org=None the list, filters, cursors and totals cover every organization."""
    other = make_org("Other", slug="other")
    ours = seed(session, org, clock, batches=1, per_batch=3, prefix="ours")
    theirs = seed(session, other, clock, batches=1, per_batch=2, prefix="theirs")
    revoke_invitation(session, other, theirs[0].id, actor=SYSTEM)
    session.commit()
    everything = list_invitations(session, None, InvitationQuery(limit=50))
    assert set(ids_of(everything)) == {i.id for i in ours + theirs}
    assert ids_of(everything) == expected_order(ours + theirs, "-created_at")
    assert everything.total == 5
    assert everything.totals_by_status == totals(pending=4, revoked=1)
    revoked = list_invitations(session, None, InvitationQuery(statuses=["revoked"]))
    assert ids_of(revoked) == [theirs[0].id]
    searched = list_invitations(session, None, InvitationQuery(query="THEIRS"))
    assert {i.org_id for i in searched.items} == {other.id}
    assert searched.total == 2
    # A cursor from either organization works instance-wide...
    expected = expected_order(ours + theirs, "email")
    page = list_invitations(
        session, None, InvitationQuery(order_by="email", starting_after=expected[1], limit=10)
    )
    assert ids_of(page) == expected[2:]
    # ...while an org's own list stays its own.
    scoped = list_invitations(session, org, InvitationQuery(limit=50))
    assert set(ids_of(scoped)) == {i.id for i in ours}
    assert scoped.totals_by_status == totals(pending=3)


def test_plain_rows_read_only_the_asked_columns_and_never_the_token_hash(session, org, sixty):
    """The API reads every column but the token's hash; the dashboard only its table's."""
    full = list_invitations(session, org, InvitationQuery(limit=5, plain_rows=True))
    objects = list_invitations(session, org, InvitationQuery(limit=5))
    assert [row.id for row in full.items] == [i.id for i in objects.items]
    assert not hasattr(full.items[0], "token_hash")
    assert full.items[0].public_metadata == objects.items[0].public_metadata
    narrow = list_invitations(
        session,
        org,
        InvitationQuery(limit=5, plain_rows=True, columns=("id", "email", "created_at")),
    )
    assert narrow.items[0]._asdict() == {
        "id": objects.items[0].id,
        "email": objects.items[0].email,
        "created_at": objects.items[0].created_at,
    }
