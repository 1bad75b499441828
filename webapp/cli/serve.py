"""``orginvites demo`` and ``orginvites run``: one command to a working local system."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import ScriptInfo
from flask.cli import pass_script_info
from werkzeug.serving import run_simple

from webapp.cli.support import InputError
from webapp.delivery.worker import WorkerSettings
from webapp.delivery.worker import start_background_worker
from webapp.extensions import alembic
from webapp.extensions import db
from webapp.secrets_store import create_instance_secret
from webapp.services.demo import seed_demo


def _prepare_local(app: Flask, host: str, port: int) -> None:
    """Development defaults: a key in the instance folder, the dev mailbox, local links."""
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = create_instance_secret(app.instance_path)
    if not app.config.get("MAIL_BACKEND"):
        app.config["MAIL_BACKEND"] = "dev"
    if app.config.get("PUBLIC_BASE_URL_IS_DEFAULT"):
        shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        app.config["PUBLIC_BASE_URL"] = f"http://{shown_host}:{port}"
    # Local http: cookies must not demand https or the browser drops them.
    app.config["SESSION_COOKIE_SECURE"] = False
    app.config["REMEMBER_COOKIE_SECURE"] = False


def _serve(app: Flask, host: str, port: int) -> None:
    """Serve with an in-process delivery worker, so one command gives a working system."""
    worker = start_background_worker(app, settings=WorkerSettings(poll_interval=0.5))
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
    finally:
        worker.stop()


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--no-serve", is_flag=True, help="Migrate and seed, then exit.")
@pass_script_info
def demo_command(script_info: ScriptInfo, host: str, port: int, no_serve: bool) -> None:
    """Migrate the database, seed a demo organization and serve it on 127.0.0.1:5000."""
    app = script_info.load_app()
    _prepare_local(app, host, port)
    # Its own app context, closed before serving: the migration's connection must not
    # stay open (on SQLite it would hold the write lock).
    with app.app_context():
        alembic.upgrade()
    with app.app_context():
        info = seed_demo(db.session, public_base_url=app.config["PUBLIC_BASE_URL"])
        db.session.commit()
        org_label = f"{info.org.name} ({info.org.slug})"
    base = app.config["PUBLIC_BASE_URL"]
    app.config["DEMO_LOGIN_HINT"] = f"{info.admin_email} / {info.admin_password}"
    click.echo("OrgInvites demo is ready.")
    click.echo(f"  Open:          {base}/")
    click.echo(f"  Sign in:       {info.admin_email} / {info.admin_password}")
    click.echo(f"  Organization:  {org_label}")
    click.echo(f"  Database:      {app.config['DATABASE_URL']}")
    click.echo(f"  Mail:          {app.config['MAIL_BACKEND']} backend")
    if no_serve:
        return
    click.echo("Press Ctrl+C to stop.")
    _serve(app, host, port)


@click.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@pass_script_info
def run_command(script_info: ScriptInfo, host: str, port: int) -> None:
    """Serve OrgInvites locally (development server, dev mailbox unless configured)."""
    app = script_info.load_app()
    _prepare_local(app, host, port)
    with app.app_context():
        outdated = alembic.needs_upgrade()
    if outdated:
        raise InputError("the database is not up to date: run `orginvites db upgrade` first")
    click.echo(f"OrgInvites on {app.config['PUBLIC_BASE_URL']}/ (Ctrl+C to stop)")
    _serve(app, host, port)
