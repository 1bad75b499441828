"""The ``orginvites`` command line: a Flask CLI group bound to the app factory."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import FlaskGroup
from flask.cli import routes_command
from flask.cli import shell_command

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
    from webapp.cli.invitations import invitations_group
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


cli = FlaskGroup(
    name="orginvites",
    create_app=_create_cli_app,
    add_default_commands=False,
    help="OrgInvites: organization invitations by email.",
)
cli.add_command(shell_command)
cli.add_command(routes_command)


def main() -> None:
    """Entry point of the ``orginvites`` console script."""
    cli.main(prog_name="orginvites")
