"""The organization overview: totals, acceptance over time, time to accept, failed emails."""

from __future__ import annotations

import re
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import timedelta
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from sqlalchemy import text

from tests.dashboard_support import BOOSTED
from tests.dashboard_support import FRAGMENT
from tests.dashboard_support import HISTORY_RESTORE
from tests.dashboard_support import make_member
from tests.dashboard_support import make_superuser
from tests.dashboard_support import sign_in
from webapp.extensions import db
from webapp.models import Organization
from webapp.models import OutboxMessage
from webapp.services.actors import SYSTEM
from webapp.services.invitation_transitions import accept_invitation
from webapp.services.invitation_transitions import decline_invitation
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import create_invitation
from webapp.services.organizations import create_organization
from webapp.services.outbox import record_failure
from webapp.services.reports import acceptance_report
from webapp.services.reports import bucket_days
from webapp.services.reports import failed_deliveries
from webapp.web.charts import line_chart
from webapp.web.charts import nice_scale
from webapp.web.dashboard.overview import duration_text
from webapp.web.security import content_security_policy

NOW = datetime(2030, 3, 15, 12, 0, tzinfo=UTC)
OVERVIEW = "/orgs/acme/overview"
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'


def _invite(org, email, *, notify=False):
    issued = create_invitation(
        db.session, org, InvitationRequest(email=email, notify=notify), actor=SYSTEM
    )
    db.session.commit()
    return issued.invitation.id, issued.accept_url.rsplit("/", 1)[1]


def _accept(token):
    accept_invitation(db.session, token, name="Someone")
    db.session.commit()


@pytest.fixture
def seeded(app, time_machine):
    """Acme's invitations at known times (now is 2030-03-15 12:00 UTC).

    Created per UTC day: 3 Feb: 1 (accepted after 5 days) · 13 Mar: 3 (a after 1 h,
    b after 1 day, c declined) · 14 Mar: 3 (d after 30 min; e; h at 23:59:59) ·
    15 Mar: 2 (i at 00:00:00; f after 2 h). Another org's invitations never count.
    """

    def at(when: str) -> None:
        time_machine.move_to(datetime.fromisoformat(when).replace(tzinfo=UTC), tick=False)

    with app.app_context():
        at("2030-01-01 00:00:00")
        org = create_organization(db.session, name="Acme", slug="acme")
        other = create_organization(db.session, name="Other", slug="other")
        db.session.commit()
        at("2030-02-03 10:00:00")
        _, g = _invite(org, "g@example.com")
        at("2030-02-08 10:00:00")
        _accept(g)
        at("2030-03-13 09:00:00")
        _, a = _invite(org, "a@example.com")
        _, b = _invite(org, "b@example.com")
        _, c = _invite(org, "c@example.com")
        _, x = _invite(other, "x@example.com")
        at("2030-03-13 10:00:00")
        _accept(a)
        _accept(x)
        decline_invitation(db.session, c)
        db.session.commit()
        at("2030-03-14 09:00:00")
        _accept(b)
        at("2030-03-14 15:00:00")
        _, d = _invite(org, "d@example.com")
        _invite(org, "e@example.com")
        at("2030-03-14 15:30:00")
        _accept(d)
        at("2030-03-14 23:59:59")
        _invite(org, "h@example.com")
        at("2030-03-15 00:00:00")
        _invite(org, "i@example.com")
        at("2030-03-15 08:00:00")
        _, f = _invite(org, "f@example.com")
        at("2030-03-15 10:00:00")
        _accept(f)
        at(NOW.isoformat())
        admin = make_member(org, "boss@example.com", "admin")
        return {"org_id": org.id, "other_id": other.id, "admin": admin}


@pytest.fixture
def client(app, seeded):
    client = app.test_client()
    sign_in(client, seeded["admin"])
    return client


# --- the report service: exact numbers on both databases ---------------------------------


