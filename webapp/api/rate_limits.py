"""Request budgets per API key and per organization, shared by every API surface.

The native API and the vendor-compatible APIs count against the same budgets: a key
that calls both is limited once, not once per surface.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from dataclasses import field
from functools import lru_cache

from flask import current_app
from limits import RateLimitItem
from limits import parse as parse_limit

from webapp.api.principals import ApiPrincipal
from webapp.extensions import limiter


@dataclass
class RequestCount:
    """The key's ``X-RateLimit-*`` headers, and why the request is refused (if it is)."""

    headers: dict[str, str] = field(default_factory=dict)
    refusal: str | None = None
    retry_after: int = 0


@lru_cache(maxsize=32)
def _parsed_limit(text: str) -> RateLimitItem:
    return parse_limit(text)


def count_request(principal: ApiPrincipal) -> RequestCount:
    """Count the request against its key's limit and then its organization's."""
    strategy = limiter.limiter
    checks = [("key", principal.key_id, current_app.config["API_RATE_LIMIT_PER_KEY"])]
    if principal.org_id is not None:
        checks.append(("org", principal.org_id, current_app.config["API_RATE_LIMIT_PER_ORG"]))
    prefix = current_app.config.get("RATELIMIT_KEY_PREFIX") or "api"
    counted = RequestCount()
    for scope, identity, limit_text in checks:
        item = _parsed_limit(limit_text)
        allowed = strategy.hit(item, prefix, scope, identity)
        if scope != "key" and allowed:
            continue
        stats = strategy.get_window_stats(item, prefix, scope, identity)
        if scope == "key":
            counted.headers = {
                "X-RateLimit-Limit": str(item.amount),
                "X-RateLimit-Remaining": str(stats.remaining),
                "X-RateLimit-Reset": str(math.ceil(stats.reset_time)),
            }
        if not allowed:
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
            whose = "this API key" if scope == "key" else "this organization"
            counted.refusal = f"{whose} is limited to {limit_text}; retry in {retry_after} seconds"
            counted.retry_after = retry_after
            return counted
    return counted
