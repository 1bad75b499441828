"""The invitation table's rows, built in Python: every person's value escaped, the
actions each status allows, the delivery cell."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import escape

from webapp.web.invitation_rows import escape_text
from webapp.web.invitation_rows import invitation_detail_cells
from webapp.web.invitation_rows import invitation_row

NOW = datetime(2026, 11, 22, 7, 50, tzinfo=UTC)
HOSTILE = '<img src=x onerror=alert(1)>" hx-get="/logout'
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;&#34; hx-get=&#34;/logout"


def row(**changes):
    values = {
        "id": "inv_1",
        "email": "ada@example.com",
        "role": "member",
        "status": "pending",
        "source": "dashboard",
        "inviter_api_key_id": None,
        "created_at": NOW - timedelta(days=1),
        "expires_at": NOW + timedelta(days=6),
        "delivery_status": "sent",
        "delivery_error": None,
    }
    values.update(changes)
    return SimpleNamespace(**values)


def test_every_value_a_person_chose_renders_as_text():
    """Address, role, inviter name, the server's reply, the notice, the id and the
    list URL are escaped, quotes included (they sit in attributes too)."""
    invitation = row(
        id=f"inv_{HOSTILE}",
        email=HOSTILE,
        role=HOSTILE,
        delivery_status="failed",
        delivery_error=HOSTILE,
    )
    html = str(invitation_row(invitation, HOSTILE, NOW, f"/orgs/{HOSTILE}", HOSTILE, "info"))
    assert "<img" not in html and 'hx-get="/logout' not in html
    assert html.count(ESCAPED) >= 7  # email, role, inviter, reply twice, notice, id, url


@pytest.mark.parametrize(
    ("status", "expires_in", "actions"),
    [
        ("pending", timedelta(days=1), ["resend", "revoke"]),
        ("pending", -timedelta(minutes=1), ["resend"]),  # lapsed: shown as expired
        ("expired", -timedelta(days=1), ["resend"]),
        ("accepted", timedelta(days=1), []),
        ("declined", timedelta(days=1), []),
        ("revoked", timedelta(days=1), []),
    ],
)
def test_actions_follow_the_effective_status(status, expires_in, actions):
    html = str(invitation_row(row(status=status, expires_at=NOW + expires_in), None, NOW, "/l"))
    assert [a for a in ("resend", "revoke") if f'href="/l/inv_1/{a}"' in html] == actions
    for action in actions:
        assert f'hx-get="/l/inv_1/{action}" hx-target="closest tr" hx-swap="outerHTML"' in html
    shown = "expired" if expires_in < timedelta(0) else status
    assert f'<span class="badge badge--{shown}">{shown.capitalize()}</span>' in html
    expiry_shown = "<time" in html.split('data-label="Expires">')[1].split("</td>")[0]
    assert expiry_shown == (shown in ("pending", "expired"))


@pytest.mark.parametrize(
    ("delivery_status", "text"),
    [("sent", "Sent"), ("queued", "Queued"), ("not_sent", "Link handed out"), (None, "—")],
)
def test_delivery_cell_says_what_happened_to_the_email(delivery_status, text):
    html = str(invitation_detail_cells(row(delivery_status=delivery_status), "pending", None, NOW))
    assert f'<td data-label="Email delivery">{text}</td>' in html


def test_inviter_cell_names_the_user_the_key_or_the_source():
    def inviter(invitation, name):
        html = str(invitation_detail_cells(invitation, "pending", name, NOW))
        return html.split('data-label="Invited by">')[1].split("</td>")[0]

    assert inviter(row(), "Grace") == "Grace"
    assert inviter(row(inviter_api_key_id="key_1"), None) == "API key"
    assert inviter(row(source="csv_import"), None) == "csv_import"


def test_a_page_of_rows_keeps_the_order_and_each_inviter():
    from webapp.web.invitation_rows import invitation_rows

    first = row(id="inv_a", inviter_user_id="user_1")
    second = row(id="inv_b", inviter_user_id=None, source="api")
    html = str(invitation_rows([first, second], {"user_1": "Grace"}, NOW, "/l"))
    assert html.index('id="invitation-inv_a"') < html.index('id="invitation-inv_b"')
    assert '<td data-label="Invited by">Grace</td>' in html
    assert '<td data-label="Invited by">api</td>' in html


@given(st.text())
def test_cell_escaping_is_markupsafes(value):
    """Rows escape without making a Markup per cell, into exactly what Jinja writes."""
    assert escape_text(value) == str(escape(value))
