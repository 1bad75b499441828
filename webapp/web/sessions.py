"""The dashboard's signed-cookie sessions, never opened for the key-authenticated APIs."""

from __future__ import annotations

from flask import Flask
from flask import Request
from flask.sessions import SecureCookieSession
from flask.sessions import SecureCookieSessionInterface


class DashboardSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, except under the API prefixes.

    No cookie ever authenticates an API request (the API blueprints are CSRF-exempt for
    that reason), so they get Flask's null session: nothing read from a cookie, nothing
    written back, and no cookie work on every call.
    """

    def __init__(self) -> None:
        self.cookieless_prefixes: tuple[str, ...] = ()

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith(self.cookieless_prefixes):
            return None  # Flask then uses its null session
        return super().open_session(app, request)


def without_cookie_sessions(app: Flask, url_prefix: str) -> None:
    """Requests under ``url_prefix`` get no cookie session."""
    interface = app.session_interface
    if not isinstance(interface, DashboardSessionInterface):
        interface = app.session_interface = DashboardSessionInterface()
    interface.cookieless_prefixes += (url_prefix.rstrip("/") + "/",)
