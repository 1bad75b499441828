"""Bulk invitations from CSV: upload or paste, preview, confirm, progress, result, report.

The upload request only stores the file (small files are then checked at once, in the
request); checking and importing larger ones is the delivery worker's job
(``services.importing.jobs``). The job page polls itself while a job runs, so its
progress bar survives a reload.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint
from flask import abort
from flask import current_app
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge

from webapp.extensions import csrf
from webapp.extensions import db
from webapp.ids import new_id
from webapp.models import ImportJob
from webapp.models import ImportStatus
from webapp.models import Organization
from webapp.services.actors import Actor
from webapp.services.errors import NotFound
from webapp.services.errors import ServiceError
from webapp.services.errors import ValidationFailed
from webapp.services.importing.jobs import confirm_job
from webapp.services.importing.jobs import create_job
from webapp.services.importing.jobs import defaults_of
from webapp.services.importing.jobs import discard_job
from webapp.services.importing.jobs import get_job
from webapp.services.importing.jobs import job_report
from webapp.services.importing.jobs import preview_page
from webapp.services.importing.jobs import recent_jobs
from webapp.services.importing.jobs import recheck_job
from webapp.services.importing.jobs import run_job_now
from webapp.services.importing.parsing import ImportLimits
from webapp.services.importing.parsing import format_size
from webapp.services.importing.planning import FAILED
from webapp.services.importing.planning import OUTCOMES
from webapp.services.importing.planning import SKIPPED
from webapp.services.importing.planning import VERDICTS
from webapp.services.importing.planning import WILL_INVITE
from webapp.services.importing.planning import ImportDefaults
from webapp.services.importing.planning import quota_check
from webapp.web.dashboard import org_admin_view
from webapp.web.forms import EmptyForm
from webapp.web.forms import ImportDefaultsForm
from webapp.web.forms import ImportForm
from webapp.web.forms import attach_service_errors
from webapp.web.forms import choices
from webapp.web.htmx import is_partial
from webapp.web.htmx import vary_on_htmx

blueprint = Blueprint("imports", __name__, url_prefix="/orgs/<slug>/invitations/import")

PER_PAGE = 50
# Multipart framing and the other fields of the upload form, on top of the file itself.
FORM_OVERHEAD = 256 * 1024


def _limits() -> ImportLimits:
    return ImportLimits.from_config(current_app.config)


def _with_org_choices(form: ImportDefaultsForm, org: Organization) -> ImportDefaultsForm:
    form.role.choices = choices((r.key, r.name) for r in org.roles)
    if not form.role.data:
        form.role.data = org.default_role
    return form


def _defaults_from(form: ImportDefaultsForm) -> ImportDefaults:
    seconds = form.expires_in.data
    return ImportDefaults(
        role=form.role.data or None,
        expires_in=timedelta(seconds=int(seconds)) if seconds else None,
        redirect_url=(form.redirect_url.data or "").strip() or None,
    )


def _runner_id() -> str:
    return f"web:{new_id('run')}"


def _runs_inline(line_count: int) -> bool:
    return line_count <= current_app.config.get("IMPORT_INLINE_MAX_ROWS", 2000)


def _render_new(org: Organization, form: ImportForm, status: int = 200):
    response = make_response(
        render_template(
            "imports/new.html",
            org=org,
            form=form,
            jobs=recent_jobs(db.session, org),
            limits=_limits(),
        ),
        status,
    )
    return response


def _upload(form: ImportForm) -> tuple[bytes, str] | None:
    """The bytes to import and a name for them, or None (with the form error set)."""
    upload = form.file.data
    has_file = bool(upload and getattr(upload, "filename", ""))
    text = form.text.data or ""
    if has_file and text.strip():
        form.form_errors.append("Choose a file or paste text, not both.")
        return None
    if has_file:
        return upload.read(), upload.filename
    if text.strip():
        return text.encode("utf-8"), "pasted text"
    form.form_errors.append("Choose a CSV file or paste some addresses.")
    return None


@blueprint.route("", methods=["GET", "POST"])
@csrf.exempt  # CSRF is checked by the form itself, after the size limits below are raised
@org_admin_view
def new(org: Organization):
    """The upload page: a file (button or drag and drop) or pasted text, and defaults."""
    if request.method == "GET":
        return _render_new(org, _with_org_choices(ImportForm(formdata=None), org))
    limits = _limits()
    # This page alone accepts bodies up to the import limit (the app's limit is 1 MiB).
    request.max_content_length = limits.max_bytes + FORM_OVERHEAD
    request.max_form_memory_size = limits.max_bytes + FORM_OVERHEAD
    try:
        form = _with_org_choices(ImportForm(), org)
    except RequestEntityTooLarge:
        form = _with_org_choices(ImportForm(formdata=None), org)
        form.form_errors.append(
            f"The upload is larger than {format_size(limits.max_bytes)}. "
            "Split the file into smaller ones."
        )
        return _render_new(org, form, 413)
    if not form.validate_on_submit():
        return _render_new(org, form, 400 if form.csrf_token.errors else 422)
    upload = _upload(form)
    if upload is None:
        return _render_new(org, form, 422)
    data, filename = upload
    inline = _runs_inline(data.count(b"\n") + 1)
    runner_id = _runner_id() if inline else None
    try:
        job = create_job(
            db.session,
            org,
            data,
            filename=filename,
            defaults=_defaults_from(form),
            actor=Actor.user(current_user.id),
            source="dashboard",
            limits=limits,
            runner_id=runner_id,
        )
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        attach_service_errors(form, error)
        return _render_new(org, form, 422)
    except ServiceError as error:
        db.session.rollback()
        form.form_errors.append(str(error))
        return _render_new(org, form, 422)
    job_id = job.id
    if runner_id:
        run_job_now(db.session, job_id, runner_id)
    return redirect(url_for("imports.show", slug=org.slug, job_id=job_id), code=303)


def _job(org: Organization, job_id: str) -> ImportJob:
    try:
        return get_job(db.session, org, job_id)
    except NotFound:
        abort(404)


def _int_arg(name: str, default: int) -> int:
    try:
        return int(request.args.get(name, default))
    except ValueError:
        return default


def _context(org: Organization, job: ImportJob, **extra) -> dict:
    context = {
        "org": org,
        "job": job,
        "verdicts": VERDICTS,
        "outcomes": OUTCOMES,
        "skipped": SKIPPED,
        "failed": FAILED,
        "will_invite": WILL_INVITE,
        "statuses": ImportStatus,
        "action_form": EmptyForm(),
    }
    if job.status == ImportStatus.READY:
        verdict = request.args.get("verdict") or None
        if verdict not in VERDICTS:
            verdict = None
        context["page"] = preview_page(
            db.session, job, verdict=verdict, page=_int_arg("page", 1), per_page=PER_PAGE
        )
        context["quota"] = quota_check(db.session, org, job.preview_counts.get(WILL_INVITE, 0))
        if extra.get("defaults_form") is None:
            form = ImportDefaultsForm(formdata=None)
            defaults = defaults_of(job)
            form.role.data = defaults.role or org.default_role
            form.expires_in.data = str(job.default_expires_in_seconds or "")
            form.redirect_url.data = defaults.redirect_url or ""
            context["defaults_form"] = _with_org_choices(form, org)
    context.update({k: v for k, v in extra.items() if v is not None})
    return context


@blueprint.get("/<job_id>")
@org_admin_view
def show(org: Organization, job_id: str):
    """The job: progress while it runs (the panel polls itself), preview, or result."""
    job = _job(org, job_id)
    template = "imports/_panel.html" if is_partial() else "imports/show.html"
    return vary_on_htmx(make_response(render_template(template, **_context(org, job))))


def _after_action(org: Organization, job: ImportJob):
    return redirect(url_for("imports.show", slug=org.slug, job_id=job.id), code=303)


@blueprint.post("/<job_id>/recheck")
@org_admin_view
def recheck(org: Organization, job_id: str):
    """Check the rows again with other defaults."""
    job = _job(org, job_id)
    form = _with_org_choices(ImportDefaultsForm(), org)
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        return _render_show(org, job, form)
    runner_id = _runner_id() if _runs_inline(job.total_rows) else None
    try:
        recheck_job(db.session, org, job, _defaults_from(form), runner_id=runner_id)
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        attach_service_errors(form, error)
        return _render_show(org, _job(org, job_id), form)
    if runner_id:
        run_job_now(db.session, job_id, runner_id)
    return _after_action(org, job)


def _render_show(
    org: Organization, job: ImportJob, form: ImportDefaultsForm | None = None, notice=None
):
    context = _context(org, job, defaults_form=form, notice=notice)
    return make_response(render_template("imports/show.html", **context), 422)


@blueprint.post("/<job_id>/confirm")
@org_admin_view
def confirm(org: Organization, job_id: str):
    """Start the import (at once for a small file; the worker takes a large one)."""
    job = _job(org, job_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    runner_id = _runner_id() if _runs_inline(job.total_rows) else None
    try:
        confirm_job(db.session, org, job, runner_id=runner_id)
        db.session.commit()
    except ServiceError as error:
        db.session.rollback()
        return _render_show(org, _job(org, job_id), notice=str(error))
    if runner_id:
        run_job_now(db.session, job_id, runner_id)
    return _after_action(org, job)


@blueprint.post("/<job_id>/discard")
@org_admin_view
def discard(org: Organization, job_id: str):
    """Drop a previewed (or refused) upload without importing it."""
    job = _job(org, job_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        discard_job(db.session, org, job)
        db.session.commit()
    except ServiceError:
        db.session.rollback()
    return redirect(url_for("imports.new", slug=org.slug), code=303)


@blueprint.get("/<job_id>/report.csv")
@org_admin_view
def report(org: Organization, job_id: str):
    """The error report: rows to fix, as uploaded, with an error column (an attachment)."""
    job = _job(org, job_id)
    data = job_report(db.session, job) if job.status == ImportStatus.DONE else None
    if data is None:
        abort(404)
    response = make_response(data)
    response.mimetype = "text/csv"
    response.charset = "utf-8"
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{org.slug}-import-errors-{job.id}.csv"'
    )
    response.headers["Cache-Control"] = "no-store"
    return response
