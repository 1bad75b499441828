"""The start page and health check served until the dashboard lands."""

from flask import Blueprint
from flask import current_app
from flask import render_template
from flask import request
from sqlalchemy import text

from webapp.extensions import db
from webapp.services.tickets import InvalidTicket
from webapp.services.tickets import verify_ticket

blueprint = Blueprint("home", __name__)


@blueprint.get("/")
def index():
    """A plain page saying the service runs and where to go next."""
    return render_template("web/home.html", demo_login=current_app.config.get("DEMO_LOGIN_HINT"))


@blueprint.get("/welcome")
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
