"""Where ``orginvites invitations …`` acts: the local database, or a server's REST API.

Both backends answer in the SDK's models (``webapp.sdk.models``): the local one turns
its rows into exactly the JSON the API would send and parses that, so the commands
format one kind of object and the two modes cannot drift apart.

Remote mode is on when a server URL is given (``orginvites --url URL --api-key KEY``
or ``ORGINVITES_URL`` / ``ORGINVITES_API_KEY``); it needs no local database or
secret key, and never loads the Flask app.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import Protocol

import click
from flask import current_app
from flask.cli import ScriptInfo

from webapp.api.serializers import as_sent
from webapp.api.serializers import invitation_json
from webapp.api.serializers import invitation_list_json
from webapp.cli.support import InputError
from webapp.cli.support import load_org
from webapp.clock import utcnow
from webapp.config import ConfigError
from webapp.extensions import db
from webapp.sdk import Client
from webapp.sdk import OrgInvitesError
from webapp.sdk import RateLimitError
from webapp.sdk import ThrottledError
from webapp.sdk.models import Invitation
from webapp.sdk.models import InvitationPage
from webapp.services.actors import SYSTEM
from webapp.services.errors import ServiceError
from webapp.services.invitation_listing import InvitationQuery
from webapp.services.invitation_listing import list_invitations
from webapp.services.invitation_transitions import resend_invitation
from webapp.services.invitation_transitions import revoke_invitation
from webapp.services.invitation_transitions import revoke_pending_by_email
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import check_shared_fields
from webapp.services.invitations import create_invitations
from webapp.services.invitations import get_invitation
from webapp.services.organizations import list_organizations

URL_ENV = "ORGINVITES_URL"
API_KEY_ENV = "ORGINVITES_API_KEY"
# Where the root group's --url / --api-key leave their values (ctx.meta is shared).
URL_META = "orginvites.remote_url"
API_KEY_META = "orginvites.remote_api_key"


@dataclass(frozen=True)
class CreateOptions:
    """What ``invitations create`` shares across its addresses."""

    role: str | None = None
    redirect_url: str | None = None
    expires_in_days: int | None = None
    expires_in_hours: int | None = None
    message: str | None = None
    notify: bool = True


@dataclass(frozen=True)
class Failure:
    """An address that was not invited: the API's problem code and its explanation."""

    email: str
    code: str
    message: str


@dataclass(frozen=True)
class Created:
    org_name: str
    invited: list[Invitation]  # with accept_url when notify is off
    failed: list[Failure]


class InvitationsBackend(Protocol):
    def create(self, org_ref: str, addresses: list[str], options: CreateOptions) -> Created: ...

    def list_page(
        self,
        org_ref: str,
        *,
        statuses: list[str],
        query: str | None,
        order_by: str,
        limit: int,
        offset: int | None,
    ) -> InvitationPage: ...

    def get(self, org_ref: str, invitation_id: str) -> Invitation: ...

    def revoke(self, org_ref: str, invitation_id: str) -> Invitation: ...

    def revoke_by_email(self, org_ref: str | None, email: str) -> Invitation: ...

    def resend(self, org_ref: str, invitation_id: str, *, notify: bool) -> Invitation: ...


# ------------------------------------------------------------------ choosing


@dataclass(frozen=True)
class RemoteSettings:
    url: str
    api_key: str


def remote_settings(ctx: click.Context) -> RemoteSettings | None:
    """The server to act on, or None for the local database.

    ``--url``/``--api-key`` (given before the command: ``orginvites --url … invitations
    list``) win over ``ORGINVITES_URL``/``ORGINVITES_API_KEY``. A URL needs a key.
    """
    url = ctx.meta.get(URL_META) or os.environ.get(URL_ENV) or None
    key = ctx.meta.get(API_KEY_META) or os.environ.get(API_KEY_ENV) or None
    if url is None:
        if ctx.meta.get(API_KEY_META):
            raise InputError(f"--api-key needs --url (or {URL_ENV}): the server to act on")
        return None
    if key is None:
        raise InputError(
            f"acting on {url} needs an API key: give --api-key or set {API_KEY_ENV} "
            "(create one with `orginvites api-keys create`)"
        )
    return RemoteSettings(url=url, api_key=key)


