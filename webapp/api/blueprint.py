"""The API blueprint: CSRF-exempt, never authenticated by cookies (only API keys)."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")
