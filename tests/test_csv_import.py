"""Importing a CSV through the shared invitation rules, on SQLite and PostgreSQL:
every preview verdict, the import's rows (with audit events and outbox emails), re-import,
quota, the error report round trip, and jobs run in worker rounds."""

from __future__ import annotations

import csv
import io
import threading
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from tests.conftest import APP_ORIGIN
from tests.dashboard_pages import in_db
from tests.dashboard_support import make_member
from webapp.clock import utcnow
from webapp.extensions import db
from webapp.models import AuditEvent
from webapp.models import ImportJob
from webapp.models import ImportJobData
from webapp.models import Invitation
from webapp.models import OutboxMessage
from webapp.services.actors import SYSTEM
from webapp.services.bulk_rows import POSTGRES_COPY_MIN_ROWS
from webapp.services.counters import status_totals
from webapp.services.csv_export import FORMULA_TRIGGERS
from webapp.services.csv_export import csv_bytes
from webapp.services.csv_export import neutralize
from webapp.services.errors import QuotaExceeded
from webapp.services.errors import Throttled
from webapp.services.errors import ValidationFailed
from webapp.services.importing import jobs
from webapp.services.importing import planning
from webapp.services.importing.jobs import confirm_job
from webapp.services.importing.jobs import create_job
from webapp.services.importing.jobs import discard_job
from webapp.services.importing.jobs import job_report
from webapp.services.importing.jobs import preview_page
from webapp.services.importing.jobs import run_import_round
from webapp.services.importing.parsing import parse_csv
from webapp.services.importing.parsing import unguard
from webapp.services.importing.planning import ImportDefaults
from webapp.services.importing.planning import import_batch_committed
from webapp.services.importing.planning import plan_import
from webapp.services.importing.planning import preview_import
from webapp.services.importing.planning import run_import
from webapp.services.importing.report import error_report
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import create_invitation
from webapp.services.organizations import add_role
from webapp.services.organizations import create_project
from webapp.services.organizations import get_organization
from webapp.services.organizations import remove_role
from webapp.services.organizations import update_organization
from webapp.services.tokens import hash_token
from webapp.services.tokens import open_from_outbox


def plan_for(session, org, text: str | bytes, **defaults):
    data = text.encode() if isinstance(text, str) else text
    return plan_import(session, org, parse_csv(data), ImportDefaults(**defaults))


def preview_for(session, org, text, **defaults):
    return preview_import(session, org, plan_for(session, org, text, **defaults))


def by_email(rows) -> dict[str, tuple[str, str]]:
    return {r.email: (r.verdict, r.detail) for r in rows}


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


def cells(data: bytes) -> list[list[str]]:
    text = data.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:], newline="")))


EVERY_VERDICT = """email,role,redirect_url,expires_in_days,projects,public_metadata
new@example.com,,,,,
not-an-address,,,,,
new@example.com,,,,,
pending@example.com,,,,,
member@example.com,,,,,
role@example.com,boss,,,,
redirect@example.com,,https://evil.example/welcome,,,
days@example.com,,,45,,
words@example.com,,,soon,,
json@example.com,,,,,"[1, 2]"
project@example.com,,,,Nonexistent,
"""


