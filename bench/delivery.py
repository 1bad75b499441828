"""Delivery speed: worker throughput vs a bare smtplib loop, and created-to-accepted latency.

    .venv/bin/python bench/delivery.py [--messages 2000] [--runs 5]

Each run queues MESSAGES invitation emails on a fresh SQLite database, then:
  * bare: one smtplib connection sends the very same message bytes in a tight loop
    (``sendmail`` of pre-serialised bytes: the most smtplib can push);
  * worker: ``DeliveryWorker.run_once`` until the outbox is empty (claim, build,
    send over one reused connection, mark sent).
Both talk to a local aiosmtpd server in its own process. Printed: per-run figures,
the medians and the median of the per-run ratio worker/bare; then, with the worker
running in a thread, the time from each invitation's creation (one every 50 ms) to
its arrival at the SMTP server (p50, p95).
"""

from __future__ import annotations

import argparse
import smtplib
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select  # noqa: E402

from bench.common import median  # noqa: E402
from bench.common import percentile  # noqa: E402
from bench.common import scratch_app  # noqa: E402
from bench.common import smtp_sink  # noqa: E402
from bench.common import wait_until  # noqa: E402
from webapp.delivery.messages import render_outgoing  # noqa: E402
from webapp.delivery.worker import DeliveryWorker  # noqa: E402
from webapp.delivery.worker import WorkerSettings  # noqa: E402
from webapp.extensions import db  # noqa: E402
from webapp.models import Organization  # noqa: E402
from webapp.models import OutboxMessage  # noqa: E402
from webapp.services.actors import SYSTEM  # noqa: E402
from webapp.services.invitations import InvitationRequest  # noqa: E402
from webapp.services.invitations import create_invitation  # noqa: E402
from webapp.services.invitations import create_invitations  # noqa: E402
from webapp.services.organizations import create_organization  # noqa: E402


def queue(app, count: int) -> None:
    with app.app_context():
        org = create_organization(db.session, name="Bench Org")
        for start in range(0, count, 500):
            requests = [
                InvitationRequest(email=f"person{n}@example.com")
                for n in range(start, min(count, start + 500))
            ]
            create_invitations(db.session, org, requests, actor=SYSTEM)
            db.session.commit()


def throughput_once(count: int) -> tuple[float, float]:
    with smtp_sink() as sink:
        app = scratch_app(SMTP_HOST="127.0.0.1", SMTP_PORT=sink.port)
        queue(app, count)
        with app.app_context():
            rows = list(db.session.scalars(select(OutboxMessage)))
            emails = [e for e in render_outgoing(db.session, rows) if not isinstance(e, tuple)]
        connection = smtplib.SMTP("127.0.0.1", sink.port)
        started = time.perf_counter()
        for email in emails:
            connection.sendmail(email.sender, [email.recipient], email.as_bytes())
        bare = count / (time.perf_counter() - started)
        connection.quit()

        worker = DeliveryWorker(app, settings=WorkerSettings(batch_size=200, commit_every=100))
        started = time.perf_counter()
        while worker.run_once():
            pass
        elapsed = time.perf_counter() - started
        worker.transport.close()
        assert wait_until(lambda: sink.count() == 2 * count, 10), sink.count()
        return count / elapsed, bare


def latency_once(count: int) -> list[float]:
    with smtp_sink() as sink:
        app = scratch_app(SMTP_HOST="127.0.0.1", SMTP_PORT=sink.port)
        with app.app_context():
            org_id = create_organization(db.session, name="Latency").id
            db.session.commit()
        worker = DeliveryWorker(app, settings=WorkerSettings(poll_interval=0.1))
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        created: dict[str, float] = {}
        with app.app_context():
            org = db.session.get(Organization, org_id)
            for n in range(count):
                started = time.time()
                issued = create_invitation(
                    db.session, org, InvitationRequest(email=f"l{n}@example.com"), actor=SYSTEM
                )
                db.session.commit()
                outbox_id = db.session.scalar(
                    select(OutboxMessage.id).where(
                        OutboxMessage.invitation_id == issued.invitation.id
                    )
                )
                # End the read transaction: on SQLite every transaction holds the write lock.
                db.session.rollback()
                created[f"<{outbox_id}@invites.example.com>"] = started
                time.sleep(0.05)
        wait_until(lambda: sink.count() >= count, 30)
        worker.stop()
        thread.join(timeout=10)
        arrivals = sink.arrival_times()
        return [arrivals[mid] - at for mid, at in created.items() if mid in arrivals]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency-invitations", type=int, default=100)
    args = parser.parse_args()

    worker_rates, bare_rates, ratios = [], [], []
    for run in range(args.runs):
        worker_rate, bare_rate = throughput_once(args.messages)
        worker_rates.append(worker_rate)
        bare_rates.append(bare_rate)
        ratios.append(worker_rate / bare_rate)
        print(
            f"run {run + 1}: worker {worker_rate:6.0f} msg/s   bare smtplib {bare_rate:6.0f} msg/s"
            f"   ratio {worker_rate / bare_rate:.0%}",
            flush=True,
        )
    latencies = latency_once(args.latency_invitations)
    print()
    print(f"worker throughput, median of {args.runs} runs:   {median(worker_rates):.0f} msg/s")
    print(f"bare smtplib loop, median of {args.runs} runs:   {median(bare_rates):.0f} msg/s")
    print(f"worker / bare, median of per-run ratios: {median(ratios):.0%}")
    print(
        f"created -> accepted by SMTP ({len(latencies)} invitations): "
        f"p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
        f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
