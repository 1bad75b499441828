"""The invitation list of an organization, the invite form, revoke and resend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
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

from webapp.extensions import db
from webapp.models import Invitation
from webapp.models import Organization
from webapp.models.invitations import STATUS_VALUES
from webapp.services.actors import Actor
from webapp.services.errors import NotFound
from webapp.services.errors import ServiceError
from webapp.services.errors import ValidationFailed
from webapp.services.invitation_listing import ORDERINGS
from webapp.services.invitation_listing import InvitationQuery
from webapp.services.invitation_listing import list_invitations
from webapp.services.invitation_transitions import resend_invitation
from webapp.services.invitation_transitions import revoke_invitation
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import create_invitation
from webapp.services.invitations import get_invitation
from webapp.services.organizations import list_projects
from webapp.web.dashboard import org_admin_view
from webapp.web.forms import EmptyForm
from webapp.web.forms import InviteForm
from webapp.web.forms import attach_service_errors
from webapp.web.forms import choices
from webapp.web.htmx import is_partial
from webapp.web.htmx import vary_on_htmx

blueprint = Blueprint("invitations", __name__, url_prefix="/orgs/<slug>/invitations")

PAGE_SIZES = (10, 25, 50, 100)
# What the list tables (the organization's and the instance-wide one) show of each row.
TABLE_COLUMNS = (
    "id",
    "org_id",
    "email",
    "email_key",
    "role",
    "status",
    "source",
    "inviter_user_id",
    "inviter_api_key_id",
    "created_at",
    "expires_at",
    "delivery_status",
    "delivery_error",
)
TABS = ("all", *STATUS_VALUES)


@dataclass
class ListView:
    """The list's state as it appears in the address bar."""

    status: str = "all"
    q: str = ""
    sort: str = "-created_at"
    limit: int = 25
    after: str | None = None
    before: str | None = None

    @classmethod
    def from_args(cls, args) -> ListView:
        """Read the query string; anything unknown falls back to the default view."""
        status = args.get("status", "all")
        sort = args.get("sort", "-created_at")
        try:
            limit = int(args.get("limit", 25))
        except ValueError:
            limit = 25
        return cls(
            status=status if status in TABS else "all",
            q=args.get("q", "").strip()[:254],
            sort=sort if sort in ORDERINGS else "-created_at",
            limit=limit if limit in PAGE_SIZES else 25,
            after=args.get("after") or None,
            before=None if args.get("after") else (args.get("before") or None),
        )

    def query(self) -> InvitationQuery:
        return InvitationQuery(
            statuses=() if self.status == "all" else (self.status,),
            query=self.q or None,
            order_by=self.sort,
            limit=self.limit,
            starting_after=self.after,
            ending_before=self.before,
            plain_rows=True,
            inviter_names=True,
            columns=TABLE_COLUMNS,
        )

    def args(self, **changes) -> str:
        """The query string of this view with some changes (cursors reset unless given)."""
        values = {"status": self.status, "q": self.q, "sort": self.sort, "limit": self.limit}
        values.update(changes)
        defaults = {"status": "all", "q": "", "sort": "-created_at", "limit": 25}
        kept = {k: v for k, v in values.items() if v not in (None, "") and defaults.get(k) != v}
        return urlencode(kept)


def _invite_form(org: Organization, formdata=None) -> InviteForm:
    form = InviteForm(formdata=formdata) if formdata is not None else InviteForm()
    form.role.choices = choices((r.key, r.name) for r in org.roles)
    if not form.role.data:
        form.role.data = org.default_role
    form.projects.choices = choices((p.id, p.name) for p in list_projects(db.session, org))
    return form


def _list_context(org: Organization, view: ListView) -> dict:
    try:
        page = list_invitations(db.session, org, view.query())
    except ValidationFailed as error:
        if view.after or view.before:  # a stale cursor: start again from the top
            view.after = view.before = None
            page = list_invitations(db.session, org, view.query())
        else:
            abort(400, str(error))
    if view.before and not page.has_more:
        # Walking back reached the newest rows: this is simply the first page.
        view.before = None
    return {
        "org": org,
        "view": view,
        "page": page,
        "tabs": TABS,
        "page_sizes": PAGE_SIZES,
    }


@blueprint.get("")
@org_admin_view
def index(org: Organization):
    """The list (full page), or just the list region for htmx (tabs, search, sort, pages)."""
    view = ListView.from_args(request.args)
    walked_back = view.before is not None
    context = _list_context(org, view)
    if is_partial():
        response = make_response(render_template("invitations/_list.html", **context))
        if walked_back and view.before is None:
            # Put the first page's plain address in the bar, not a cursor to it.
            query = view.args()
            response.headers["HX-Push-Url"] = url_for("invitations.index", slug=org.slug) + (
                f"?{query}" if query else ""
            )
        return vary_on_htmx(response)
    context["invite_form"] = _invite_form(org)
    return vary_on_htmx(make_response(render_template("invitations/index.html", **context)))