def test_the_preview_gives_every_verdict_and_changes_nothing(session, org):
    create_invitation(session, org, InvitationRequest(email="Pending@Example.com"), actor=SYSTEM)
    make_member(org, "member@example.com", "member")
    before = count(session, Invitation)

    preview = preview_for(session, org, EVERY_VERDICT)

    rows = preview.plan.rows
    assert [(r.source.number, r.verdict) for r in rows] == [
        (2, "will_invite"),
        (3, "invalid_email"),
        (4, "duplicate"),
        (5, "already_invited"),
        (6, "already_member"),
        (7, "unknown_role"),
        (8, "redirect_not_allowed"),
        (9, "bad_expiry"),
        (10, "bad_expiry"),
        (11, "bad_metadata"),
        (12, "bad_projects"),
    ]
    details = [r.detail for r in rows]
    assert "'not-an-address' is not valid" in details[1]
    assert details[2] == "new@example.com is already on row 2"
    assert "'boss' is not a role of Acme" in details[5]
    assert "'https://evil.example/welcome' is not on this organization's allowed" in details[6]
    assert "45 days is outside the allowed range of 1 hour to 30 days" in details[7]
    assert "expires_in_days 'soon' is not a number of days" in details[8]
    assert "public_metadata '[1, 2]' is not a JSON object" in details[9]
    assert "'Nonexistent' is not a project of Acme" in details[10]
    assert preview.counts == {
        "will_invite": 1,
        "invalid_email": 1,
        "duplicate": 1,
        "already_invited": 1,
        "already_member": 1,
        "unknown_role": 1,
        "redirect_not_allowed": 1,
        "bad_expiry": 2,
        "bad_metadata": 1,
        "bad_projects": 1,
    }
    assert [r.label for r in rows[:6]] == [
        "will invite",
        "invalid email",
        "duplicate in this file",
        "already invited (pending)",
        "already a member",
        "unknown role",
    ]
    session.rollback()
    assert count(session, Invitation) == before


def test_a_lapsed_pending_invitation_does_not_block_a_new_one(session, org, time_machine):
    time_machine.move_to("2026-03-01 12:00:00+00:00", tick=False)
    old = create_invitation(
        session,
        org,
        InvitationRequest(email="late@example.com", expires_in=timedelta(hours=1)),
        actor=SYSTEM,
    ).invitation.id
    session.commit()
    time_machine.shift(timedelta(hours=2))

    plan = plan_for(session, org, "late@example.com\n")
    assert preview_import(session, org, plan).counts == {"will_invite": 1}
    result = run_import(session, org, plan, actor=SYSTEM, source="import")

    assert result.totals() == {"invited": 1}
    assert session.get(Invitation, old, populate_existing=True).status == "expired"
    assert count(session, Invitation, Invitation.status == "pending") == 1


def test_the_import_creates_invitations_with_their_events_and_emails(session, org):
    project = create_project(session, org, "Research")
    session.commit()
    text = (
        "Email,Role,Redirect_URL,Expires_In_Days,Projects,public_metadata.team,"
        "private_metadata,private_metadata.cost\n"
        f'Ann@Example.com,admin,{APP_ORIGIN}/start,3,research:owner,red,"{{""tier"": 2}}",42\n'
        "bob@example.com,,,,,,,\n"
    )
    plan = plan_for(session, org, text, role="member", expires_in=timedelta(days=14))
    result = run_import(session, org, plan, actor=SYSTEM, source="import")
    assert result.totals() == {"invited": 2}

    ann = session.scalar(select(Invitation).where(Invitation.email_key == "ann@example.com"))
    assert (ann.email, ann.role, ann.status, ann.source) == (
        "Ann@example.com",
        "admin",
        "pending",
        "import",
    )
    assert ann.redirect_url == f"{APP_ORIGIN}/start"
    assert ann.public_metadata == {"team": "red"}
    assert ann.private_metadata == {"tier": 2, "cost": "42"}
    assert ann.project_grants == [{"project_id": project.id, "role": "owner"}]
    assert abs((ann.expires_at - ann.created_at) - timedelta(days=3)) < timedelta(seconds=1)
    bob = session.scalar(select(Invitation).where(Invitation.email_key == "bob@example.com"))
    assert bob.role == "member"  # the admin's default for rows without a role
    assert abs((bob.expires_at - bob.created_at) - timedelta(days=14)) < timedelta(seconds=1)

    for invitation in (ann, bob):
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.invitation_id == invitation.id)
        ).all()
        assert [(e.type, e.data["source"]) for e in events] == [("invitation.created", "import")]
        outbox = session.scalars(
            select(OutboxMessage).where(OutboxMessage.invitation_id == invitation.id)
        ).all()
        assert [(m.kind, m.to_email, m.status) for m in outbox] == [
            ("invitation", invitation.email, "pending")
        ]
        assert outbox[0].token_ciphertext
    assert status_totals(session, org.id)["pending"] == 2


