"""The organization's activity pages (dashboard)."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("activity", __name__, url_prefix="/orgs/<slug>/activity")
