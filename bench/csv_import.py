"""CSV import speed and memory: 100,000 rows, 10 % of them bad or duplicated.

    .venv/bin/python bench/csv_import.py [--rows 100000] [--runs 3]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Writes the CSV once, then for each database (SQLite always; PostgreSQL when a server
URL is given by --postgres or ORGINVITES_TEST_DATABASE_URL) and each run, on a fresh
migrated database, in a fresh child process (so its peak RSS is the import's own):

  * preview: parse + check every row + look up pending invitations and members +
    encode the stored verdict table (what the dashboard's "checking" step does);
  * import: create the valid rows through the importer (invitations, audit events,
    outbox rows; one committed transaction per 2,000-row batch), and end to end
    (file → committed, as the CLI does);
  * re-import: the same file again, preview and import, creating nothing;
  * baseline: a plain Core ``executemany`` of the same invitation rows (same columns,
    same values, same batches and commits) into the same table, for another org.

Prints each run and the medians; the child's peak RSS is measured before the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

from bench.common import median  # noqa: E402
from bench.common import scratch_app  # noqa: E402

ROLES = ["member"] * 8 + ["admin"]


def write_csv(path: Path, rows: int, seed: int = 7) -> dict[str, int]:
    """``rows`` rows: 90 % distinct valid addresses, 10 % bad or duplicate."""
    rng = random.Random(seed)
    kinds = {"valid": 0, "invalid_email": 0, "duplicate": 0, "unknown_role": 0, "bad_expiry": 0}
    lines = ["email,role,expires_in_days,public_metadata.team"]
    valid: list[str] = []
    for n in range(rows):
        roll = rng.random()
        team = rng.choice(["red", "blue", "green", "ops"])
        if roll < 0.04:
            kinds["invalid_email"] += 1
            lines.append(f"person{n} at company{n % 997}.example.com,member,,{team}")
        elif roll < 0.07 and valid:
            kinds["duplicate"] += 1
            lines.append(f"{rng.choice(valid).upper()},member,,{team}")
        elif roll < 0.09:
            kinds["unknown_role"] += 1
            lines.append(f"person{n}@company{n % 997}.example.com,owner,,{team}")
        elif roll < 0.10:
            kinds["bad_expiry"] += 1
            lines.append(f"person{n}@company{n % 997}.example.com,member,45,{team}")
        else:
            kinds["valid"] += 1
            email = f"person{n}@company{n % 997}.example.com"
            valid.append(email)
            days = rng.choice(["", "", "", "7", "14"])
            lines.append(f"{email},{rng.choice(ROLES)},{days},{team}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return kinds


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(database_url: str, csv_path: Path) -> None:
    """One measured run in this (fresh) process; prints a JSON line."""
    import logging

    logging.disable(logging.INFO)
    from webapp.extensions import db
    from webapp.models import AuditEvent
    from webapp.models import Invitation
    from webapp.models import OutboxMessage
    from webapp.services.actors import SYSTEM
    from webapp.services.importing.parsing import parse_csv
    from webapp.services.importing.planning import ImportDefaults
    from webapp.services.importing.planning import plan_import
    from webapp.services.importing.planning import preview_import
    from webapp.services.importing.planning import run_import
    from webapp.services.importing.report import encode_preview
    from webapp.services.importing.report import error_report
    from webapp.services.organizations import create_organization
    from webapp.services.organizations import get_organization

    app = scratch_app(database_url)
    with app.app_context():
        slug = create_organization(db.session, name="Bench").slug
        other_id = create_organization(db.session, name="Baseline").id
        db.session.commit()
    data = csv_path.read_bytes()
    figures: dict[str, object] = {"start_rss_mb": round(peak_rss_mb(), 1)}

    def counts(session) -> tuple[int, int, int]:
        return tuple(  # type: ignore[return-value]
            session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (Invitation, AuditEvent, OutboxMessage)
        )

    with app.app_context():
        session = db.session
        org = get_organization(session, slug)
        started = time.perf_counter()
        parsed = parse_csv(data)
        plan = plan_import(session, org, parsed, ImportDefaults())
        preview = preview_import(session, org, plan)
        blob = encode_preview(plan.rows)
        session.rollback()
        figures["preview_s"] = time.perf_counter() - started
        figures["preview_counts"] = preview.counts
        figures["preview_blob_kb"] = len(blob) // 1024
        del blob, preview

        started = time.perf_counter()
        result = run_import(session, org, plan, actor=SYSTEM, source="import")
        figures["import_s"] = time.perf_counter() - started
        figures["end_to_end_s"] = figures["preview_s"] + figures["import_s"]
        figures["import_counts"] = result.totals()
        figures["report_kb"] = len(error_report(plan)) // 1024
        figures["invited"] = result.totals().get("invited", 0)
        after_import = counts(session)
        session.commit()
        del plan, parsed

        started = time.perf_counter()
        parsed = parse_csv(data)
        again = plan_import(session, org, parsed, ImportDefaults())
        preview_import(session, org, again)
        repeat = run_import(session, org, again, actor=SYSTEM, source="import")
        figures["reimport_s"] = time.perf_counter() - started
        assert repeat.totals().get("invited", 0) == 0, repeat.totals()
        assert counts(session) == after_import, (counts(session), after_import)
        figures["peak_rss_mb"] = round(peak_rss_mb(), 1)

        # Baseline: the same invitation rows, plain Core executemany, same batches.
        del again
        rows = plan_import(session, org, parsed, ImportDefaults(), look_up=False).valid_rows()
        session.rollback()
        del parsed
        values = baseline_rows(rows, other_id)
        del rows
    insert = sa.insert(Invitation.__table__)
    with app.app_context():
        session = db.session
        started = time.perf_counter()
        for start in range(0, len(values), 2000):
            session.execute(insert, values[start : start + 2000])
            session.commit()
        figures["baseline_s"] = time.perf_counter() - started
        figures["baseline_rows"] = len(values)
    with app.app_context():
        db.engine.dispose()
    print(json.dumps(figures))


def baseline_rows(rows, org_id: str) -> list[dict]:
    import hashlib

    from webapp.clock import utcnow
    from webapp.ids import new_id

    now = utcnow()
    out = []
    for row in rows:
        checked = row.checked
        out.append(
            {
                "id": new_id("inv"),
                "org_id": org_id,
                "email": checked.email,
                "email_key": checked.email_key,
                "role": checked.role,
                "status": "pending",
                "source": "import",
                "inviter_user_id": None,
                "inviter_api_key_id": None,
                "public_metadata": checked.public_metadata,
                "private_metadata": checked.private_metadata,
                "redirect_url": checked.redirect_url,
                "project_grants": checked.project_grants,
                "message": checked.message,
                "token_hash": hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
                "created_at": now,
                "updated_at": now,
                "expires_at": checked.expires_at,
                "send_count": 1,
                "last_sent_at": now,
                "delivery_status": "queued",
            }
        )
    return out


def fresh_postgres(server_url: str):
    """Create an empty database on the server; returns (url, drop)."""
    name = f"orginvites_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    url = sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    return url, drop


def run_child(database_url: str, csv_path: Path) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--child", database_url, str(csv_path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def report(backend: str, runs: list[dict]) -> None:
    def med(key: str) -> float:
        return median([r[key] for r in runs])

    invited = runs[0]["invited"]
    import_rate = median([r["invited"] / r["import_s"] for r in runs])
    base_rate = median([r["baseline_rows"] / r["baseline_s"] for r in runs])
    print(f"\n{backend}: medians of {len(runs)} runs")
    print(f"  parse + validate + preview   {med('preview_s'):6.2f} s   (target <= 4 s)")
    target = 6 if backend == "sqlite" else 9
    print(f"  import ({invited:,} invited)      {med('import_s'):6.2f} s   (target <= {target} s)")
    print(f"  end to end (file → committed) {med('end_to_end_s'):6.2f} s")
    print(f"  re-import, nothing created   {med('reimport_s'):6.2f} s   (target <= 3 s)")
    print(f"  peak RSS of the process      {med('peak_rss_mb'):6.0f} MB  (target <= 250 MB)")
    print(f"  import rows/s                {import_rate:8,.0f}")
    print(f"  plain executemany rows/s     {base_rate:8,.0f}   (same rows, same table)")
    print(f"  import / executemany         {import_rate / base_rate:8.0%}")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("ORGINVITES_TEST_DATABASE_URL"))
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="orginvites-csv-bench-"))
    csv_path = folder / "people.csv"
    kinds = write_csv(csv_path, args.rows)
    size = csv_path.stat().st_size
    print(f"{args.rows:,} rows ({size / 1024 / 1024:.1f} MiB): {kinds}")
    backends = ["sqlite"] + (["postgresql"] if args.postgres else [])
    if args.only:
        backends = [args.only]
    for backend in backends:
        runs = []
        for n in range(args.runs):
            if backend == "sqlite":
                url, drop = f"sqlite:///{folder / f'run{n}.sqlite3'}", (lambda: None)
            else:
                url, drop = fresh_postgres(args.postgres)
            try:
                figures = run_child(url, csv_path)
            finally:
                drop()
            runs.append(figures)
            print(
                f"  {backend} run {n + 1}: preview {figures['preview_s']:.2f} s, "
                f"import {figures['import_s']:.2f} s, re-import {figures['reimport_s']:.2f} s, "
                f"baseline {figures['baseline_s']:.2f} s, peak RSS {figures['peak_rss_mb']} MB",
                flush=True,
            )
        print(f"  counts: {runs[0]['import_counts']}")
        report(backend, runs)


if __name__ == "__main__":
    main()
