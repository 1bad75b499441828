"""REST API speed at a million invitations, on SQLite or PostgreSQL.

    .venv/bin/python bench/api_list.py [--count 1000000] [--database-url URL] [--reuse]
                                       [--runs 3] [--seconds 10] [--only create]

Seeds one organization (bench/seed.py; --reuse skips it when the database already holds
the org 'big'), starts gunicorn with 2 workers, and with wrk (8 connections) measures:
  * GET /api/v1/organizations/big/invitations: the first page and a cursor 2,000 pages
    deep (limit 20), each with and without a status filter: p50, p99 and requests/s;
  * a bare Flask JSON "hello" under the same gunicorn settings, in the same run, and the
    ratio first page / hello;
  * POST create (notify=false, unique addresses): p50, p99, requests/s.
Each figure is the median of RUNS repetitions.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func  # noqa: E402
from sqlalchemy import select  # noqa: E402

from bench.common import UNLIMITED_API_ENVIRONMENT  # noqa: E402
from bench.common import free_port  # noqa: E402
from bench.common import gunicorn  # noqa: E402
from bench.common import median  # noqa: E402
from bench.common import scratch_app  # noqa: E402
from bench.common import seeded_org  # noqa: E402
from bench.common import wrk  # noqa: E402
from webapp.extensions import db  # noqa: E402
from webapp.models import Invitation  # noqa: E402
from webapp.models import Organization  # noqa: E402
from webapp.services.api_keys import create_api_key  # noqa: E402

PAGE = 20
DEPTH_PAGES = 2000
CREATE_SCRIPT = """
local counter = 0
local threads = 0
function setup(thread)
  -- each thread gets its own prefix, so no two requests invite the same address
  threads = threads + 1
  thread:set("prefix", "t" .. threads .. "-" .. os.time())
end
request = function()
  counter = counter + 1
  local body = '{"email": "' .. prefix .. '-' .. counter .. '@bench.example.com", "notify": false}'
  -- nil headers: wrk.headers, which holds the -H Authorization header
  wrk.headers["Content-Type"] = "application/json"
  return wrk.format("POST", nil, nil, body)
end
"""


def cursor_at(app, org_id: str, status: str | None, depth: int) -> str:
    """The id a client holds after walking ``depth`` rows newest first."""
    with app.app_context():
        query = select(Invitation.id).where(Invitation.org_id == org_id)
        if status:
            query = query.where(Invitation.status == status)
        query = query.order_by(Invitation.created_at.desc(), Invitation.id.desc())
        return db.session.scalar(query.offset(depth - 1).limit(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="an empty database to seed (default: SQLite)")
    parser.add_argument("--reuse", action="store_true", help="the org 'big' is already seeded")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument(
        "--only", choices=["create"], help="measure only this case (default: every case)"
    )
    args = parser.parse_args()

    app = scratch_app(args.database_url)
    org_id = seeded_org(app, args.count, args.reuse)
    with app.app_context():
        org = db.session.get(Organization, org_id)
        _, secret = create_api_key(db.session, org=org, name="bench")
        db.session.commit()

    base = "/api/v1/organizations/big/invitations"
    if args.only == "create":
        cases = {}
    else:
        with app.app_context():
            rows = db.session.scalar(select(func.count()).where(Invitation.org_id == org_id))
        depth = min(DEPTH_PAGES * PAGE, rows // 4)  # a small --count still gets a deep cursor
        pages = depth // PAGE
        cases = {
            "first page": base,
            "first page, status=pending": f"{base}?status=pending",
            f"{pages:,} pages deep (cursor)": (
                f"{base}?starting_after={cursor_at(app, org_id, None, depth)}"
            ),
            f"{pages:,} pages deep, status=accepted": (
                f"{base}?status=accepted&starting_after={cursor_at(app, org_id, 'accepted', depth)}"
            ),
        }
    env = {
        **os.environ,
        "ORGINVITES_DATABASE_URL": app.config["DATABASE_URL"],
        "ORGINVITES_SECRET_KEY": "bench-secret-key",
        "ORGINVITES_INSTANCE_PATH": app.instance_path,
        "ORGINVITES_MAIL_BACKEND": "smtp",
        **UNLIMITED_API_ENVIRONMENT,
    }
    auth = f"Authorization: Bearer {secret}"
    script = Path(tempfile.mkdtemp(prefix="orginvites-wrk-")) / "create.lua"
    script.write_text(CREATE_SCRIPT)
    app_port, hello_port = free_port(), free_port()
    orginvites = gunicorn("webapp:create_app()", app_port, env)
    hello = gunicorn("bench.hello_app:app", hello_port, env)
    measured = ["create"] if args.only == "create" else [*cases, "hello", "create"]
    results: dict[str, list] = {name: [] for name in measured}
    ratios = []
    try:
        for run in range(args.runs):
            for name, path in cases.items():
                result = wrk(f"http://127.0.0.1:{app_port}{path}", [auth], args.seconds)
                assert result.non_2xx == 0, (name, result)
                results[name].append(result)
            if cases:
                bare = wrk(f"http://127.0.0.1:{hello_port}/", [], args.seconds)
                results["hello"].append(bare)
                ratios.append(results["first page"][-1].rate / bare.rate)
            created = wrk(f"http://127.0.0.1:{app_port}{base}", [auth], args.seconds, str(script))
            assert created.non_2xx == 0, created
            results["create"].append(created)
            print(f"  run {run + 1} done", flush=True)
    finally:
        orginvites.terminate()
        hello.terminate()

    dialect = app.config["DATABASE_URL"].split(":", 1)[0]
    print(f"\n{dialect}, gunicorn 2 workers, wrk 8 connections, median of {args.runs} runs")
    print(f"{'case':40} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    for name, values in results.items():
        p50 = median([v.p50_ms for v in values])
        p99 = median([v.p99_ms for v in values])
        rate = median([v.rate for v in values])
        print(f"{name:40} {p50:8.2f} {p99:8.2f} {rate:8.0f}")
    if ratios:
        print(f"first page / hello throughput: {median(ratios):.1%}")


if __name__ == "__main__":
    main()
