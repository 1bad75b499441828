"""Security headers on every response (CSP as in the checklist)."""

from __future__ import annotations

from flask import Flask
from flask import Response

CSP_DIRECTIVES = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def content_security_policy(**overrides: str) -> str:
    """The policy, with some directives replaced (``form_action="'self' https://x"``)."""
    directives = dict(CSP_DIRECTIVES)
    for name, value in overrides.items():
        directives[name.replace("_", "-")] = value
    return "; ".join(f"{k} {v}" for k, v in directives.items())


DEFAULT_POLICY = content_security_policy()


SECURITY_HEADERS = (
    ("Content-Security-Policy", DEFAULT_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "strict-origin"),
)


def apply_security_headers(response: Response) -> Response:
    """Each header unless the view set its own (the acceptance pages widen the CSP)."""
    headers = response.headers
    # One pass over the few headers a response has (setdefault scans them per header).
    present = {name.lower() for name, _ in headers.items()}
    for name, value in SECURITY_HEADERS:
        if name.lower() not in present:
            headers.add(name, value)
    return response


def register_security_headers(app: Flask) -> None:
    app.after_request(apply_security_headers)
