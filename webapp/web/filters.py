"""Jinja filters for dates and statuses."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

from flask import Flask
from flask import current_app
from flask import g
from markupsafe import Markup

from webapp.clock import utcnow
from webapp.models.invitations import effective_status


def relative_time(value: datetime | None, now: datetime | None = None) -> str:
    """'in 3 days', '5 minutes ago', 'just now'."""
    if value is None:
        return "—"
    now = now or utcnow()
    seconds = (value - now).total_seconds()
    future = seconds > 0
    seconds = abs(seconds)
    if seconds < 45:
        return "just now"
    for size, unit in ((86400 * 30, "month"), (86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = round(seconds / size)
            text = f"{count} {unit}{'s' if count != 1 else ''}"
            return f"in {text}" if future else f"{text} ago"
    return "in a minute" if future else "a minute ago"


def exact_time(value: datetime | None) -> str:
    """'2026-11-22 07:50 UTC' (values are UTC; isoformat is several times faster than
    strftime, which a list calls twice a row)."""
    if not value:
        return "—"
    return value.replace(tzinfo=None).isoformat(" ", "minutes") + " UTC"


def time_element(value: datetime | None, now: datetime | None = None) -> Markup | str:
    """``<time>`` with the exact time as its title and the relative time as its text
    (one call per cell: lists show two a row)."""
    return "—" if value is None else Markup(time_html(value, now))


def time_html(value: datetime | None, now: datetime | None = None) -> str:
    """:func:`time_element`'s markup as plain text, for builders that make their Markup
    once (``webapp.web.invitation_rows``)."""
    if value is None:
        return "—"
    # No escaping needed: the three parts are made here from a datetime, of digits,
    # letters and "-:.+ " only (a list page builds fifty of these).
    iso = value.isoformat()
    # The exact time from the same text ("2026-11-22T07:50:12+00:00" → "2026-11-22
    # 07:50 UTC"), when the value is in UTC as the database layer gives it.
    exact = f"{iso[:10]} {iso[11:16]} UTC" if value.tzinfo is UTC else exact_time(value)
    return f'<time datetime="{iso}" title="{exact}">{relative_time(value, now)}</time>'


def _now() -> dict[str, datetime]:
    """One ``now`` per request, so every row of a page judges expiry by the same clock."""
    if "now" not in g:
        g.now = utcnow()
    return {"now": g.now}


def has_endpoint(name: str) -> bool:
    """Whether a route exists (so the navigation shows only pages that are built)."""
    return name in current_app.view_functions


def register_filters(app: Flask) -> None:
    app.add_template_global(has_endpoint)
    app.add_template_global(effective_status)
    app.add_template_filter(relative_time, "relative")
    app.add_template_filter(exact_time, "exact")
    app.add_template_filter(time_element, "time_element")
    app.context_processor(_now)
