"""``orginvites worker``: deliver queued email and expire lapsed invitations."""

from __future__ import annotations

import logging
import signal
from datetime import timedelta

import click
from flask.cli import ScriptInfo
from flask.cli import pass_script_info

from webapp.cli.support import InputError
from webapp.delivery.worker import DeliveryWorker
from webapp.delivery.worker import WorkerSettings
from webapp.services.importing.jobs import drain as drain_imports


@click.command("worker")
@click.option("--batch-size", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--poll-interval", type=click.FloatRange(0.05, 60), default=1.0, show_default=True)
@click.option("--lease-seconds", type=click.IntRange(10, 3600), default=300, show_default=True)
@click.option("--sweep-interval", type=click.FloatRange(1, 3600), default=60.0, show_default=True)
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
@pass_script_info
def worker_command(
    script_info: ScriptInfo, batch_size, poll_interval, lease_seconds, sweep_interval, once
):
    """Deliver the outbox (several workers may run at once on PostgreSQL). Stops on SIGTERM."""
    app = script_info.load_app()
    if not app.config.get("SECRET_KEY"):
        raise InputError(
            "ORGINVITES_SECRET_KEY is not set; the worker needs the key the app queued links with"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    worker = DeliveryWorker(
        app,
        settings=WorkerSettings(
            batch_size=batch_size,
            poll_interval=poll_interval,
            lease=timedelta(seconds=lease_seconds),
            sweep_interval=sweep_interval,
        ),
    )
    if once:
        handled = worker.maybe_sweep() + drain_imports(app, worker.worker_id)
        while True:
            count = worker.run_once()
            handled += count
            if count == 0 or worker.server_down_rounds:
                break
        worker.transport.close()
        click.echo(f"Handled {handled} item{'s' if handled != 1 else ''}.")
        return

    def stop(signum, _frame):
        logging.getLogger("orginvites.worker").info("worker.stopping signal=%s", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.run()
