"""Who performs an action: a dashboard user, an API key, or the system itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Actor:
    kind: Literal["user", "api_key", "system"]
    id: str | None = None

    @classmethod
    def user(cls, user_id: str) -> Actor:
        return cls("user", user_id)

    @classmethod
    def api_key(cls, key_id: str) -> Actor:
        return cls("api_key", key_id)


SYSTEM = Actor("system", None)
