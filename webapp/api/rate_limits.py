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
from limits.strategies import FixedWindowRateLimiter

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
    if type(strategy) is not FixedWindowRateLimiter:  # OrgInvites configures no other
        raise RuntimeError(f"the API counts fixed windows, not {type(strategy).__name__}")
    storage = strategy.storage
    config = current_app.config
    checks = [("key", principal.key_id, config["API_RATE_LIMIT_PER_KEY"])]
    if principal.org_id is not None:
        checks.append(("org", principal.org_id, config["API_RATE_LIMIT_PER_ORG"]))
    prefix = config.get("RATELIMIT_KEY_PREFIX") or "api"
    counted = RequestCount()
    for scope, identity, limit_text in checks:
        item = _parsed_limit(limit_text)
        key = item.key_for(prefix, scope, identity)
        # Counted as the fixed window's ``hit`` counts, keeping the count: what is left
        # then needs no second read (a round trip on Redis).
        count = storage.incr(key, item.get_expiry(), amount=1)
        allowed = count <= item.amount
        if scope != "key" and allowed:
            continue
        remaining, reset_time = max(0, item.amount - count), storage.get_expiry(key)
        if scope == "key":
            counted.headers = {
                "X-RateLimit-Limit": str(item.amount),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(math.ceil(reset_time)),
            }
        if not allowed:
            retry_after = max(1, math.ceil(reset_time - time.time()))
            whose = "this API key" if scope == "key" else "this organization"
            counted.refusal = f"{whose} is limited to {limit_text}; retry in {retry_after} seconds"
            counted.retry_after = retry_after
            return counted
    return counted
