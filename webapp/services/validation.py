"""Field rules shared by every service: email addresses, redirect URLs, metadata, text."""

from __future__ import annotations

import functools
import ipaddress
import json
import re
import unicodedata
from typing import Any
from urllib.parse import urlsplit

from email_validator import EmailNotValidError
from email_validator import validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from email_validator.rfc_constants import DOT_ATOM_TEXT

from webapp.services.errors import FieldError

MAX_EMAIL_LENGTH = 254
MAX_URL_LENGTH = 2048
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _shown(value: object, limit: int = 80) -> str:
    text = str(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")


def normalize_email(value: object, field: str = "email") -> tuple[str, str] | FieldError:
    """Return ``(email, email_key)`` or the error naming the value.

    ``email`` keeps the local part's case; ``email_key`` is lower-cased for matching.
    """
    if not isinstance(value, str):
        return FieldError(field, "invalid_email", f"{_shown(value)} is not an email address")
    candidate = value.strip()
    if not candidate:
        return FieldError(field, "required", "an email address is required")
    if len(candidate) > MAX_EMAIL_LENGTH:
        return FieldError(
            field,
            "invalid_email",
            f"{_shown(candidate)} is longer than {MAX_EMAIL_LENGTH} characters",
        )
    normalized = _plain_address(candidate)
    if normalized is None:
        try:
            normalized = validate_email(candidate, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            return FieldError(field, "invalid_email", f"{_shown(candidate)} is not valid: {exc}")
    return normalized, normalized.lower()


_CASE_INSENSITIVE_LOCAL_PARTS = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)


@functools.lru_cache(maxsize=4096)
def _checked_domain(domain: str) -> tuple[str, int, int] | None:
    """The domain as email-validator normalizes it, with the UTF-8 length of that and of
    its ASCII (IDNA) form; None if refused.

    The domain is validated on its own (behind a one-letter local part): its checks do
    not depend on the local part, and they are most of email-validator's cost.
    """
    try:
        info = validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return None
    return info.domain, len(info.domain.encode("utf-8")), len(info.ascii_domain)


def _plain_address(candidate: str) -> str | None:
    """The normalized form of a plain ASCII address, or None to ask email-validator.

    Bulk imports check 100,000 addresses; most are ``dot-atom@domain`` with a domain
    shared by many rows. For those, email-validator's answer is the local part as given
    plus its (cached) answer for the domain, provided the lengths it checks fit. Anything
    else (quotes, display names, non-ASCII, role mailboxes it lower-cases, refused
    domains) takes the full path. tests/test_email_fast_path.py holds both paths equal.
    """
    if not candidate.isascii() or candidate.count("@") != 1:
        return None
    local, domain = candidate.split("@")
    if not DOT_ATOM_TEXT.match(local) or local.lower() in _CASE_INSENSITIVE_LOCAL_PARTS:
        return None
    checked = _checked_domain(domain)
    if checked is None:
        return None
    unicode_domain, unicode_bytes, ascii_length = checked
    # UTF-8 lengths of the three forms email-validator checks: as given (ASCII here),
    # normalized, and with the IDNA (ASCII) domain.
    if max(len(candidate), len(local) + 1 + max(unicode_bytes, ascii_length)) > MAX_EMAIL_LENGTH:
        return None
    return f"{local}@{unicode_domain}"


def email_key(value: str) -> str:
    """The matching key of an address already known to be valid."""
    result = normalize_email(value)
    if isinstance(result, FieldError):
        return value.strip().lower()
    return result[1]


def _origin_of(scheme: str, host: str, port: int | None) -> str:
    default = {"https": 443, "http": 80}[scheme]
    shown_host = f"[{host}]" if ":" in host else host
    if port is None or port == default:
        return f"{scheme}://{shown_host}"
    return f"{scheme}://{shown_host}:{port}"


def _parse_web_url(value: object, field: str, *, origin_only: bool) -> tuple[str, str] | FieldError:
    """Parse an absolute https URL (http for loopback hosts); return ``(url, origin)``."""
    if not isinstance(value, str) or not value:
        return FieldError(field, "invalid_url", f"{_shown(value)} is not a URL")
    if len(value) > MAX_URL_LENGTH:
        return FieldError(field, "invalid_url", f"URL is longer than {MAX_URL_LENGTH} characters")
    if _CONTROL.search(value) or "\\" in value or any(c.isspace() for c in value):
        return FieldError(
            field,
            "invalid_url",
            f"{_shown(value)} contains spaces, control characters or backslashes",
        )
    if not value.isascii():
        return FieldError(
            field,
            "invalid_url",
            f"{_shown(value)} contains non-ASCII characters; use the punycode (xn--) form",
        )
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return FieldError(field, "invalid_url", f"{_shown(value)} is not a valid URL")
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in {"https", "http"} or not value.lower().startswith(f"{scheme}://"):
        return FieldError(field, "invalid_url", f"{_shown(value)} must start with https://")
    if "@" in parts.netloc:
        return FieldError(field, "invalid_url", f"{_shown(value)} must not contain user info (@)")
    if not host or host.startswith(".") or ".." in host:
        return FieldError(field, "invalid_url", f"{_shown(value)} has no valid host")
    if scheme == "http" and host not in LOOPBACK_HOSTS:
        return FieldError(
            field, "insecure_url", f"{_shown(value)} must use https (http only for localhost)"
        )
    try:
        ipaddress.ip_address(host)
        is_ip = True
    except ValueError:
        is_ip = False
    if not is_ip and not re.fullmatch(r"[a-z0-9.-]+", host):
        return FieldError(field, "invalid_url", f"{_shown(value)} has an invalid host name")
    origin = _origin_of(scheme, host, port)
    if origin_only and (parts.path not in {"", "/"} or parts.query or parts.fragment):
        return FieldError(
            field,
            "invalid_origin",
            f"{_shown(value)} must be an origin only, like https://app.example.com",
        )
    return value, origin


def normalize_origin(value: object, field: str = "allowed_redirect_origins") -> str | FieldError:
    """Return the canonical origin (``https://host[:port]``) or the error naming the value."""
    parsed = _parse_web_url(
        value.strip() if isinstance(value, str) else value, field, origin_only=True
    )
    if isinstance(parsed, FieldError):
        return parsed
    return parsed[1]


def check_redirect_url(
    value: object, allowed_origins: list[str], field: str = "redirect_url"
) -> str | FieldError:
    """Return the URL if it is an absolute https URL whose origin is on the allowlist."""
    parsed = _parse_web_url(value, field, origin_only=False)
    if isinstance(parsed, FieldError):
        return parsed
    url, origin = parsed
    if origin not in set(allowed_origins):
        return FieldError(
            field,
            "redirect_not_allowed",
            f"{_shown(url)} is not on this organization's allowed redirect origins",
        )
    return url


def check_metadata(value: object, field: str, max_bytes: int) -> dict[str, Any] | FieldError:
    """A JSON object no larger than ``max_bytes`` once serialized."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        return FieldError(field, "invalid_metadata", f"{field} must be a JSON object")
    if _surely_fits(value, max_bytes):
        return value
    try:
        encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        size = len(encoded.encode("utf-8"))
    except (TypeError, ValueError):  # UnicodeEncodeError (a lone surrogate) is a ValueError
        return FieldError(field, "invalid_metadata", f"{field} must contain only JSON values")
    if size > max_bytes:
        return FieldError(
            field, "metadata_too_large", f"{field} is {size} bytes; the limit is {max_bytes}"
        )
    return value


def _surely_fits(value: dict[Any, Any], max_bytes: int) -> bool:
    """A flat object of strings whose JSON cannot exceed ``max_bytes`` (no encoding needed).

    Each character takes at most 6 bytes in JSON (``\\uXXXX``), plus quotes, colon and
    comma: a bound, so bulk imports skip ``json.dumps`` for typical small metadata.
    """
    budget = max_bytes - 2
    for key, item in value.items():
        if type(key) is not str or type(item) is not str:
            return False
        if not (key + item).isascii() and not (key + item).isprintable():
            return False  # lone surrogates and the like: let json.dumps judge them
        budget -= 6 * (len(key) + len(item)) + 6
        if budget < 0:
            return False
    return True


def clean_text(
    value: object, field: str, max_length: int, *, multiline: bool = False
) -> str | None | FieldError:
    """Strip, refuse control characters (newlines allowed if ``multiline``), cap length."""
    if value is None:
        return None
    if not isinstance(value, str):
        return FieldError(field, "invalid", f"{field} must be text")
    text = unicodedata.normalize("NFC", value.strip())
    probe = text.replace("\r\n", "\n").replace("\n", "") if multiline else text
    if _CONTROL.search(probe):
        return FieldError(field, "invalid", f"{field} must not contain control characters")
    if len(text) > max_length:
        return FieldError(
            field, "too_long", f"{field} is {len(text)} characters; the limit is {max_length}"
        )
    return text or None


def required_text(value: object, field: str, max_length: int) -> str | FieldError:
    """Like ``clean_text`` but an empty value is an error."""
    text = clean_text(value, field, max_length)
    if text is None:
        return FieldError(field, "required", f"{field} is required")
    return text
