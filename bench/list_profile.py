"""In-process cost of one API list page: CPU time, statements and Python calls per request.

    .venv/bin/python bench/list_profile.py --database-url URL [--requests 2000]
                                           [--path QUERY] [--profile N] [--show-sql]

Needs a database with the organization 'big' seeded (bench/seed.py; bench/api_list.py
uses the same). Sends REQUESTS ``GET /api/v1/organizations/big/invitations[?QUERY]``
through the Flask test client with an org API key, and prints the median and p90 CPU
time (``time.process_time``) per request, the statements per request (every statement
the driver runs), and with --profile the top N functions of a cProfile of the same loop.
CPU time is noisy on a shared machine; instructions are not. With --callgrind, run it
under valgrind and divide the instructions it counted by REQUESTS:

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/list.cg \
        .venv/bin/python bench/list_profile.py --database-url URL --requests 200 --callgrind
    grep ^totals /tmp/list.cg          # instructions for the 200 pages

(an older checkout: copy this file into its bench/ and run it from there).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--path", default="", help="the query string, e.g. status=pending")
    parser.add_argument("--profile", type=int, default=0, help="print the top N functions")
    parser.add_argument("--show-sql", action="store_true", help="print one request's SQL")
    parser.add_argument(
        "--callgrind", action="store_true", help="count instructions (run under valgrind)"
    )
    args = parser.parse_args()

    app = scratch_app(args.database_url, **UNLIMITED_API)
    with app.app_context():
        org = db.session.scalar(select(Organization).where(Organization.slug == "big"))
        if org is None:
            sys.exit("no organization 'big' here: seed it with bench/seed.py first")
        _, secret = create_api_key(db.session, org=org, name="list-profile")
        db.session.commit()
        engine = db.engine

    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    url = "/api/v1/organizations/big/invitations" + (f"?{args.path}" if args.path else "")

    def list_page() -> None:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)

    for _ in range(50):  # warm up: statement caches, pool, first-use imports
        list_page()

    if args.callgrind:
        count_instructions(lambda _: list_page(), args.requests, "list pages")
        return

    cpu: list[float] = []
    for _ in range(args.requests):
        started = time.process_time()
        list_page()
        cpu.append((time.process_time() - started) * 1000)
    cpu.sort()

    statements = statements_per_request(engine, lambda _n: list_page(), 10, args.show_sql)
    print(
        f"{app.config['DATABASE_URL'].split(':', 1)[0]}: {args.requests} list pages, CPU per "
        f"request median {statistics.median(cpu):.3f} ms, p90 {cpu[int(len(cpu) * 0.9)]:.3f} ms;"
        f" statements per request {statements:g}"
    )

    if args.profile:
        print_profile(lambda _n: list_page(), args.requests, args.profile)


if __name__ == "__main__":
    main()
