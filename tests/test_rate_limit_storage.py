"""The default ``memory://`` rate-limit storage counts in process without a thread per hit."""

from __future__ import annotations

import threading
import time

from limits import parse as parse_limit
from limits.strategies import FixedWindowRateLimiter

from webapp import create_app
from webapp.extensions import limiter
from webapp.rate_limit_storage import SweepingMemoryStorage
from webapp.rate_limit_storage import storage_uri


def test_memory_uri_maps_to_the_sweeping_storage_and_others_stay(tmp_path):
    assert storage_uri("memory://") == "orginvites-memory://"
    assert storage_uri("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    app = create_app(
        {
            "SECRET_KEY": "k" * 40,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}",
            "INSTANCE_PATH": str(tmp_path),
        }
    )
    with app.app_context():
        assert isinstance(limiter.storage, SweepingMemoryStorage)


def test_counting_starts_no_thread(monkeypatch):
    """The library's storage starts a Timer thread every 10 ms under load; this one none."""
    storage = SweepingMemoryStorage("orginvites-memory://")
    started = []
    monkeypatch.setattr(threading.Thread, "start", lambda self: started.append(self))
    limiter_ = FixedWindowRateLimiter(storage)
    item = parse_limit("1000/minute")
    for n in range(300):
        assert limiter_.hit(item, "key", str(n % 3))
        time.sleep(0.0001 if n % 50 else 0.011)
    assert started == []
    assert limiter_.get_window_stats(item, "key", "0").remaining == 900


def test_expired_counters_are_swept_inline(monkeypatch):
    """Counters nobody reads again still go: the sweep runs on a later hit."""
    monkeypatch.setattr("webapp.rate_limit_storage.SWEEP_INTERVAL", 0.0)
    storage = SweepingMemoryStorage("orginvites-memory://")
    storage.incr("stale", expiry=60)
    storage.expirations["stale"] = time.time() - 1
    storage.incr("fresh", expiry=60)
    assert "stale" not in storage.storage
    assert storage.storage["fresh"] == 1


def test_limits_still_refuse_past_the_amount():
    limiter_ = FixedWindowRateLimiter(SweepingMemoryStorage("orginvites-memory://"))
    item = parse_limit("3/minute")
    assert [limiter_.hit(item, "k") for _ in range(4)] == [True, True, True, False]


def test_flask_limiter_skips_only_the_self_counted_api_blueprints(make_app):
    """The API and compat layers count their own budgets; the dashboard's and the
    acceptance page's limits still go through Flask-Limiter."""
    from webapp.extensions import SELF_LIMITED_BLUEPRINTS

    assert {"api", "compat_clerk", "compat_openai", "compat_anthropic"} <= SELF_LIMITED_BLUEPRINTS
    assert not {"auth", "acceptance", "invitations"} & SELF_LIMITED_BLUEPRINTS
    assert set(SELF_LIMITED_BLUEPRINTS) <= set(make_app("sqlite").blueprints)
