"""The organization's overview: totals per status, acceptance over time, failed emails."""

from __future__ import annotations

from flask import Blueprint
from flask import make_response
from flask import render_template
from flask import request

from webapp.extensions import db
from webapp.models import Organization
from webapp.models.invitations import STATUS_VALUES
from webapp.services.counters import status_totals
from webapp.services.reports import DEFAULT_RANGE
from webapp.services.reports import FAILED_DELIVERY_LIMIT
from webapp.services.reports import RANGES
from webapp.services.reports import AcceptanceReport
from webapp.services.reports import acceptance_report
from webapp.services.reports import failed_deliveries
from webapp.web.charts import LineChart
from webapp.web.charts import line_chart
from webapp.web.dashboard import org_admin_view
from webapp.web.htmx import is_partial
from webapp.web.htmx import vary_on_htmx

blueprint = Blueprint("overview", __name__, url_prefix="/orgs/<slug>/overview")


def duration_text(seconds: float | None) -> str:
    """A time to accept for people: '45 s', '12 min', '3 h 20 min', '2 days 4 h'."""
    if seconds is None:
        return "—"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    if seconds < 86400:
        hours, minutes = divmod(round(seconds / 60), 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(round(seconds / 3600), 24)
    text = f"{days} day{'s' if days != 1 else ''}"
    return f"{text} {hours} h" if hours else text


blueprint.add_app_template_filter(duration_text, "duration")


def _day(value) -> str:
    return f"{value.day} {value:%b}"


def _bucket_label(report: AcceptanceReport, index: int) -> str:
    bucket = report.buckets[index]
    if report.unit == "day":
        return f"{bucket.first:%a} {_day(bucket.first)} {bucket.first.year}"
    return f"{_day(bucket.first)} – {_day(bucket.last)} {bucket.last.year}"


def acceptance_chart(report: AcceptanceReport) -> LineChart:
    """The report's buckets as chart coordinates (created and accepted per bucket)."""
    titles = [
        f"{_bucket_label(report, i)}: {b.created} sent, {b.accepted} accepted"
        for i, b in enumerate(report.buckets)
    ]
    titles[-1] += " (so far)"
    return line_chart(
        [_day(b.first) for b in report.buckets],
        [
            ("created", "Sent", [b.created for b in report.buckets]),
            ("accepted", "Accepted", [b.accepted for b in report.buckets]),
        ],
        titles=titles,
        last_partial=True,  # the report always ends with today
    )


def _days(args) -> int:
    """The ``days`` of the address bar; anything else shows the default range."""
    try:
        days = int(args.get("days", DEFAULT_RANGE))
    except ValueError:
        return DEFAULT_RANGE
    return days if days in RANGES else DEFAULT_RANGE


@blueprint.get("")
@org_admin_view
def index(org: Organization):
    """The overview (full page), or only the range-dependent report for htmx."""
    report = acceptance_report(db.session, org.id, days=_days(request.args))
    context = {
        "org": org,
        "report": report,
        "chart": acceptance_chart(report),
        "ranges": RANGES,
        "bucket_label": lambda i: _bucket_label(report, i),
    }
    if is_partial():
        return vary_on_htmx(make_response(render_template("overview/_report.html", **context)))
    totals = status_totals(db.session, org.id)
    context.update(
        totals=totals,
        total=sum(totals.values()),
        statuses=STATUS_VALUES,
        failed=failed_deliveries(db.session, org.id, limit=FAILED_DELIVERY_LIMIT),
        failed_limit=FAILED_DELIVERY_LIMIT,
    )
    return vary_on_htmx(make_response(render_template("overview/index.html", **context)))
