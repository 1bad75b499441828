"""Acceptance-ticket verification: the product's proof that an invitee accepted."""

from __future__ import annotations

from webapp.api import schemas
from webapp.api.blueprint import blueprint
from webapp.api.operations import Answer
from webapp.api.operations import ApiCall
from webapp.api.operations import operation
from webapp.api.serializers import invitation_json
from webapp.api.serializers import member_json
from webapp.api.serializers import user_json
from webapp.clock import utcnow
from webapp.extensions import db
from webapp.services.tickets import verify_ticket


@operation(
    blueprint,
    "POST",
    "/acceptance-tickets/verify",
    summary="Verify an acceptance ticket (once)",
    tag="Acceptance",
    body=schemas.TicketVerify,
    response=schemas.VerifiedTicket,
    problems=("validation_failed", "invalid_ticket"),
)
def verify(call: ApiCall) -> Answer:
    """After accepting, the invitee is redirected to your `redirect_url` with
    `invitation_id`, `status=accepted` and `ticket`. Post the ticket here within 10
    minutes: the answer is the invitation, the user and their membership. A ticket
    verifies once; a second try, a tampered or an expired ticket is 422
    `invalid_ticket` (with `reason`). An organization key verifies only its own
    organization's tickets."""
    verified = verify_ticket(db.session, call.body.ticket, org_id=call.principal.org_id)
    return Answer(
        {
            "object": "acceptance",
            "invitation": invitation_json(verified.invitation, utcnow()),
            "user": user_json(verified.user),
            "membership": member_json(verified.membership),
        }
    )
