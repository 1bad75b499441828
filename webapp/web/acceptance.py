"""The public acceptance page: preview (no side effects), accept, decline."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request

from webapp.clock import utcnow
from webapp.extensions import READ_LIMITED_BLUEPRINTS
from webapp.extensions import csrf
from webapp.extensions import db
from webapp.extensions import limiter
from webapp.models import Invitation
from webapp.models import InvitationStatus
from webapp.models import Organization
from webapp.models import User
from webapp.services.errors import InvitationUnavailable
from webapp.services.errors import ValidationFailed
from webapp.services.invitation_transitions import accept_invitation
from webapp.services.invitation_transitions import decline_invitation
from webapp.services.invitation_transitions import needs_password
from webapp.services.invitation_transitions import redirect_target
from webapp.services.invitations import get_invitation_by_token
from webapp.services.tickets import issue_ticket
from webapp.web.forms import AcceptInvitationForm
from webapp.web.forms import DeclineInvitationForm
from webapp.web.forms import attach_service_errors
from webapp.web.security import content_security_policy

blueprint = Blueprint("acceptance", __name__, url_prefix="/invitations")

# One answer for unknown, revoked, declined and expired links, so none can be told apart.
UNAVAILABLE_STATUS = 404


def _token_key() -> str:
    """Rate-limit key per link: its hash, so no token lands in the limiter's storage."""
    token = (request.view_args or {}).get("token", "")
    return "token:" + hashlib.sha256(token.encode()).hexdigest()


def _per_ip_limit() -> str:
    return current_app.config["ACCEPT_RATE_LIMIT_PER_IP"]


def _per_token_limit() -> str:
    return current_app.config["ACCEPT_RATE_LIMIT_PER_TOKEN"]


limiter.limit(_per_ip_limit)(blueprint)
READ_LIMITED_BLUEPRINTS.add(blueprint.name)
# The forms check their CSRF token themselves (FlaskForm), inside the views, so the
# per-link rate limit (a view decorator) counts even requests without a valid token.
csrf.exempt(blueprint)


def _csrf_refused(form) -> Response | None:
    if form.is_submitted() and form.csrf_token.errors:
        return make_response(
            render_template(
                "errors/error.html",
                title="This form expired",
                message="Go back, reload the invitation page and try again.",
            ),
            400,
        )
    return None


@blueprint.after_request
def _private_page(response: Response) -> Response:
    """Links are secrets: never cache these pages, never leak the path in a Referer."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "strict-origin"
    return response


def _unavailable() -> Response:
    return make_response(render_template("acceptance/unavailable.html"), UNAVAILABLE_STATUS)


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode(query + list(params.items()))))


def _page_context(invitation: Invitation) -> dict:
    session = db.session
    org = session.get(Organization, invitation.org_id)
    inviter = session.get(User, invitation.inviter_user_id) if invitation.inviter_user_id else None
    role = org.role(invitation.role)
    return {
        "invitation": invitation,
        "org": org,
        "inviter": inviter,
        "role_name": role.name if role else invitation.role,
        "needs_password": needs_password(db.session, invitation),
        "now": utcnow(),
    }


def _render_preview(invitation: Invitation, accept_form, decline_form, status: int = 200):
    context = _page_context(invitation)
    response = make_response(
        render_template(
            "acceptance/preview.html",
            accept_form=accept_form,
            decline_form=decline_form,
            **context,
        ),
        status,
    )
    target = redirect_target(db.session, invitation)
    if target:
        # The form's POST ends in a redirect to the product: CSP must allow that origin.
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(target))
        response.headers["Content-Security-Policy"] = content_security_policy(
            form_action=f"'self' {origin}"
        )
    return response


@blueprint.route("/accept/<token>", methods=["GET", "HEAD"])
def preview(token: str):
    """Show who invited whom to what; change nothing (mail scanners fetch this)."""
    invitation = get_invitation_by_token(db.session, token)
    if invitation is None:
        return _unavailable()
    status = invitation.effective_status(utcnow())
    if status not in (InvitationStatus.PENDING, InvitationStatus.ACCEPTED):
        return _unavailable()
    return _render_preview(invitation, AcceptInvitationForm(), DeclineInvitationForm())


@blueprint.post("/accept/<token>")
@limiter.limit(_per_token_limit, key_func=_token_key)
def accept(token: str):
    """Accept: create or link the user and membership, then 303 to the product."""
    form = AcceptInvitationForm()
    if not form.validate_on_submit():
        refused = _csrf_refused(form)
        if refused is not None:
            return refused
    invitation = get_invitation_by_token(db.session, token)
    if invitation is None:
        return _unavailable()
    if form.errors:
        return _render_preview(invitation, form, DeclineInvitationForm(), 422)
    try:
        result = accept_invitation(
            db.session, token, name=form.name.data, password=form.password.data or None
        )
    except InvitationUnavailable:
        db.session.rollback()
        return _unavailable()
    except ValidationFailed as error:
        db.session.rollback()
        attach_service_errors(form, error)
        return _render_preview(invitation, form, DeclineInvitationForm(), 422)
    db.session.commit()
    if result.redirect_url:
        params = {
            "invitation_id": result.invitation.id,
            "status": "accepted",
            "ticket": issue_ticket(result.invitation),
        }
        return redirect(_with_query(result.redirect_url, params), code=303)
    org = db.session.get(Organization, result.invitation.org_id)
    return render_template("acceptance/joined.html", org=org, result=result)


@blueprint.post("/accept/<token>/decline")
@limiter.limit(_per_token_limit, key_func=_token_key)
def decline(token: str):
    """Decline the invitation and say so plainly."""
    form = DeclineInvitationForm()
    if not form.validate_on_submit():
        return _csrf_refused(form) or _unavailable()
    invitation = get_invitation_by_token(db.session, token)
    if invitation is None:
        return _unavailable()
    try:
        invitation, _already = decline_invitation(db.session, token)
    except InvitationUnavailable:
        db.session.rollback()
        return _unavailable()
    db.session.commit()
    org = db.session.get(Organization, invitation.org_id)
    return render_template("acceptance/declined.html", org=org)
