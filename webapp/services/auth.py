"""Dashboard sign-in and password reset (single-use, expiring links through the outbox)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from webapp.clock import utcnow
from webapp.models import PasswordResetToken
from webapp.models import User
from webapp.services.actors import Actor
from webapp.services.audit import record_event
from webapp.services.errors import InvalidResetLink
from webapp.services.errors import ValidationFailed
from webapp.services.outbox import enqueue_email
from webapp.services.tokens import hash_token
from webapp.services.tokens import new_token
from webapp.services.users import check_password_rules
from webapp.services.users import get_user_by_email
from webapp.services.users import hash_password
from webapp.services.users import verify_password

RESET_LINK_LIFETIME = timedelta(hours=1)
# Verified against when the address is unknown, so both paths cost the same.
_DUMMY_HASH = hash_password("not-a-real-password-0000")


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The user with this address and password, if both match; None otherwise."""
    user = get_user_by_email(session, email or "")
    if user is None or not user.password_hash:
        verify_password(User(password_hash=_DUMMY_HASH), password or "")
        return None
    if not verify_password(user, password or ""):
        return None
    user.last_login_at = utcnow()
    return user


def request_password_reset(session: Session, email: str) -> None:
    """Queue a reset email if the address belongs to someone who signs in; else nothing.

    The caller says the same thing either way, so nobody learns which addresses exist.
    """
    user = get_user_by_email(session, email or "")
    if user is None or not user.password_hash:
        return
    raw, token_hash = new_token()
    now = utcnow()
    session.add(
        PasswordResetToken(
            user_id=user.id,
            token_hash=token_hash,
            created_at=now,
            expires_at=now + RESET_LINK_LIFETIME,
        )
    )
    enqueue_email(
        session,
        kind="password_reset",
        to_email=user.email,
        raw_token=raw,
        org_id=None,
        context={"user_id": user.id},
    )


def reset_link_is_valid(session: Session, raw_token: str) -> bool:
    row = session.scalar(
        select(PasswordResetToken).where(PasswordResetToken.token_hash == hash_token(raw_token))
    )
    return bool(row and row.used_at is None and row.expires_at > utcnow())


def reset_password(session: Session, raw_token: str, new_password: str) -> User:
    """Set a new password with a reset link; the link works once and for one hour."""
    problem = check_password_rules(new_password)
    if problem:
        raise ValidationFailed([problem])
    now = utcnow()
    row = session.scalar(
        select(PasswordResetToken).where(PasswordResetToken.token_hash == hash_token(raw_token))
    )
    if row is None:
        raise InvalidResetLink()
    won = session.execute(
        update(PasswordResetToken)
        .where(
            PasswordResetToken.id == row.id,
            PasswordResetToken.used_at.is_(None),
            PasswordResetToken.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not won:
        raise InvalidResetLink()
    user = session.get(User, row.user_id)
    user.password_hash = hash_password(new_password)
    record_event(session, "user.password_reset", actor=Actor.user(user.id), org_id=None, data={})
    return user