def test_a_role_removed_after_the_check_fails_its_rows_and_nothing_else(session, org):
    """The file was checked while 'guest' existed; an admin removed it before the
    import ran (a job waits for its confirmation): its rows fail with the role named,
    the others go in."""
    add_role(session, org, "guest", "Guest")
    session.commit()
    plan = plan_for(session, org, "email,role\nann@example.com,guest\nbob@example.com,member\n")
    assert [r.verdict for r in plan.rows] == ["will_invite", "will_invite"]
    remove_role(session, org, "guest")
    session.commit()

    result = run_import(session, org, plan, actor=SYSTEM, source="import")

    assert result.totals() == {"invited": 1, "unknown_role": 1}
    assert by_email(plan.rows)["ann@example.com"] == (
        "unknown_role",
        "'guest' is not a role of Acme (roles: admin, member)",
    )
    assert session.scalars(select(Invitation.email)).all() == ["bob@example.com"]
    assert status_totals(session, org.id)["pending"] == 1


def test_roles_are_matched_without_regard_to_case(session, org):
    plan = plan_for(session, org, "email,role\nann@example.com,Admin\nbob@example.com,MEMBER\n")
    assert [r.checked.role for r in plan.rows] == ["admin", "member"]


def test_without_notify_no_email_is_queued(session, org):
    plan = plan_for(session, org, "ann@example.com\n", notify=False)
    run_import(session, org, plan, actor=SYSTEM, source="import")
    assert count(session, OutboxMessage) == 0
    assert session.scalar(select(Invitation.delivery_status)) == "not_sent"


def test_importing_the_same_file_again_creates_nothing(session, org):
    text = "email\n" + "".join(f"person{n}@example.com\n" for n in range(30)) + "bad\n"
    first = run_import(session, org, plan_for(session, org, text), actor=SYSTEM, source="import")
    assert first.totals() == {"invited": 30, "invalid_email": 1}
    totals = (count(session, Invitation), count(session, AuditEvent), count(session, OutboxMessage))

    plan = plan_for(session, org, text)
    assert preview_import(session, org, plan).counts == {"already_invited": 30, "invalid_email": 1}
    again = run_import(session, org, plan, actor=SYSTEM, source="import", batch_size=7)

    assert again.totals() == {"already_invited": 30, "invalid_email": 1}
    assert (
        count(session, Invitation),
        count(session, AuditEvent),
        count(session, OutboxMessage),
    ) == totals
    assert status_totals(session, org.id)["pending"] == 30


def test_an_address_invited_after_planning_is_skipped_in_a_large_batch(session, org):
    """A batch large enough for PostgreSQL's COPY path meets an address that got its
    pending invitation after the plan was made: the unique index still skips it."""
    text = "email\n" + "".join(
        f"person{n}@example.com\n" for n in range(POSTGRES_COPY_MIN_ROWS + 10)
    )
    plan = plan_for(session, org, text)
    create_invitation(session, org, InvitationRequest(email="person7@example.com"), actor=SYSTEM)
    session.commit()

    result = run_import(session, org, plan, actor=SYSTEM, source="import")

    rows = POSTGRES_COPY_MIN_ROWS + 10
    assert result.totals() == {"invited": rows - 1, "already_invited": 1}
    assert by_email(plan.rows)["person7@example.com"][0] == "already_invited"
    assert count(session, Invitation) == rows
    assert count(session, AuditEvent, AuditEvent.type == "invitation.created") == rows
    assert count(session, OutboxMessage) == rows
    assert status_totals(session, org.id)["pending"] == rows


