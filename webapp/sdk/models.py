"""Typed views of the API's JSON: dataclasses with ``from_dict`` and ``to_dict``.

Timestamps become timezone-aware ``datetime`` objects (UTC) and go back to RFC 3339
strings with a ``Z`` in ``to_dict()``. Fields a newer server adds are ignored, so an
older SDK keeps working.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime
from functools import cache
from typing import Any
from typing import Self

__all__ = [
    "AcceptanceResult",
    "BulkError",
    "BulkSuccess",
    "Delivery",
    "FieldError",
    "Invitation",
    "InvitationPage",
    "Inviter",
    "Member",
    "Organization",
    "OrganizationSummary",
    "ProjectGrant",
    "Role",
    "StatusTotals",
    "User",
    "parse_timestamp",
]


def parse_timestamp(value: str) -> datetime:
    """``2026-05-01T09:30:00.123456Z`` → an aware datetime in UTC."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """An aware datetime → RFC 3339 in UTC with a ``Z`` (what the server sends)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Model:
    """Shared ``from_dict`` / ``to_dict`` of the SDK's dataclasses."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        if not isinstance(data, Mapping):
            raise TypeError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        values = {}
        for name, hint in _field_types(cls).items():
            if name in data:
                values[name] = _convert(hint, data[name], f"{cls.__name__}.{name}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form: nested models as dicts, timestamps as RFC 3339 strings."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


@cache
def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _convert(hint: Any, value: Any, where: str) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(options[0], value, where) if len(options) == 1 else value
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise TypeError(f"{where}: expected a list, got {type(value).__name__}")
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hint is datetime:
        if not isinstance(value, str):
            raise TypeError(f"{where}: expected a timestamp string, got {value!r}")
        return parse_timestamp(value)
    if isinstance(hint, type) and issubclass(hint, Model):
        return hint.from_dict(value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Model):
        return value.to_dict()
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# ------------------------------------------------------------ invitations


@dataclasses.dataclass(frozen=True)
class FieldError(Model):
    """One problem with one field: ``field`` is its name (``[3].email`` in bulk)."""

    field: str
    code: str
    message: str


@dataclasses.dataclass(frozen=True)
class ProjectGrant(Model):
    """Membership of a project granted on acceptance (``member`` or ``owner``)."""

    id: str
    role: str = "member"


@dataclasses.dataclass(frozen=True)
class Inviter(Model):
    user_id: str | None = None
    api_key_id: str | None = None


@dataclasses.dataclass(frozen=True)
class Delivery(Model):
    """What happened to the latest email: ``queued``, ``sent``, ``failed`` or ``not_sent``."""

    status: str | None = None
    error: str | None = None
    send_count: int = 0
    last_sent_at: datetime | None = None


@dataclasses.dataclass(frozen=True)
class OrganizationSummary(Model):
    id: str
    name: str
    slug: str


@dataclasses.dataclass(frozen=True)
class Invitation(Model):
    """An invitation. ``status`` is effective: pending past ``expires_at`` is ``expired``.

    ``accept_url`` is set only in the answer that created or resent the invitation
    with ``notify=False``; ``organization`` only in the instance-wide list.
    """

    id: str
    organization_id: str
    email: str
    role: str
    status: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    public_metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    private_metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    redirect_url: str | None = None
    projects: list[ProjectGrant] = dataclasses.field(default_factory=list)
    message: str | None = None
    inviter: Inviter = dataclasses.field(default_factory=Inviter)
    source: str | None = None
    accepted_at: datetime | None = None
    declined_at: datetime | None = None
    revoked_at: datetime | None = None
    accepted_user_id: str | None = None
    delivery: Delivery = dataclasses.field(default_factory=Delivery)
    accept_url: str | None = None
    organization: OrganizationSummary | None = None


@dataclasses.dataclass(frozen=True)
class StatusTotals(Model):
    """Invitations per status in the organization (or instance), ignoring list filters."""

    pending: int = 0
    accepted: int = 0
    declined: int = 0
    revoked: int = 0
    expired: int = 0


@dataclasses.dataclass(frozen=True)
class InvitationPage(Model):
    """One page of a list. ``first_id``/``last_id`` are the cursors of its ends;
    ``has_more`` says whether another page follows in the direction asked for."""

    data: list[Invitation]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None
    total_count: int = 0
    total_count_exact: bool = True
    totals: StatusTotals = dataclasses.field(default_factory=StatusTotals)


@dataclasses.dataclass(frozen=True)
class BulkSuccess(Model):
    """An item of ``create_many`` that was invited; ``index`` is its input position."""

    index: int
    invitation: Invitation

    @property
    def email(self) -> str:
        return self.invitation.email


@dataclasses.dataclass(frozen=True)
class BulkError(Model):
    """An item of ``create_many`` that failed, with the problem's code and detail."""

    index: int
    email: str | None
    code: str
    status: int
    detail: str
    errors: list[FieldError] = dataclasses.field(default_factory=list)
    existing_invitation_id: str | None = None


# ---------------------------------------------------------- organizations


@dataclasses.dataclass(frozen=True)
class Role(Model):
    key: str
    name: str
    administers: bool = False


@dataclasses.dataclass(frozen=True)
class Organization(Model):
    id: str
    name: str
    slug: str
    created_at: datetime
    roles: list[Role] = dataclasses.field(default_factory=list)
    default_role: str = "member"
    default_expiry_days: float = 7
    allowed_redirect_origins: list[str] = dataclasses.field(default_factory=list)
    default_redirect_url: str | None = None
    invite_quota: int | None = None


# ------------------------------------------------------------- acceptance


@dataclasses.dataclass(frozen=True)
class User(Model):
    id: str
    email: str
    name: str | None = None


@dataclasses.dataclass(frozen=True)
class Member(Model):
    id: str
    organization_id: str
    user_id: str
    email: str
    role: str
    created_at: datetime
    name: str | None = None
    public_metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    private_metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    invitation_id: str | None = None


@dataclasses.dataclass(frozen=True)
class AcceptanceResult(Model):
    """A verified acceptance ticket: who accepted which invitation, and their membership."""

    invitation: Invitation
    user: User
    membership: Member
