"""The Flask application class of OrgInvites."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from flask import Flask

# Functions checked once each; past this many (functions made at run time and handed to
# ``ensure_sync``), the rest are checked on every call, as Flask does.
_SYNC_CHECKS_KEPT = 1024


class OrgInvitesFlask(Flask):
    """Flask, with each view and hook checked once for being a coroutine function.

    Flask asks ``inspect.iscoroutinefunction`` of every hook and view on every request
    (eleven times on an API call); the answer for a given function never changes.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ensured: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        try:
            return self._ensured[func]
        except KeyError:
            ensured = super().ensure_sync(func)
            if len(self._ensured) < _SYNC_CHECKS_KEPT:
                self._ensured[func] = ensured
            return ensured
        except TypeError:  # an unhashable callable
            return super().ensure_sync(func)


def freeze_startup_objects() -> None:
    """Keep the objects a server process starts with out of the garbage collector's
    full collections (``gc.freeze``).

    A worker starts with a few hundred thousand objects (modules, classes, the app, the
    SQLAlchemy mappers, pydantic schemas) that live as long as it does. Every full
    collection walked all of them: ~100 ms in which the worker answers nothing, every
    few thousand API creates, which was the API create's whole p99 at 8 connections.
    Frozen, a full collection walks only what requests made since (~2 ms). Garbage left
    from the start is collected first; nothing frozen is ever freed, which is what these
    objects would do anyway.
    """
    gc.collect()
    gc.freeze()