def test_daily_report_counts_per_utc_day_and_time_to_accept(app, seeded):
    """30 days: per-day sent/accepted of Acme only, the UTC day boundary, nearest-rank times."""
    with app.app_context():
        if db.session.get_bind().dialect.name == "postgresql":
            # Buckets are UTC days whatever the connection's time zone.
            db.session.execute(text("SET TIME ZONE 'Pacific/Auckland'"))
        report = acceptance_report(db.session, seeded["org_id"], days=30, now=NOW)
    assert report.unit == "day" and len(report.buckets) == 30
    assert report.start == datetime(2030, 2, 14, tzinfo=UTC)
    assert report.end == datetime(2030, 3, 16, tzinfo=UTC)
    by_day = {b.first: (b.created, b.accepted) for b in report.buckets if b.created}
    assert by_day == {
        date(2030, 3, 13): (3, 2),
        date(2030, 3, 14): (3, 1),
        date(2030, 3, 15): (2, 1),
    }
    assert (report.created, report.accepted) == (8, 4)
    assert report.acceptance_rate == 0.5
    # Times to accept: 30 min, 1 h, 2 h, 1 day -> median rank 2, p90 rank 4.
    assert report.median_seconds == 3600
    assert report.p90_seconds == 86400


def test_weekly_report_beyond_sixty_days(app, seeded):
    """90 days: 13 whole weeks ending today; February's invitation lands in its week."""
    with app.app_context():
        report = acceptance_report(db.session, seeded["org_id"], days=90, now=NOW)
    assert report.unit == "week" and len(report.buckets) == 13
    assert report.buckets[-1].first == date(2030, 3, 9)
    assert report.buckets[-1].last == date(2030, 3, 15)
    assert report.buckets[0].first == date(2029, 12, 15)
    counts = [(b.first, b.created, b.accepted) for b in report.buckets if b.created]
    assert counts == [(date(2030, 2, 2), 1, 1), (date(2030, 3, 9), 8, 4)]
    assert (report.created, report.accepted) == (9, 5)
    # 30 min, 1 h, 2 h, 1 day, 5 days: median rank 3, p90 rank 5.
    assert report.median_seconds == 7200
    assert report.p90_seconds == 5 * 86400


def test_empty_report(app, seeded):
    """No invitations in the window: zeros, no rate, no times."""
    with app.app_context():
        report = acceptance_report(
            db.session, seeded["org_id"], days=30, now=NOW.replace(year=2031)
        )
    assert report.created == report.accepted == 0
    assert report.acceptance_rate is None
    assert report.median_seconds is None and report.p90_seconds is None
    assert all(b.created == b.accepted == 0 for b in report.buckets)


def test_failed_deliveries_newest_first_up_to_the_limit(app, time_machine):
    """Only Acme's invitations whose email failed for good, newest first, at most 20."""
    time_machine.move_to(NOW, tick=False)
    with app.app_context():
        org = create_organization(db.session, name="Acme", slug="acme")
        db.session.commit()
        ids = []
        for n in range(22):
            time_machine.shift(timedelta(minutes=1))
            invitation_id, _ = _invite(org, f"n{n}@example.com", notify=True)
            ids.append(invitation_id)
        outbox = dict(
            db.session.execute(select(OutboxMessage.invitation_id, OutboxMessage.id)).all()
        )
        for invitation_id in ids[:21]:  # the newest one is still queued
            record_failure(db.session, outbox[invitation_id], "550 no such user", permanent=True)
        db.session.commit()
        failed = failed_deliveries(db.session, org.id)
    assert [i.id for i in failed] == list(reversed(ids[:21]))[:20]
    assert {i.delivery_error for i in failed} == {"550 no such user"}


# --- pure functions -----------------------------------------------------------------------


def test_bucket_days():
    today = date(2030, 3, 15)
    unit, spans = bucket_days(today, 30)
    assert unit == "day" and len(spans) == 30
    assert spans[0] == (date(2030, 2, 14), date(2030, 2, 14)) and spans[-1] == (today, today)
    unit, spans = bucket_days(today, 365)
    assert unit == "week" and len(spans) == 53
    assert spans[-1] == (date(2030, 3, 9), today)
    assert all((last - first).days == 6 for first, last in spans)
    assert all(spans[i][1] + timedelta(days=1) == spans[i + 1][0] for i in range(52))
    with pytest.raises(ValueError):
        bucket_days(today, 0)


@pytest.mark.parametrize(
    ("maximum", "expected"),
    [(0, (1, 1)), (1, (1, 1)), (3, (3, 1)), (7, (8, 2)), (10, (10, 5)), (99, (100, 50))],
)
def test_nice_scale(maximum, expected):
    """The y axis tops out at a round number in steps of 1, 2 or 5 times a power of ten."""
    assert nice_scale(maximum) == expected


