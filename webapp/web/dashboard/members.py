"""The organization's members: search, pages, role changes and removal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint
from flask import abort
from flask import flash
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice

from webapp.extensions import db
from webapp.models import Membership
from webapp.models import Organization
from webapp.services.access import organization_for_admin
from webapp.services.actors import Actor
from webapp.services.errors import Forbidden
from webapp.services.errors import NotFound
from webapp.services.errors import ServiceError
from webapp.services.errors import ValidationFailed
from webapp.services.members import change_member_role
from webapp.services.members import get_member
from webapp.services.members import list_members
from webapp.services.members import remove_member
from webapp.web.dashboard import org_admin_view
from webapp.web.forms import EmptyForm
from webapp.web.forms import attach_service_errors
from webapp.web.htmx import is_partial
from webapp.web.htmx import vary_on_htmx

blueprint = Blueprint("members", __name__, url_prefix="/orgs/<slug>/members")

PAGE_SIZES = (25, 50, 100)


class MemberRoleForm(FlaskForm):
    role = SelectField("Role", validate_choice=False)  # the service names an unknown role


@dataclass
class ListView:
    """The list's state as it appears in the address bar."""

    q: str = ""
    limit: int = 25
    after: str | None = None
    before: str | None = None

    @classmethod
    def from_args(cls, args) -> ListView:
        """Read the query string; anything unknown falls back to the default view."""
        try:
            limit = int(args.get("limit", 25))
        except ValueError:
            limit = 25
        return cls(
            q=args.get("q", "").strip()[:254],
            limit=limit if limit in PAGE_SIZES else 25,
            after=args.get("after") or None,
            before=None if args.get("after") else (args.get("before") or None),
        )

    def args(self, **changes) -> str:
        """The query string of this view with some changes (cursors reset unless given)."""
        values: dict[str, Any] = {"q": self.q, "limit": self.limit}
        values.update(changes)
        defaults = {"q": "", "limit": 25}
        kept = {k: v for k, v in values.items() if v not in (None, "") and defaults.get(k) != v}
        return urlencode(kept)


def _role_form(org: Organization, member: Membership, formdata: Any = None) -> MemberRoleForm:
    prefix = f"member-{member.id}"
    if formdata is not None:
        form = MemberRoleForm(formdata=formdata, prefix=prefix)
    else:
        form = MemberRoleForm(formdata=None, prefix=prefix, data={"role": member.role})
    form.role.choices = [SelectChoice(r.key, r.name) for r in org.roles]
    return form


def _list_context(org: Organization, view: ListView) -> dict[str, Any]:
    def page_of(v: ListView):
        return list_members(
            db.session,
            org,
            query=v.q or None,
            limit=v.limit,
            starting_after=v.after,
            ending_before=v.before,
        )

    try:
        page = page_of(view)
    except ValidationFailed:
        if not (view.after or view.before):
            raise
        view.after = view.before = None  # a stale cursor: start again from the top
        page = page_of(view)
    return {
        "org": org,
        "view": view,
        "page": page,
        "page_sizes": PAGE_SIZES,
        "role_forms": {m.id: _role_form(org, m) for m in page.items},
    }


def _member_or_404(org: Organization, member_id: str) -> Membership:
    try:
        return get_member(db.session, org, member_id)
    except NotFound:
        abort(404)


def _render_member(
    template: str, org: Organization, member: Membership, status: int = 200, **extra: Any
):
    """A member's row (htmx) or page, with its role form (the posted one after an error)."""
    context = {
        "org": org,
        "member": member,
        "role_form": extra.pop("role_form", None) or _role_form(org, member),
        "row_form": EmptyForm(),
        **extra,
    }
    return vary_on_htmx(make_response(render_template(template, **context), status))


def _row(org: Organization, member: Membership, status: int = 200, **extra: Any):
    return _render_member("members/_row.html", org, member, status, **extra)


