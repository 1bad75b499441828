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


def apply_security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", DEFAULT_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "strict-origin")
    return response


def register_security_headers(app: Flask) -> None:
    app.after_request(apply_security_headers)
