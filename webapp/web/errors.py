"""Friendly error pages (no stack traces, same layout as every page)."""

from __future__ import annotations

from flask import Flask
from flask import render_template
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


def _render(error: HTTPException):
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