def remote_url_configured(ctx: click.Context) -> bool:
    return bool(ctx.meta.get(URL_META) or os.environ.get(URL_ENV))


def describe_remote_source(ctx: click.Context) -> str:
    """Where the server URL came from, for messages: ``--url`` or the variable."""
    return "--url" if ctx.meta.get(URL_META) else URL_ENV


@contextmanager
def invitations_backend() -> Iterator[InvitationsBackend]:
    """The backend for the running command, with its errors turned into CLI errors.

    Local: an app context and one transaction, committed when the command finishes
    (also when it chose its exit status), rolled back on a rule violation.
    """
    ctx = click.get_current_context()
    settings = remote_settings(ctx)
    if settings is not None:
        with _remote_backend(settings) as backend:
            yield backend
        return
    with _local_backend(ctx) as backend:
        yield backend


@contextmanager
def _remote_backend(settings: RemoteSettings) -> Iterator[InvitationsBackend]:
    try:
        client = Client(settings.url, settings.api_key)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    try:
        yield RemoteInvitations(client)
    except OrgInvitesError as error:
        busy = isinstance(error, RateLimitError) and not isinstance(error, ThrottledError)
        if error.status is None or error.status >= 500 or busy:
            # Not the request's fault: the server is unreachable, failing or overloaded.
            raise click.ClickException(error.detail) from None
        # A rule said no (as a ServiceError does locally), a too-early resend included.
        raise InputError(error.detail) from None
    finally:
        client.close()


@contextmanager
def _local_backend(ctx: click.Context) -> Iterator[InvitationsBackend]:
    if not current_app:
        app = ctx.ensure_object(ScriptInfo).load_app()
        ctx.with_resource(app.app_context())
    try:
        yield LocalInvitations()
    except (ServiceError, ConfigError) as exc:
        db.session.rollback()
        raise InputError(str(exc)) from None
    except click.exceptions.Exit:
        # The command finished its work and chose its exit status.
        db.session.commit()
        raise
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()


# --------------------------------------------------------------------- local


class LocalInvitations:
    """The services on the local database, answering in the API's shapes."""

    def __init__(self) -> None:
        self.session = db.session

    @staticmethod
    def _invitation(row: Any, accept_url: str | None = None) -> Invitation:
        return Invitation.from_dict(as_sent(invitation_json(row, utcnow(), accept_url=accept_url)))

    def create(self, org_ref: str, addresses: list[str], options: CreateOptions) -> Created:
        org = load_org(org_ref)
        expires_in = None
        if options.expires_in_days:
            expires_in = timedelta(days=options.expires_in_days)
        elif options.expires_in_hours:
            expires_in = timedelta(hours=options.expires_in_hours)

        def request(email: str) -> InvitationRequest:
            return InvitationRequest(
                email=email,
                role=options.role,
                expires_in=expires_in,
                redirect_url=options.redirect_url,
                message=options.message,
                notify=options.notify,
            )

        # Options shared by every address are wrong for all of them: say so once.
        check_shared_fields(self.session, org, request(""))
        result = create_invitations(
            self.session, org, [request(a) for a in addresses], actor=SYSTEM, source="cli"
        )
        return Created(
            org_name=org.name,
            invited=[
                self._invitation(i.invitation, None if options.notify else i.accept_url)
                for _, i in result.successes
            ],
            failed=[Failure(f.email, f.error.code, str(f.error)) for f in result.failures],
        )

    def list_page(
        self,
        org_ref: str,
        *,
        statuses: list[str],
        query: str | None,
        order_by: str,
        limit: int,
        offset: int | None,
    ) -> InvitationPage:
        page = list_invitations(
            self.session,
            load_org(org_ref),
            InvitationQuery(
                statuses=statuses, query=query, order_by=order_by, limit=limit, offset=offset
            ),
        )
        return InvitationPage.from_dict(as_sent(invitation_list_json(page)))

    def get(self, org_ref: str, invitation_id: str) -> Invitation:
        return self._invitation(get_invitation(self.session, load_org(org_ref), invitation_id))

    def revoke(self, org_ref: str, invitation_id: str) -> Invitation:
        org = load_org(org_ref)
        return self._invitation(revoke_invitation(self.session, org, invitation_id, actor=SYSTEM))

    def revoke_by_email(self, org_ref: str | None, email: str) -> Invitation:
        org = load_org(org_ref) if org_ref else _only_organization(list_organizations(self.session))
        return self._invitation(revoke_pending_by_email(self.session, org, email, actor=SYSTEM))

    def resend(self, org_ref: str, invitation_id: str, *, notify: bool) -> Invitation:
        issued = resend_invitation(
            self.session, load_org(org_ref), invitation_id, actor=SYSTEM, notify=notify
        )
        return self._invitation(issued.invitation, None if notify else issued.accept_url)


