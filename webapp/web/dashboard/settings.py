"""The organization's settings pages (dashboard)."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("settings", __name__, url_prefix="/orgs/<slug>/settings")
