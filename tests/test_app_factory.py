"""create_app reads ORGINVITES_* settings, refuses bad ones, and finds templates and static."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from webapp import create_app
from webapp.config import ConfigError


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """An environment with no ORGINVITES_* variables and an empty instance folder."""
    import os

    for name in list(os.environ):
        if name.startswith("ORGINVITES_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ORGINVITES_INSTANCE_PATH", str(tmp_path / "instance"))
    return monkeypatch


def test_production_app_refuses_to_start_without_a_secret_key(clean_env):
    """gunicorn's create_app() stops with a message naming ORGINVITES_SECRET_KEY."""
    with pytest.raises(ConfigError, match="ORGINVITES_SECRET_KEY"):
        create_app()


def test_settings_come_from_the_environment(clean_env, tmp_path):
    """Every contract name is read: database, key, base URL, SMTP, rate-limit storage."""
    clean_env.setenv("ORGINVITES_SECRET_KEY", "k" * 40)
    clean_env.setenv("ORGINVITES_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    clean_env.setenv("ORGINVITES_PUBLIC_BASE_URL", "https://invites.example.com")
    clean_env.setenv("ORGINVITES_MAIL_BACKEND", "smtp")
    clean_env.setenv("ORGINVITES_SMTP_PORT", "2525")
    clean_env.setenv("ORGINVITES_SMTP_SECURITY", "starttls")
    clean_env.setenv("ORGINVITES_RATELIMIT_STORAGE_URI", "redis://127.0.0.1:6379")
    app = create_app()
    assert app.config["SECRET_KEY"] == "k" * 40
    assert app.config["DATABASE_URL"].endswith("x.sqlite3")
    assert app.config["PUBLIC_BASE_URL"] == "https://invites.example.com"
    assert app.config["MAIL_BACKEND"] == "smtp"
    assert app.config["SMTP_PORT"] == 2525
    assert app.config["SMTP_SECURITY"] == "starttls"
    assert app.config["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:6379"


def test_mmap_and_cache_sizes_come_from_the_environment(clean_env, tmp_path):
    """ORGINVITES_SQLITE_MMAP_SIZE (bytes; 0, the default, is off) and
    ORGINVITES_SQLITE_CACHE_SIZE_KIB reach every connection."""
    clean_env.setenv("ORGINVITES_SECRET_KEY", "k" * 40)
    clean_env.setenv("ORGINVITES_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    clean_env.setenv("ORGINVITES_SQLITE_MMAP_SIZE", "268435456")
    clean_env.setenv("ORGINVITES_SQLITE_CACHE_SIZE_KIB", "4096")
    app = create_app()
    with app.app_context():
        from webapp.extensions import db

        assert db.session.execute(text("PRAGMA mmap_size")).scalar() == 268435456
        assert db.session.execute(text("PRAGMA cache_size")).scalar() == -4096


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ORGINVITES_SMTP_SECURITY", "ssl", "ORGINVITES_SMTP_SECURITY must be one of"),
        ("ORGINVITES_MAIL_BACKEND", "sendmail", "ORGINVITES_MAIL_BACKEND must be one of"),
        ("ORGINVITES_SMTP_PORT", "twenty-five", "ORGINVITES_SMTP_PORT must be a whole number"),
        ("ORGINVITES_SESSION_COOKIE_SECURE", "maybe", "must be true or false"),
        ("ORGINVITES_API_RATE_LIMIT_PER_KEY", "lots", "ORGINVITES_API_RATE_LIMIT_PER_KEY must be"),
    ],
)
def test_bad_setting_names_the_variable(clean_env, name, value, message):
    """A bad value stops start-up with a message naming the variable and the value."""
    clean_env.setenv("ORGINVITES_SECRET_KEY", "k" * 40)
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError, match=message) as info:
        create_app()
    assert value in str(info.value)


def test_default_database_is_sqlite_in_the_instance_folder(clean_env, tmp_path):
    """With no database URL the app uses a SQLite file in the instance folder."""
    clean_env.setenv("ORGINVITES_SECRET_KEY", "k" * 40)
    app = create_app()
    assert app.config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'instance' / 'orginvites.sqlite3'}"


def test_cli_app_builds_without_a_key_and_uses_the_instance_key(clean_env, tmp_path):
    """The CLI may start keyless (db upgrade); a key stored by demo/run is picked up."""
    from webapp.secrets_store import create_instance_secret

    assert create_app(require_secret_key=False).config["SECRET_KEY"] is None
    key = create_instance_secret(str(tmp_path / "instance"))
    assert (tmp_path / "instance" / "secret_key").stat().st_mode & 0o077 == 0
    assert create_app().config["SECRET_KEY"] == key


def test_start_page_and_stylesheet_are_served(app):
    """Templates and static files are found from the checkout (editable install)."""
    client = app.test_client()
    page = client.get("/", follow_redirects=True)
    assert page.status_code == 200
    assert b"Sign in" in page.data
    css = client.get("/static/css/app.css")
    assert css.status_code == 200
    assert b"focus-visible" in css.data
    css.close()


def test_request_bodies_over_one_mebibyte_are_refused(app):
    """The global MAX_CONTENT_LENGTH (1 MiB) applies to every form."""
    response = app.test_client().post("/login", data={"email": "a" * (1024 * 1024 + 10)})
    assert response.status_code == 413


def test_a_server_app_freezes_its_startup_objects_and_a_test_app_does_not(tmp_path):
    """gunicorn's create_app() (settings from the environment) moves the objects the
    process starts with out of the garbage collector's full collections; an app built
    from a test configuration leaves the collector alone. In a fresh interpreter each,
    so the count is the app's own."""
    import os
    import subprocess
    import sys

    script = (
        "import gc, sys\n"
        "from webapp import create_app\n"
        "create_app({'SECRET_KEY': 'k' * 40} if sys.argv[1] == 'test' else None)\n"
        "print(gc.get_freeze_count())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORGINVITES_")}
    env.update(
        ORGINVITES_SECRET_KEY="k" * 40,
        ORGINVITES_INSTANCE_PATH=str(tmp_path / "instance"),
        ORGINVITES_DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}",
    )

    def frozen(kind: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", script, kind], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return int(done.stdout.strip().splitlines()[-1])

    assert frozen("server") > 10_000
    assert frozen("test") == 0
