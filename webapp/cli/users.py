"""``orginvites users …``: dashboard accounts."""

from __future__ import annotations

import sys

import click

from webapp.cli.support import CommandGroup
from webapp.cli.support import InputError
from webapp.extensions import db
from webapp.services.users import create_admin_user

users_group = CommandGroup("users", help="Dashboard accounts.")


def _read_password() -> str:
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    line = sys.stdin.readline()
    if not line:
        raise InputError("no password given on standard input")
    return line.rstrip("\r\n")


@users_group.command("create-admin")
@click.option("--email", required=True)
@click.option("--name")
def create_admin_command(email, name):
    """Create a superuser (password from a prompt, or the first line of standard input)."""
    password = _read_password()
    user, created = create_admin_user(db.session, email=email, password=password, name=name)
    verb = "Created" if created else "Updated"
    click.echo(f"{verb} superuser {user.email} ({user.id}).")
