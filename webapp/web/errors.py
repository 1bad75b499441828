"""Friendly error pages (no stack traces, same layout as every page)."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask import Response
from flask import current_app
from flask import render_template
from flask import request
from werkzeug.exceptions import HTTPException

MESSAGES = {
    400: ("Bad request", "The request could not be understood."),
    403: ("Not allowed", "You do not have access to this page."),
    404: ("Not found", "There is nothing here."),
    405: ("Method not allowed", "This address does not accept that kind of request."),
    413: ("Too large", "What you sent is larger than this page accepts."),
    429: ("Too many requests", "Please wait a moment, then try again."),
    500: ("Something went wrong", "The error was logged. Please try again in a moment."),
}


ErrorRenderer = Callable[[HTTPException], Response]
_RENDERERS = "orginvites.error_renderers"


def register_error_renderer(app: Flask, path_prefix: str, renderer: ErrorRenderer) -> None:
    """Errors under ``path_prefix`` (unknown URLs, 405s, 413s too) answer through ``renderer``.

    The JSON APIs use this so that even routing errors come in their own envelope.
    """
    app.extensions.setdefault(_RENDERERS, {})[path_prefix] = renderer


def _render(error: HTTPException):
    for prefix, renderer in current_app.extensions.get(_RENDERERS, {}).items():
        if request.path == prefix or request.path.startswith(prefix + "/"):
            return renderer(error)
    code = error.code or 500
    title, message = MESSAGES.get(code, (error.name, error.description or ""))
    # A message given with abort(code, "…") says more than the generic one.
    if error.description and error.description != type(error).description:
        message = error.description
    response = error.get_response()
    response.set_data(render_template("errors/error.html", title=title, message=message))
    response.mimetype = "text/html"
    return response


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, _render)
