"""`orginvites demo` as a user runs it: migrates, seeds, prints what to open, serves."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def demo_process(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORGINVITES_")}
    env["ORGINVITES_INSTANCE_PATH"] = str(tmp_path / "instance")
    process = subprocess.Popen(
        [sys.executable, "-c", "from webapp.cli import main; main()", "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield process, port
    process.terminate()
    process.wait(timeout=10)
    if process.stdout:
        process.stdout.close()


def wait_for(url: str, seconds: float = 30) -> int:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_demo_serves_after_seeding_and_prints_the_sign_in(demo_process):
    """The page and the health check answer (no lock left behind by the migration)."""
    process, port = demo_process
    assert wait_for(f"http://127.0.0.1:{port}/healthz") == 200
    for _ in range(3):
        assert wait_for(f"http://127.0.0.1:{port}/") == 200
    process.terminate()
    output, _ = process.communicate(timeout=10)
    assert f"Open:          http://127.0.0.1:{port}/" in output
    assert "Sign in:       admin@example.com / orginvites-demo" in output
    assert "Acme Inc (acme)" in output
