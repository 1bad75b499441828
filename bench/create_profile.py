"""In-process cost of one API create: CPU time, statements and Python calls per request.

    .venv/bin/python bench/create_profile.py [--database-url URL] [--count 20000]
                                             [--requests 500] [--profile N]

Seeds an organization 'big' with COUNT invitations (skipped when the database already
has it: point --database-url at a copy of a seeded database), then sends REQUESTS
``POST /api/v1/organizations/big/invitations`` (notify=false, unique addresses) through
the Flask test client with an API key, and prints the median and p90 CPU time
(``time.process_time``) per request, the statements per request (every statement the
driver runs), and with
--profile the top N functions of a cProfile of the same loop.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event  # noqa: E402
from sqlalchemy import select  # noqa: E402

from bench.common import UNLIMITED_API  # noqa: E402
from bench.common import count_instructions  # noqa: E402
from bench.common import print_profile  # noqa: E402
from bench.common import scratch_app  # noqa: E402
from bench.common import statements_per_request  # noqa: E402
from webapp.extensions import db  # noqa: E402
from webapp.models import Organization  # noqa: E402
from webapp.services.api_keys import create_api_key  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url")
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--profile", type=int, default=0, help="print the top N functions")
    parser.add_argument("--show-sql", action="store_true", help="print one request's SQL")
    parser.add_argument(
        "--callgrind", action="store_true", help="count instructions (run under valgrind)"
    )
    parser.add_argument(
        "--sqlite-pragma", action="append", default=[], help="run PRAGMA X on each connection"
    )
    args = parser.parse_args()

    app = scratch_app(args.database_url, **UNLIMITED_API)
    with app.app_context():
        org = db.session.scalar(select(Organization).where(Organization.slug == "big"))
        if org is None:
            from bench.seed import seed

            db.session.rollback()  # the lookup's transaction holds SQLite's write lock
            seed(app, args.count)
            org = db.session.scalar(select(Organization).where(Organization.slug == "big"))
        _, secret = create_api_key(db.session, org=org, name="create-profile")
        db.session.commit()
        engine = db.engine

    # The connections the timing loop uses run these pragmas.
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        for pragma in args.sqlite_pragma:
            dbapi_connection.execute(f"PRAGMA {pragma}")

    engine.dispose()

    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    prefix = uuid.uuid4().hex[:8]
    path = "/api/v1/organizations/big/invitations"

    def create(n: int) -> None:
        response = client.post(
            path,
            json={"email": f"p{prefix}-{n}@profile.example.com", "notify": False},
            headers=headers,
        )
        assert response.status_code == 201, response.get_data(as_text=True)

    for n in range(20):  # warm up: statement caches, pool, first-use imports
        create(-n - 1)

    if args.callgrind:
        count_instructions(create, args.requests, "creates")
        return

    cpu: list[float] = []
    wall: list[float] = []
    for n in range(args.requests):
        started, started_wall = time.process_time(), time.perf_counter()
        create(n)
        cpu.append((time.process_time() - started) * 1000)
        wall.append((time.perf_counter() - started_wall) * 1000)
    cpu.sort()
    wall.sort()

    statements = statements_per_request(
        engine, lambda n: create(args.requests + n), 20, args.show_sql, width=160
    )
    print(
        f"{app.config['DATABASE_URL'].split(':', 1)[0]}: {args.requests} creates, CPU per request "
        f"median {statistics.median(cpu):.2f} ms, p90 {cpu[int(len(cpu) * 0.9)]:.2f} ms; "
        f"statements per request {statements:g}; wall time p50 "
        f"{statistics.median(wall):.2f} ms, p99 {wall[int(len(wall) * 0.99)]:.2f} ms, "
        f"max {wall[-1]:.1f} ms"
    )

    if args.profile:
        print_profile(lambda n: create(args.requests + 100 + n), args.requests, args.profile)


if __name__ == "__main__":
    main()
