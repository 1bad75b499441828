"""Who calls the API: an API key from the request's headers, never a cookie.

Shared by the native API and the compat layers (each reads the key the way its
vendor's SDK sends it, then asks the same questions of the same principal).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from flask import g
from flask import request
from sqlalchemy.orm import Session

from webapp.clock import utcnow
from webapp.database import in_late_writes
from webapp.extensions import db
from webapp.models import Organization
from webapp.services.actors import Actor
from webapp.services.api_keys import find_live_api_key
from webapp.services.api_keys import last_used_is_stale
from webapp.services.api_keys import record_key_use
from webapp.services.errors import Forbidden
from webapp.services.errors import NotFound
from webapp.services.organizations import get_organization
from webapp.services.prepared import attached


@dataclass(frozen=True)
class ApiPrincipal:
    """An authenticated API key: org-scoped (``org_id``) or instance-wide (None)."""

    key_id: str
    org_id: str | None
    name: str
    # The org key's organization as read with the key (every column): the only one it
    # may act on, so no request of an org key looks its organization up again.
    organization_row: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def is_instance(self) -> bool:
        return self.org_id is None

    @property
    def actor(self) -> Actor:
        return Actor.api_key(self.key_id)


def key_from_headers(*, accept_x_api_key: bool = False) -> str | None:
    """The raw key from ``Authorization: Bearer …`` (or ``X-Api-Key`` where allowed)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if accept_x_api_key:
        value = request.headers.get("X-Api-Key", "").strip()
        if value:
            return value
    return None


def authenticate_request(*, accept_x_api_key: bool = False) -> ApiPrincipal | None:
    """The principal behind this request's key, or None (missing, unknown or revoked).

    The lookup runs on the request's session. The key's last-used time is written at
    most once a minute: within the request's transaction when it writes anyway, else
    (reads, late writers) on a short connection of its own.
    """
    raw = key_from_headers(accept_x_api_key=accept_x_api_key)
    if raw is None:
        return None
    key = find_live_api_key(db.session.connection(), raw)
    if key is None:
        return None
    now = utcnow()
    if last_used_is_stale(key, now):
        # A read request stays a read; a late writer (webapp.database) takes the write
        # lock for its own writes only.
        if request.method in ("GET", "HEAD") or in_late_writes.get():
            with db.engine.begin() as connection:
                record_key_use(connection, key.id, now)
        else:
            record_key_use(db.session.connection(), key.id, now)
    principal = ApiPrincipal(
        key_id=key.id, org_id=key.org_id, name=key.name, organization_row=key.organization
    )
    g.api_principal = principal
    return principal


def _org_key_row(principal: ApiPrincipal, ref: str) -> Mapping[str, Any] | None:
    """An org key's organization as read with the key, if ``ref`` names it (NotFound if
    it names any other); None for keys read without their organization."""
    row = principal.organization_row
    if row is not None and ref != row["id"] and ref != row["slug"]:
        raise NotFound(f"no organization {ref!r}")
    return row


def organization_for(session: Session, principal: ApiPrincipal, ref: str) -> Organization:
    """The organization ``ref`` (id or slug) as this key may see it.

    An org key sees only its own organization: any other is NotFound, exactly like one
    that does not exist, so keys cannot probe for other tenants.
    """
    row = _org_key_row(principal, ref)
    if row is not None:
        return attached(session, Organization, row)
    org = get_organization(session, ref, with_roles=False)
    if principal.org_id is not None and org.id != principal.org_id:
        raise NotFound(f"no organization {ref!r}")
    return org


def organization_id_for(session: Session, principal: ApiPrincipal, ref: str) -> str:
    """The id of the organization ``ref`` as this key may see it (``organization_for``'s
    rules), for views that need only the id: an org key's answer needs no object."""
    row = _org_key_row(principal, ref)
    if row is not None:
        return row["id"]
    return organization_for(session, principal, ref).id


def own_organization(session: Session, principal: ApiPrincipal) -> Organization:
    """The organization of an org-scoped key (the compat APIs have no org in the path)."""
    if principal.org_id is None:
        raise Forbidden("this endpoint acts on one organization: use an API key created with --org")
    if principal.organization_row is not None:
        return attached(session, Organization, principal.organization_row)
    org = session.get(Organization, principal.org_id)
    if org is None:
        raise NotFound("the key's organization no longer exists")
    return org


def require_instance_key(principal: ApiPrincipal) -> None:
    if not principal.is_instance:
        raise Forbidden("this endpoint needs an instance-wide API key (api-keys create --instance)")
