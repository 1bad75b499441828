"""In-process rate-limit counters (``memory://``) that start no thread per request.

The ``limits`` library's memory storage expires counters from a ``threading.Timer``
that it starts again whenever the previous one has finished: under load, a new thread
every 10 ms in every worker, and a request that waits for the thread to start (several
milliseconds when the CPUs are busy). Counters read through ``get`` are already
expired when read; this storage sweeps the rest on the request that finds the last
sweep more than ``SWEEP_INTERVAL`` seconds old, in the calling thread.

``create_app`` maps the configured ``memory://`` to this storage; Redis and every other
storage are used as configured.
"""

from __future__ import annotations

import threading
import time

from limits.storage import MemoryStorage

SCHEME = "orginvites-memory"
SWEEP_INTERVAL = 1.0


class SweepingMemoryStorage(MemoryStorage):
    """``limits``' memory storage, with the expiry sweep run inline once a second."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._sweep_lock = threading.Lock()
        self._last_sweep = time.monotonic()

    # The parent calls this (by its private name) before every change of a counter.
    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 - overrides a private hook
        now = time.monotonic()
        if now - self._last_sweep < SWEEP_INTERVAL or not self._sweep_lock.acquire(False):
            return
        try:
            self._last_sweep = now
            self._MemoryStorage__expire_events()
        finally:
            self._sweep_lock.release()


def storage_uri(configured: str) -> str:
    """The URI to hand to Flask-Limiter for the configured one."""
    if configured.rstrip("/") in ("memory:", "memory:/"):
        return f"{SCHEME}://"
    return configured
