"""Where the secret key comes from, and the development key kept in the instance folder."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

DEV_SECRET_FILE = "secret_key"


def read_instance_secret(instance_path: str) -> str | None:
    """The key that ``orginvites demo``/``run`` stored in the instance folder, if any."""
    path = Path(instance_path) / DEV_SECRET_FILE
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def create_instance_secret(instance_path: str) -> str:
    """Create (once) and return a random key in the instance folder, readable only by us."""
    existing = read_instance_secret(instance_path)
    if existing:
        return existing
    Path(instance_path).mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path = Path(instance_path) / DEV_SECRET_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key