def _only_organization(organizations: list[Any]) -> Any:
    """The one organization there is (``delete`` without ``--org``), or a clear error."""
    if len(organizations) != 1:
        slugs = ", ".join(o.slug for o in organizations) or "none yet"
        raise InputError(f"--org is required when there is not exactly one organization ({slugs})")
    return organizations[0]


# -------------------------------------------------------------------- remote


class RemoteInvitations:
    """The same operations through the SDK against a server's REST API."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.invitations = client.organization_invitations

    def create(self, org_ref: str, addresses: list[str], options: CreateOptions) -> Created:
        org = self.client.organizations.get(org_ref)
        expires_at = None
        if options.expires_in_hours:
            expires_at = datetime.now(UTC) + timedelta(hours=options.expires_in_hours)
        try:
            successes, errors = self.invitations.create_many(
                org.id,
                emails=addresses,
                role=options.role,
                redirect_url=options.redirect_url,
                expires_in_days=options.expires_in_days,
                expires_at=expires_at,
                message=options.message,
                notify=options.notify,
            )
        except OrgInvitesError as error:
            if error.partial_results is None:
                raise
            # More than 1,000 addresses went as several requests and a later one failed:
            # report what the earlier ones did, and the rest as failed with the reason.
            successes, errors = error.partial_results
            done = {s.index for s in successes} | {e.index for e in errors}
            failed = [Failure(e.email or "", e.code, e.detail) for e in errors]
            failed += [
                Failure(address, error.code, error.detail)
                for index, address in enumerate(addresses)
                if index not in done
            ]
            return Created(org.name, [s.invitation for s in successes], failed)
        shared = _shared_problem(errors, len(addresses))
        if shared:
            raise InputError(shared)
        return Created(
            org_name=org.name,
            invited=[s.invitation for s in successes],
            failed=[Failure(e.email or "", e.code, e.detail) for e in errors],
        )

    def list_page(
        self,
        org_ref: str,
        *,
        statuses: list[str],
        query: str | None,
        order_by: str,
        limit: int,
        offset: int | None,
    ) -> InvitationPage:
        return self.invitations.list_page(
            org_ref,
            status=statuses or None,
            query=query,
            order_by=order_by,
            limit=limit,
            offset=offset,
        )

    def get(self, org_ref: str, invitation_id: str) -> Invitation:
        return self.invitations.get(org_ref, invitation_id)

    def revoke(self, org_ref: str, invitation_id: str) -> Invitation:
        return self.invitations.revoke(org_ref, invitation_id)

    def revoke_by_email(self, org_ref: str | None, email: str) -> Invitation:
        if not org_ref:
            org_ref = _only_organization(self.client.organizations.list()).id
        return self.invitations.delete(org_ref, email=email)

    def resend(self, org_ref: str, invitation_id: str, *, notify: bool) -> Invitation:
        return self.invitations.resend(org_ref, invitation_id, notify=notify)


def _shared_problem(errors: list[Any], total: int) -> str | None:
    """The message for options that are wrong for every address (as local mode says it).

    When every item failed validation on the same non-email fields, the options the
    items share are at fault: one error for the command, not one per address.
    """
    if total == 0 or len(errors) != total:
        return None
    if any(e.code != "validation_failed" or not e.errors for e in errors):
        return None

    def shared_fields(error: Any) -> list[tuple[str, str]]:
        found = []
        for item in error.errors:
            name = item.field.split("].", 1)[1] if item.field.startswith("[") else item.field
            if name != "email":
                found.append((name, item.message))
        return found

    first = shared_fields(errors[0])
    common = set(first)
    for error in errors[1:]:
        common &= set(shared_fields(error))
    in_order = [pair for pair in first if pair in common]
    if not in_order:
        return None
    return "; ".join(f"{name}: {message}" for name, message in in_order)
