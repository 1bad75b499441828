"""The start page and health check served until the dashboard lands."""

from flask import Blueprint
from flask import current_app
from flask import render_template
from sqlalchemy import text

from webapp.extensions import db

blueprint = Blueprint("home", __name__)


@blueprint.get("/")
def index():
    """A plain page saying the service runs and where to go next."""
    return render_template("web/home.html", demo_login=current_app.config.get("DEMO_LOGIN_HINT"))


@blueprint.get("/healthz")
def healthz():
    """Liveness and database check for load balancers."""
    db.session.execute(text("SELECT 1"))
    return {"status": "ok"}
