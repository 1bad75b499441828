"""Two admins import overlapping files at the same moment: every address is invited once.

Each import runs in its own thread, app context and connection, released together by a
barrier, in small batches so that the two interleave. On PostgreSQL (Read Committed)
only the partial unique index can keep the overlap from being invited twice; on SQLite
BEGIN IMMEDIATE serialises the batches.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import text

from webapp.extensions import db
from webapp.models import AuditEvent
from webapp.models import Invitation
from webapp.models import OutboxMessage
from webapp.services.actors import SYSTEM
from webapp.services.counters import status_totals
from webapp.services.importing.parsing import parse_csv
from webapp.services.importing.planning import ImportDefaults
from webapp.services.importing.planning import plan_import
from webapp.services.importing.planning import run_import
from webapp.services.organizations import create_organization
from webapp.services.organizations import get_organization

REPEATS = 3


def addresses(numbers) -> bytes:
    return ("email\n" + "".join(f"person{n}@example.com\n" for n in numbers)).encode()


def import_together(
    app, slug: str, files: list[bytes], batch_size: int
) -> list[tuple[str, object]]:
    barrier = threading.Barrier(len(files))
    results: list[tuple[str, object]] = [("missing", None)] * len(files)

    def worker(index: int) -> None:
        with app.app_context():
            db.session.execute(text("SELECT 1"))  # hold a connection before the start
            db.session.commit()
            org = get_organization(db.session, slug)
            plan = plan_import(db.session, org, parse_csv(files[index]), ImportDefaults())
            db.session.commit()
            barrier.wait(timeout=30)
            try:
                result = run_import(
                    db.session, org, plan, actor=SYSTEM, source="import", batch_size=batch_size
                )
                results[index] = ("ok", result.totals())
            except Exception as exc:  # noqa: BLE001 - surfaced by the assertions
                db.session.rollback()
                results[index] = ("crash", exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(files))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


# Batches below and above POSTGRES_COPY_MIN_ROWS (multi-row INSERT; COPY) on PostgreSQL.
@pytest.mark.parametrize("batch_size", [40, 120])
@pytest.mark.parametrize("attempt", range(REPEATS))
def test_two_concurrent_imports_of_overlapping_files_invite_each_address_once(
    app, attempt, batch_size
):
    with app.app_context():
        org = create_organization(db.session, name=f"Race {attempt} {batch_size}")
        db.session.commit()
        slug, org_id = org.slug, org.id
    first = range(0, 400)
    # Overlap in the middle, in reverse order, so the batches meet from both sides.
    second = list(reversed(range(200, 600)))

    results = import_together(app, slug, [addresses(first), addresses(second)], batch_size)

    assert [kind for kind, _ in results] == ["ok", "ok"], results
    totals = [r for _, r in results]
    assert sum(t.get("invited", 0) for t in totals) == 600
    assert sum(t.get("already_invited", 0) for t in totals) == 200
    with app.app_context():
        session = db.session
        per_address = session.execute(
            select(Invitation.email_key, func.count())
            .where(Invitation.org_id == org_id, Invitation.status == "pending")
            .group_by(Invitation.email_key)
        ).all()
        assert len(per_address) == 600
        assert {n for _, n in per_address} == {1}
        created = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.org_id == org_id, AuditEvent.type == "invitation.created")
        )
        emails = session.execute(
            select(OutboxMessage.invitation_id, func.count())
            .where(OutboxMessage.org_id == org_id)
            .group_by(OutboxMessage.invitation_id)
        ).all()
        assert created == 600
        assert len(emails) == 600 and {n for _, n in emails} == {1}
        assert status_totals(session, org_id)["pending"] == 600
