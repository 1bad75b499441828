"""The one place the application reads the current time (tests move it with time-machine)."""

from datetime import UTC
from datetime import datetime


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)
