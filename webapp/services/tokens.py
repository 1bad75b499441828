"""Invitation link tokens: random, stored only as SHA-256, built on the public base URL."""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets

from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

from webapp.config import ConfigError


def new_token() -> tuple[str, str]:
    """Return ``(raw_token, sha256_hex)``; 256 random bits."""
    raw = secrets.token_urlsafe(32)
    return raw, hash_token(raw)


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def public_url(path: str) -> str:
    """A link for an email: the configured public base URL (never the request's Host)."""
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + path


def accept_url(raw_token: str) -> str:
    """The invitee's link."""
    return public_url(f"/invitations/accept/{raw_token}")


def _fernet() -> Fernet:
    secret = current_app.config.get("SECRET_KEY")
    if not secret:
        raise ConfigError(
            "ORGINVITES_SECRET_KEY is not set; it is needed to queue invitation emails"
        )
    return _fernet_for(secret)


@functools.lru_cache(maxsize=4)
def _fernet_for(secret: str) -> Fernet:
    # Derived once per key: a bulk import seals tens of thousands of tokens.
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"orginvites outbox token"
    ).derive(secret.encode("utf-8"))
    return Fernet(base64.urlsafe_b64encode(key))


def seal_for_outbox(raw_token: str) -> str:
    """Encrypt a token so the delivery worker can build the link; nobody else can read it."""
    return _fernet().encrypt(raw_token.encode("utf-8")).decode("ascii")


def open_from_outbox(ciphertext: str) -> str | None:
    """Decrypt an outbox token; None if the secret key changed since it was queued."""
    try:
        return _fernet().decrypt(ciphertext.encode("ascii")).decode("utf-8")
    except InvalidToken:
        return None
