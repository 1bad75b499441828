"""The organization's members pages (dashboard)."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("members", __name__, url_prefix="/orgs/<slug>/members")
