"""Sign in, sign out, password reset."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint
from flask import abort
from flask import current_app
from flask import flash
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from flask_login import current_user
from flask_login import login_user
from flask_login import logout_user

from webapp.extensions import csrf
from webapp.extensions import db
from webapp.extensions import limiter
from webapp.extensions import login_manager
from webapp.services.access import managed_organizations
from webapp.services.auth import authenticate
from webapp.services.auth import request_password_reset
from webapp.services.auth import reset_link_is_valid
from webapp.services.auth import reset_password
from webapp.services.errors import InvalidResetLink
from webapp.services.errors import ValidationFailed
from webapp.web.forms import EmptyForm
from webapp.web.forms import LoginForm
from webapp.web.forms import PasswordResetForm
from webapp.web.forms import PasswordResetRequestForm
from webapp.web.forms import attach_service_errors
from webapp.web.forms import csrf_failed
from webapp.web.htmx import is_partial

blueprint = Blueprint("auth", __name__)
# These forms check their CSRF token themselves (FlaskForm) inside the views, so the
# sign-in rate limit counts every attempt, with or without a token.
csrf.exempt(blueprint)

login_manager.login_view = "auth.login"
login_manager.login_message = "Please sign in to continue."
login_manager.login_message_category = "info"


@login_manager.unauthorized_handler
def _unauthorized():
    """Send people to sign in; an htmx request gets told to navigate there."""
    target = url_for("auth.login", next=request.full_path.rstrip("?"))
    if is_partial():
        response = make_response("", 401)
        response.headers["HX-Redirect"] = target
        return response
    flash(login_manager.login_message, "info")
    return redirect(target)


def safe_next(value: str | None) -> str | None:
    """A local path to return to after sign-in, or None (no open redirect via ?next=)."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return None
    if "\\" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def home_for(user) -> str:
    """Where a signed-in user starts: their first organization, or the admin area."""
    orgs = managed_organizations(db.session, user)
    if orgs:
        return url_for("invitations.index", slug=orgs[0].slug)
    if user.is_superuser:
        return url_for("admin.index")
    return url_for("auth.no_access")


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


@blueprint.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    """Email and password; one message for every failure."""
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(db.session, form.email.data, form.password.data)
        if user is not None:
            db.session.commit()
            session.clear()
            session.permanent = True
            login_user(user, remember=False)
            return redirect(safe_next(request.args.get("next")) or home_for(user), code=303)
        form.form_errors.append("That email and password do not match an account.")
    elif csrf_failed(form):
        abort(400, "This form expired. Reload the page and try again.")
    status = 422 if form.is_submitted() else 200
    return render_template(
        "auth/login.html",
        form=form,
        demo_login=current_app.config.get("DEMO_LOGIN_HINT"),
    ), status


@blueprint.post("/logout")
def logout():
    """Sign out (a POST with CSRF, so no page can sign you out)."""
    if not EmptyForm().validate_on_submit():
        abort(400, "This form expired. Reload the page and try again.")
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"), code=303)


@blueprint.get("/no-access")
def no_access():
    return render_template(
        "errors/error.html",
        title="No organization to manage",
        message="Your account does not administer any organization yet. Ask an admin.",
    ), 403


@blueprint.route("/password-reset", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def password_reset_request():
    """Ask for a reset link; the answer is the same whether the address exists or not."""
    form = PasswordResetRequestForm()
    if csrf_failed(form):
        abort(400, "This form expired. Reload the page and try again.")
    if form.validate_on_submit():
        request_password_reset(db.session, form.email.data)
        db.session.commit()
        flash(
            "If that address has an account, a reset link is on its way. "
            "It works once, for one hour.",
            "info",
        )
        return redirect(url_for("auth.login"), code=303)
    return render_template("auth/password_reset_request.html", form=form)


@blueprint.route("/password-reset/<token>", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def password_reset(token: str):
    """Choose a new password with a single-use link."""
    form = PasswordResetForm()
    if csrf_failed(form):
        abort(400, "This form expired. Reload the page and try again.")
    if request.method == "GET" and not reset_link_is_valid(db.session, token):
        return render_template("auth/password_reset_invalid.html"), 404
    if form.validate_on_submit():
        try:
            reset_password(db.session, token, form.password.data)
        except InvalidResetLink:
            db.session.rollback()
            return render_template("auth/password_reset_invalid.html"), 404
        except ValidationFailed as error:
            db.session.rollback()
            attach_service_errors(form, error)
        else:
            db.session.commit()
            flash("Your password was changed. Sign in with the new one.", "success")
            return redirect(url_for("auth.login"), code=303)
    response = make_response(
        render_template("auth/password_reset.html", form=form), 422 if form.errors else 200
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "strict-origin"
    return response