def test_an_import_over_the_quota_says_so_and_stops_at_the_quota(session, org):
    update_organization(session, org, invite_quota=3)
    create_invitation(session, org, InvitationRequest(email="first@example.com"), actor=SYSTEM)
    session.commit()
    text = "".join(f"p{n}@example.com\n" for n in range(5))

    preview = preview_for(session, org, text)
    assert preview.quota.message == (
        "This import would add 5 pending invitations, but Acme has 1 pending of its quota "
        "of 3: at most 2 more can be added. Remove rows from the file or raise the quota "
        "in the organization's settings."
    )
    plan = preview.plan
    result = run_import(session, org, plan, actor=SYSTEM, source="import", batch_size=2)

    assert result.totals() == {"invited": 2, "over_quota": 3}
    assert "quota is 3" in result.stopped
    assert status_totals(session, org.id)["pending"] == 3
    report = cells(error_report(plan))
    assert [row[0] for row in report[1:]] == ["p2@example.com", "p3@example.com", "p4@example.com"]
    assert report[1][1].startswith("over the quota: Acme already has 3 pending invitations")


def test_addresses_already_invited_do_not_count_against_the_quota(session, org):
    """The batch counts rows the unique index will skip only when the quota is tight."""
    update_organization(session, org, invite_quota=3)
    for email in ("a@example.com", "b@example.com"):
        create_invitation(session, org, InvitationRequest(email=email), actor=SYSTEM)
    session.commit()
    text = "a@example.com\nb@example.com\nc@example.com\n"
    plan = plan_import(session, org, parse_csv(text.encode()), ImportDefaults(), look_up=False)
    assert [r.verdict for r in plan.rows] == ["will_invite"] * 3  # not looked up

    result = run_import(session, org, plan, actor=SYSTEM, source="import")

    assert result.totals() == {"invited": 1, "already_invited": 2}
    assert status_totals(session, org.id)["pending"] == 3


def test_a_file_that_fits_the_quota_gets_no_message(session, org):
    update_organization(session, org, invite_quota=2)
    session.commit()
    assert preview_for(session, org, "a@example.com\nb@example.com\n").quota.message is None


# --- the error report -----------------------------------------------------------------

REPORTED = """email,role,public_metadata.note
ok@example.com,member,fine
=HYPERLINK("http://evil.example"),member,x
-bob@example.com,boss,+1
carol@example.com,member,"@SUM(1+1)"
dave@example.com,wizard,\t=2+3
"""


def test_the_error_report_round_trips_and_imports_exactly_the_fixed_rows(session, org):
    plan = plan_for(session, org, REPORTED)
    run_import(session, org, plan, actor=SYSTEM, source="import")
    report = error_report(plan)
    rows = cells(report)
    assert rows[0] == ["email", "role", "public_metadata.note", "error"]
    assert [r[0] for r in rows[1:]] == [
        '\'=HYPERLINK("http://evil.example")',
        "'-bob@example.com",
        "dave@example.com",
    ]
    assert rows[2][1:3] == ["boss", "'+1"]
    assert rows[3][2] == "'=2+3"  # the tab (stripped on upload) is gone, the = is guarded
    assert rows[2][3].startswith("unknown role: 'boss' is not a role of Acme")
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_TRIGGERS), cell
    session.commit()
    invited_before = count(session, Invitation)

    # Fix bob's role in a spreadsheet, save, upload the report as it is.
    fixed = report.replace(b"'-bob@example.com,boss,", b"'-bob@example.com,admin,")
    again = plan_for(session, org, fixed)
    result = run_import(session, org, again, actor=SYSTEM, source="import")

    assert result.totals() == {"invited": 1, "invalid_email": 1, "unknown_role": 1}
    assert count(session, Invitation) == invited_before + 1
    bob = session.scalar(select(Invitation).where(Invitation.email_key == "-bob@example.com"))
    assert (bob.role, bob.public_metadata) == ("admin", {"note": "+1"})
    # And the new report holds the two rows still to fix, unchanged.
    assert cells(error_report(again))[1:] == [rows[1], rows[3]]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.text(max_size=12), min_size=1, max_size=4), max_size=6))
