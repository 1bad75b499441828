"""How OrgInvites' invitation statuses read through each vendor's API, and back.

A vendor status filter becomes the set of OrgInvites statuses that read as it, so a
filter and the statuses in its results always agree. ``None`` means the vendor never
shows such an invitation (OpenAI deletes an invite for good: a revoked one is gone).
Statuses are *effective* ones: a pending invitation past its expiry reads as expired.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from datetime import datetime

from webapp.models import Invitation
from webapp.models import InvitationStatus
from webapp.services.errors import ValidationFailed

PENDING = InvitationStatus.PENDING.value
ACCEPTED = InvitationStatus.ACCEPTED.value
DECLINED = InvitationStatus.DECLINED.value
REVOKED = InvitationStatus.REVOKED.value
EXPIRED = InvitationStatus.EXPIRED.value

StatusMap = Mapping[str, str | None]

# Declined has no vendor counterpart: like an expired invitation it can no longer be
# used and no admin withdrew it, so it reads as expired everywhere.
CLERK: StatusMap = {
    PENDING: "pending",
    ACCEPTED: "accepted",
    REVOKED: "revoked",
    EXPIRED: "expired",
    DECLINED: "expired",
}
OPENAI: StatusMap = {
    PENDING: "pending",
    ACCEPTED: "accepted",
    EXPIRED: "expired",
    DECLINED: "expired",
    REVOKED: None,
}
ANTHROPIC: StatusMap = {
    PENDING: "pending",
    ACCEPTED: "accepted",
    EXPIRED: "expired",
    DECLINED: "expired",
    REVOKED: "deleted",
}


def vendor_status(table: StatusMap, invitation: Invitation, now: datetime) -> str | None:
    """What the vendor calls this invitation's status now (None: the vendor hides it)."""
    return table[invitation.effective_status(now)]


def native_statuses(table: StatusMap, vendor_statuses: Iterable[str]) -> list[str]:
    """The OrgInvites statuses that read as any of ``vendor_statuses``."""
    wanted = set(vendor_statuses)
    return [native for native, shown in table.items() if shown is not None and shown in wanted]


def filter_statuses(
    table: StatusMap, field: str, wanted: Iterable[str], accepted: Iterable[str]
) -> list[str]:
    """``native_statuses`` of a vendor's status filter; a value it does not take is named."""
    wanted, accepted = list(wanted), tuple(accepted)
    unknown = [s for s in wanted if s not in accepted]
    if unknown:
        raise ValidationFailed.single(
            field,
            "invalid_status",
            f"{unknown[0]!r} is not a status (one of: {', '.join(accepted)})",
        )
    return native_statuses(table, wanted)


def visible_statuses(table: StatusMap) -> list[str]:
    """Every OrgInvites status the vendor shows at all."""
    return [native for native, shown in table.items() if shown is not None]
