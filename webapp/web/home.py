"""The start page and health check served until the dashboard lands."""

from flask import Blueprint
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user
from sqlalchemy import text

from webapp.extensions import db
from webapp.services.tickets import InvalidTicket
from webapp.services.tickets import verify_ticket
from webapp.web.dashboard.auth import home_for
from webapp.web.transactions import writes_on_get

blueprint = Blueprint("home", __name__)


@blueprint.get("/")
def index():
    """Signed in: your organization's invitations. Otherwise: the sign-in page."""
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    return redirect(url_for("auth.login"))


@blueprint.get("/welcome")
@writes_on_get
def welcome():
    """The demo's stand-in product page: where an accepted invitee lands.

    A real product would do what this does: verify the ticket from the query string
    (once) and sign the person in.
    """
    ticket = request.args.get("ticket", "")
    verified, problem = None, None
    if ticket:
        try:
            verified = verify_ticket(db.session, ticket)
            db.session.commit()
        except InvalidTicket as exc:
            db.session.rollback()
            problem = str(exc)
    return render_template("web/welcome.html", verified=verified, problem=problem)


@blueprint.get("/healthz")
def healthz():
    """Liveness and database check for load balancers."""
    db.session.execute(text("SELECT 1"))
    return {"status": "ok"}
