"""What a :class:`~webapp.sdk.Client` can do, grouped as the API groups it.

``client.organization_invitations`` (one organization's invitations),
``client.invitations`` (every organization's, instance keys only),
``client.organizations`` and ``client.acceptance_tickets``.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar
from urllib.parse import quote

from webapp.sdk.errors import OrgInvitesError
from webapp.sdk.errors import UnexpectedResponseError
from webapp.sdk.models import AcceptanceResult
from webapp.sdk.models import BulkError
from webapp.sdk.models import BulkSuccess
from webapp.sdk.models import Invitation
from webapp.sdk.models import InvitationPage
from webapp.sdk.models import Model
from webapp.sdk.models import Organization
from webapp.sdk.models import ProjectGrant
from webapp.sdk.models import StatusTotals
from webapp.sdk.models import format_timestamp

if TYPE_CHECKING:
    from webapp.sdk.client import Client

BULK_MAX = 1000
"""Items per bulk request; ``create_many`` splits longer inputs into several requests."""

# The fields of one invitation, as create() takes them and the API names them.
INVITATION_FIELDS = (
    "email",
    "role",
    "expires_in_days",
    "expires_at",
    "redirect_url",
    "public_metadata",
    "private_metadata",
    "projects",
    "inviter_user_id",
    "message",
    "notify",
)

M = TypeVar("M", bound=Model)


class _Unset:
    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Any = _Unset()
"""Default of optional update arguments: leave the setting as it is (None clears it)."""


def path(*parts: str) -> str:
    """Join path segments, percent-encoding each (ids and slugs are user input)."""
    for part in parts:
        if not isinstance(part, str) or not part:
            raise ValueError(f"expected a non-empty id or slug, got {part!r}")
    return "/".join(quote(p, safe="") for p in parts)


def _parse(model: type[M], data: Any) -> M:
    try:
        return model.from_dict(data)
    except (TypeError, ValueError, KeyError) as exc:
        raise UnexpectedResponseError(
            f"the server's answer is not a valid {model.__name__}: {exc}",
            code="unexpected_response",
        ) from None


def _invitation_fields(
    values: Mapping[str, Any], where: str, *, keep_notify: bool = False
) -> dict[str, Any]:
    """Invitation fields as the API takes them; unset (None) ones are left out, and
    ``notify=True`` too (the server's default) unless ``keep_notify``."""
    body: dict[str, Any] = {}
    for name, value in values.items():
        if name not in INVITATION_FIELDS:
            known = ", ".join(INVITATION_FIELDS)
            raise TypeError(f"{where}: unknown field {name!r} (fields: {known})")
        if value is None or (name == "notify" and value is True and not keep_notify):
            continue  # the server's default
        if name == "expires_at":
            value = _expires_at(value, where)
        elif name == "projects":
            value = [_grant(p, f"{where}.projects[{i}]") for i, p in enumerate(value)]
        body[name] = value
    return body


def _expires_at(value: Any, where: str) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(
                f"{where}.expires_at must be timezone-aware "
                f"(got {value.isoformat()}; use datetime.now(UTC) + timedelta(...))"
            )
        return format_timestamp(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"{where}.expires_at must be a datetime or an RFC 3339 string (got {value!r})")


def _grant(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, ProjectGrant):
        return {"id": value.id, "role": value.role}
    if isinstance(value, str):
        return {"id": value}
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{where} must be a project id, a ProjectGrant or a dict (got {value!r})")


def _statuses(status: str | Iterable[str] | None) -> list[str] | None:
    if status is None:
        return None
    if isinstance(status, str):
        return [status]
    return list(status)


def _list_params(
    status: str | Iterable[str] | None,
    query: str | None,
    order_by: str | None,
    limit: int | None,
    offset: int | None = None,
    starting_after: str | None = None,
    ending_before: str | None = None,
) -> dict[str, Any]:
    return {
        "status": _statuses(status),
        "query": query,
        "order_by": order_by,
        "limit": limit,
        "offset": offset,
        "starting_after": starting_after,
        "ending_before": ending_before,
    }


class InvitationPager:
    """Every invitation of a list, fetched page by page (cursor ``starting_after``).

    Iterating it yields :class:`Invitation` objects across all pages; :meth:`pages`
    yields the pages. The first page is fetched when the pager is made, so errors
    (unknown organization, bad filter) are raised by the ``list()`` call itself and
    :attr:`total_count` and :attr:`totals` are known at once.
    """

    def __init__(self, fetch: Callable[[str | None], InvitationPage]) -> None:
        self._fetch = fetch
        self.first_page = fetch(None)

    @property
    def total_count(self) -> int:
        """How many invitations match the filters (a floor when not ``total_count_exact``)."""
        return self.first_page.total_count

    @property
    def totals(self) -> StatusTotals:
        """Invitations per status, ignoring the filters."""
        return self.first_page.totals

    def pages(self) -> Iterator[InvitationPage]:
        page = self.first_page
        yield page
        while page.has_more:
            cursor = page.last_id
            if cursor is None:
                raise UnexpectedResponseError(
                    "the server said has_more but sent no last_id", code="unexpected_response"
                )
            page = self._fetch(cursor)
            if page.last_id == cursor:
                raise UnexpectedResponseError(
                    f"the page after {cursor} ended at {cursor} again", code="unexpected_response"
                )
            yield page

    def __iter__(self) -> Iterator[Invitation]:
        for page in self.pages():
            yield from page.data


class OrganizationInvitations:
    """One organization's invitations. ``org`` is the organization's id or slug."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def _url(self, org: str, *rest: str) -> str:
        return path("organizations", org, "invitations", *rest)

    def create(
        self,
        org: str,
        *,
        email: str,
        role: str | None = None,
        expires_in_days: int | None = None,
        expires_at: datetime | str | None = None,
        redirect_url: str | None = None,
        public_metadata: Mapping[str, Any] | None = None,
        private_metadata: Mapping[str, Any] | None = None,
        projects: Sequence[str | ProjectGrant | Mapping[str, Any]] | None = None,
        inviter_user_id: str | None = None,
        message: str | None = None,
        notify: bool = True,
        idempotency_key: str | None = None,
    ) -> Invitation:
        """Invite one address. With ``notify=False`` no email is sent and the result's
        ``accept_url`` carries the link (this once). Raises ``AlreadyInvitedError``
        (``existing_invitation_id``), ``AlreadyMemberError``, ``ValidationError``…"""
        body = _invitation_fields(
            {
                "email": email,
                "role": role,
                "expires_in_days": expires_in_days,
                "expires_at": expires_at,
                "redirect_url": redirect_url,
                "public_metadata": public_metadata,
                "private_metadata": private_metadata,
                "projects": projects,
                "inviter_user_id": inviter_user_id,
                "message": message,
                "notify": notify,
            },
            "create",
        )
        data = self._client.request(
            "POST", self._url(org), json_body=body, idempotency_key=idempotency_key
        )
        return _parse(Invitation, data)

    def create_many(
        self,
        org: str,
        emails: Sequence[str] | None = None,
        *,
        invitations: Sequence[Mapping[str, Any]] | None = None,
        role: str | None = None,
        expires_in_days: int | None = None,
        expires_at: datetime | str | None = None,
        redirect_url: str | None = None,
        public_metadata: Mapping[str, Any] | None = None,
        private_metadata: Mapping[str, Any] | None = None,
        projects: Sequence[str | ProjectGrant | Mapping[str, Any]] | None = None,
        message: str | None = None,
        notify: bool = True,
        idempotency_key: str | None = None,
    ) -> tuple[list[BulkSuccess], list[BulkError]]:
        """Invite many addresses; return ``(successes, errors)``, each in input order.

        Give ``emails`` (a list of addresses) or ``invitations`` (a list of dicts with
        ``create()``'s fields); the other keyword arguments apply to every item (an
        item's own fields win). Each item succeeds or fails on its own: ``successes``
        hold the ``index`` and the ``invitation``, ``errors`` the ``index``, ``email``,
        ``code`` and ``detail``. More than 1,000 items are sent as several requests;
        indexes always refer to the input. If a request fails as a whole (say the key
        is revoked midway), its exception's ``partial_results`` holds the
        ``(successes, errors)`` of the requests that completed.
        """
        items = self._bulk_items(
            emails,
            invitations,
            {
                "role": role,
                "expires_in_days": expires_in_days,
                "expires_at": expires_at,
                "redirect_url": redirect_url,
                "public_metadata": public_metadata,
                "private_metadata": private_metadata,
                "projects": projects,
                "message": message,
                "notify": notify,
            },
        )
        successes: list[BulkSuccess] = []
        errors: list[BulkError] = []
        chunks = range(0, len(items), BULK_MAX)
        for number, start in enumerate(chunks):
            key = idempotency_key
            if key is not None and len(chunks) > 1:
                key = f"{key}-{number}"
            try:
                data = self._client.request(
                    "POST",
                    self._url(org, "bulk"),
                    json_body=items[start : start + BULK_MAX],
                    idempotency_key=key,
                )
            except OrgInvitesError as error:
                if successes or errors:
                    error.partial_results = (successes, errors)
                raise
            if not isinstance(data, dict):
                raise UnexpectedResponseError(
                    "the bulk answer is not a JSON object", code="unexpected_response"
                )
            for item in data.get("successes") or []:
                success = _parse(BulkSuccess, item)
                successes.append(
                    BulkSuccess(index=success.index + start, invitation=success.invitation)
                )
            for item in data.get("errors") or []:
                failure = _parse(BulkError, {**item, "index": item.get("index", 0) + start})
                errors.append(failure)
        return successes, errors

    @staticmethod
    def _bulk_items(
        emails: Sequence[str] | None,
        invitations: Sequence[Mapping[str, Any]] | None,
        shared: dict[str, Any],
    ) -> list[dict[str, Any]]:
        if (emails is None) == (invitations is None):
            raise TypeError("create_many: give emails=[...] or invitations=[...] (exactly one)")
        common = _invitation_fields(shared, "create_many")
        items: list[dict[str, Any]] = []
        if emails is not None:
            if isinstance(emails, str):
                raise TypeError(f"emails must be a list of addresses, not one string ({emails!r})")
            for index, email in enumerate(emails):
                if not isinstance(email, str):
                    raise TypeError(f"emails[{index}] must be a string (got {email!r})")
                items.append({**common, "email": email})
            return items
        assert invitations is not None
        if isinstance(invitations, Mapping):
            raise TypeError("invitations must be a list of dicts, not one dict")
        for index, item in enumerate(invitations):
            if not isinstance(item, Mapping):
                raise TypeError(f"invitations[{index}] must be a dict (got {item!r})")
            own = _invitation_fields(item, f"invitations[{index}]", keep_notify=True)
            if "email" not in own:
                raise TypeError(f"invitations[{index}]: 'email' is required")
            items.append({**common, **own})
        return items

    def list(
        self,
        org: str,
        *,
        status: str | Iterable[str] | None = None,
        query: str | None = None,
        order_by: str | None = None,
        limit: int | None = 100,
    ) -> InvitationPager:
        """Every matching invitation, fetched ``limit`` per request as you iterate.

        ``status``: one or several of pending, accepted, declined, revoked, expired;
        ``query``: part of the address; ``order_by``: ``created_at``, ``-created_at``
        (default, newest first), ``email`` or ``-email``."""

        def fetch(cursor: str | None) -> InvitationPage:
            return self.list_page(
                org,
                status=status,
                query=query,
                order_by=order_by,
                limit=limit,
                starting_after=cursor,
            )

        return InvitationPager(fetch)

    def list_page(
        self,
        org: str,
        *,
        status: str | Iterable[str] | None = None,
        query: str | None = None,
        order_by: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> InvitationPage:
        """One page, with ``has_more``, the cursors ``first_id``/``last_id``,
        ``total_count`` and ``totals`` per status. Page by ``offset`` or by one cursor."""
        data = self._client.request(
            "GET",
            self._url(org),
            params=_list_params(
                status, query, order_by, limit, offset, starting_after, ending_before
            ),
        )
        return _parse(InvitationPage, data)

    def get(self, org: str, invitation_id: str) -> Invitation:
        """One invitation (``NotFoundError`` for an unknown id or another org's)."""
        return _parse(Invitation, self._client.request("GET", self._url(org, invitation_id)))

    def revoke(
        self,
        org: str,
        invitation_id: str,
        *,
        requesting_user_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Invitation:
        """Revoke a pending invitation: its link stops working and unsent email is
        cancelled (``InvalidStatusError`` when it is no longer pending)."""
        body = {"requesting_user_id": requesting_user_id} if requesting_user_id else {}
        data = self._client.request(
            "POST",
            self._url(org, invitation_id, "revoke"),
            json_body=body,
            idempotency_key=idempotency_key,
        )
        return _parse(Invitation, data)

    def delete(
        self,
        org: str,
        *,
        email: str,
        requesting_user_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Invitation:
        """Revoke the pending invitation of ``email`` (Anyscale's name for it);
        ``NotFoundError`` when the address has none."""
        if not isinstance(email, str) or not email.strip():
            raise ValueError(f"email must be a non-empty address (got {email!r})")
        body: dict[str, Any] = {"email": email}
        if requesting_user_id:
            body["requesting_user_id"] = requesting_user_id
        data = self._client.request(
            "POST",
            self._url(org, "revoke_by_email"),
            json_body=body,
            idempotency_key=idempotency_key,
        )
        return _parse(Invitation, data)

    def resend(
        self,
        org: str,
        invitation_id: str,
        *,
        notify: bool = True,
        expires_in_days: int | None = None,
        idempotency_key: str | None = None,
    ) -> Invitation:
        """Send a new link (the old one stops working) and restart the expiry; a
        pending or expired invitation. With ``notify=False`` the result's
        ``accept_url`` is the new link. ``ThrottledError`` when asked too soon."""
        body: dict[str, Any] = {}
        if not notify:
            body["notify"] = False
        if expires_in_days is not None:
            body["expires_in_days"] = expires_in_days
        data = self._client.request(
            "POST",
            self._url(org, invitation_id, "resend"),
            json_body=body,
            idempotency_key=idempotency_key,
        )
        return _parse(Invitation, data)


class Invitations:
    """Invitations of every organization (instance keys only); each carries its
    ``organization`` (id, name, slug)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(
        self,
        *,
        status: str | Iterable[str] | None = None,
        query: str | None = None,
        order_by: str | None = None,
        limit: int | None = 100,
    ) -> InvitationPager:
        """Like ``organization_invitations.list`` across organizations."""

        def fetch(cursor: str | None) -> InvitationPage:
            return self.list_page(
                status=status, query=query, order_by=order_by, limit=limit, starting_after=cursor
            )

        return InvitationPager(fetch)

    def list_page(
        self,
        *,
        status: str | Iterable[str] | None = None,
        query: str | None = None,
        order_by: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> InvitationPage:
        data = self._client.request(
            "GET",
            "invitations",
            params=_list_params(
                status, query, order_by, limit, offset, starting_after, ending_before
            ),
        )
        return _parse(InvitationPage, data)


class Organizations:
    """Organizations and their settings. An organization key sees only its own."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> list[Organization]:
        data = self._client.request("GET", "organizations")
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise UnexpectedResponseError(
                "the organization list has no 'data' array", code="unexpected_response"
            )
        return [_parse(Organization, item) for item in data["data"]]

    def get(self, org: str) -> Organization:
        return _parse(Organization, self._client.request("GET", path("organizations", org)))

    def create(
        self, name: str, *, slug: str | None = None, idempotency_key: str | None = None
    ) -> Organization:
        """Instance keys only; the organization starts with the roles admin and member."""
        body: dict[str, Any] = {"name": name}
        if slug is not None:
            body["slug"] = slug
        data = self._client.request(
            "POST", "organizations", json_body=body, idempotency_key=idempotency_key
        )
        return _parse(Organization, data)

    def update(
        self,
        org: str,
        *,
        name: str = NOT_GIVEN,
        default_role: str = NOT_GIVEN,
        default_expiry_days: int = NOT_GIVEN,
        allowed_redirect_origins: Sequence[str] = NOT_GIVEN,
        default_redirect_url: str | None = NOT_GIVEN,
        invite_quota: int | None = NOT_GIVEN,
    ) -> Organization:
        """Change only the settings given; ``allowed_redirect_origins`` replaces the
        list; ``default_redirect_url=None`` and ``invite_quota=None`` clear them."""
        given = {
            "name": name,
            "default_role": default_role,
            "default_expiry_days": default_expiry_days,
            "allowed_redirect_origins": allowed_redirect_origins,
            "default_redirect_url": default_redirect_url,
            "invite_quota": invite_quota,
        }
        body = {k: v for k, v in given.items() if v is not NOT_GIVEN}
        if not body:
            raise ValueError("update: give at least one setting to change")
        if "allowed_redirect_origins" in body:
            origins = body["allowed_redirect_origins"]
            if isinstance(origins, str):
                raise TypeError(f"allowed_redirect_origins must be a list (got {origins!r})")
            body["allowed_redirect_origins"] = list(origins)
        data = self._client.request("PATCH", path("organizations", org), json_body=body)
        return _parse(Organization, data)


class AcceptanceTickets:
    def __init__(self, client: Client) -> None:
        self._client = client

    def verify(self, ticket: str, *, idempotency_key: str | None = None) -> AcceptanceResult:
        """Check the ``ticket`` your ``redirect_url`` received after an acceptance:
        the invitation, the user and their membership. A ticket verifies once
        (``InvalidTicketError`` with ``reason`` otherwise)."""
        if not isinstance(ticket, str) or not ticket:
            raise ValueError(f"ticket must be a non-empty string (got {ticket!r})")
        data = self._client.request(
            "POST",
            "acceptance-tickets/verify",
            json_body={"ticket": ticket},
            idempotency_key=idempotency_key,
        )
        return _parse(AcceptanceResult, data)
