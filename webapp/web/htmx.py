"""Fragment or full page: decided in one place."""

from __future__ import annotations

from flask import Response
from flask import request


def is_partial() -> bool:
    """An htmx request that wants a fragment (not boosted, not a history restore)."""
    headers = request.headers
    return (
        headers.get("HX-Request") == "true"
        and headers.get("HX-Boosted") != "true"
        and headers.get("HX-History-Restore-Request") != "true"
    )


def vary_on_htmx(response: Response) -> Response:
    """Caches must keep the fragment and the page apart."""
    response.vary.add("HX-Request")
    return response