def test_no_cell_of_a_written_csv_starts_like_a_formula(table):
    data = csv_bytes(["email", "note"], table, delimiter=";")
    written = list(csv.reader(io.StringIO(data.decode("utf-8")[1:], newline=""), delimiter=";"))
    assert len(written) == len(table) + 1
    for row, original in zip(written[1:], table, strict=True):
        assert len(row) == len(original)
        for cell, value in zip(row, original, strict=True):
            assert not cell.startswith(FORMULA_TRIGGERS)
            if not value.startswith("'"):
                assert unguard(cell) == value


def test_neutralize_guards_exactly_the_formula_characters():
    assert [neutralize(v) for v in ("=1", "+1", "-1", "@x", "\tx", "\rx", "\nx", "a=1", "")] == [
        "'=1",
        "'+1",
        "'-1",
        "'@x",
        "'\tx",
        "'\rx",
        "'\nx",
        "a=1",
        "",
    ]


def test_a_deadlocked_batch_is_run_again(session, org, monkeypatch):
    """PostgreSQL may pick a batch as a deadlock victim; the batch simply runs again."""

    class Deadlock(Exception):
        sqlstate = "40P01"

    real = planning.import_batch
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("INSERT …", {}, Deadlock())
        return real(*args, **kwargs)

    monkeypatch.setattr(planning, "import_batch", flaky)
    plan = plan_for(session, org, "a@example.com\nb@example.com\n")
    message = import_batch_committed(
        session, org, plan.rows, actor=SYSTEM, source="import", now=plan.now
    )
    assert message is None and len(calls) == 2
    assert [r.verdict for r in plan.rows] == ["invited", "invited"]
    assert count(session, Invitation) == 2


# --- jobs run by the worker's rounds ---------------------------------------------------


def new_job(app, text: bytes, **defaults):
    def work(session):
        org = get_organization(session, "acme")
        return create_job(
            session,
            org,
            text,
            filename="people.csv",
            defaults=ImportDefaults(**defaults),
            actor=SYSTEM,
            source="dashboard",
        ).id

    return in_db(app, work)


def job_state(app, job_id):
    return in_db(app, lambda s: s.get(ImportJob, job_id))


def confirm(app, job_id):
    def work(session):
        confirm_job(session, get_organization(session, "acme"), session.get(ImportJob, job_id))

    in_db(app, work)


@pytest.fixture
def acme(app):
    def work(session):
        from webapp.services.organizations import create_organization

        org = create_organization(session, name="Acme", slug="acme")
        update_organization(session, org, allowed_redirect_origins=[APP_ORIGIN])

    in_db(app, work)
    jobs._prepared.clear()
    yield
    jobs._prepared.clear()


BIG = ("email,role\n" + "".join(f"person{n}@example.com,member\n" for n in range(25))).encode()


def test_a_job_is_checked_then_imported_by_worker_rounds(app, acme):
    job_id = new_job(app, BIG + b"broken,member\nperson1@example.com,member\n")
    assert job_state(app, job_id).status == "checking"

    assert run_import_round(app, "worker-1") == 1
    job = job_state(app, job_id)
    assert job.status == "ready"
    assert job.total_rows == 27
    assert job.preview_counts == {"will_invite": 25, "invalid_email": 1, "duplicate": 1}
    assert job.file_summary["delimiter"] == "comma"
    assert run_import_round(app, "worker-1") == 0  # nothing waits

    confirm(app, job_id)
    app.config["IMPORT_BATCH_ROWS"] = 10
    while run_import_round(app, "worker-1", budget_seconds=0):
        job = job_state(app, job_id)
        if job.status == "importing":
            assert job.progress_total == 25 and job.progress_done in (10, 20)
    job = job_state(app, job_id)
    assert (job.status, job.percent, job.progress_done) == ("done", 100, 25)
    assert job.result_counts == {"invited": 25, "invalid_email": 1, "duplicate": 1}
    with app.app_context():
        kinds = set(
            db.session.scalars(select(ImportJobData.kind).where(ImportJobData.job_id == job_id))
        )
        assert kinds == {"report"}  # the upload and the preview are gone
        report = cells(job_report(db.session, job))
        assert report[1:] == [
            [
                "broken",
                "member",
                "invalid email: 'broken' is not valid: An email address must have an @-sign.",
            ]
        ]
        events = db.session.scalars(
            select(AuditEvent.data).where(AuditEvent.type == "invitation.created")
        ).all()
        assert len(events) == 25 and {e["import_id"] for e in events} == {job_id}


