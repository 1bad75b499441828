"""The superuser area: every organization (with totals), creating one, all invitations."""

from __future__ import annotations

from flask import Blueprint
from flask import abort
from flask import flash
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user

from webapp.extensions import db
from webapp.models.invitations import STATUS_VALUES
from webapp.services.actors import Actor
from webapp.services.counters import status_totals_by_org
from webapp.services.errors import Conflict
from webapp.services.errors import ServiceError
from webapp.services.errors import ValidationFailed
from webapp.services.invitation_listing import list_invitations
from webapp.services.organizations import add_admin_member
from webapp.services.organizations import create_organization
from webapp.services.organizations import list_organizations
from webapp.services.organizations import organizations_by_id
from webapp.web.dashboard import superuser_view
from webapp.web.dashboard.invitations import PAGE_SIZES
from webapp.web.dashboard.invitations import TABS
from webapp.web.dashboard.invitations import ListView
from webapp.web.forms import OrganizationForm
from webapp.web.forms import attach_service_errors
from webapp.web.htmx import is_partial
from webapp.web.htmx import vary_on_htmx

blueprint = Blueprint("admin", __name__, url_prefix="/admin")


def _organizations_context(form: OrganizationForm, created=None) -> dict:
    return {
        "orgs": list_organizations(db.session),
        "totals": status_totals_by_org(db.session),
        "statuses": STATUS_VALUES,
        "form": form,
        "created": created,
    }


@blueprint.get("")
@superuser_view
def index():
    """All organizations with their totals per status, and the new-organization form."""
    context = _organizations_context(OrganizationForm())
    template = "admin/_organizations.html" if is_partial() else "admin/index.html"
    return vary_on_htmx(make_response(render_template(template, **context)))


@blueprint.post("/organizations")
@superuser_view
def create():
    """Create an organization (errors beside the fields, 422); optionally join it as admin."""
    form = OrganizationForm()
    org = None
    if form.validate_on_submit():
        try:
            slug = (form.slug.data or "").strip() or None
            org = create_organization(db.session, name=form.name.data, slug=slug)
            if form.make_admin.data:
                add_admin_member(db.session, org, current_user, actor=Actor.user(current_user.id))
        except ValidationFailed as error:
            db.session.rollback()
            attach_service_errors(form, error)
            org = None
        except Conflict as error:
            db.session.rollback()
            if error.code == "slug_taken":
                form.slug.errors = [*form.slug.errors, str(error)]
            else:
                form.form_errors.append(str(error))
            org = None
        except ServiceError as error:
            db.session.rollback()
            form.form_errors.append(str(error))
            org = None
        else:
            db.session.commit()
    if org is not None:
        message = f"Created {org.name} ({org.slug})."
        if is_partial():
            context = _organizations_context(OrganizationForm(formdata=None), created=message)
            return vary_on_htmx(
                make_response(render_template("admin/_organizations.html", **context))
            )
        flash(message, "success")
        return redirect(url_for("admin.index"), code=303)
    template = "admin/_organizations.html" if is_partial() else "admin/index.html"
    response = make_response(render_template(template, **_organizations_context(form)), 422)
    return vary_on_htmx(response)


@blueprint.get("/invitations")
@superuser_view
def invitations():
    """Every organization's invitations: the org list's tabs, search, sort and pages."""
    view = ListView.from_args(request.args)
    try:
        page = list_invitations(db.session, None, view.query())
    except ValidationFailed as error:
        if not (view.after or view.before):
            abort(400, str(error))
        view.after = view.before = None  # a stale cursor: start again from the top
        page = list_invitations(db.session, None, view.query())
    context = {
        "view": view,
        "page": page,
        "tabs": TABS,
        "page_sizes": PAGE_SIZES,
        "orgs": organizations_by_id(db.session, [i.org_id for i in page.items]),
    }
    template = "admin/_invitations.html" if is_partial() else "admin/invitations.html"
    return vary_on_htmx(make_response(render_template(template, **context)))
