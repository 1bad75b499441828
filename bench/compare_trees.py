"""Throughput of the same page served by two checkouts, in the same run.

    .venv/bin/python bench/compare_trees.py --database-url URL --old /path/to/checkout \
        [--path /orgs/big/invitations] [--rounds 5] [--seconds 4] [--api [--create]]

The machines these run on are shared and noisy: two measurements taken minutes apart
differ by more than most changes do. This starts gunicorn (2 sync workers) on the old
checkout (e.g. ``git worktree add /tmp/old <commit>``) and on this one, against the
same already seeded database (bench/seed.py), plus a bare Flask "hello", and runs wrk
(8 connections) on each in turn, round after round, so that all three see the same
load. It prints requests/s per tree, the ratio to hello per round (median) and p99.
Dashboard pages are requested signed in as bench@example.com (created if missing) with
``HX-Request: true`` (the table fragment); ``--api`` requests with an org API key, and
with ``--create`` POSTs invitations to the path instead (bench/api_list.py's script:
notify=false, unique addresses).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select  # noqa: E402

from bench.api_list import CREATE_SCRIPT  # noqa: E402
from bench.common import UNLIMITED_API_ENVIRONMENT  # noqa: E402
from bench.common import free_port  # noqa: E402
from bench.common import median  # noqa: E402
from bench.common import scratch_app  # noqa: E402
from bench.common import wrk  # noqa: E402
from bench.dashboard_list import PASSWORD  # noqa: E402
from bench.dashboard_list import session_cookie  # noqa: E402
from webapp.extensions import db  # noqa: E402
from webapp.models import Organization  # noqa: E402
from webapp.models import User  # noqa: E402
from webapp.services.api_keys import create_api_key  # noqa: E402
from webapp.services.users import create_admin_user  # noqa: E402

HERE = Path(__file__).resolve().parent.parent


def serve(spec: str, tree: Path, env: dict) -> tuple[int, subprocess.Popen]:
    """gunicorn ``spec`` from ``tree`` (its own ``webapp`` package) on a free port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--chdir", str(tree), "--workers", "2"]
        + ["--bind", f"127.0.0.1:{port}", "--log-level", "warning", spec],
        env=env,
        cwd=str(tree),
    )
    probe = f"http://127.0.0.1:{port}/healthz" if "webapp" in spec else f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(probe, timeout=1)
            return port, process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"gunicorn {spec} did not start in {tree}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--old", required=True, type=Path, help="the checkout to compare with")
    parser.add_argument("--path", default="/orgs/big/invitations")
    parser.add_argument("--api", action="store_true", help="authenticate with an API key")
    parser.add_argument("--create", action="store_true", help="POST creates (with --api)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=4)
    args = parser.parse_args()
    if args.create and not args.api:
        parser.error("--create needs --api")
    script = None
    if args.create:
        script = Path(tempfile.mkdtemp(prefix="orginvites-wrk-")) / "create.lua"
        script.write_text(CREATE_SCRIPT)

    app = scratch_app(args.database_url, SESSION_COOKIE_SECURE=False)
    with app.app_context():
        if args.api:
            org = db.session.scalar(select(Organization).where(Organization.slug == "big"))
            _, secret = create_api_key(db.session, org=org, name="compare")
        elif not db.session.scalar(select(User.id).where(User.email_key == "bench@example.com")):
            create_admin_user(db.session, email="bench@example.com", password=PASSWORD)
        db.session.commit()
    env = {
        **os.environ,
        "ORGINVITES_DATABASE_URL": args.database_url,
        "ORGINVITES_SECRET_KEY": "bench-secret-key",
        "ORGINVITES_SESSION_COOKIE_SECURE": "false",
        "ORGINVITES_INSTANCE_PATH": app.instance_path,
        "ORGINVITES_MAIL_BACKEND": "smtp",
        **UNLIMITED_API_ENVIRONMENT,
    }
    trees = {"old": args.old.resolve(), "new": HERE}
    servers = {name: serve("webapp:create_app()", tree, env) for name, tree in trees.items()}
    hello_port, hello = serve("bench.hello_app:app", HERE, env)
    try:
        headers = {}
        for name, (port, _) in servers.items():
            if args.api:
                headers[name] = [f"Authorization: Bearer {secret}"]
            else:
                cookie = session_cookie(f"http://127.0.0.1:{port}")
                headers[name] = [f"Cookie: {cookie}", "HX-Request: true"]
        rates: dict[str, list[float]] = {name: [] for name in [*servers, "hello"]}
        p99: dict[str, list[float]] = {name: [] for name in servers}
        for _ in range(args.rounds):
            for name, (port, _) in servers.items():
                result = wrk(
                    f"http://127.0.0.1:{port}{args.path}",
                    headers[name],
                    args.seconds,
                    script=str(script) if script else None,
                )
                assert result.non_2xx == 0, (name, result)
                rates[name].append(result.rate)
                p99[name].append(result.p99_ms)
            rates["hello"].append(wrk(f"http://127.0.0.1:{hello_port}/", [], args.seconds).rate)
        print(f"{args.path}, {args.rounds} rounds of {args.seconds} s, wrk 8 connections")
        for name in servers:
            ratios = [r / h for r, h in zip(rates[name], rates["hello"], strict=True)]
            print(
                f"{name:4} {median(rates[name]):7.0f} req/s  {median(ratios):6.1%} of hello"
                f"  p99 {median(p99[name]):6.1f} ms  rounds {[round(r) for r in rates[name]]}"
            )
        print(f"hello {median(rates['hello']):6.0f} req/s")
        ratio = [n / o for n, o in zip(rates["new"], rates["old"], strict=True)]
        print(f"new / old, median of rounds: {median(ratio):.2f}")
    finally:
        for _, process in servers.values():
            process.terminate()
        hello.terminate()


if __name__ == "__main__":
    main()
