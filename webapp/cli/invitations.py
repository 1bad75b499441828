"""``orginvites invitations …``: create, list, get, revoke, delete, resend, expire, import.

``create``, ``list``, ``get``, ``revoke``, ``delete`` and ``resend`` act on the local
database, or through a server's REST API when one is given (``orginvites --url URL
--api-key KEY invitations …``, or ``ORGINVITES_URL`` / ``ORGINVITES_API_KEY``); see
``webapp.cli.invitation_backends``. Both modes print through the functions below, so
their output is the same. ``expire`` and ``import`` work on the local database only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from flask import current_app

from webapp.cli.invitation_backends import Created
from webapp.cli.invitation_backends import CreateOptions
from webapp.cli.invitation_backends import describe_remote_source
from webapp.cli.invitation_backends import invitations_backend
from webapp.cli.invitation_backends import remote_url_configured
from webapp.cli.support import CommandGroup
from webapp.cli.support import InputError
from webapp.cli.support import iso
from webapp.cli.support import load_org
from webapp.cli.support import print_json
from webapp.cli.support import print_table
from webapp.cli.support import split_list
from webapp.cli.support import timestamp
from webapp.extensions import db
from webapp.sdk.models import Invitation
from webapp.sdk.models import InvitationPage
from webapp.services.actors import SYSTEM
from webapp.services.errors import QuotaExceeded
from webapp.services.expiry import expire_due_invitations
from webapp.services.importing.jobs import check_defaults
from webapp.services.importing.parsing import CsvFileError
from webapp.services.importing.parsing import ImportLimits
from webapp.services.importing.parsing import format_size
from webapp.services.importing.parsing import parse_csv
from webapp.services.importing.planning import VERDICTS
from webapp.services.importing.planning import ImportDefaults
from webapp.services.importing.planning import plan_import
from webapp.services.importing.planning import preview_import
from webapp.services.importing.planning import run_import
from webapp.services.importing.planning import verdict_label
from webapp.services.importing.report import error_report
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


@invitations_group.command("import")
@org_option
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check every row and print the preview only.")
@click.option("--role", help="Role for rows without one (default: the organization's).")
@click.option("--expires-in-days", type=click.IntRange(1, 30), help="For rows without one.")
@click.option("--redirect-url", help="For rows without one (must be allowed).")
@click.option("--no-notify", is_flag=True, help="Create the invitations without emails.")
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the rows to fix (as uploaded, plus an error column) to this CSV file.",
)
@json_option
def import_command(
    org_ref,
    csv_file,
    dry_run,
    role,
    expires_in_days,
    redirect_url,
    no_notify,
    report_path,
    as_json,
):
    """Invite everyone in a CSV file (the dashboard's importer): check, then import."""
    org = load_org(org_ref)
    limits = ImportLimits.from_config(current_app.config)
    try:
        size = csv_file.stat().st_size
    except OSError as exc:
        raise InputError(f"{csv_file}: {exc.strerror or exc}") from None
    if size > limits.max_bytes:
        raise InputError(
            f"{csv_file}: the file is {format_size(size)}; the limit is "
            f"{format_size(limits.max_bytes)}. Split it into smaller files."
        )
    try:
        parsed = parse_csv(csv_file.read_bytes(), limits)
    except CsvFileError as error:
        raise InputError(f"{csv_file}: {error}") from None
    defaults = ImportDefaults(
        role=role,
        expires_in=timedelta(days=expires_in_days) if expires_in_days else None,
        redirect_url=redirect_url,
        notify=not no_notify,
    )
    check_defaults(db.session, org, defaults)
    plan = plan_import(db.session, org, parsed, defaults)
    preview = preview_import(db.session, org, plan)
    db.session.rollback()  # the preview only read
    if not as_json:
        totals = ", ".join(f"{n:,} {VERDICTS[code]}" for code, n in preview.counts.items())
        click.echo(f"Checked {len(plan.rows):,} rows of {csv_file.name}: {totals}.")
    if dry_run:
        _finish_import_output(plan, preview.counts, report_path, as_json, dry_run=True)
        if preview.quota.message:
            click.echo(preview.quota.message, err=True)
        return
    if preview.quota.message:
        raise QuotaExceeded(preview.quota.message)
    valid = len(plan.valid_rows())
    label = f"Importing {valid:,} row{'s' if valid != 1 else ''}"
    with click.progressbar(length=valid, label=label, file=sys.stderr) as bar:
        result = run_import(
            db.session,
            org,
            plan,
            actor=SYSTEM,
            source="import",
            progress=lambda done, _total: bar.update(done - bar.pos),
            event_data={"import_file": csv_file.name[:255]},
        )
    if result.stopped:
        click.echo(f"Stopped: {result.stopped}", err=True)
    failed = _finish_import_output(plan, result.totals(), report_path, as_json, dry_run=False)
    if failed:
        raise click.exceptions.Exit(1)


def _finish_import_output(plan, counts, report_path, as_json: bool, *, dry_run: bool) -> int:
    """Print the outcome and problem rows (or JSON), write the report; return failed rows."""
    failures = list(plan.failures())
    if report_path and failures:
        report_path.write_bytes(error_report(plan))
    if as_json:
        print_json(
            {
                "dry_run": dry_run,
                "counts": counts,
                "failed": [
                    {
                        "row": r.source.number,
                        "email": r.email,
                        "reason": r.verdict,
                        "message": r.detail,
                    }
                    for r in failures
                ],
                "report": str(report_path) if report_path and failures else None,
            }
        )
        return len(failures)
    if not dry_run:
        totals = ", ".join(f"{n:,} {verdict_label(code)}" for code, n in counts.items())
        click.echo(f"Done: {totals}.")
    if failures:
        click.echo(f"{len(failures):,} row{'s' if len(failures) != 1 else ''} to fix:")
        for row in failures[:20]:
            click.echo(f"  row {row.source.number:>6}  {row.email}  {row.label}: {row.detail}")
        if len(failures) > 20:
            click.echo(f"  … and {len(failures) - 20:,} more")
        if report_path:
            click.echo(f"Wrote them to {report_path} (fix and import it as it is).")
        else:
            click.echo("Add --report FILE.csv to write them to a file you can fix and import.")
    return len(failures)
