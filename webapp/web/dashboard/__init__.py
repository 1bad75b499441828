"""The admin dashboard: sign-in, invitations, settings, members, activity, admin area."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import abort
from flask import g
from flask_login import current_user
from flask_login import login_required

from webapp.extensions import db
from webapp.services.access import managed_organizations
from webapp.services.access import organization_for_admin
from webapp.services.errors import Forbidden
from webapp.services.errors import NotFound
from webapp.web.htmx import is_partial


def org_admin_view(view: Callable[..., Any]) -> Callable[..., Any]:
    """Sign-in required; ``slug`` becomes the organization (404/403 otherwise) in ``g.org``."""

    @login_required
    @functools.wraps(view)
    def wrapper(slug: str, **kwargs: Any) -> Any:
        try:
            org = organization_for_admin(db.session, current_user, slug)
        except NotFound:
            abort(404)
        except Forbidden:
            abort(403)
        g.org = org
        # The organization switcher is part of the full page only.
        g.managed_orgs = [] if is_partial() else managed_organizations(db.session, current_user)
        return view(org, **kwargs)

    return wrapper


def superuser_view(view: Callable[..., Any]) -> Callable[..., Any]:
    """Superusers only (404 for everyone else: the admin area is not advertised)."""

    @login_required
    @functools.wraps(view)
    def wrapper(**kwargs: Any) -> Any:
        if not current_user.is_superuser:
            abort(404)
        g.managed_orgs = managed_organizations(db.session, current_user)
        return view(**kwargs)

    return wrapper
