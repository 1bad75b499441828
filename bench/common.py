"""Shared pieces of the benchmarks: a scratch app, an SMTP sink process, statistics."""

from __future__ import annotations

import cProfile
import os
import pstats
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
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


# API budgets no benchmark reaches (as app settings, and as the server's environment).
UNLIMITED_API = {
    "API_RATE_LIMIT_PER_KEY": "100000000/minute",
    "API_RATE_LIMIT_PER_ORG": "100000000/minute",
}
UNLIMITED_API_ENVIRONMENT = {f"ORGINVITES_{name}": value for name, value in UNLIMITED_API.items()}


def print_profile(call, requests: int, top: int) -> None:
    """cProfile ``call(n)`` for n in range(requests): Python calls per request, then the
    ``top`` functions by cumulative and by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for n in range(requests):
        call(n)
    profiler.disable()
    stats = pstats.Stats(profiler)
    print(f"function calls per request: {stats.total_calls / requests:,.0f}")
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def count_instructions(call, requests: int, what: str) -> None:
    """Under ``valgrind --tool=callgrind --instr-atstart=no``: count the instructions of
    ``call(n)`` for n in range(requests) only. Instructions, not seconds: the same count
    run after run, whatever else the machine does; divide callgrind's total by
    ``requests``."""
    pid = str(os.getpid())
    subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
    for n in range(requests):
        call(n)
    subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
    print(f"callgrind counted {requests} {what}: divide its total by that")


def statements_per_request(engine, call, runs: int, show_sql: bool, width: int = 200) -> float:
    """Median statements the driver runs for ``call(n)``, n in range(runs), counted apart
    from any timing (recording costs time): SQLAlchemy's and raw cursors' alike (BEGIN
    and COMMIT included on SQLite, where the app sends them itself). SQLite's trace
    repeats a statement whose trigger program runs: each top-level statement counts
    once. With ``show_sql``, the first run's statements are printed."""
    from tests.statements import driver_statements

    counts: list[int] = []
    for n in range(runs):
        with driver_statements(engine) as statements:
            call(n)
        top = [s for i, s in enumerate(statements) if i == 0 or s != statements[i - 1]]
        counts.append(len(top))
        if n == 0 and show_sql:
            for statement in top:
                print("   ", statement[:width])
    return statistics.median(counts)


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


def gunicorn(app_spec: str, port: int, env: dict, workers: int = 2) -> subprocess.Popen:
    """Start ``gunicorn app_spec`` on 127.0.0.1:port and wait until it answers."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            app_spec,
        ],
        env=env,
        cwd=str(BENCH_DIR.parent),
    )
    probe = (
        f"http://127.0.0.1:{port}/healthz" if "webapp" in app_spec else f"http://127.0.0.1:{port}/"
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(probe, timeout=1)
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"gunicorn {app_spec} did not start")


@dataclass
class WrkResult:
    rate: float  # requests per second
    p50_ms: float
    p99_ms: float
    non_2xx: int


def _millis(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, headers: list[str], seconds: int = 10, script: str | None = None) -> WrkResult:
    """Load ``url`` with wrk (2 threads, 8 connections); rate and latency percentiles."""
    args = ["wrk", "-t2", "-c8", f"-d{seconds}s", "--latency"]
    for header in headers:
        args += ["-H", header]
    if script:
        args += ["-s", script]
    output = subprocess.run(
        args + [url], capture_output=True, text=True, check=True, env=os.environ
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        rate=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        p50_ms=_millis(re.search(r"\s50%\s+(\S+)", output).group(1)),
        p99_ms=_millis(re.search(r"\s99%\s+(\S+)", output).group(1)),
        non_2xx=int(errors.group(1)) if errors else 0,
    )


def seeded_org(app, count: int, reuse: bool) -> str:
    """The id of the org 'big': seeded now with ``count`` invitations, or already there."""
    from sqlalchemy import select

    from bench.seed import seed
    from webapp.extensions import db
    from webapp.models import Organization

    if reuse:
        with app.app_context():
            return db.session.scalar(select(Organization.id).where(Organization.slug == "big"))
    print(f"seeding {count:,} invitations into {app.config['DATABASE_URL']} …", flush=True)
    return seed(app, count)
