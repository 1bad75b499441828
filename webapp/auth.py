"""Flask-Login wiring: how a session cookie maps back to a user."""

from __future__ import annotations

from flask import g

from webapp.extensions import db
from webapp.extensions import login_manager
from webapp.models import User


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The signed-in user, if it still exists and may sign in (has a password).

    A dashboard page of an organization has read the user already, with the
    organization (``org_admin_view``): that copy is used instead of a second query.
    """
    prefetched = g.pop("prefetched_user", None)
    if prefetched is not None and prefetched.id == user_id:
        user = prefetched
    else:
        user = db.session.get(User, user_id)
    if user is None or not user.password_hash:
        return None
    return user
