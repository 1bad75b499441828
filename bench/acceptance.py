"""Acceptance POST latency: p50/p99 of accepting invitations, against /healthz as a baseline.

    .venv/bin/python bench/acceptance.py [--invitations 500] [--runs 5] [--database-url URL]

Each run creates INVITATIONS invitations on a fresh SQLite database (or the given,
empty PostgreSQL database), opens each accept page once (for its CSRF token), then
times the accept POST (which creates the user and membership and answers 303) through
Flask's WSGI stack. The same run times GET /healthz (one trivial query) as a baseline.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median  # noqa: E402
from bench.common import percentile  # noqa: E402
from bench.common import scratch_app  # noqa: E402
from webapp.extensions import db  # noqa: E402
from webapp.services.actors import SYSTEM  # noqa: E402
from webapp.services.invitations import InvitationRequest  # noqa: E402
from webapp.services.invitations import create_invitations  # noqa: E402
from webapp.services.organizations import create_organization  # noqa: E402
from webapp.services.organizations import update_organization  # noqa: E402

CSRF = re.compile(rb'name="csrf_token" type="hidden" value="([^"]+)"')


def run_once(count: int, database_url: str | None) -> tuple[list[float], list[float]]:
    app = scratch_app(database_url)
    with app.app_context():
        org = create_organization(db.session, name="Bench")
        update_organization(
            db.session,
            org,
            allowed_redirect_origins=["https://app.example.com"],
            default_redirect_url="https://app.example.com/welcome",
        )
        result = create_invitations(
            db.session,
            org,
            [InvitationRequest(email=f"a{n}@example.com", notify=False) for n in range(count)],
            actor=SYSTEM,
        )
        db.session.commit()
        paths = [urlsplit(issued.accept_url).path for _, issued in result.successes]
    client = app.test_client()
    accept_times, baseline_times = [], []
    for path in paths:
        token = CSRF.search(client.get(path).data).group(1).decode()
        started = time.perf_counter()
        response = client.post(path, data={"csrf_token": token, "name": "Bench"})
        accept_times.append(time.perf_counter() - started)
        assert response.status_code == 303, response.status_code
        started = time.perf_counter()
        client.get("/healthz")
        baseline_times.append(time.perf_counter() - started)
    return accept_times, baseline_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invitations", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    p50s, p99s, base_p50s, ratios = [], [], [], []
    for run in range(args.runs):
        accept_times, baseline = run_once(args.invitations, args.database_url)
        p50, p99 = percentile(accept_times, 0.5), percentile(accept_times, 0.99)
        base = percentile(baseline, 0.5)
        p50s.append(p50)
        p99s.append(p99)
        base_p50s.append(base)
        ratios.append(p50 / base)
        print(
            f"run {run + 1}: accept p50 {p50 * 1000:.1f} ms  p99 {p99 * 1000:.1f} ms"
            f"   /healthz p50 {base * 1000:.2f} ms",
            flush=True,
        )
    print()
    print(f"accept POST p50, median of {args.runs} runs: {median(p50s) * 1000:.1f} ms")
    print(f"accept POST p99, median of {args.runs} runs: {median(p99s) * 1000:.1f} ms")
    print(f"/healthz p50 (baseline), median:          {median(base_p50s) * 1000:.2f} ms")
    print(f"accept p50 / healthz p50, median ratio:   {median(ratios):.1f}x")


if __name__ == "__main__":
    main()
