"""``orginvites api-keys …``: bearer keys for the REST API."""

from __future__ import annotations

import click

from webapp.cli.support import CommandGroup
from webapp.cli.support import InputError
from webapp.cli.support import load_org
from webapp.extensions import db
from webapp.services.api_keys import create_api_key

api_keys_group = CommandGroup("api-keys", help="API keys for the REST API.")


@api_keys_group.command("create")
@click.option("--org", "org_ref", help="Organization the key acts for.")
@click.option("--instance", is_flag=True, help="An instance-wide key (all organizations).")
@click.option("--name", required=True, help="What the key is for.")
def create_command(org_ref, instance, name):
    """Create a key and print it once; only its hash is kept."""
    if bool(org_ref) == bool(instance):
        raise InputError("give exactly one of --org ORG or --instance")
    org = load_org(org_ref) if org_ref else None
    key, raw = create_api_key(db.session, org=org, name=name)
    scope = f"organization {org.slug}" if org else "the whole instance"
    click.echo(f"Created API key {key.id} for {scope}. Store it now; it is not shown again:")
    click.echo(raw)
