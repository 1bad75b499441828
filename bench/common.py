"""Shared pieces of the benchmarks: a scratch app, an SMTP sink process, statistics."""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from webapp import create_app
from webapp.extensions import alembic

BENCH_DIR = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpSink:
    """A local aiosmtpd server in its own process that notes when each message arrived."""

    def __init__(self, port: int, arrivals: Path) -> None:
        self.port = port
        self.arrivals = arrivals

    def count(self) -> int:
        return len(self.arrivals.read_text().splitlines()) if self.arrivals.exists() else 0

    def arrival_times(self) -> dict[str, float]:
        times = {}
        for line in self.arrivals.read_text().splitlines():
            message_id, _, stamp = line.partition("\t")
            times.setdefault(message_id, float(stamp))
        return times


@contextmanager
def smtp_sink():
    port = free_port()
    arrivals = Path(tempfile.mkdtemp(prefix="orginvites-sink-")) / "arrivals.tsv"
    process = subprocess.Popen(
        [sys.executable, str(BENCH_DIR / "smtp_sink.py"), str(port), str(arrivals)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "ready"
        yield SmtpSink(port, arrivals)
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


def scratch_app(database_url: str | None = None, **config):
    """A migrated app on a fresh SQLite file (or the given database URL)."""
    folder = Path(tempfile.mkdtemp(prefix="orginvites-bench-"))
    url = database_url or f"sqlite:///{folder / 'bench.sqlite3'}"
    settings = {
        "SECRET_KEY": "bench-secret-key",
        "DATABASE_URL": url,
        "INSTANCE_PATH": str(folder),
        "PUBLIC_BASE_URL": "https://invites.example.com",
        "MAIL_BACKEND": "smtp",
        "SESSION_COOKIE_SECURE": False,
        "ACCEPT_RATE_LIMIT_PER_IP": "1000000/minute",
        "ACCEPT_RATE_LIMIT_PER_TOKEN": "1000000/minute",
        **config,
    }
    app = create_app(settings)
    with app.app_context():
        alembic.upgrade()
    return app


def wait_until(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values)
