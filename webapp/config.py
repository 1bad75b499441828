"""Configuration: defaults, then ``ORGINVITES_*`` environment variables (names are a contract)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from limits import parse as parse_limit


class ConfigError(RuntimeError):
    """The environment holds a value the application cannot run with."""


def _as_int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"ORGINVITES_{name} must be a whole number, got {raw!r}") from None


def _as_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"ORGINVITES_{name} must be true or false, got {raw!r}")


# name -> (default, parser). ``None`` parser keeps the string.
SETTINGS: dict[str, tuple[Any, Any]] = {
    "DATABASE_URL": (None, None),
    "DATABASE_POOL_SIZE": (10, _as_int),
    # SQLite: each connection's page cache (a list or a search reads pages all over a
    # large file: kept here, they are not read again), and bytes of the file read
    # through memory mapping — off by default: every mapped page a process reads counts
    # in its resident memory (a 100,000-row import peaked at 418 MB instead of 239 MB).
    "SQLITE_MMAP_SIZE": (0, _as_int),
    "SQLITE_CACHE_SIZE_KIB": (16 * 1024, _as_int),
    "SECRET_KEY": (None, None),
    "PUBLIC_BASE_URL": (None, None),
    "MAIL_BACKEND": (None, None),
    "SMTP_HOST": ("localhost", None),
    "SMTP_PORT": (25, _as_int),
    "SMTP_USERNAME": (None, None),
    "SMTP_PASSWORD": (None, None),
    "SMTP_SECURITY": ("none", None),
    "SMTP_TIMEOUT_SECONDS": (30, _as_int),
    "MAIL_FROM": ("OrgInvites <invitations@localhost>", None),
    "RATELIMIT_STORAGE_URI": ("memory://", None),
    "RESEND_MIN_INTERVAL_SECONDS": (60, _as_int),
    "MAX_SENDS_PER_INVITATION": (10, _as_int),
    "METADATA_MAX_BYTES": (8192, _as_int),
    "SESSION_COOKIE_SECURE": (True, _as_bool),
    "INSTANCE_PATH": (None, None),
    "ACCEPT_RATE_LIMIT_PER_IP": ("60/minute", None),
    "ACCEPT_RATE_LIMIT_PER_TOKEN": ("20/minute", None),
    "LOGIN_RATE_LIMIT": ("10/minute", None),
    "API_RATE_LIMIT_PER_KEY": ("1200/minute", None),
    "API_RATE_LIMIT_PER_ORG": ("3000/minute", None),
    # CSV import: caps on one file, what runs inside the upload request, concurrency.
    "IMPORT_MAX_ROWS": (100_000, _as_int),
    "IMPORT_MAX_BYTES": (10 * 1024 * 1024, _as_int),
    "IMPORT_MAX_CELL_CHARS": (10_000, _as_int),
    "IMPORT_INLINE_MAX_ROWS": (2_000, _as_int),
    "IMPORT_MAX_ACTIVE_PER_ORG": (3, _as_int),
    "IMPORT_BATCH_ROWS": (2_000, _as_int),
}

RATE_LIMITS = (
    "ACCEPT_RATE_LIMIT_PER_IP",
    "ACCEPT_RATE_LIMIT_PER_TOKEN",
    "LOGIN_RATE_LIMIT",
    "API_RATE_LIMIT_PER_KEY",
    "API_RATE_LIMIT_PER_ORG",
)

ENUMS = {
    "MAIL_BACKEND": {"dev", "smtp", None},
    "SMTP_SECURITY": {"none", "starttls", "tls"},
}


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read every known ``ORGINVITES_*`` variable, parsed and checked."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, (default, parser) in SETTINGS.items():
        raw = environ.get(f"ORGINVITES_{name}")
        if raw is None or raw == "":
            values[name] = default
        else:
            values[name] = parser(name, raw) if parser else raw
    for name in RATE_LIMITS:
        try:
            parse_limit(values[name])
        except ValueError:
            raise ConfigError(
                f"ORGINVITES_{name} must be a rate limit such as '600/minute', got {values[name]!r}"
            ) from None
    for name, allowed in ENUMS.items():
        if values[name] not in allowed:
            choices = " | ".join(sorted(a for a in allowed if a))
            raise ConfigError(f"ORGINVITES_{name} must be one of {choices}, got {values[name]!r}")
    return values
