"""The API blueprint: CSRF-exempt, never authenticated by cookies (only API keys).

Its requests count against the API's own per-key and per-organization budgets
(``webapp.api.rate_limits``), not through Flask-Limiter's per-request check.
"""

from __future__ import annotations

from flask import Blueprint

from webapp.extensions import SELF_LIMITED_BLUEPRINTS

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")
SELF_LIMITED_BLUEPRINTS.add(blueprint.name)