def test_a_job_resumes_where_a_dead_runner_stopped(app, acme, time_machine):
    time_machine.move_to(utcnow(), tick=True)
    job_id = new_job(app, BIG)
    run_import_round(app, "worker-1")
    confirm(app, job_id)
    app.config["IMPORT_BATCH_ROWS"] = 10
    run_import_round(app, "worker-1", budget_seconds=0)  # one batch, then the runner "dies"
    job = job_state(app, job_id)
    assert (job.status, job.progress_done, job.locked_by) == ("importing", 10, "worker-1")
    jobs._prepared.clear()  # its memory is gone with it

    assert run_import_round(app, "worker-2") == 0  # the lease still holds
    time_machine.shift(jobs.LEASE + timedelta(seconds=1))
    assert run_import_round(app, "worker-2") == 1

    job = job_state(app, job_id)
    assert (job.status, job.result_counts) == ("done", {"invited": 25})
    with app.app_context():
        assert count(db.session, Invitation) == 25
        assert count(db.session, OutboxMessage) == 25


def test_a_runner_that_lost_its_lease_does_not_count_its_batch(app, acme, time_machine):
    time_machine.move_to(utcnow(), tick=True)
    job_id = new_job(app, BIG)
    run_import_round(app, "worker-1")
    confirm(app, job_id)
    app.config["IMPORT_BATCH_ROWS"] = 10
    run_import_round(app, "worker-1", budget_seconds=0)
    # worker-2 takes over after the lease ran out and finishes…
    time_machine.shift(jobs.LEASE + timedelta(seconds=1))
    jobs._prepared.clear()
    run_import_round(app, "worker-2")
    # …then worker-1 wakes up: the job is no longer its own, so it does nothing.
    with app.app_context():
        assert jobs.step_job(db.session, job_id, "worker-1") is False
    job = job_state(app, job_id)
    assert (job.status, job.result_counts) == ("done", {"invited": 25})


def test_a_job_importing_the_same_file_again_creates_nothing(app, acme):
    for _ in range(2):
        job_id = new_job(app, BIG)
        run_import_round(app, "worker-1")
        confirm(app, job_id)
        while run_import_round(app, "worker-1"):
            pass
    job = job_state(app, job_id)
    assert (job.status, job.result_counts) == ("done", {"already_invited": 25})
    with app.app_context():
        assert count(db.session, Invitation) == 25
        assert count(db.session, OutboxMessage) == 25


def test_a_file_that_cannot_be_read_is_rejected_with_its_row_and_column(app, acme):
    job_id = new_job(app, b"email,role\nann@example.com,member\nJos\xe9@example.com,member\n")
    run_import_round(app, "worker-1")
    job = job_state(app, job_id)
    assert job.status == "rejected"
    assert job.message.startswith("row 3, column A: the bytes 0xE9 are not UTF-8")
    with app.app_context():
        assert count(db.session, Invitation) == 0


def test_confirming_over_the_quota_is_refused(app, acme):
    in_db(app, lambda s: update_organization(s, get_organization(s, "acme"), invite_quota=10))
    job_id = new_job(app, BIG)
    run_import_round(app, "worker-1")
    with pytest.raises(QuotaExceeded, match="at most 10 more can be added"):
        confirm(app, job_id)
    assert job_state(app, job_id).status == "ready"


