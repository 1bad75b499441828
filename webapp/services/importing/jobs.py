"""Import jobs: an upload checked, previewed, confirmed and imported in steps.

A request only stores the upload (small files are then run at once, in the request).
Larger ones are run by whoever calls ``run_import_round``: the delivery worker does on
every round, so the in-process worker of ``orginvites run``/``demo`` does too. A runner
holds a job by a lease (like the outbox), keeps its parsed rows in memory between
rounds, commits each batch together with the job's progress, and gives the job up
after a time budget so that email delivery goes on meanwhile. A runner that dies only
delays its job: when the lease ends another one re-reads the upload and resumes after
the last committed batch (the batches before it are not imported twice: their rows
are pending invitations now, which the partial unique index skips).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask
from flask import current_app
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from webapp.clock import utcnow
from webapp.database import end_sqlite_bulk_writes
from webapp.database import sqlite_reads_only
from webapp.extensions import db
from webapp.ids import new_id
from webapp.models import ImportJob
from webapp.models import ImportJobData
from webapp.models import ImportStatus
from webapp.models import Organization
from webapp.models.imports import RUNNABLE
from webapp.services.actors import Actor
from webapp.services.errors import NotFound
from webapp.services.errors import QuotaExceeded
from webapp.services.errors import Throttled
from webapp.services.errors import ValidationFailed
from webapp.services.importing.parsing import CsvFileError
from webapp.services.importing.parsing import ImportLimits
from webapp.services.importing.parsing import ParsedFile
from webapp.services.importing.parsing import format_size
from webapp.services.importing.parsing import parse_csv
from webapp.services.importing.planning import BATCH_SIZE
from webapp.services.importing.planning import FAILED
from webapp.services.importing.planning import INVITED
from webapp.services.importing.planning import SKIPPED
from webapp.services.importing.planning import WILL_INVITE
from webapp.services.importing.planning import BatchRowsAhead
from webapp.services.importing.planning import ImportDefaults
from webapp.services.importing.planning import ImportPlan
from webapp.services.importing.planning import PlannedRow
from webapp.services.importing.planning import gc_skips_existing_objects
from webapp.services.importing.planning import import_batch
from webapp.services.importing.planning import is_retryable
from webapp.services.importing.planning import mark_existing
from webapp.services.importing.planning import mark_over_quota
from webapp.services.importing.planning import plan_import
from webapp.services.importing.planning import preview_import
from webapp.services.importing.planning import quota_check
from webapp.services.importing.planning import refresh_statistics
from webapp.services.importing.report import PreviewEntry
from webapp.services.importing.report import encode_preview
from webapp.services.importing.report import error_report
from webapp.services.importing.report import preview_entries
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import check_shared_fields

log = logging.getLogger("orginvites.import")

UPLOAD = "upload"
PREVIEW = "preview"
REPORT = "report"
LEASE = timedelta(seconds=60)
ROUND_BUDGET_SECONDS = 2.0
MAX_ATTEMPTS = 3
MAX_ACTIVE_JOBS_PER_ORG = 3
STALE_AFTER = timedelta(days=7)


# --- creating and changing jobs (requests call these) ---------------------------------


def defaults_of(job: ImportJob) -> ImportDefaults:
    seconds = job.default_expires_in_seconds
    return ImportDefaults(
        role=job.default_role,
        expires_in=timedelta(seconds=seconds) if seconds else None,
        redirect_url=job.default_redirect_url,
        notify=job.notify,
    )


def check_defaults(session: Session, org: Organization, defaults: ImportDefaults) -> None:
    """The admin's defaults pass the invitation rules (ValidationFailed otherwise)."""
    check_shared_fields(
        session,
        org,
        InvitationRequest(
            email="",
            role=defaults.role,
            expires_in=defaults.expires_in,
            redirect_url=defaults.redirect_url,
        ),
    )


