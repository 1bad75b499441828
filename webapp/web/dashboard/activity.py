"""The organization's activity feed: its audit events, filtered and paged."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from flask import Blueprint
from flask import make_response
from flask import render_template
from flask import request

from webapp.extensions import db
from webapp.models import Organization
from webapp.services.activity import EVENT_TYPES
from webapp.services.activity import ActivityQuery
from webapp.services.activity import list_activity
from webapp.services.errors import ValidationFailed
from webapp.web.dashboard import org_admin_view
from webapp.web.htmx import is_partial
from webapp.web.htmx import vary_on_htmx

blueprint = Blueprint("activity", __name__, url_prefix="/orgs/<slug>/activity")

PAGE_SIZE = 50
TYPE_LABELS = {
    "invitation.created": "Invitation created",
    "invitation.sent": "Invitation email delivered",
    "invitation.resent": "Invitation resent",
    "invitation.accepted": "Invitation accepted",
    "invitation.declined": "Invitation declined",
    "invitation.revoked": "Invitation revoked",
    "invitation.expired": "Invitation expired",
    "invitation.delivery_failed": "Email delivery failed",
    "member.added": "Member added",
    "member.role_changed": "Member role changed",
    "member.removed": "Member removed",
    "role.added": "Role added",
    "role.renamed": "Role renamed",
    "role.removed": "Role removed",
    "org.updated": "Settings changed",
}


@dataclass
class FeedView:
    """The feed's state as it appears in the address bar."""

    type: str = ""
    q: str = ""
    after: str | None = None
    before: str | None = None

    @classmethod
    def from_args(cls, args) -> FeedView:
        """Read the query string; an unknown type falls back to every type."""
        event_type = args.get("type", "")
        return cls(
            type=event_type if event_type in EVENT_TYPES else "",
            q=args.get("q", "").strip()[:254],
            after=args.get("after") or None,
            before=None if args.get("after") else (args.get("before") or None),
        )

    def query(self) -> ActivityQuery:
        return ActivityQuery(
            types=(self.type,) if self.type else (),
            search=self.q or None,
            limit=PAGE_SIZE,
            starting_after=self.after,
            ending_before=self.before,
        )

    def args(self, **changes) -> str:
        """The query string of this view with some changes (cursors reset unless given)."""
        values = {"type": self.type, "q": self.q}
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v})


@blueprint.get("")
@org_admin_view
def index(org: Organization):
    """The feed (full page), or just the feed region for htmx (filters, pages)."""
    view = FeedView.from_args(request.args)
    try:
        page = list_activity(db.session, org, view.query())
    except ValidationFailed:
        if not (view.after or view.before):
            raise
        view.after = view.before = None  # a stale cursor: start again from the newest
        page = list_activity(db.session, org, view.query())
    context = {"org": org, "view": view, "page": page, "type_labels": TYPE_LABELS}
    template = "activity/_feed.html" if is_partial() else "activity/index.html"
    return vary_on_htmx(make_response(render_template(template, **context)))