def test_bad_defaults_are_refused_before_anything_is_stored(app, acme):
    with pytest.raises(ValidationFailed, match="'boss' is not a role of Acme"):
        new_job(app, BIG, role="boss")
    with pytest.raises(ValidationFailed, match="allowed redirect origins"):
        new_job(app, BIG, redirect_url="https://evil.example/")
    with app.app_context():
        assert count(db.session, ImportJob) == 0


def test_an_organization_runs_a_few_imports_at_once(app, acme):
    for _ in range(3):
        new_job(app, BIG)
    with pytest.raises(Throttled, match="already has 3 imports being checked or imported"):
        new_job(app, BIG)
    run_import_round(app, "worker-1")  # one of them becomes ready: room for another
    new_job(app, BIG)


def test_the_preview_table_pages_and_filters(app, acme):
    text = BIG + b"".join(b"bad%d,member\n" % n for n in range(7))
    job_id = new_job(app, text)
    run_import_round(app, "worker-1")
    with app.app_context():
        job = db.session.get(ImportJob, job_id)
        page = preview_page(db.session, job, verdict=None, page=2, per_page=10)
        assert (page.matching, page.page, page.pages) == (32, 2, 4)
        assert [e.row for e in page.entries] == list(range(12, 22))
        bad = preview_page(db.session, job, verdict="invalid_email", page=9, per_page=5)
        assert (bad.matching, bad.page, bad.pages) == (7, 2, 2)
        assert [e.email for e in bad.entries] == ["bad5", "bad6"]
        assert bad.entries[0].label == "invalid email"


def test_discarding_a_job_drops_its_data(app, acme):
    job_id = new_job(app, BIG)
    run_import_round(app, "worker-1")

    def work(session):
        discard_job(session, get_organization(session, "acme"), session.get(ImportJob, job_id))

    in_db(app, work)
    assert job_state(app, job_id).status == "discarded"
    with app.app_context():
        assert count(db.session, ImportJobData, ImportJobData.job_id == job_id) == 0


def test_stale_previews_are_discarded_after_a_week(app, acme, time_machine):
    time_machine.move_to(utcnow(), tick=True)
    job_id = new_job(app, BIG)
    run_import_round(app, "worker-1")
    time_machine.shift(timedelta(days=8))
    with app.app_context():
        assert jobs.purge_stale_jobs(db.session) == 1
        db.session.commit()
    assert job_state(app, job_id).status == "discarded"


def test_a_job_that_keeps_failing_is_marked_failed(app, acme, monkeypatch):
    job_id = new_job(app, BIG)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(jobs, "plan_import", broken)
    for _ in range(jobs.MAX_ATTEMPTS):
        run_import_round(app, "worker-1")
    job = job_state(app, job_id)
    assert (job.status, job.message) == ("failed", "The import failed unexpectedly; it was logged.")
    assert run_import_round(app, "worker-1") == 0


def test_the_delivery_worker_runs_import_jobs(app, acme):
    from webapp.delivery.worker import DeliveryWorker
    from webapp.delivery.worker import WorkerSettings

    def sent() -> int:
        with app.app_context():
            return count(db.session, OutboxMessage, OutboxMessage.status == "sent")

    job_id = new_job(app, BIG)
    worker = DeliveryWorker(app, settings=WorkerSettings(poll_interval=0.05))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        deadline = utcnow() + timedelta(seconds=30)
        while job_state(app, job_id).status != "ready":
            assert utcnow() < deadline
        confirm(app, job_id)
        while job_state(app, job_id).status != "done":
            assert utcnow() < deadline
        # …and between import rounds it delivers (the dev backend keeps the messages).
        while sent() < 25:
            assert utcnow() < deadline
    finally:
        worker.stop()
        thread.join(10)
    with app.app_context():
        assert count(db.session, Invitation) == 25


def test_counts_in_results_match_rows(session, org):
    text = "email\n" + "a@example.com\n" * 3 + "b@example.com\nbad\n"
    plan = plan_for(session, org, text)
    result = run_import(session, org, plan, actor=SYSTEM, source="import")
    assert result.totals() == {"invited": 2, "duplicate": 2, "invalid_email": 1}


