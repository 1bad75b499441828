"""An organization's activity: its audit events, newest first, filtered and keyset-paged."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field

from sqlalchemy import ColumnElement
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.models import AuditEvent
from webapp.models import Invitation
from webapp.models import Organization
from webapp.models import User
from webapp.services.errors import FieldError
from webapp.services.errors import ValidationFailed
from webapp.services.paging import newest_first_page
from webapp.services.search import contains

# Every type an organization's events can have, in the order a filter offers them.
EVENT_TYPES = (
    "invitation.created",
    "invitation.sent",
    "invitation.resent",
    "invitation.accepted",
    "invitation.declined",
    "invitation.revoked",
    "invitation.expired",
    "invitation.delivery_failed",
    "member.added",
    "member.role_changed",
    "member.removed",
    "role.added",
    "role.renamed",
    "role.removed",
    "org.updated",
)
MAX_LIMIT = 200
MAX_QUERY_LENGTH = 254
INVITATION_ID = re.compile(r"^inv_[0-9a-z]{26}$")


@dataclass
class ActivityQuery:
    """What to show. ``search`` is part of an email address, or a whole invitation id."""

    types: Sequence[str] = ()
    search: str | None = None
    limit: int = 50
    starting_after: str | None = None
    ending_before: str | None = None


@dataclass
class ActivityPage:
    items: list[AuditEvent]
    has_more: bool
    # The users named as actors on this page, by id (deleted users are missing).
    users: dict[str, User] = field(default_factory=dict)


def _check(q: ActivityQuery) -> list[FieldError]:
    errors = []
    for event_type in q.types:
        if event_type not in EVENT_TYPES:
            errors.append(
                FieldError("type", "invalid_type", f"{event_type!r} is not an event type we record")
            )
    if not isinstance(q.limit, int) or not 1 <= q.limit <= MAX_LIMIT:
        errors.append(
            FieldError("limit", "out_of_range", f"limit must be between 1 and {MAX_LIMIT}")
        )
    if q.search is not None and len(q.search) > MAX_QUERY_LENGTH:
        errors.append(FieldError("search", "too_long", "the search is too long"))
    if q.starting_after and q.ending_before:
        errors.append(
            FieldError("ending_before", "conflicting_fields", "use starting_after or ending_before")
        )
    return errors


def _search_condition(org: Organization, search: str) -> ColumnElement[bool]:
    """An invitation id matches its events; an address part matches the events naming it.

    Events such as ``invitation.sent`` carry no address in their data, so they are found
    through their invitation's address.
    """
    if INVITATION_ID.match(search):
        return AuditEvent.invitation_id == search
    search = search.lower()
    invitations = select(Invitation.id).where(
        Invitation.org_id == org.id, contains(Invitation.email_key, search)
    )
    return or_(
        contains(func.lower(AuditEvent.data["email"].as_string()), search),
        AuditEvent.invitation_id.in_(invitations),
    )


def list_activity(session: Session, org: Organization, q: ActivityQuery) -> ActivityPage:
    """One page of the org's audit events, newest first (index ``org_id, created_at, id``)."""
    errors = _check(q)
    if errors:
        raise ValidationFailed(errors)
    conditions: list[ColumnElement[bool]] = [AuditEvent.org_id == org.id]
    types = list(dict.fromkeys(q.types))
    if types:
        conditions.append(AuditEvent.type.in_(types))
    search = (q.search or "").strip()
    if search:
        conditions.append(_search_condition(org, search))

    rows, has_more = newest_first_page(
        session,
        select(AuditEvent).where(*conditions),
        AuditEvent,
        org_id=org.id,
        limit=q.limit,
        starting_after=q.starting_after,
        ending_before=q.ending_before,
        noun="an event",
    )
    user_ids = {e.actor_id for e in rows if e.actor_type == "user" and e.actor_id}
    users = (
        {u.id: u for u in session.scalars(select(User).where(User.id.in_(user_ids)))}
        if user_ids
        else {}
    )
    return ActivityPage(items=rows, has_more=has_more, users=users)
