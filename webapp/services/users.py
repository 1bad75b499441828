"""Users: dashboard admins and the people who accept invitations."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash
from werkzeug.security import generate_password_hash

from webapp.clock import utcnow
from webapp.database import insert_ignoring_conflicts
from webapp.ids import new_id
from webapp.models import User
from webapp.services.errors import FieldError
from webapp.services.errors import ValidationFailed
from webapp.services.validation import clean_text
from webapp.services.validation import normalize_email

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256


def check_password_rules(password: object, field: str = "password") -> FieldError | None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        return FieldError(
            field,
            "password_too_short",
            f"the password needs at least {MIN_PASSWORD_LENGTH} characters",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        return FieldError(
            field,
            "password_too_long",
            f"the password may have at most {MAX_PASSWORD_LENGTH} characters",
        )
    return None


def hash_password(password: str) -> str:
    """scrypt through Werkzeug (a memory-hard KDF)."""
    return generate_password_hash(password, method="scrypt")


def verify_password(user: User, password: str) -> bool:
    return bool(user.password_hash) and check_password_hash(user.password_hash, password)


def get_user_by_email(session: Session, email: str) -> User | None:
    normalized = normalize_email(email)
    if isinstance(normalized, FieldError):
        return None
    return session.scalar(select(User).where(User.email_key == normalized[1]))


def get_or_create_user(
    session: Session, email: str, email_key: str, name: str | None = None
) -> User:
    """Return the user with this address, creating it if needed (safe under concurrency)."""
    now = utcnow()
    session.execute(
        insert_ignoring_conflicts(User.__table__, ["email_key"], session.get_bind().dialect.name),
        [
            {
                "id": new_id("user"),
                "email": email,
                "email_key": email_key,
                "name": name,
                "is_superuser": False,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )
    user = session.scalar(
        select(User).where(User.email_key == email_key).execution_options(populate_existing=True)
    )
    assert user is not None
    return user


def create_admin_user(
    session: Session, *, email: str, password: str, name: str | None = None
) -> tuple[User, bool]:
    """Create a superuser, or make an existing user one and set the password.

    Returns ``(user, created)``.
    """
    errors: list[FieldError] = []
    normalized = normalize_email(email)
    if isinstance(normalized, FieldError):
        errors.append(normalized)
    problem = check_password_rules(password)
    if problem:
        errors.append(problem)
    clean_name = clean_text(name, "name", 200)
    if isinstance(clean_name, FieldError):
        errors.append(clean_name)
        clean_name = None
    if errors:
        raise ValidationFailed(errors)
    address, key = normalized
    existing = session.scalar(select(User).where(User.email_key == key))
    user = existing or get_or_create_user(session, address, key, clean_name)
    user.is_superuser = True
    user.password_hash = hash_password(password)
    if clean_name:
        user.name = clean_name
    session.flush()
    return user, existing is None
