"""The dashboard's time filters: relative text, exact title, one <time> element."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

from webapp.web.filters import exact_time
from webapp.web.filters import relative_time
from webapp.web.filters import time_element

NOW = datetime(2026, 11, 22, 7, 50, 30, 123456, tzinfo=UTC)


def test_exact_time_is_minutes_in_utc():
    assert exact_time(NOW) == "2026-11-22 07:50 UTC"
    assert exact_time(NOW) == NOW.strftime("%Y-%m-%d %H:%M UTC")
    assert exact_time(None) == "—"


def test_relative_time_uses_the_given_clock():
    assert relative_time(NOW - timedelta(days=3), NOW) == "3 days ago"
    assert relative_time(NOW + timedelta(hours=5), NOW) == "in 5 hours"
    assert relative_time(NOW + timedelta(seconds=10), NOW) == "just now"


def test_time_element_has_the_iso_time_the_exact_title_and_the_relative_text():
    created = NOW - timedelta(minutes=5)
    assert str(time_element(created, NOW)) == (
        f'<time datetime="{created.isoformat()}" title="2026-11-22 07:45 UTC">5 minutes ago</time>'
    )
    assert time_element(None, NOW) == "—"


def test_time_element_title_is_the_exact_time_with_or_without_microseconds():
    for value in (NOW, NOW.replace(microsecond=0), NOW.replace(second=0, microsecond=0)):
        assert f'title="{exact_time(value)}"' in str(time_element(value, NOW))
