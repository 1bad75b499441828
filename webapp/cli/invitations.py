"""``orginvites invitations …``: create, list, get, revoke, delete, resend, expire.

``create``, ``list``, ``get``, ``revoke``, ``delete`` and ``resend`` act on the local
database, or through a server's REST API when one is given (``orginvites --url URL
--api-key KEY invitations …``, or ``ORGINVITES_URL`` / ``ORGINVITES_API_KEY``); see
``webapp.cli.invitation_backends``. Both modes print through the functions below, so
their output is the same. ``expire`` works on the local database only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from webapp.cli.invitation_backends import Created
from webapp.cli.invitation_backends import CreateOptions
from webapp.cli.invitation_backends import describe_remote_source
from webapp.cli.invitation_backends import invitations_backend
from webapp.cli.invitation_backends import remote_url_configured
from webapp.cli.support import CommandGroup
from webapp.cli.support import InputError
from webapp.cli.support import iso
from webapp.cli.support import print_json
from webapp.cli.support import print_table
from webapp.cli.support import split_list
from webapp.cli.support import timestamp
from webapp.extensions import db
from webapp.sdk.models import Invitation
from webapp.sdk.models import InvitationPage
from webapp.services.expiry import expire_due_invitations
from webapp.services.invitation_listing import ORDERINGS


class InvitationsGroup(CommandGroup):
    """Commands declared with ``remote=True`` pick their backend when they run (and
    manage the app context and transaction through it); the others are local only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.remote_commands: set[str] = set()

    def command(  # type: ignore[override]
        self, *args: Any, remote: bool = False, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], click.Command]:
        if not remote:
            return super().command(*args, **kwargs)

        def decorator(f: Callable[..., Any]) -> click.Command:
            command = click.Group.command(self, *args, **kwargs)(f)
            self.remote_commands.add(command.name or "")
            return command

        return decorator

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and name not in self.remote_commands and remote_url_configured(ctx):
            raise InputError(
                f"`invitations {name}` works on the local database only; "
                f"it cannot act through {describe_remote_source(ctx)}"
            )
        return name, command, rest


invitations_group = InvitationsGroup("invitations", help="Invite people and manage invitations.")

org_option = click.option("--org", "org_ref", required=True, help="Organization slug or id.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


# ------------------------------------------------------------------- output
# The one place that prints invitations, for the local database and a server alike.


def invitation_as_dict(invitation: Invitation) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": invitation.id,
        "org_id": invitation.organization_id,
        "email": invitation.email,
        "role": invitation.role,
        "status": invitation.status,
        "created_at": iso(invitation.created_at),
        "expires_at": iso(invitation.expires_at),
        "accepted_at": iso(invitation.accepted_at),
        "declined_at": iso(invitation.declined_at),
        "revoked_at": iso(invitation.revoked_at),
        "redirect_url": invitation.redirect_url,
        "send_count": invitation.delivery.send_count,
        "delivery_status": invitation.delivery.status,
        "source": invitation.source,
    }
    if invitation.accept_url:
        data["accept_url"] = invitation.accept_url
    return data


def show_created(created: Created, total: int, *, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "invited": [invitation_as_dict(i) for i in created.invited],
                "failed": [
                    {"email": f.email, "code": f.code, "message": f.message} for f in created.failed
                ],
            }
        )
        return
    click.echo(f"Invited {len(created.invited)} of {total} to {created.org_name}.")
    for inv in created.invited:
        click.echo(
            f"  invited  {inv.email}  {inv.id}  {inv.role}  expires {timestamp(inv.expires_at)}"
        )
        if inv.accept_url:
            click.echo(f"           link (shown once): {inv.accept_url}")
    if created.failed:
        click.echo(f"Failed {len(created.failed)}:")
        for failure in created.failed:
            click.echo(f"  failed   {failure.email}  {failure.message}")


def show_page(page: InvitationPage, offset: int, *, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "data": [invitation_as_dict(i) for i in page.data],
                "total": page.total_count,
                "has_more": page.has_more,
                "totals_by_status": page.totals.to_dict(),
            }
        )
        return
    rows = [
        (i.id, i.email, i.role, i.status, timestamp(i.created_at), timestamp(i.expires_at))
        for i in page.data
    ]
    print_table(("ID", "Email", "Role", "Status", "Created At", "Expires At"), rows)
    shown_from = offset + 1 if rows else 0
    click.echo(f"\n{shown_from}-{offset + len(rows)} of {page.total_count}")


def show_invitation(invitation: Invitation, *, as_json: bool) -> None:
    data = invitation_as_dict(invitation)
    if as_json:
        print_json(data)
        return
    width = max(len(k) for k in data)
    for key, value in data.items():
        click.echo(
            f"{key.replace('_', ' ').title():<{width}}  {value if value is not None else '-'}"
        )


def show_revoked(invitation: Invitation) -> None:
    click.echo(f"Revoked {invitation.id} ({invitation.email}).")