def test_line_chart_maps_values_to_points():
    """Bands along x, 0 at the bottom, the round top at the top edge."""
    chart = line_chart(
        ["a", "b", "c"],
        [("created", "Sent", [0, 5, 10]), ("accepted", "Accepted", [0, 0, 2])],
        width=300,
        height=100,
        margin=(0, 0, 0, 0),
    )
    created, accepted = chart.series
    assert [(p.x, p.y) for p in created.points] == [(50, 100), (150, 50), (250, 0)]
    assert [(p.x, p.y) for p in accepted.points] == [(50, 100), (150, 100), (250, 80)]
    assert created.polyline == "50,100 150,50 250,0" and created.tail == ""
    assert [(t.value, t.y) for t in chart.y_ticks] == [(0, 100), (5, 50), (10, 0)]
    assert [(c.x, c.width, c.title) for c in chart.columns] == [
        (0, 100, "a"),
        (100, 100, "b"),
        (200, 100, "c"),
    ]
    assert [lb.text for lb in chart.x_labels] == ["a", "b", "c"]


def test_line_chart_margins_partial_last_bucket_and_label_thinning():
    chart = line_chart(
        [str(n) for n in range(30)],
        [("created", "Sent", [1] * 30)],
        width=340,
        height=120,
        margin=(10, 10, 10, 30),
        last_partial=True,
    )
    (series,) = chart.series
    assert (chart.left, chart.top, chart.right, chart.bottom) == (30, 10, 330, 110)
    assert series.points[0].x == 35 and series.points[-1].x == 325
    assert {p.y for p in series.points} == {10}
    assert series.polyline.count(",") == 29
    assert series.tail == "315,10 325,10"
    # At most 7 labels, always including the newest bucket.
    assert len(chart.x_labels) <= 7 and chart.x_labels[-1].text == "29"


def test_line_chart_checks_lengths():
    with pytest.raises(ValueError):
        line_chart(["a", "b"], [("created", "Sent", [1])])


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "—"),
        (42, "42 s"),
        (1800, "30 min"),
        (3600, "1 h"),
        (3600 * 3 + 1200, "3 h 20 min"),
        (86400, "1 day"),
        (86400 * 2 + 3600 * 4, "2 days 4 h"),
    ],
)
def test_duration_text(seconds, text):
    assert duration_text(seconds) == text


# --- the page -------------------------------------------------------------------------------


def test_page_shows_totals_report_and_chart(client, time_machine):
    """Totals per status from the counters, the 30-day numbers, and an accessible chart."""
    time_machine.move_to(NOW, tick=False)
    response = client.get(OVERVIEW)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    tiles = dict(
        (label, int(value.replace(",", "")))
        for value, label in re.findall(
            r'stat-tile__value">([\d,]+)</span>\s*<span class="stat-tile__label">(\w[\w ]*)<',
            page,
        )
    )
    assert tiles == {
        "All invitations": 9,
        "Pending": 3,
        "Accepted": 5,
        "Declined": 1,
        "Revoked": 0,
        "Expired": 0,
    }
    stats = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", page))
    assert stats == {
        "Sent": "8",
        "Accepted": "4",
        "Acceptance rate": "50%",
        "Median time to accept": "1 h",
        "90% accepted within": "1 day",
    }
    assert '<svg class="chart"' in page and 'role="img"' in page
    assert 'aria-labelledby="acceptance-chart-title acceptance-chart-desc"' in page
    assert "8 invitations sent and 4 of them accepted, per day, from 2030-02-14 to 2030-03-15" in (
        page
    )
    assert "<title>Fri 15 Mar 2030: 2 sent, 1 accepted (so far)</title>" in page
    # The numbers behind the chart, as a table.
    rows = re.findall(
        r'<time datetime="(2030-03-1\d)">[^<]+</time></th><td>(\d+)</td><td>(\d+)<', page
    )
    assert rows[:3] == [
        ("2030-03-15", "2", "1"),
        ("2030-03-14", "3", "1"),
        ("2030-03-13", "3", "2"),
    ]
    assert '<p class="empty">No failed emails.' in page
    # Strict CSP: no inline styles, scripts or hx-on anywhere on the page.
    assert response.headers["Content-Security-Policy"] == content_security_policy()
    assert "style=" not in page and "<style" not in page and "hx-on" not in page
    assert len(re.findall(r"<script", page)) == 1
    assert "css/overview.css" in page


