"""The ``orginvites`` command line: a Flask CLI group bound to the app factory."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click
from flask import Flask
from flask.cli import FlaskGroup
from flask.cli import routes_command
from flask.cli import shell_command

from webapp.cli.invitation_backends import API_KEY_ENV
from webapp.cli.invitation_backends import API_KEY_META
from webapp.cli.invitation_backends import URL_ENV
from webapp.cli.invitation_backends import URL_META
from webapp.cli.invitations import invitations_group
from webapp.config import ConfigError


def _create_cli_app() -> Flask:
    from webapp import create_app

    try:
        return create_app(require_secret_key=False)
    except ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)


def register_command_groups(app: Flask) -> None:
    """Attach every command group to ``app.cli`` (``db`` comes from Flask-Alembic)."""
    from webapp.cli.api_keys import api_keys_group
    from webapp.cli.orgs import orgs_group
    from webapp.cli.orgs import projects_group
    from webapp.cli.orgs import roles_group
    from webapp.cli.serve import demo_command
    from webapp.cli.serve import run_command
    from webapp.cli.users import users_group
    from webapp.cli.worker import worker_command

    for command in (
        users_group,
        orgs_group,
        roles_group,
        projects_group,
        api_keys_group,
        invitations_group,
        demo_command,
        run_command,
        worker_command,
    ):
        app.cli.add_command(command)


def _remember(meta_key: str) -> Callable[[click.Context, click.Parameter, str | None], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        if value:
            ctx.meta[meta_key] = value

    return callback


@click.pass_context
def _check_remote_options(ctx: click.Context) -> None:
    """--url/--api-key steer the invitations commands only; elsewhere they would be ignored."""
    given = URL_META in ctx.meta or API_KEY_META in ctx.meta
    if given and ctx.invoked_subcommand not in (None, "invitations"):
        raise click.UsageError(
            f"--url and --api-key apply to the invitations commands only, "
            f"not to {ctx.invoked_subcommand!r}"
        )


cli = FlaskGroup(
    name="orginvites",
    create_app=_create_cli_app,
    add_default_commands=False,
    help="OrgInvites: organization invitations by email.",
    params=[
        click.Option(
            ["--url"],
            metavar="URL",
            expose_value=False,
            callback=_remember(URL_META),
            help=f"An OrgInvites server: the invitations commands act through its REST API "
            f"instead of the local database (or set {URL_ENV}).",
        ),
        click.Option(
            ["--api-key"],
            metavar="KEY",
            expose_value=False,
            callback=_remember(API_KEY_META),
            help=f"API key for --url (or set {API_KEY_ENV}; the variable keeps the key out of "
            "your shell history).",
        ),
    ],
)
cli.callback = _check_remote_options
cli.add_command(shell_command)
cli.add_command(routes_command)
# Also here (not only on app.cli) so that remote mode never loads the app.
cli.add_command(invitations_group)


def main() -> None:
    """Entry point of the ``orginvites`` console script."""
    cli.main(prog_name="orginvites")