def show_resent(invitation: Invitation) -> None:
    click.echo(
        f"Resent {invitation.id} to {invitation.email}; expires {timestamp(invitation.expires_at)}."
    )
    if invitation.accept_url:
        click.echo(f"Link (shown once): {invitation.accept_url}")


# ----------------------------------------------------------------- commands


@invitations_group.command("create", remote=True)
@org_option
@click.option("--emails", required=True, help="Comma-separated addresses: a@x.com,b@y.com")
@click.option("--role", help="Role key (default: the organization's default role).")
@click.option("--redirect-url", help="Where invitees land after accepting (must be allowed).")
@click.option("--expires-in-days", type=click.IntRange(1, 30), help="1 to 30 (default: org's).")
@click.option("--expires-in-hours", type=click.IntRange(1, 720), help="1 to 720.")
@click.option("--message", help="A short note included in the email.")
@click.option(
    "--no-notify",
    is_flag=True,
    help="Send no email; print each invitation's accept link instead (shown only now).",
)
@json_option
def create_command(
    org_ref,
    emails,
    role,
    redirect_url,
    expires_in_days,
    expires_in_hours,
    message,
    no_notify,
    as_json,
):
    """Invite one or more addresses; print which were invited and which failed, and why."""
    addresses = split_list(emails)
    if not addresses:
        raise InputError("--emails: give at least one address")
    if expires_in_days and expires_in_hours:
        raise InputError("give --expires-in-days or --expires-in-hours, not both")
    options = CreateOptions(
        role=role,
        redirect_url=redirect_url,
        expires_in_days=expires_in_days,
        expires_in_hours=expires_in_hours,
        message=message,
        notify=not no_notify,
    )
    with invitations_backend() as backend:
        created = backend.create(org_ref, addresses, options)
        show_created(created, len(addresses), as_json=as_json)
        if created.failed:
            # The successes are kept (committed); the exit status tells scripts some failed.
            raise click.exceptions.Exit(1)


def _statuses(values: tuple[str, ...]) -> list[str]:
    return [s for value in values for s in split_list(value)]


@invitations_group.command("list", remote=True)
@org_option
@click.option("--status", "statuses", multiple=True, help="pending, accepted, … (repeat or a,b).")
@click.option("--query", help="Part of an email address.")
@click.option("--order-by", type=click.Choice(ORDERINGS), default="-created_at", show_default=True)
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@json_option
def list_command(org_ref, statuses, query, order_by, limit, offset, as_json):
    """List invitations: ID, Email, Role, Status, Created At, Expires At."""
    with invitations_backend() as backend:
        page = backend.list_page(
            org_ref,
            statuses=_statuses(statuses),
            query=query,
            order_by=order_by,
            limit=limit,
            offset=offset or None,
        )
        show_page(page, offset, as_json=as_json)


@invitations_group.command("get", remote=True)
@org_option
@click.argument("invitation_id")
@json_option
def get_command(org_ref, invitation_id, as_json):
    """Show one invitation."""
    with invitations_backend() as backend:
        show_invitation(backend.get(org_ref, invitation_id), as_json=as_json)


@invitations_group.command("revoke", remote=True)
@org_option
@click.option("--id", "invitation_id", help="The invitation's id.")
@click.option("--email", help="The address whose pending invitation to revoke.")
def revoke_command(org_ref, invitation_id, email):
    """Revoke a pending invitation by id or by email; its link stops working."""
    if bool(invitation_id) == bool(email):
        raise InputError("give exactly one of --id or --email")
    with invitations_backend() as backend:
        if invitation_id:
            show_revoked(backend.revoke(org_ref, invitation_id))
        else:
            show_revoked(backend.revoke_by_email(org_ref, email))


@invitations_group.command("delete", remote=True)
@click.option("--email", required=True, help="The address whose pending invitation to revoke.")
@click.option("--org", "org_ref", help="Organization (optional when there is only one).")
def delete_command(email, org_ref):
    """Revoke the pending invitation of an address (Anyscale's name for revoke by email)."""
    with invitations_backend() as backend:
        show_revoked(backend.revoke_by_email(org_ref, email))


@invitations_group.command("resend", remote=True)
@org_option
@click.argument("invitation_id")
@click.option("--no-notify", is_flag=True, help="Send no email; print the new link instead.")
def resend_command(org_ref, invitation_id, no_notify):
    """Send a new link (the old one stops working) and reset the expiry."""
    with invitations_backend() as backend:
        show_resent(backend.resend(org_ref, invitation_id, notify=not no_notify))


@invitations_group.command("expire")
@click.option("--batch-size", type=click.IntRange(1, 10000), default=1000, show_default=True)
def expire_command(batch_size):
    """Mark every pending invitation past its expiry as expired (with audit events)."""
    total = 0
    while True:
        count = expire_due_invitations(db.session, batch_size=batch_size)
        # One commit per batch keeps locks short on a large backlog.
        db.session.commit()
        total += count
        if count < batch_size:
            break
    click.echo(f"Expired {total} invitation{'s' if total != 1 else ''}.")
