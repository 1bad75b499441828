"""The Flask application class of OrgInvites."""

from __future__ import annotations

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
