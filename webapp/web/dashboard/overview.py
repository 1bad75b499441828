"""The organization's overview pages (dashboard)."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("overview", __name__, url_prefix="/orgs/<slug>/overview")
