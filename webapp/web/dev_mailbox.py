"""/dev/mailbox: what the ``dev`` mail backend kept, readable and clickable (dev only)."""

from __future__ import annotations

import email
import email.policy
import re

from flask import Blueprint
from flask import abort
from flask import current_app
from flask import make_response
from flask import render_template
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import DevMailboxMessage

blueprint = Blueprint("dev_mailbox", __name__, url_prefix="/dev/mailbox")

LINK = re.compile(r"https?://[^\s<>\"']+")
# The email's own HTML (inline styles, as emails need) shown alone, sandboxed, inert.
EMAIL_HTML_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'; sandbox allow-popups "
    "allow-top-navigation-by-user-activation"
)


@blueprint.before_request
def _only_with_dev_backend():
    """The mailbox exists only while the dev backend is on (it holds live links)."""
    if current_app.config.get("MAIL_BACKEND") != "dev":
        abort(404)


@blueprint.after_request
def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


def _parse(row: DevMailboxMessage):
    return email.message_from_bytes(row.raw, policy=email.policy.default)


@blueprint.get("")
def index():
    """The newest kept messages."""
    rows = db.session.scalars(
        select(DevMailboxMessage)
        .order_by(DevMailboxMessage.created_at.desc(), DevMailboxMessage.id.desc())
        .limit(200)
    ).all()
    return render_template("dev_mailbox/index.html", messages=rows)


@blueprint.get("/<int:message_id>")
def show(message_id: int):
    """One message: headers, the plain-text part and its links."""
    row = db.session.get(DevMailboxMessage, message_id) or abort(404)
    parsed = _parse(row)
    text_part = parsed.get_body(preferencelist=("plain",))
    text = text_part.get_content() if text_part else ""
    return render_template(
        "dev_mailbox/show.html",
        message=row,
        headers=[(k, str(v)) for k, v in parsed.items()],
        text=text,
        links=list(dict.fromkeys(LINK.findall(text))),
    )


@blueprint.get("/<int:message_id>/html")
def html(message_id: int):
    """The HTML part as its own sandboxed document."""
    row = db.session.get(DevMailboxMessage, message_id) or abort(404)
    part = _parse(row).get_body(preferencelist=("html",)) or abort(404)
    response = make_response(part.get_content())
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    response.headers["Content-Security-Policy"] = EMAIL_HTML_CSP
    return response