def test_range_links_and_fragment(client, time_machine):
    """Range links swap the report with htmx and push the URL; 90 days is per week."""
    time_machine.move_to(NOW, tick=False)
    page = client.get(OVERVIEW).get_data(as_text=True)
    for days in (30, 90, 365):
        href = f"{OVERVIEW}?days={days}"
        link = re.search(rf'<a href="{re.escape(href)}"[^>]*>', page).group(0)
        assert f'hx-get="{href}"' in link and 'hx-push-url="true"' in link
        assert 'hx-target="#overview-report"' in link
        assert ("aria-current" in link) == (days == 30)
    fragment = client.get(f"{OVERVIEW}?days=90", headers=FRAGMENT)
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "HX-Request" in fragment.headers["Vary"]
    assert "<html" not in body and body.lstrip().startswith('<section id="overview-report"')
    assert "per week" in body and "stat-tile" not in body and "Emails that failed" not in body
    assert re.search(r'href="[^"]*days=90"[^>]*aria-current="page"', body)
    assert (
        "<dt>Sent</dt><dd>9</dd>" in body and "<dt>Median time to accept</dt><dd>2 h</dd>" in body
    )
    for headers in (BOOSTED, HISTORY_RESTORE):
        full = client.get(f"{OVERVIEW}?days=90", headers=headers).get_data(as_text=True)
        assert "<html" in full and "Emails that failed" in full and "per week" in full


def test_unknown_range_falls_back_to_thirty_days(client, time_machine):
    time_machine.move_to(NOW, tick=False)
    for value in ("7", "abc", "-1", ""):
        page = client.get(f"{OVERVIEW}?days={value}").get_data(as_text=True)
        assert re.search(r'href="[^"]*days=30"[^>]*aria-current="page"', page), value


def test_failed_emails_listed_with_reason_and_link(app, seeded, client, time_machine):
    """Each failed email shows its reason (escaped) and links to the list filtered by it."""
    time_machine.move_to(NOW, tick=False)
    with app.app_context():
        org = db.session.get(Organization, seeded["org_id"])
        invitation_id, _ = _invite(org, "Bounce.Me@example.com", notify=True)
        outbox_id = db.session.scalar(
            select(OutboxMessage.id).where(OutboxMessage.invitation_id == invitation_id)
        )
        record_failure(db.session, outbox_id, f"550 mailbox unavailable {HOSTILE}", permanent=True)
        db.session.commit()
    page = client.get(OVERVIEW).get_data(as_text=True)
    section = page.split('id="failed-heading"', 1)[1]
    assert 'href="/orgs/acme/invitations?q=bounce.me@example.com">Bounce.Me@example.com</a>' in (
        section
    )
    assert "550 mailbox unavailable &lt;script&gt;alert(1)&lt;/script&gt;" in section
    assert "<script>alert(1)" not in page and "<img src=x" not in page


def test_hostile_org_name_is_escaped(app, time_machine):
    """An organization named like markup renders as text (title, heading, switcher)."""
    time_machine.move_to(NOW, tick=False)
    with app.app_context():
        create_organization(db.session, name=HOSTILE, slug="evil")
        db.session.commit()
        person = make_superuser()
    client = app.test_client()
    sign_in(client, person)
    page = client.get("/orgs/evil/overview").get_data(as_text=True)
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    )
    assert "<script>alert(1)" not in page and "<img src=x" not in page


# --- who may see it -------------------------------------------------------------------------


def test_authorization(app, seeded):
    """Anonymous: sign in; a plain member: 403; another org's admin: 404; admins: 200."""
    anonymous = app.test_client()
    response = anonymous.get(OVERVIEW)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login" and parse_qs(location.query)["next"] == [OVERVIEW]
    partial = anonymous.get(OVERVIEW, headers=FRAGMENT)
    assert partial.status_code == 401 and partial.headers["HX-Redirect"].startswith("/login")

    with app.app_context():
        acme = db.session.get(Organization, seeded["org_id"])
        other = db.session.get(Organization, seeded["other_id"])
        people = {
            "member": (make_member(acme, "member@example.com", "member"), 403),
            "other admin": (make_member(other, "stranger@example.com", "admin"), 404),
            "admin": (seeded["admin"], 200),
            "superuser": (make_superuser(), 200),
        }
    for name, (person, status) in people.items():
        client = app.test_client()
        sign_in(client, person)
        assert client.get(OVERVIEW).status_code == status, name
        assert client.get(OVERVIEW, headers=FRAGMENT).status_code == status, name
    assert client.get("/orgs/nope/overview").status_code == 404  # the superuser
