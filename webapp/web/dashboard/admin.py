"""The superuser area: every organization and the instance-wide invitation list."""

from __future__ import annotations

from flask import Blueprint
from flask import render_template

from webapp.extensions import db
from webapp.services.organizations import list_organizations
from webapp.web.dashboard import superuser_view

blueprint = Blueprint("admin", __name__, url_prefix="/admin")


@blueprint.get("")
@superuser_view
def index():
    """All organizations."""
    return render_template("admin/index.html", orgs=list_organizations(db.session))
