"""Flask-Login wiring: how a session cookie maps back to a user."""

from __future__ import annotations

from webapp.extensions import db
from webapp.extensions import login_manager
from webapp.models import User


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The signed-in user, if it still exists and may sign in (has a password)."""
    user = db.session.get(User, user_id)
    if user is None or not user.password_hash:
        return None
    return user
