"""The invitation table's rows as HTML, built in Python.

A list page shows up to a hundred rows of a dozen cells each. Rendered by a Jinja macro,
each row cost about 270 Python calls (an escape, a Markup and an attribute lookup per
expression, two macro invocations): two thirds of the list fragment's work, and the
reason it served fewer requests than the benchmark asks for. Built here, a row costs
about forty. Every value that comes from a person (address, role, inviter, the mail
server's reply, ids) goes through ``escape``; the rest are literals or made from
datetimes and numbers. Templates call these as globals (``invitation_rows``,
``invitation_row``, ``invitation_detail_cells``), so the list, the single-row swap and
the instance-wide list share one markup.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask import Flask
from markupsafe import Markup
from markupsafe import escape

from webapp.models.invitations import effective_status
from webapp.web.filters import time_html


def escape_text(value: str) -> str:
    """What ``markupsafe.escape`` makes of a string (the same five entities, so rows read
    like the rest of the page), as plain text: no Markup object per cell."""
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;")
    )


# Invitation.delivery_status → what the Email delivery cell says ("failed" has its own).
DELIVERY_LABELS = {"sent": "Sent", "queued": "Queued", "not_sent": "Link handed out"}


def _delivery_cell(invitation: Any) -> str:
    if invitation.delivery_status == "failed":
        error = escape_text(invitation.delivery_error or "")
        return (
            f'<span class="badge badge--failed" title="{error}">Failed</span> '
            f'<span class="delivery-error">{error}</span>'
        )
    return DELIVERY_LABELS.get(invitation.delivery_status, "—")


def _inviter_cell(invitation: Any, inviter: str | None) -> str:
    if inviter:
        return escape_text(inviter)
    if invitation.inviter_api_key_id:
        return "API key"
    return escape_text(invitation.source)


def invitation_detail_cells(
    invitation: Any, status: str, inviter: str | None, now: datetime
) -> Markup:
    """The cells every invitation list shares, from Role to Email delivery.

    ``invitation``: an Invitation or a list row with the same attributes; ``status``: its
    effective status; ``inviter``: the inviting user's name or email (None when no user
    invited); ``now``: the page's clock, so that every row's relative times agree.
    """
    return Markup(_detail_cells_html(invitation, status, inviter, now))


# The builders below return plain text, already escaped: Markup is made once, where
# the templates receive it (a Markup per cell cost as much as escaping the cell).


def _detail_cells_html(invitation: Any, status: str, inviter: str | None, now: datetime) -> str:
    expires = time_html(invitation.expires_at, now) if status in ("pending", "expired") else "—"
    return (
        f'<td data-label="Role">{escape_text(invitation.role)}</td>\n'
        f'<td data-label="Status"><span class="badge badge--{status}">'
        f"{status.capitalize()}</span></td>\n"
        f'<td data-label="Invited by">{_inviter_cell(invitation, inviter)}</td>\n'
        f'<td data-label="Created">{time_html(invitation.created_at, now)}</td>\n'
        f'<td data-label="Expires">{expires}</td>\n'
        f'<td data-label="Email delivery">{_delivery_cell(invitation)}</td>\n'
    )


def _action(row_url: str, action: str, label: str, style: str) -> str:
    url = f"{row_url}/{action}"
    return (
        f'<a class="button button--small button--{style}" href="{url}" hx-get="{url}" '
        f'hx-target="closest tr" hx-swap="outerHTML">{label}</a>'
    )


def invitation_row(
    invitation: Any,
    inviter: str | None,
    now: datetime,
    row_base: str,
    notice: str | None = None,
    notice_level: str | None = None,
) -> Markup:
    """One invitation's row with its actions: Resend and Revoke while pending, Resend
    once expired. ``row_base`` is the list's URL; ``notice`` shows in the actions cell
    (after revoke, resend or cancel)."""
    return Markup(_row_html(invitation, inviter, now, escape_text(row_base), notice, notice_level))


def _row_html(
    invitation: Any,
    inviter: str | None,
    now: datetime,
    escaped_row_base: str,
    notice: str | None = None,
    notice_level: str | None = None,
) -> str:
    status = effective_status(invitation.status, invitation.expires_at, now)
    invitation_id = escape_text(invitation.id)
    row_url = f"{escaped_row_base}/{invitation_id}"
    actions = []
    if notice:
        actions.append(
            f'<p class="row-notice row-notice--{escape(notice_level)}" role="status">'
            f"{escape(notice)}</p>"
        )
    if status in ("pending", "expired"):
        actions.append(_action(row_url, "resend", "Resend", "quiet"))
    if status == "pending":
        actions.append(_action(row_url, "revoke", "Revoke", "danger"))
    return (
        f'<tr id="invitation-{invitation_id}" class="invitation-row">\n'
        f'<td data-label="Email" class="breakable">{escape_text(invitation.email)}</td>\n'
        f"{_detail_cells_html(invitation, status, inviter, now)}"
        f'<td class="actions">{"".join(actions)}</td>\n'
        "</tr>\n"
    )


def invitation_rows(
    invitations: Iterable[Any], inviter_names: Mapping[str, str], now: datetime, row_base: str
) -> Markup:
    """Every row of a list page (one template call for the page, not one per row)."""
    base = escape_text(row_base)
    return Markup(
        "".join(_row_html(i, inviter_names.get(i.inviter_user_id), now, base) for i in invitations)
    )


def register_row_builders(app: Flask) -> None:
    app.add_template_global(invitation_rows)
    app.add_template_global(invitation_row)
    app.add_template_global(invitation_detail_cells)