def _throttle(session: Session, org: Organization) -> None:
    limit = current_app.config.get("IMPORT_MAX_ACTIVE_PER_ORG", MAX_ACTIVE_JOBS_PER_ORG)
    active = session.scalar(
        select(func.count())
        .select_from(ImportJob)
        .where(ImportJob.org_id == org.id, ImportJob.status.in_(RUNNABLE))
    )
    if active >= limit:
        raise Throttled(
            f"{org.name} already has {active} imports being checked or imported (at most "
            f"{limit} at once). Wait for one to finish, then try again.",
            retry_after_seconds=30,
        )


def create_job(
    session: Session,
    org: Organization,
    data: bytes,
    *,
    filename: str,
    defaults: ImportDefaults,
    actor: Actor,
    source: str,
    limits: ImportLimits | None = None,
    runner_id: str | None = None,
) -> ImportJob:
    """Store an upload as a job waiting to be checked (in the caller's transaction).

    Raises ValidationFailed (defaults), CsvFileError (too large: not even stored) or
    Throttled (too many imports of this organization running). With ``runner_id`` the
    job starts leased to that runner (a request that will run it at once).
    """
    limits = limits or ImportLimits.from_config(current_app.config)
    if len(data) > limits.max_bytes:
        raise CsvFileError(
            f"the file is {format_size(len(data))}; the limit is "
            f"{format_size(limits.max_bytes)}. Split it into smaller files."
        )
    check_defaults(session, org, defaults)
    _throttle(session, org)
    now = utcnow()
    job = ImportJob(
        id=new_id("imp"),
        org_id=org.id,
        actor_type=actor.kind,
        actor_id=actor.id,
        source=source,
        filename=_clean_filename(filename),
        byte_size=len(data),
        status=ImportStatus.CHECKING.value,
        default_role=defaults.role,
        default_expires_in_seconds=(
            int(defaults.expires_in.total_seconds()) if defaults.expires_in else None
        ),
        default_redirect_url=defaults.redirect_url,
        notify=defaults.notify,
        total_rows=0,
        progress_done=0,
        progress_total=0,
        preview_counts={},
        result_counts={},
        file_summary={},
        attempts=0,
        locked_by=runner_id,
        locked_until=now + LEASE if runner_id else None,
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    session.flush()
    session.add(ImportJobData(job_id=job.id, kind=UPLOAD, data=data, created_at=now))
    session.flush()
    return job


def _clean_filename(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c if c.isprintable() else "?" for c in base).strip()
    return (cleaned or "pasted text")[:255]


def get_job(session: Session, org: Organization, job_id: str) -> ImportJob:
    """The job with this id in ``org``; another organization's job is NotFound."""
    job = session.get(ImportJob, job_id) if isinstance(job_id, str) else None
    if job is None or job.org_id != org.id:
        raise NotFound(f"no import {job_id!r}")
    return job


def recent_jobs(session: Session, org: Organization, limit: int = 10) -> list[ImportJob]:
    return list(
        session.scalars(
            select(ImportJob)
            .where(ImportJob.org_id == org.id)
            .order_by(ImportJob.created_at.desc(), ImportJob.id.desc())
            .limit(limit)
        )
    )


def _require(job: ImportJob, *statuses: ImportStatus, action: str) -> None:
    if job.status not in statuses:
        raise ValidationFailed.single(
            "status", "invalid_status", f"this import is {job.status}; it cannot be {action}"
        )


def recheck_job(
    session: Session,
    org: Organization,
    job: ImportJob,
    defaults: ImportDefaults,
    *,
    runner_id: str | None = None,
) -> None:
    """Check the rows again with other defaults (the preview is rebuilt)."""
    _require(job, ImportStatus.READY, action="checked again")
    check_defaults(session, org, defaults)
    seconds = defaults.expires_in.total_seconds() if defaults.expires_in else None
    job.default_role = defaults.role
    job.default_expires_in_seconds = int(seconds) if seconds else None
    job.default_redirect_url = defaults.redirect_url
    job.notify = defaults.notify
    _queue(job, ImportStatus.CHECKING, runner_id)


def confirm_job(
    session: Session, org: Organization, job: ImportJob, *, runner_id: str | None = None
) -> None:
    """Start the import of a previewed job; QuotaExceeded if it cannot fit the quota."""
    _require(job, ImportStatus.READY, action="confirmed")
    adding = job.preview_counts.get(WILL_INVITE, 0)
    quota = quota_check(session, org, adding)
    if quota.message:
        raise QuotaExceeded(quota.message)
    job.confirmed_at = utcnow()
    job.progress_done = 0
    job.progress_total = 0
    _queue(job, ImportStatus.IMPORTING, runner_id)


def discard_job(session: Session, org: Organization, job: ImportJob) -> None:
    """Drop a job that was not imported (its upload and preview are deleted)."""
    _require(job, ImportStatus.READY, ImportStatus.REJECTED, action="discarded")
    job.status = ImportStatus.DISCARDED.value
    job.finished_at = job.updated_at = utcnow()
    session.execute(delete(ImportJobData).where(ImportJobData.job_id == job.id))


def _queue(job: ImportJob, status: ImportStatus, runner_id: str | None) -> None:
    now = utcnow()
    job.status = status.value
    job.attempts = 0
    job.message = None
    job.locked_by = runner_id
    job.locked_until = now + LEASE if runner_id else None
    job.updated_at = now


def _blob(session: Session, job_id: str, kind: str) -> bytes | None:
    return session.scalar(
        select(ImportJobData.data).where(ImportJobData.job_id == job_id, ImportJobData.kind == kind)
    )


def _store(session: Session, job_id: str, kind: str, data: bytes) -> None:
    session.execute(
        delete(ImportJobData).where(ImportJobData.job_id == job_id, ImportJobData.kind == kind)
    )
    session.add(ImportJobData(job_id=job_id, kind=kind, data=data, created_at=utcnow()))


def job_report(session: Session, job: ImportJob) -> bytes | None:
    """The error report CSV of a finished job."""
    return _blob(session, job.id, REPORT)


@dataclass
class PreviewPage:
    entries: list[PreviewEntry]
    matching: int
    page: int
    pages: int
    verdict: str | None


def preview_page(
    session: Session, job: ImportJob, *, verdict: str | None, page: int, per_page: int = 50
) -> PreviewPage:
    """One page of the preview table, optionally only the rows with one verdict."""
    blob = _blob(session, job.id, PREVIEW)
    if blob is None:
        return PreviewPage([], 0, 1, 1, verdict)
    entries, matching, page = preview_entries(blob, verdict, page, per_page)
    return PreviewPage(entries, matching, page, max(1, math.ceil(matching / per_page)), verdict)


# --- running jobs (runners call these) ------------------------------------------------


class _Prepared:
    """What a runner keeps in memory between rounds for one job."""

    def __init__(self, parsed: ParsedFile) -> None:
        self.parsed = parsed
        self.plan: ImportPlan | None = None
        self.valid: list[PlannedRow] = []


_prepared: OrderedDict[str, _Prepared] = OrderedDict()
_prepared_lock = threading.Lock()
_CACHE_SIZE = 2


def _remember(job_id: str, prepared: _Prepared | None) -> None:
    with _prepared_lock:
        if prepared is None:
            _prepared.pop(job_id, None)
            return
        _prepared[job_id] = prepared
        _prepared.move_to_end(job_id)
        while len(_prepared) > _CACHE_SIZE:
            _prepared.popitem(last=False)


def _recall(job_id: str) -> _Prepared | None:
    with _prepared_lock:
        return _prepared.get(job_id)


def claim_job(session: Session, runner_id: str, job_id: str | None = None) -> str | None:
    """Lease a job waiting for a runner (this one, or the oldest); commit is the caller's.

    A lease this runner already holds is renewed, so a runner keeps its job between
    rounds; a lease that ran out can be taken by anyone.
    """
    now = utcnow()
    free = or_(
        ImportJob.locked_until.is_(None),
        ImportJob.locked_until < now,
        ImportJob.locked_by == runner_id,
    )
    if job_id is None:
        query = (
            select(ImportJob.id)
            .where(ImportJob.status.in_(RUNNABLE), free)
            .order_by(ImportJob.created_at)
            .limit(1)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        # Prefer the job this runner already holds (its rows are in memory).
        mine = session.scalar(
            select(ImportJob.id)
            .where(ImportJob.status.in_(RUNNABLE), ImportJob.locked_by == runner_id)
            .limit(1)
        )
        job_id = mine or session.scalar(query)
        if job_id is None:
            return None
    claimed = session.execute(
        update(ImportJob)
        .where(ImportJob.id == job_id, ImportJob.status.in_(RUNNABLE), free)
        .values(locked_by=runner_id, locked_until=now + LEASE)
        .execution_options(synchronize_session=False)
    ).rowcount
    return job_id if claimed else None


def _still_ours(session: Session, job: ImportJob, runner_id: str) -> bool:
    session.refresh(job)
    return job.locked_by == runner_id and job.status in RUNNABLE


def _parsed(session: Session, job: ImportJob, limits: ImportLimits) -> ParsedFile:
    prepared = _recall(job.id)
    if prepared is not None:
        return prepared.parsed
    data = _blob(session, job.id, UPLOAD)
    if data is None:
        raise CsvFileError("the uploaded file is no longer stored; upload it again")
    parsed = parse_csv(data, limits)
    _remember(job.id, _Prepared(parsed))
    return parsed


def _finish(job: ImportJob, status: ImportStatus, message: str | None = None) -> None:
    now = utcnow()
    job.status = status.value
    job.message = message
    job.locked_by = None
    job.locked_until = None
    job.finished_at = job.updated_at = now
    _remember(job.id, None)


def _file_summary(parsed: ParsedFile) -> dict[str, Any]:
    return {
        "delimiter": parsed.delimiter_name,
        "header": parsed.has_header,
        "columns": [c.name for c in parsed.columns if c.field] if parsed.has_header else [],
        "ignored_columns": parsed.ignored_columns,
        "warnings": parsed.warnings,
    }


def _check_step(session: Session, job: ImportJob, runner_id: str, limits: ImportLimits) -> None:
    """Parse and preview the whole file, then store the verdicts (one write at the end)."""
    org = session.get(Organization, job.org_id)
    assert org is not None
    token = sqlite_reads_only.set(True)  # the long part only reads: no SQLite write lock
    try:
        session.rollback()
        try:
            parsed = _parsed(session, job, limits)
        except CsvFileError as error:
            session.rollback()
            sqlite_reads_only.reset(token)
            token = None
            if _still_ours(session, job, runner_id):
                _finish(job, ImportStatus.REJECTED, str(error))
                session.commit()
            return
        plan = plan_import(session, org, parsed, defaults_of(job))
        preview = preview_import(session, org, plan)
        blob = encode_preview(plan.rows)
        session.rollback()
    finally:
        if token is not None:
            sqlite_reads_only.reset(token)
    if not _still_ours(session, job, runner_id):
        session.rollback()
        return
    _store(session, job.id, PREVIEW, blob)
    job.preview_counts = preview.counts
    job.total_rows = len(plan.rows)
    job.file_summary = _file_summary(parsed)
    job.status = ImportStatus.READY.value
    job.locked_by = job.locked_until = None
    job.updated_at = utcnow()
    session.commit()
    # Nobody may confirm for days: the worker does not keep the rows meanwhile.
    _remember(job.id, None)


def _import_step(
    session: Session,
    job: ImportJob,
    runner_id: str,
    limits: ImportLimits,
    deadline: float,
    batch_size: int,
) -> None:
    """Import batches until the time budget is spent; each batch commits with the job."""
    org = session.get(Organization, job.org_id)
    assert org is not None
    actor = Actor(job.actor_type, job.actor_id)  # type: ignore[arg-type]
    prepared = _recall(job.id)
    if prepared is None or prepared.plan is None:
        try:
            parsed = _parsed(session, job, limits)
        except CsvFileError as error:
            _finish(job, ImportStatus.FAILED, str(error))
            session.commit()
            return
        session.rollback()
        token = sqlite_reads_only.set(True)  # planning only reads: no SQLite write lock
        try:
            # Resumable: the rows to import (and their order) depend on the file alone;
            # which of them are members or invited already is looked up as of now.
            plan = plan_import(session, org, parsed, defaults_of(job), look_up=False)
            mark_existing(session, org, plan.valid_rows(), plan.now)
            session.rollback()
        finally:
            sqlite_reads_only.reset(token)
        prepared = _recall(job.id) or _Prepared(parsed)
        prepared.plan = plan
        prepared.valid = plan.valid_rows()
        _remember(job.id, prepared)
        if job.progress_done == 0 and job.progress_total == 0:
            # Rows the import never tries (invalid, duplicates) count from the start.
            job.result_counts = dict(Counter(r.verdict for r in plan.rows if r.checked is None))
            job.progress_total = len(prepared.valid)
            job.total_rows = len(plan.rows)
            session.commit()
    plan, valid = prepared.plan, prepared.valid
    assert plan is not None
    event_data = {"import_id": job.id}
    retries = 0
    with (
        gc_skips_existing_objects(),
        BatchRowsAhead(
            session, org, actor=actor, source="import", now=plan.now, event_data=event_data
        ) as ahead,
    ):
        while job.progress_done < len(valid):
            start = job.progress_done
            chunk = valid[start : start + batch_size]
            ahead.build(valid[start + batch_size : start + 2 * batch_size])
            try:
                import_batch(
                    session,
                    org,
                    chunk,
                    actor=actor,
                    source="import",
                    now=plan.now,
                    event_data=event_data,
                    ahead=ahead,
                )
            except QuotaExceeded as exc:
                session.rollback()
                rest = valid[start:]
                mark_over_quota(rest, str(exc))
                counts = Counter(job.result_counts)
                counts.update(r.verdict for r in rest)
                if not _advance(session, job, runner_id, start, len(valid), counts):
                    return
                first = rest[0].source.number
                _complete(session, job, plan, message=f"Stopped at row {first:,}: {exc}")
                return
            except DBAPIError as exc:
                session.rollback()
                retries += 1
                if retries >= MAX_ATTEMPTS or not is_retryable(exc):
                    raise
                log.warning("import.batch_retry job=%s reason=%s", job.id, exc.orig)
                for row in chunk:
                    if row.verdict == INVITED:
                        row.verdict, row.detail = WILL_INVITE, ""
                continue
            counts = Counter(job.result_counts)
            counts.update(r.verdict for r in chunk)
            if not _advance(session, job, runner_id, start, start + len(chunk), counts):
                return
            session.commit()
            if start == 0:
                refresh_statistics(session, len(valid) - len(chunk))
            retries = 0
            if time.monotonic() > deadline and job.progress_done < len(valid):
                return
    _complete(session, job, plan)


def _advance(
    session: Session, job: ImportJob, runner_id: str, start: int, done: int, counts: Counter
) -> bool:
    """Record a batch's progress in its own transaction, if the job is still ours.

    Conditional on the lease and on the progress the batch started from: a runner
    that lost its lease rolls its batch back instead of counting it twice.
    """
    updated = session.execute(
        update(ImportJob)
        .where(
            ImportJob.id == job.id,
            ImportJob.locked_by == runner_id,
            ImportJob.progress_done == start,
            ImportJob.status == ImportStatus.IMPORTING.value,
        )
        .values(
            progress_done=done,
            result_counts=dict(counts),
            locked_until=utcnow() + LEASE,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if not updated:
        session.rollback()
        _remember(job.id, None)
        log.warning("import.lease_lost job=%s runner=%s", job.id, runner_id)
        return False
    session.flush()
    session.expire(job)
    return True


def _complete(session: Session, job: ImportJob, plan: ImportPlan, message: str | None = None):
    _store(session, job.id, REPORT, error_report(plan))
    session.execute(
        delete(ImportJobData).where(
            ImportJobData.job_id == job.id, ImportJobData.kind.in_([UPLOAD, PREVIEW])
        )
    )
    _finish(job, ImportStatus.DONE, message)
    session.commit()
    log.info("import.done job=%s counts=%s", job.id, job.result_counts)


def step_job(
    session: Session,
    job_id: str,
    runner_id: str,
    *,
    budget_seconds: float | None = ROUND_BUDGET_SECONDS,
    batch_size: int | None = None,
) -> bool:
    """Do one step of a job this runner has leased; True while it still has work.

    A failure (anything but a rule or file error) is logged; after MAX_ATTEMPTS the job
    is marked failed, so one broken file never blocks the runner.
    """
    config = current_app.config
    limits = ImportLimits.from_config(config)
    batch_size = batch_size or config.get("IMPORT_BATCH_ROWS", BATCH_SIZE)
    deadline = time.monotonic() + (budget_seconds if budget_seconds is not None else math.inf)
    job = session.get(ImportJob, job_id)
    if job is None or job.locked_by != runner_id or job.status not in RUNNABLE:
        session.rollback()
        return False
    try:
        if job.status == ImportStatus.CHECKING:
            _check_step(session, job, runner_id, limits)
        else:
            _import_step(session, job, runner_id, limits, deadline, batch_size)
            if job.progress_total > batch_size:
                end_sqlite_bulk_writes(session)
    except Exception:
        session.rollback()
        _remember(job_id, None)
        log.exception("import.step_failed job=%s", job_id)
        job = session.get(ImportJob, job_id, populate_existing=True)
        if job is not None and job.status in RUNNABLE:
            job.attempts += 1
            if job.attempts >= MAX_ATTEMPTS:
                _finish(job, ImportStatus.FAILED, "The import failed unexpectedly; it was logged.")
            session.commit()
        return False
    session.refresh(job)
    return job.status in RUNNABLE


def run_job_now(session: Session, job_id: str, runner_id: str) -> None:
    """Run a job this runner leased to the end (small uploads, inside their request)."""
    while step_job(session, job_id, runner_id, budget_seconds=None):
        pass


def purge_stale_jobs(session: Session, now=None) -> int:
    """Discard previews nobody confirmed within a week (their uploads are deleted)."""
    cutoff = (now or utcnow()) - STALE_AFTER
    ids = list(
        session.scalars(
            select(ImportJob.id).where(
                ImportJob.status.in_([ImportStatus.READY.value, ImportStatus.REJECTED.value]),
                ImportJob.updated_at < cutoff,
            )
        )
    )
    if ids:
        session.execute(delete(ImportJobData).where(ImportJobData.job_id.in_(ids)))
        session.execute(
            update(ImportJob)
            .where(ImportJob.id.in_(ids))
            .values(status=ImportStatus.DISCARDED.value, finished_at=cutoff)
            .execution_options(synchronize_session=False)
        )
    return len(ids)


_last_purge = 0.0


def run_import_round(
    app: Flask, runner_id: str, *, budget_seconds: float = ROUND_BUDGET_SECONDS
) -> int:
    """One round of a runner: lease a waiting job and work on it for up to the budget.

    Returns 1 if it worked on a job, else 0. Called by the delivery worker every round.
    """
    global _last_purge
    with app.app_context():
        session = db.session
        if time.monotonic() - _last_purge > 3600:
            _last_purge = time.monotonic()
            purge_stale_jobs(session)
            session.commit()
        job_id = claim_job(session, runner_id)
        session.commit()
        if job_id is None:
            return 0
        step_job(session, job_id, runner_id, budget_seconds=budget_seconds)
        return 1


def drain(app: Flask, runner_id: str, *, until: Callable[[], bool] | None = None) -> int:
    """Run rounds until no job waits (``worker --once``, tests)."""
    rounds = 0
    while run_import_round(app, runner_id):
        rounds += 1
        if until and until():
            break
    return rounds


__all__ = [
    "FAILED",
    "SKIPPED",
    "check_defaults",
    "claim_job",
    "confirm_job",
    "create_job",
    "defaults_of",
    "discard_job",
    "drain",
    "get_job",
    "job_report",
    "preview_page",
    "recent_jobs",
    "recheck_job",
    "run_import_round",
    "run_job_now",
    "step_job",
]
