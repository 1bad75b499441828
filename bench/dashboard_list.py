"""Dashboard list speed at a million invitations, on SQLite or PostgreSQL.

    .venv/bin/python bench/dashboard_list.py [--count 1000000] [--database-url URL]
                                             [--runs 5] [--requests 200]

Seeds one organization (bench/seed.py; skip with --reuse URL of an already seeded
database), then measures, in the same run:
  * server time (the WSGI call, in-process) p50/p99 of the list page's table fragment:
    first page, 100,000 rows deep (keyset cursor), each with and without a status
    filter, and email search (a rare and a common term); /healthz as the baseline;
  * throughput of the table fragment under gunicorn with 2 workers (wrk, 8 connections,
    10 s) against a bare Flask "hello" endpoint under the same gunicorn settings.
Medians of RUNS repetitions are printed.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select  # noqa: E402

from bench.common import free_port  # noqa: E402
from bench.common import gunicorn  # noqa: E402
from bench.common import median  # noqa: E402
from bench.common import percentile  # noqa: E402
from bench.common import scratch_app  # noqa: E402
from bench.common import seeded_org  # noqa: E402
from bench.common import wrk  # noqa: E402
from webapp.extensions import db  # noqa: E402
from webapp.models import Invitation  # noqa: E402
from webapp.services.users import create_admin_user  # noqa: E402

PASSWORD = "bench password 123"
CSRF = re.compile(rb'name="csrf_token" type="hidden" value="([^"]+)"')


def login(client) -> None:
    token = CSRF.search(client.get("/login").data).group(1).decode()
    response = client.post(
        "/login", data={"csrf_token": token, "email": "bench@example.com", "password": PASSWORD}
    )
    assert response.status_code == 303, response.status_code


def deep_cursor(app, org_id: str, status: str | None, depth: int) -> str:
    with app.app_context():
        query = select(Invitation.id).where(Invitation.org_id == org_id)
        if status:
            query = query.where(Invitation.status == status)
        query = query.order_by(Invitation.created_at.desc(), Invitation.id.desc()).offset(depth)
        return db.session.scalar(query.limit(1))


def server_times(client, path: str, count: int) -> list[float]:
    headers = {"HX-Request": "true"}
    client.get(path, headers=headers)  # warm up
    times = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, (path, response.status_code)
    return times


def session_cookie(base: str) -> str:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/login").read()
    token = CSRF.search(page).group(1).decode()
    data = urllib.parse.urlencode(
        {"csrf_token": token, "email": "bench@example.com", "password": PASSWORD}
    ).encode()
    opener.open(f"{base}/login", data=data)
    return "; ".join(f"{c.name}={c.value}" for c in jar)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="an empty database to seed (default: SQLite)")
    parser.add_argument(
        "--reuse", action="store_true", help="the database already holds the seeded org 'big'"
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--throughput-seconds", type=int, default=10)
    args = parser.parse_args()

    app = scratch_app(args.database_url, SESSION_COOKIE_SECURE=False)
    org_id = seeded_org(app, args.count, args.reuse)
    with app.app_context():
        create_admin_user(db.session, email="bench@example.com", password=PASSWORD)
        db.session.commit()
    depth = min(100_000, args.count // 2)
    base = "/orgs/big/invitations"
    cases = {
        "first page": f"{base}",
        "first page, status=pending": f"{base}?status=pending",
        f"{depth:,} rows deep": f"{base}?after={deep_cursor(app, org_id, None, depth)}",
        f"{depth:,} rows deep, status=accepted": (
            f"{base}?status=accepted&after={deep_cursor(app, org_id, 'accepted', depth)}"
        ),
        "search, rare (person123456@)": f"{base}?q=person123456@",
        "search, common (company5.)": f"{base}?q=company5.",
        "baseline /healthz": "/healthz",
    }
    client = app.test_client()
    login(client)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for run in range(args.runs):
        for name, path in cases.items():
            times = server_times(client, path, args.requests)
            results[name].append((percentile(times, 0.5), percentile(times, 0.99)))
        print(f"  run {run + 1} done", flush=True)
    print(f"\nserver time of the table fragment, {args.requests} requests x {args.runs} runs")
    print(f"{'case':42} {'p50 ms':>8} {'p99 ms':>8}")
    for name, values in results.items():
        p50 = median([v[0] for v in values]) * 1000
        p99 = median([v[1] for v in values]) * 1000
        print(f"{name:42} {p50:8.2f} {p99:8.2f}")

    env = {
        **os.environ,
        "ORGINVITES_DATABASE_URL": app.config["DATABASE_URL"],
        "ORGINVITES_SECRET_KEY": "bench-secret-key",
        "ORGINVITES_SESSION_COOKIE_SECURE": "false",
        "ORGINVITES_INSTANCE_PATH": app.instance_path,
        "ORGINVITES_MAIL_BACKEND": "smtp",
    }
    app_port, hello_port = free_port(), free_port()
    orginvites = gunicorn("webapp:create_app()", app_port, env)
    hello = gunicorn("bench.hello_app:app", hello_port, env)
    try:
        cookie = session_cookie(f"http://127.0.0.1:{app_port}")
        ratios, fragment_rates, hello_rates = [], [], []
        for _ in range(max(1, args.runs // 2)):
            fragment = wrk(
                f"http://127.0.0.1:{app_port}{base}",
                [f"Cookie: {cookie}", "HX-Request: true"],
                args.throughput_seconds,
            ).rate
            bare = wrk(f"http://127.0.0.1:{hello_port}/", [], args.throughput_seconds).rate
            fragment_rates.append(fragment)
            hello_rates.append(bare)
            ratios.append(fragment / bare)
        print("\nthroughput under gunicorn, 2 workers, wrk 8 connections")
        print(f"table fragment (first page): {median(fragment_rates):8.0f} req/s")
        print(f"bare Flask hello:            {median(hello_rates):8.0f} req/s")
        print(f"fragment / hello:            {median(ratios):8.1%}")
    finally:
        orginvites.terminate()
        hello.terminate()


if __name__ == "__main__":
    main()
