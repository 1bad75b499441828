"""``orginvites orgs|roles|projects …``: organizations and their settings."""

from __future__ import annotations

import click

from webapp.cli.support import CommandGroup
from webapp.cli.support import iso
from webapp.cli.support import load_org
from webapp.cli.support import print_json
from webapp.cli.support import print_table
from webapp.extensions import db
from webapp.models import Organization
from webapp.services.actors import SYSTEM
from webapp.services.organizations import MAX_INVITE_QUOTA
from webapp.services.organizations import add_role
from webapp.services.organizations import create_organization
from webapp.services.organizations import create_project
from webapp.services.organizations import list_organizations
from webapp.services.organizations import list_projects
from webapp.services.organizations import remove_role
from webapp.services.organizations import update_organization

orgs_group = CommandGroup("orgs", help="Create, list and configure organizations.")
roles_group = CommandGroup("roles", help="Add or remove an organization's roles.")
projects_group = CommandGroup("projects", help="Projects inside an organization.")


def org_as_dict(org: Organization) -> dict:
    return {
        "id": org.id,
        "name": org.name,
        "slug": org.slug,
        "default_role": org.default_role,
        "default_expiry_days": round(org.default_expiry_seconds / 86400, 2),
        "roles": [{"key": r.key, "name": r.name, "is_admin": r.is_admin} for r in org.roles],
        "allowed_redirect_origins": org.allowed_redirect_origins,
        "default_redirect_url": org.default_redirect_url,
        "invite_quota": org.invite_quota,
        "created_at": iso(org.created_at),
    }


@orgs_group.command("create")
@click.option("--name", required=True)
@click.option("--slug", help="URL name (default: made from the name).")
@click.option("--json", "as_json", is_flag=True)
def create_command(name, slug, as_json):
    """Create an organization with the roles admin and member."""
    org = create_organization(db.session, name=name, slug=slug)
    if as_json:
        print_json(org_as_dict(org))
    else:
        click.echo(f"Created organization {org.name} (slug {org.slug}, id {org.id}).")


@orgs_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_command(as_json):
    """List every organization."""
    orgs = list_organizations(db.session)
    if as_json:
        print_json([org_as_dict(o) for o in orgs])
        return
    print_table(
        ("ID", "Slug", "Name", "Default Role", "Roles"),
        [(o.id, o.slug, o.name, o.default_role, ",".join(r.key for r in o.roles)) for o in orgs],
    )


@orgs_group.command("update")
@click.argument("slug")
@click.option("--name")
@click.option("--default-role")
@click.option("--default-expiry-days", type=click.IntRange(1, 30))
@click.option(
    "--allow-redirect-origin", "origins", multiple=True, help="Add an origin (repeatable)."
)
@click.option("--default-redirect-url")
@click.option(
    "--invite-quota",
    type=click.IntRange(0, MAX_INVITE_QUOTA),
    help="Most pending invitations at once.",
)
@click.option("--json", "as_json", is_flag=True)
def update_command(
    slug,
    name,
    default_role,
    default_expiry_days,
    origins,
    default_redirect_url,
    invite_quota,
    as_json,
):
    """Change an organization's settings."""
    org = load_org(slug)
    changes = {}
    if default_redirect_url is not None:
        changes["default_redirect_url"] = default_redirect_url
    if invite_quota is not None:
        changes["invite_quota"] = invite_quota
    update_organization(
        db.session,
        org,
        name=name,
        default_role=default_role,
        default_expiry_seconds=default_expiry_days * 86400 if default_expiry_days else None,
        add_redirect_origins=origins,
        actor=SYSTEM,
        **changes,
    )
    if as_json:
        print_json(org_as_dict(org))
    else:
        click.echo(f"Updated {org.slug}.")


@roles_group.command("add")
@click.option("--org", "org_ref", required=True)
@click.argument("key")
@click.option("--name", help="Display name.")
@click.option("--admin", is_flag=True, help="Members with this role administer the org.")
def add_role_command(org_ref, key, name, admin):
    """Add a role key to an organization."""
    org = load_org(org_ref)
    role = add_role(db.session, org, key, name, is_admin=admin, actor=SYSTEM)
    click.echo(f"Added role {role.key} to {org.slug}.")


@roles_group.command("remove")
@click.option("--org", "org_ref", required=True)
@click.argument("key")
def remove_role_command(org_ref, key):
    """Remove a role no member or pending invitation uses."""
    org = load_org(org_ref)
    remove_role(db.session, org, key, actor=SYSTEM)
    click.echo(f"Removed role {key} from {org.slug}.")


@projects_group.command("create")
@click.option("--org", "org_ref", required=True)
@click.option("--name", required=True)
@click.option("--default", "is_default", is_flag=True, help="Granted when none are named.")
def create_project_command(org_ref, name, is_default):
    """Create a project in an organization."""
    project = create_project(db.session, load_org(org_ref), name, is_default=is_default)
    click.echo(f"Created project {project.name} ({project.id}).")


@projects_group.command("list")
@click.option("--org", "org_ref", required=True)
def list_projects_command(org_ref):
    """List an organization's projects."""
    projects = list_projects(db.session, load_org(org_ref))
    print_table(
        ("ID", "Name", "Default"), [(p.id, p.name, "yes" if p.is_default else "") for p in projects]
    )