def _member_page(org: Organization, member: Membership, status: int = 200, **extra: Any):
    return _render_member("members/member.html", org, member, status, **extra)


def _still_admin(org: Organization) -> bool:
    """Whether the signed-in user may still manage this org (after changing themselves)."""
    try:
        organization_for_admin(db.session, current_user, org.slug)
    except (NotFound, Forbidden):
        return False
    return True


def _lost_access(message: str):
    """The user demoted or removed themselves: send them away from this org's pages."""
    flash(message, "success")
    target = url_for("home.index")
    if is_partial():
        response = make_response("", 204)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target, code=303)


@blueprint.get("")
@org_admin_view
def index(org: Organization):
    """The member list (full page), or just the list region for htmx (search, pages)."""
    view = ListView.from_args(request.args)
    context = _list_context(org, view)
    template = "members/_list.html" if is_partial() else "members/index.html"
    return vary_on_htmx(make_response(render_template(template, **context)))


@blueprint.get("/<member_id>")
@org_admin_view
def row(org: Organization, member_id: str):
    """One row (htmx: after Cancel), or the member's own page."""
    member = _member_or_404(org, member_id)
    if is_partial():
        return _row(org, member)
    return _member_page(org, member)


@blueprint.post("/<member_id>/role")
@org_admin_view
def change_role(org: Organization, member_id: str):
    """Give a member another role; refused (422, beside the select) for the last admin."""
    member = _member_or_404(org, member_id)
    form = _role_form(org, member, request.form)
    if not form.validate_on_submit():
        abort(400)
    old_role = member.role
    try:
        member = change_member_role(
            db.session, org, member_id, form.role.data or "", actor=Actor.user(current_user.id)
        )
    except ValidationFailed as error:
        db.session.rollback()
        attach_service_errors(form, error)
    except ServiceError as error:
        db.session.rollback()
        form.role.errors = [*form.role.errors, str(error)]
    else:
        db.session.commit()
        email = member.user.email
        if member.role == old_role:
            notice = f"{email} already has the role {member.role}."
        else:
            notice = f"{email} is now {member.role}."
        if member.user_id == current_user.id and not _still_admin(org):
            return _lost_access(notice)
        if not is_partial():
            flash(notice, "success")
            return redirect(url_for("members.index", slug=org.slug), code=303)
        return _row(org, member, notice=notice, notice_level="success")
    member = _member_or_404(org, member_id)
    form.role.choices = [SelectChoice(r.key, r.name) for r in org.roles]
    if is_partial():
        return _row(org, member, 422, role_form=form)
    return _member_page(org, member, 422, role_form=form)


@blueprint.route("/<member_id>/remove", methods=["GET", "POST"])
@org_admin_view
def remove(org: Organization, member_id: str):
    """GET: ask to confirm. POST: remove the member (never the org's last admin)."""
    member = _member_or_404(org, member_id)
    form = EmptyForm()
    confirm = "members/_row_confirm.html" if is_partial() else "members/confirm.html"
    if request.method == "GET":
        return vary_on_htmx(
            make_response(render_template(confirm, org=org, member=member, row_form=form))
        )
    if not form.validate_on_submit():
        abort(400)
    actor = Actor.user(current_user.id)
    try:
        removed = remove_member(db.session, org, member_id, actor=actor)
    except ServiceError as error:
        db.session.rollback()
        member = _member_or_404(org, member_id)
        form.form_errors.append(str(error))
        return vary_on_htmx(
            make_response(render_template(confirm, org=org, member=member, row_form=form), 422)
        )
    db.session.commit()
    notice = f"Removed {removed.email} from {org.name}."
    if removed.user_id == current_user.id and not _still_admin(org):
        return _lost_access(notice)
    if is_partial():
        return vary_on_htmx(
            make_response(
                render_template(
                    "members/_row_removed.html", org=org, member_id=member_id, notice=notice
                )
            )
        )
    flash(notice, "success")
    return redirect(url_for("members.index", slug=org.slug), code=303)
