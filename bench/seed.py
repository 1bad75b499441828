"""Seed one organization with N invitations quickly (Core executemany in batches).

    .venv/bin/python bench/seed.py --count 1000000 [--database-url URL]

Statuses, roles and creation times are spread like a real org's (six months); counters
are rebuilt at the end. Used by the list benchmarks; prints the database URL it filled.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench.common import scratch_app  # noqa: E402
from webapp.clock import utcnow  # noqa: E402
from webapp.extensions import db  # noqa: E402
from webapp.models import Invitation  # noqa: E402
from webapp.services.counters import rebuild_counters  # noqa: E402
from webapp.services.organizations import create_organization  # noqa: E402

BATCH = 10_000
STATUSES = (
    ["accepted"] * 45 + ["pending"] * 25 + ["expired"] * 12 + ["revoked"] * 8 + ["declined"] * 10
)


def seed(app, count: int, slug: str = "big") -> str:
    """Insert ``count`` invitations into a new org ``slug``; return its id."""
    rng = random.Random(1)
    now = utcnow()
    with app.app_context():
        org = create_organization(db.session, name="Big Org", slug=slug)
        db.session.commit()
        org_id = org.id
    started = time.perf_counter()
    for start in range(0, count, BATCH):
        rows = []
        for n in range(start, min(count, start + BATCH)):
            status = STATUSES[n % len(STATUSES)]
            # Pending ones are recent; everything else spread over six months.
            age = (
                rng.uniform(0, 6 * 86400)
                if status == "pending"
                else rng.uniform(8 * 86400, 180 * 86400)
            )
            created = now - timedelta(seconds=age)
            email = f"person{n}@company{n % 997}.example"
            row = {
                "id": f"inv_{n:026d}",
                "org_id": org_id,
                "email": email,
                "email_key": email,
                "role": "member",
                "status": status,
                "source": "api",
                "public_metadata": {},
                "private_metadata": {},
                "project_grants": [],
                "token_hash": os.urandom(32).hex(),
                "created_at": created,
                "updated_at": created,
                "expires_at": created + timedelta(days=7),
                "send_count": 1,
                "delivery_status": "sent",
                "accepted_at": created + timedelta(hours=1) if status == "accepted" else None,
                "declined_at": created + timedelta(hours=1) if status == "declined" else None,
                "revoked_at": created + timedelta(hours=1) if status == "revoked" else None,
            }
            rows.append(row)
        with app.app_context():
            db.session.execute(insert(Invitation), rows)
            db.session.commit()
        done = min(count, start + BATCH)
        if done % 100_000 == 0 or done == count:
            rate = done / (time.perf_counter() - started)
            print(f"  seeded {done:>9,} invitations ({rate:,.0f}/s)", flush=True)
    with app.app_context():
        rebuild_counters(db.session, org_id)
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE invitations")
        else:
            db.session.execute(text("ANALYZE"))
            db.session.commit()
    return org_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    app = scratch_app(args.database_url)
    seed(app, args.count)
    print(app.config["DATABASE_URL"])


if __name__ == "__main__":
    main()
