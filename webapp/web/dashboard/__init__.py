"""The admin dashboard: sign-in, invitations, settings, members, activity, admin area."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import abort
from flask import g
from flask import session
from flask_login import current_user
from flask_login import login_required

from webapp.extensions import db
from webapp.services.access import managed_organization
from webapp.services.access import managed_organizations
from webapp.services.access import organization_for_admin
from webapp.services.access import user_with_organization
from webapp.services.errors import Forbidden
from webapp.services.errors import NotFound
from webapp.web.htmx import is_partial


def org_admin_view(view: Callable[..., Any]) -> Callable[..., Any]:
    """Sign-in required; ``slug`` becomes the organization (404/403 otherwise) in ``g.org``.

    The signed-in user, the organization and the user's role in it are read in one
    query before Flask-Login asks for the user (``webapp.auth.load_user`` takes the
    prefetched user; Flask-Login's session protection still runs first).
    """

    @functools.wraps(view)
    def wrapper(slug: str, **kwargs: Any) -> Any:
        prefetched = g.pop("prefetched_admin_context", None)
        try:
            if prefetched is not None and prefetched[0] is current_user._get_current_object():
                _, found, member_role = prefetched
                org = managed_organization(current_user, found, member_role, slug)
            else:
                org = organization_for_admin(db.session, current_user, slug)
        except NotFound:
            abort(404)
        except Forbidden:
            abort(403)
        g.org = org
        # The organization switcher is part of the full page only.
        g.managed_orgs = [] if is_partial() else managed_organizations(db.session, current_user)
        return view(org, **kwargs)

    signed_in = login_required(wrapper)

    @functools.wraps(view)
    def prefetching(slug: str, **kwargs: Any) -> Any:
        # Flask-Login keeps the signed-in user's id in the session under "_user_id".
        user_id = session.get("_user_id")
        if user_id is not None and "_login_user" not in g:
            found = user_with_organization(db.session, user_id, slug)
            if found is not None:
                g.prefetched_user = found[0]
                g.prefetched_admin_context = found
        return signed_in(slug=slug, **kwargs)

    return prefetching


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
