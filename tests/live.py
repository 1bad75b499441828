"""Helpers for end-to-end tests: a live server in a thread and Debian's Chromium."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(wsgi_app, port: int) -> Iterator[str]:
    """Serve a WSGI app on 127.0.0.1:port in a thread; yield its base URL."""
    server = make_server("127.0.0.1", port, wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def landing_app(environ, start_response):
    """The 'product' an invitee is redirected to: echoes its query string."""
    query = environ.get("QUERY_STRING", "")
    body = f"<!doctype html><title>Product</title><h1>Welcome</h1><p id=query>{query}</p>"
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [body.encode()]


@contextmanager
def chromium():
    """A headless Chromium page factory (Debian's browser; no download).

    Playwright's sync API runs an event loop in this thread while it is open, and
    Flask cannot tear down an app context under a running loop: do app-context work
    before entering or after leaving this block (the served app runs in other threads).
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def app_for_browser(make_app, backend: str, port: int, **extra) -> Flask:
    """An app whose links point at the live server and whose cookies work over http."""
    return make_app(
        backend,
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        SESSION_COOKIE_SECURE=False,
        **extra,
    )