def test_a_multi_batch_import_leaves_no_connection_with_its_checkpoint_setting(session, org):
    text = "email\n" + "".join(f"person{n}@example.com\n" for n in range(25))
    plan = plan_for(session, org, text)
    result = run_import(session, org, plan, actor=SYSTEM, source="import", batch_size=10)
    assert result.totals() == {"invited": 25}
    assert count(session, Invitation) == count(session, OutboxMessage) == 25
    assert count(session, AuditEvent, AuditEvent.type == "invitation.created") == 25
    session.commit()
    engine = db.engine
    if engine.dialect.name != "sqlite":
        return
    # Every pooled connection is back at SQLite's default checkpoint interval.
    connections = [
        engine.connect().execution_options(isolation_level="AUTOCOMMIT") for _ in range(3)
    ]
    try:
        for connection in connections:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    finally:
        for connection in connections:
            connection.close()


def test_rows_built_ahead_make_the_same_invitations_as_rows_built_in_place(
    session, org, monkeypatch
):
    """Batches after the first take their rows from the helper thread (BatchRowsAhead):
    every invitation has its event and an email whose sealed link is the invitation's."""
    text = "email,public_metadata.team\n" + "".join(
        f"person{n}@example.com,team{n % 3}\n" for n in range(23)
    )
    plan = plan_for(session, org, text)
    taken = []
    real_take = planning.BatchRowsAhead.take

    def take(self, requests, arguments):
        rows = real_take(self, requests, arguments)
        taken.append(rows is not None)
        return rows

    monkeypatch.setattr(planning.BatchRowsAhead, "take", take)
    result = run_import(
        session, org, plan, actor=SYSTEM, source="import", batch_size=5, event_data={"x": 1}
    )
    assert result.totals() == {"invited": 23}
    assert taken == [False, True, True, True, True]  # the first batch is built in place

    invitations = session.scalars(select(Invitation).order_by(Invitation.email_key)).all()
    assert len({i.token_hash for i in invitations}) == 23
    for invitation in invitations:
        n = int(invitation.email_key.removeprefix("person").split("@")[0])
        assert invitation.public_metadata == {"team": f"team{n % 3}"}
        [event] = session.scalars(
            select(AuditEvent).where(AuditEvent.invitation_id == invitation.id)
        ).all()
        assert event.type == "invitation.created"
        assert event.data == {
            "email": invitation.email,
            "role": invitation.role,
            "source": "import",
            "x": 1,
        }
        [email] = session.scalars(
            select(OutboxMessage).where(OutboxMessage.invitation_id == invitation.id)
        ).all()
        assert email.to_email == invitation.email
        assert hash_token(open_from_outbox(email.token_ciphertext)) == invitation.token_hash
    assert status_totals(session, org.id)["pending"] == 23


def test_rows_built_ahead_are_only_taken_for_exactly_their_requests(session, org):
    plan = plan_for(session, org, "email\n" + "".join(f"p{n}@example.com\n" for n in range(6)))
    rows = plan.valid_rows()
    arguments = (SYSTEM, "import", plan.now, None)
    with planning.BatchRowsAhead(
        session, org, actor=SYSTEM, source="import", now=plan.now, event_data=None
    ) as ahead:
        ahead.build(rows[:3])
        ahead.build(rows[3:])
        requests = [r.checked for r in rows]
        assert ahead.take(requests[:2], arguments) is None  # not what was built
        assert ahead.take(requests[:3], arguments) is None  # that build was given up
        assert ahead.take(requests[3:], (SYSTEM, "api", plan.now, None)) is None
        ahead.build(rows[3:])
        built = ahead.take(requests[3:], arguments)
        assert built is not None and sorted(built.order) == [0, 1, 2]
        assert ahead.take(requests[3:], arguments) is None  # each build is taken once