def _request_from(form: InviteForm) -> InvitationRequest:
    seconds = form.expires_in.data
    return InvitationRequest(
        email=form.email.data,
        role=form.role.data or None,
        expires_in=timedelta(seconds=int(seconds)) if seconds else None,
        redirect_url=form.redirect_url.data or None,
        project_grants=[{"project_id": p, "role": "member"} for p in form.projects.data or []],
        message=form.message.data or None,
        notify=bool(form.notify.data),
    )


@blueprint.route("/new", methods=["GET", "POST"])
@org_admin_view
def new(org: Organization):
    """Invite one address: errors beside the fields (422); success adds the row."""
    form = _invite_form(org, request.form if request.method == "POST" else None)
    template = "invitations/_invite_form.html" if is_partial() else "invitations/new.html"
    if request.method == "GET":
        return vary_on_htmx(make_response(render_template(template, org=org, invite_form=form)))
    if form.validate_on_submit():
        try:
            issued = create_invitation(
                db.session,
                org,
                _request_from(form),
                actor=Actor.user(current_user.id),
                source="dashboard",
            )
        except ValidationFailed as error:
            db.session.rollback()
            attach_service_errors(form, error)
        except ServiceError as error:
            db.session.rollback()
            form.email.errors = [*form.email.errors, str(error)]
        else:
            db.session.commit()
            invitation = issued.invitation
            message = f"Invited {invitation.email}."
            if not form.notify.data:
                message += " No email was sent; share the link yourself (shown only now)."
            if is_partial():
                fresh = _invite_form(org, formdata=None)
                fresh.email.data = ""
                response = make_response(
                    render_template(
                        "invitations/_invite_created.html",
                        org=org,
                        invite_form=fresh,
                        accept_url=None if form.notify.data else issued.accept_url,
                        message=message,
                    )
                )
                response.headers["HX-Trigger"] = "invitation-created"
                return response
            flash(message, "success")
            if not form.notify.data:
                flash(f"Link for {invitation.email}: {issued.accept_url}", "link")
            return redirect(url_for("invitations.index", slug=org.slug), code=303)
    response = make_response(render_template(template, org=org, invite_form=form), 422)
    return vary_on_htmx(response)


def _row(org: Organization, invitation_id: str) -> Invitation:
    try:
        return get_invitation(db.session, org, invitation_id)
    except NotFound:
        abort(404)


@blueprint.get("/<invitation_id>")
@org_admin_view
def row(org: Organization, invitation_id: str):
    """One row (htmx: after Cancel), or the list for a plain request."""
    invitation = _row(org, invitation_id)
    if not is_partial():
        return redirect(url_for("invitations.index", slug=org.slug))
    return vary_on_htmx(
        make_response(render_template("invitations/_row.html", org=org, invitation=invitation))
    )


@blueprint.route("/<invitation_id>/<any(revoke, resend):action>", methods=["GET", "POST"])
@org_admin_view
def act(org: Organization, invitation_id: str, action: str):
    """GET: ask to confirm. POST: revoke or resend; the row comes back with its new state."""
    invitation = _row(org, invitation_id)
    form = EmptyForm()
    if request.method == "GET":
        template = "invitations/_row_confirm.html" if is_partial() else "invitations/confirm.html"
        return vary_on_htmx(
            make_response(
                render_template(
                    template, org=org, invitation=invitation, action=action, row_form=form
                )
            )
        )
    if not form.validate_on_submit():
        abort(400)
    actor = Actor.user(current_user.id)
    notice, level = None, "success"
    try:
        if action == "revoke":
            revoke_invitation(db.session, org, invitation.id, actor=actor)
            notice = f"Revoked the invitation of {invitation.email}."
        else:
            issued = resend_invitation(db.session, org, invitation.id, actor=actor)
            notice = f"Sent a new link to {issued.invitation.email}; the old one no longer works."
        db.session.commit()
    except ServiceError as error:
        db.session.rollback()
        notice, level = str(error), "error"
    db.session.expire_all()
    invitation = _row(org, invitation_id)
    if is_partial():
        return render_template(
            "invitations/_row.html",
            org=org,
            invitation=invitation,
            notice=notice,
            notice_level=level,
        )
    flash(notice, level)
    return redirect(url_for("invitations.index", slug=org.slug), code=303)
