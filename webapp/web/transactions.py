"""Requests that only read run their SQLite transaction deferred (see webapp.database)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from flask import current_app
from flask import request

from webapp.database import sqlite_reads_only

_WRITES_ON_GET = "writes_on_get"


def writes_on_get(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a GET view that writes (it keeps BEGIN IMMEDIATE)."""
    setattr(view, _WRITES_ON_GET, True)
    return view


def _mark_reads() -> None:
    view = current_app.view_functions.get(request.endpoint or "")
    reads_only = request.method in ("GET", "HEAD") and not getattr(view, _WRITES_ON_GET, False)
    request.environ["orginvites.reads_token"] = sqlite_reads_only.set(reads_only)


def _unmark(_exc: BaseException | None) -> None:
    token = request.environ.pop("orginvites.reads_token", None)
    if token is not None:
        sqlite_reads_only.reset(token)


def register_read_only_requests(app: Flask) -> None:
    app.before_request(_mark_reads)
    app.teardown_request(_unmark)
