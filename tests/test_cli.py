"""The ``orginvites`` command line on SQLite and PostgreSQL: output, exit status, stored effect.

Commands run through ``app.test_cli_runner()`` with no app context held by the test,
so each command owns its context and session exactly as it does when run for real;
the database is then read back in a fresh app context.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import func
from sqlalchemy import select
from werkzeug.security import check_password_hash

from webapp.cli import cli as orginvites_cli
from webapp.extensions import db
from webapp.models import ApiKey
from webapp.models import Invitation
from webapp.models import Organization
from webapp.models import OrgRole
from webapp.models import OutboxMessage
from webapp.models import User
from webapp.services.tokens import hash_token

APP_ORIGIN = "https://app.example.com"
PUBLIC_BASE_URL = "https://invites.example.com"
TABLE_COLUMNS = ["ID", "Email", "Role", "Status", "Created At", "Expires At"]
STATUSES = {"pending", "accepted", "declined", "revoked", "expired"}
PASSWORD = "longenough-password"


# --- helpers ---------------------------------------------------------------------------


def check_no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )


def invoke(app: Flask, *args: str, input: str | None = None) -> Result:
    """Run ``app.cli`` (what ``test_cli_runner`` drives) and insist on no traceback."""
    result = app.test_cli_runner().invoke(args=list(args), input=input)
    check_no_traceback(result)
    return result


def ok(app: Flask, *args: str, input: str | None = None) -> Result:
    result = invoke(app, *args, input=input)
    assert result.exit_code == 0, result.output
    return result


def invoke_entry_point(app: Flask, monkeypatch, *args: str) -> Result:
    """Run the real ``orginvites`` FlaskGroup (the console script) against ``app``."""
    # FlaskGroup sets FLASK_RUN_FROM_CLI; let monkeypatch restore the environment after.
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "true")
    result = app.test_cli_runner().invoke(orginvites_cli, args=list(args))
    check_no_traceback(result)
    return result


def input_error(result: Result, *fragments: str) -> str:
    """Exit 2 with exactly one ``Error: …`` line on stderr that contains every fragment."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def query(app: Flask, statement) -> Any:
    with app.app_context():
        return db.session.scalar(statement)


def query_all(app: Flask, statement) -> list[Any]:
    with app.app_context():
        return list(db.session.execute(statement).all())


def invitation_count(app: Flask) -> int:
    return query(app, select(func.count()).select_from(Invitation))


def stored_invitation(app: Flask, invitation_id: str) -> dict[str, Any]:
    with app.app_context():
        inv = db.session.get(Invitation, invitation_id)
        assert inv is not None
        return {
            "status": inv.status,
            "token_hash": inv.token_hash,
            "send_count": inv.send_count,
            "delivery_status": inv.delivery_status,
            "email": inv.email,
        }


def invite(app: Flask, org: str, *emails: str, extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Create invitations that must all succeed; return ``{email: id}``."""
    result = ok(
        app, "invitations", "create", "--org", org, "--emails", ",".join(emails), "--json", *extra
    )
    data = json.loads(result.stdout)
    assert data["failed"] == []
    return {item["email"]: item["id"] for item in data["invited"]}


def list_json(app: Flask, org: str, *extra: str) -> dict[str, Any]:
    return json.loads(ok(app, "invitations", "list", "--org", org, "--json", *extra).stdout)


def table_lines(output: str) -> list[str]:
    """The table part of ``invitations list`` (up to the blank line before the footer)."""
    return output.split("\n\n")[0].splitlines()


@pytest.fixture
def globex(app: Flask) -> str:
    """An organization made through the CLI, with APP_ORIGIN allowed for redirects."""
    ok(app, "orgs", "create", "--name", "Globex Corp")
    ok(app, "orgs", "update", "globex-corp", "--allow-redirect-origin", APP_ORIGIN)
    return "globex-corp"


@pytest.fixture
def initech(app: Flask) -> str:
    ok(app, "orgs", "create", "--name", "Initech")
    return "initech"


@pytest.fixture
def clock(time_machine):
    """time-machine started at the real now (ticking), ready for ``shift``."""
    time_machine.move_to(datetime.now(UTC))
    return time_machine


# --- orgs ------------------------------------------------------------------------------


def test_orgs_create_derives_slug_from_name(app):
    """`orgs create --name "Globex Corp"` stores slug globex-corp with roles admin and member."""
    result = ok(app, "orgs", "create", "--name", "Globex Corp")
    assert "slug globex-corp" in result.stdout
    assert len(result.stdout.strip().splitlines()) == 1
    with app.app_context():
        org = db.session.scalar(select(Organization).where(Organization.slug == "globex-corp"))
        assert org is not None
        assert org.name == "Globex Corp"
        assert [r.key for r in org.roles] == ["admin", "member"]
        assert org.default_role == "member"
        assert org.id in result.stdout


def test_orgs_create_slugifies_accented_names(app):
    """A name with accents and punctuation becomes an ASCII, hyphenated slug."""
    result = ok(app, "orgs", "create", "--name", "Café Ünïon, Ltd.")
    assert "slug cafe-union-ltd" in result.stdout


def test_orgs_create_uses_given_slug(app):
    """`--slug` wins over the name (lower-cased)."""
    ok(app, "orgs", "create", "--name", "Globex Corp", "--slug", "Globex")
    slugs = [row[0] for row in query_all(app, select(Organization.slug))]
    assert slugs == ["globex"]


def test_orgs_create_duplicate_slug_is_a_one_line_error(app):
    """A taken slug exits 2 with one `Error:` line naming it; no second org is stored."""
    ok(app, "orgs", "create", "--name", "Globex Corp")
    result = invoke(app, "orgs", "create", "--name", "Other", "--slug", "globex-corp")
    input_error(result, "'globex-corp'", "already exists")
    assert result.stdout == ""
    assert query(app, select(func.count()).select_from(Organization)) == 1


def test_orgs_create_rejects_an_invalid_slug(app):
    """An invalid slug exits 2 naming it."""
    input_error(invoke(app, "orgs", "create", "--name", "X", "--slug", "no spaces"), "'no spaces'")


def test_orgs_list_prints_a_table_and_json(app, globex, initech):
    """`orgs list` prints an aligned table of every org; `--json` parses with roles."""
    result = ok(app, "orgs", "list")
    lines = result.stdout.strip().splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["ID", "Slug", "Name", "Default Role", "Roles"]
    assert len(lines) == 3
    slug_column = lines[0].index("Slug")
    assert sorted(line[slug_column:].split()[0] for line in lines[1:]) == [globex, initech]

    data = json.loads(ok(app, "orgs", "list", "--json").stdout)
    assert sorted(o["slug"] for o in data) == [globex, initech]
    by_slug = {o["slug"]: o for o in data}
    assert [r["key"] for r in by_slug[globex]["roles"]] == ["admin", "member"]
    assert by_slug[globex]["allowed_redirect_origins"] == [APP_ORIGIN]
    assert by_slug[initech]["allowed_redirect_origins"] == []


def test_orgs_update_changes_every_setting(app):
    """`orgs update` sets default role, expiry, redirect origin and default redirect URL."""
    ok(app, "orgs", "create", "--name", "Globex Corp")
    result = ok(
        app,
        "orgs",
        "update",
        "globex-corp",
        "--default-role",
        "admin",
        "--default-expiry-days",
        "5",
        "--allow-redirect-origin",
        APP_ORIGIN,
        "--default-redirect-url",
        f"{APP_ORIGIN}/welcome",
    )
    assert "Updated globex-corp" in result.stdout
    (org,) = json.loads(ok(app, "orgs", "list", "--json").stdout)
    assert org["default_role"] == "admin"
    assert org["default_expiry_days"] == 5
    assert org["allowed_redirect_origins"] == [APP_ORIGIN]
    assert org["default_redirect_url"] == f"{APP_ORIGIN}/welcome"
    # The new default expiry applies to new invitations.
    ids = invite(app, "globex-corp", "a@example.com")
    data = json.loads(
        ok(app, "invitations", "get", "--org", "globex-corp", ids["a@example.com"], "--json").stdout
    )
    created = datetime.fromisoformat(data["created_at"])
    expires = datetime.fromisoformat(data["expires_at"])
    assert expires - created == timedelta(days=5)
    assert data["role"] == "admin"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--default-role", "owner"], "'owner'"),
        (["--default-redirect-url", "https://elsewhere.example.com/welcome"], "elsewhere.example"),
        (["--allow-redirect-origin", "ftp://app.example.com"], "ftp://app.example.com"),
        (["--allow-redirect-origin", "http://app.example.com"], "http://app.example.com"),
        (["--allow-redirect-origin", "https://app.example.com/path"], "/path"),
        (["--allow-redirect-origin", "not a url"], "'not a url'"),
    ],
    ids=["unknown-role", "redirect-not-allowed", "ftp-origin", "http-origin", "path", "garbage"],
)
def test_orgs_update_errors_name_the_value_and_change_nothing(app, options, named):
    """A bad setting exits 2 naming the value, and the valid changes beside it are rolled back."""
    ok(app, "orgs", "create", "--name", "Globex Corp")
    result = invoke(app, "orgs", "update", "globex-corp", "--name", "Renamed", *options)
    input_error(result, named)
    (org,) = json.loads(ok(app, "orgs", "list", "--json").stdout)
    assert org["name"] == "Globex Corp"
    assert org["default_role"] == "member"
    assert org["allowed_redirect_origins"] == []
    assert org["default_redirect_url"] is None


def test_orgs_update_unknown_org(app):
    """Updating an org that does not exist exits 2 naming it."""
    input_error(invoke(app, "orgs", "update", "nope", "--name", "X"), "no organization 'nope'")


def test_orgs_update_expiry_out_of_range_is_a_usage_error(app, globex):
    """`--default-expiry-days 31` is refused by the option's range check (exit 2)."""
    result = invoke(app, "orgs", "update", globex, "--default-expiry-days", "31")
    assert result.exit_code == 2
    assert "31" in result.stderr


# --- roles -----------------------------------------------------------------------------


def test_roles_add_stores_an_admin_role(app, globex):
    """`roles add --admin` adds a role that administers the org."""
    result = ok(app, "roles", "add", "--org", globex, "billing", "--admin")
    assert "Added role billing to globex-corp" in result.stdout
    ok(app, "roles", "add", "--org", globex, "viewer")
    rows = query_all(app, select(OrgRole.key, OrgRole.is_admin).order_by(OrgRole.position))
    assert [tuple(r) for r in rows] == [
        ("admin", True),
        ("member", False),
        ("billing", True),
        ("viewer", False),
    ]


@pytest.mark.parametrize(
    ("key", "named"), [("member", "'member' already exists"), ("Bad Key", "'Bad Key'")]
)
def test_roles_add_refuses_duplicates_and_bad_keys(app, globex, key, named):
    """A duplicate or malformed role key exits 2 naming it."""
    input_error(invoke(app, "roles", "add", "--org", globex, key), named)


def test_roles_remove_deletes_an_unused_role(app, globex):
    """`roles remove` drops a role no one uses."""
    ok(app, "roles", "add", "--org", globex, "billing")
    result = ok(app, "roles", "remove", "--org", globex, "billing")
    assert "Removed role billing" in result.stdout
    keys = [r[0] for r in query_all(app, select(OrgRole.key))]
    assert sorted(keys) == ["admin", "member"]


def test_roles_remove_refuses_the_default_role(app, globex):
    """The default role cannot be removed (exit 2, role kept)."""
    input_error(invoke(app, "roles", "remove", "--org", globex, "member"), "default role")
    keys = [r[0] for r in query_all(app, select(OrgRole.key))]
    assert "member" in keys


def test_roles_remove_refuses_a_role_of_a_pending_invitation(app, globex):
    """A role held by a pending invitation stays until that invitation is revoked."""
    ok(app, "roles", "add", "--org", globex, "billing")
    ids = invite(app, globex, "a@example.com", extra=("--role", "billing"))
    input_error(invoke(app, "roles", "remove", "--org", globex, "billing"), "'billing'", "pending")
    ok(app, "invitations", "revoke", "--org", globex, "--id", ids["a@example.com"])
    ok(app, "roles", "remove", "--org", globex, "billing")


def test_roles_remove_unknown_role(app, globex):
    """Removing a role the org lacks exits 2 naming it."""
    input_error(invoke(app, "roles", "remove", "--org", globex, "ghost"), "'ghost'")


# --- users -----------------------------------------------------------------------------


def test_create_admin_reads_the_password_from_stdin_and_stores_a_hash(app):
    """`users create-admin` takes the password from stdin and keeps only a scrypt hash."""
    result = ok(app, "users", "create-admin", "--email", "Root@Example.com", input=PASSWORD + "\n")
    assert result.stdout.startswith("Created superuser Root@example.com")
    assert PASSWORD not in result.output
    with app.app_context():
        user = db.session.scalar(select(User))
        assert user.is_superuser
        assert user.email_key == "root@example.com"
        assert user.password_hash != PASSWORD
        assert PASSWORD not in user.password_hash
        assert user.password_hash.startswith("scrypt:")
        assert check_password_hash(user.password_hash, PASSWORD)


def test_create_admin_again_updates_the_password(app):
    """A second create-admin for the same address updates it instead of duplicating it."""
    ok(app, "users", "create-admin", "--email", "root@example.com", input=PASSWORD + "\n")
    result = ok(
        app, "users", "create-admin", "--email", "ROOT@example.com", input="another-password\n"
    )
    assert result.stdout.startswith("Updated superuser")
    with app.app_context():
        (user,) = db.session.scalars(select(User)).all()
        assert check_password_hash(user.password_hash, "another-password")


def test_create_admin_refuses_a_short_password(app):
    """A password under 10 characters exits 2 and creates no user."""
    result = invoke(app, "users", "create-admin", "--email", "root@example.com", input="short\n")
    input_error(result, "at least 10 characters")
    assert "short" not in result.output
    assert query(app, select(func.count()).select_from(User)) == 0


def test_create_admin_refuses_an_invalid_email(app):
    """An invalid address exits 2 naming it."""
    result = invoke(app, "users", "create-admin", "--email", "not-an-email", input=PASSWORD + "\n")
    input_error(result, "'not-an-email'")
    assert query(app, select(func.count()).select_from(User)) == 0


def test_create_admin_without_stdin_is_an_error(app):
    """Empty standard input exits 2 saying no password was given."""
    input_error(invoke(app, "users", "create-admin", "--email", "root@example.com"), "no password")


# --- api-keys --------------------------------------------------------------------------


def test_api_key_for_an_org_is_shown_once_and_stored_as_sha256(app, globex):
    """The raw `oik_` key is printed once; the database holds only its SHA-256."""
    result = ok(app, "api-keys", "create", "--org", globex, "--name", "CI")
    raw = result.stdout.strip().splitlines()[-1]
    assert raw.startswith("oik_")
    assert len(raw) > 30
    assert result.output.count(raw) == 1
    assert "organization globex-corp" in result.stdout
    with app.app_context():
        key = db.session.scalar(select(ApiKey))
        org = db.session.scalar(select(Organization))
        assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
        assert key.org_id == org.id
        assert key.name == "CI"
        stored = [getattr(key, c.key) for c in ApiKey.__table__.columns]
        assert raw not in [v for v in stored if isinstance(v, str)]


def test_instance_api_key_has_no_org(app):
    """`--instance` creates a key bound to no organization."""
    result = ok(app, "api-keys", "create", "--instance", "--name", "ops")
    raw = result.stdout.strip().splitlines()[-1]
    assert raw.startswith("oik_")
    assert "the whole instance" in result.stdout
    with app.app_context():
        key = db.session.scalar(select(ApiKey))
        assert key.org_id is None
        assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()


@pytest.mark.parametrize(
    "scope", [[], ["--org", "globex-corp", "--instance"]], ids=["neither", "both"]
)
def test_api_key_needs_exactly_one_scope(app, globex, scope):
    """Neither or both of --org/--instance exits 2 and creates nothing."""
    input_error(invoke(app, "api-keys", "create", *scope, "--name", "x"), "exactly one")
    assert query(app, select(func.count()).select_from(ApiKey)) == 0


def test_api_key_for_an_unknown_org(app):
    """An unknown org exits 2 naming it."""
    result = invoke(app, "api-keys", "create", "--org", "nope", "--name", "x")
    input_error(result, "'nope'")


# --- invitations create ----------------------------------------------------------------


def test_create_invites_every_address_and_exits_0(app, globex):
    """All-valid addresses: exit 0, one `invited` line per address with its stored id."""
    result = ok(
        app, "invitations", "create", "--org", globex, "--emails", "a@example.com, b@example.org"
    )
    assert result.stdout.startswith("Invited 2 of 2 to Globex Corp.")
    assert "failed" not in result.stdout.lower()
    with app.app_context():
        stored = {i.email: i for i in db.session.scalars(select(Invitation))}
        assert set(stored) == {"a@example.com", "b@example.org"}
        for email, inv in stored.items():
            assert re.search(rf"invited\s+{re.escape(email)}\s+{inv.id}\s+member", result.stdout)
            assert inv.status == "pending"
            assert inv.source == "cli"
            assert inv.delivery_status == "queued"
        outbox = db.session.scalar(select(func.count()).select_from(OutboxMessage))
        assert outbox == 2


def test_create_reports_invited_and_failed_addresses(app, globex, monkeypatch):
    """Mixed batch: exit 1, invited listed with ids, failure names 'bad', invited ones kept."""
    result = invoke_entry_point(
        app,
        monkeypatch,
        "invitations",
        "create",
        "--org",
        globex,
        "--emails",
        "a@example.com,bad,b@example.org",
    )
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert out.startswith("Invited 2 of 3 to Globex Corp.")
    assert "Failed 1:" in out
    failed = [line for line in out.splitlines() if line.strip().startswith("failed")]
    assert len(failed) == 1
    assert re.match(r"\s+failed\s+bad\s+.*'bad'", failed[0])
    with app.app_context():
        stored = {i.email: i.id for i in db.session.scalars(select(Invitation))}
    assert set(stored) == {"a@example.com", "b@example.org"}
    for email, invitation_id in stored.items():
        assert re.search(rf"invited\s+{re.escape(email)}\s+{invitation_id}", out)


def test_create_partial_failure_keeps_the_invited_through_app_cli(app, globex):
    """Through `app.cli` a mixed batch exits 1 cleanly and keeps the invitations it printed."""
    result = app.test_cli_runner().invoke(
        args=["invitations", "create", "--org", globex, "--emails", "a@example.com,bad"]
    )
    assert result.exit_code == 1
    check_no_traceback(result)
    assert invitation_count(app) == 1


def test_create_duplicate_address_fails_with_a_reason(app, globex, monkeypatch):
    """An address with a pending invitation fails with 'already has a pending invitation'."""
    first = invite(app, globex, "a@example.com")["a@example.com"]
    result = invoke_entry_point(
        app,
        monkeypatch,
        "invitations",
        "create",
        "--org",
        globex,
        "--emails",
        "A@example.com,c@example.com",
    )
    assert result.exit_code == 1, result.output
    failed = [line for line in result.stdout.splitlines() if line.strip().startswith("failed")]
    assert len(failed) == 1
    assert "already has a pending invitation" in failed[0]
    assert first in failed[0]
    assert invitation_count(app) == 2


def test_create_the_same_address_twice_in_one_batch(app, globex, monkeypatch):
    """The second copy of an address in one batch fails; the first is invited."""
    result = invoke_entry_point(
        app,
        monkeypatch,
        "invitations",
        "create",
        "--org",
        globex,
        "--emails",
        "a@example.com,a@example.com",
    )
    assert result.exit_code == 1, result.output
    assert "Invited 1 of 2" in result.stdout
    assert "already has a pending invitation" in result.stdout
    assert invitation_count(app) == 1


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--role", "owner"], "'owner'"),
        (["--redirect-url", "https://evil.example.net/welcome"], "evil.example.net"),
        (["--redirect-url", "javascript:alert(1)"], "javascript:alert(1)"),
        (["--expires-in-days", "3", "--expires-in-hours", "5"], "not both"),
    ],
    ids=["unknown-role", "redirect-not-allowed", "bad-redirect", "two-expiries"],
)
def test_create_shared_option_errors_stop_the_whole_batch(app, globex, options, named):
    """A wrong option shared by every address exits 2 with one line; nothing is created."""
    result = invoke(
        app,
        "invitations",
        "create",
        "--org",
        globex,
        "--emails",
        "a@example.com,b@example.org",
        *options,
    )
    input_error(result, named)
    assert result.stdout == ""
    assert invitation_count(app) == 0


def test_create_with_an_allowed_redirect_url(app, globex):
    """A redirect URL on an allowed origin is stored on the invitation."""
    ids = invite(app, globex, "a@example.com", extra=("--redirect-url", f"{APP_ORIGIN}/welcome"))
    with app.app_context():
        inv = db.session.get(Invitation, ids["a@example.com"])
        assert inv.redirect_url == f"{APP_ORIGIN}/welcome"


def test_create_for_an_unknown_org(app):
    """An unknown org exits 2 naming it."""
    result = invoke(app, "invitations", "create", "--org", "nope", "--emails", "a@example.com")
    input_error(result, "no organization 'nope'")


def test_create_with_no_addresses(app, globex):
    """`--emails ,` exits 2 asking for an address."""
    input_error(
        invoke(app, "invitations", "create", "--org", globex, "--emails", " , "), "--emails"
    )


def test_create_no_notify_prints_the_accept_link_and_queues_no_email(app, globex):
    """`--no-notify` prints a working accept link once and sends no email."""
    result = ok(
        app, "invitations", "create", "--org", globex, "--emails", "a@example.com", "--no-notify"
    )
    links = re.findall(rf"{re.escape(PUBLIC_BASE_URL)}/invitations/accept/(\S+)", result.stdout)
    assert len(links) == 1
    with app.app_context():
        inv = db.session.scalar(select(Invitation))
        assert inv.token_hash == hash_token(links[0])
        assert inv.delivery_status == "not_sent"
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_create_json_has_invited_and_failed_lists(app, globex, monkeypatch):
    """`--json` prints parseable JSON with `invited` (full records) and `failed` (reasons)."""
    good = ok(app, "invitations", "create", "--org", globex, "--emails", "a@example.com", "--json")
    data = json.loads(good.stdout)
    assert data["failed"] == []
    (item,) = data["invited"]
    assert item["email"] == "a@example.com"
    assert item["status"] == "pending"
    assert item["id"].startswith("inv_")
    assert "accept_url" not in item

    mixed = invoke_entry_point(
        app,
        monkeypatch,
        "invitations",
        "create",
        "--org",
        globex,
        "--emails",
        "b@example.org,bad",
        "--json",
        "--no-notify",
    )
    assert mixed.exit_code == 1
    data = json.loads(mixed.stdout)
    assert [i["email"] for i in data["invited"]] == ["b@example.org"]
    assert data["invited"][0]["accept_url"].startswith(f"{PUBLIC_BASE_URL}/invitations/accept/")
    (failure,) = data["failed"]
    assert failure["email"] == "bad"
    assert "'bad'" in failure["message"]
    assert failure["code"]


# --- invitations list ------------------------------------------------------------------


def test_list_prints_an_aligned_table(app, globex):
    """The header is exactly the six columns and each column starts at one offset in all lines."""
    ok(app, "roles", "add", "--org", globex, "billing")
    invite(app, globex, "a@example.com")
    invite(app, globex, "someone.with.a.long.name@example.org", extra=("--role", "billing"))
    revoked = invite(app, globex, "bo@example.net")["bo@example.net"]
    ok(app, "invitations", "revoke", "--org", globex, "--id", revoked)

    result = ok(app, "invitations", "list", "--org", globex)
    lines = table_lines(result.stdout)
    header, rows = lines[0], lines[1:]
    assert re.split(r"\s{2,}", header) == TABLE_COLUMNS
    starts = [header.index(column) for column in TABLE_COLUMNS]

    expected = list_json(app, globex)["data"]
    assert len(rows) == len(expected) == 3
    for row, item in zip(rows, expected, strict=True):
        values = [item["id"], item["email"], item["role"], item["status"]]
        for start, value in zip(starts, values, strict=False):
            assert row[start:].startswith(value + " "), (row, value)
            assert start == 0 or row[start - 2 : start] == "  "
        # The timestamps sit under their headers too.
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", row[starts[4] :])
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", row[starts[5] :])
    assert result.stdout.rstrip().endswith("1-3 of 3")


def test_list_of_an_empty_org_prints_the_header(app, globex):
    """An org with no invitations prints the header and `0-0 of 0`."""
    result = ok(app, "invitations", "list", "--org", globex)
    assert re.split(r"\s{2,}", table_lines(result.stdout)[0]) == TABLE_COLUMNS
    assert result.stdout.rstrip().endswith("0-0 of 0")


@pytest.fixture
def mixed_statuses(app, globex) -> dict[str, str]:
    """Three pending and one revoked invitation in globex: ``{email: id}``."""
    ids = invite(app, globex, "ann@example.com", "bob@example.com", "cid@example.org", "dee@x.org")
    ok(app, "invitations", "revoke", "--org", globex, "--id", ids["bob@example.com"])
    return ids


@pytest.mark.parametrize(
    "status_options",
    [["--status", "pending,revoked"], ["--status", "pending", "--status", "revoked"]],
    ids=["comma", "repeated"],
)
def test_list_filters_by_several_statuses(app, globex, mixed_statuses, status_options):
    """`--status a,b` and `--status a --status b` both list the union of the statuses."""
    data = list_json(app, globex, *status_options)
    assert {i["email"] for i in data["data"]} == set(mixed_statuses)
    assert data["total"] == 4
    text = ok(app, "invitations", "list", "--org", globex, *status_options).stdout
    assert len(table_lines(text)) == 5


def test_list_filters_by_one_status(app, globex, mixed_statuses):
    """`--status revoked` lists only the revoked invitation."""
    data = list_json(app, globex, "--status", "revoked")
    assert [i["email"] for i in data["data"]] == ["bob@example.com"]
    assert data["total"] == 1
    assert {i["status"] for i in list_json(app, globex, "--status", "pending")["data"]} == {
        "pending"
    }


def test_list_query_matches_part_of_the_address(app, globex, mixed_statuses):
    """`--query` matches a case-insensitive part of the email address."""
    data = list_json(app, globex, "--query", "EXAMPLE.ORG")
    assert [i["email"] for i in data["data"]] == ["cid@example.org"]
    assert data["total"] == 1
    text = ok(app, "invitations", "list", "--org", globex, "--query", "an").stdout
    assert "ann@example.com" in text
    assert "bob@example.com" not in text
    # LIKE wildcards are matched literally.
    assert list_json(app, globex, "--query", "%")["data"] == []


def test_list_json_parses_with_totals(app, globex, mixed_statuses):
    """`--json` has data, total, has_more and totals for every status."""
    data = list_json(app, globex)
    assert data["total"] == 4
    assert data["has_more"] is False
    assert set(data["totals_by_status"]) == STATUSES
    assert data["totals_by_status"]["pending"] == 3
    assert data["totals_by_status"]["revoked"] == 1
    assert {i["id"] for i in data["data"]} == set(mixed_statuses.values())
    limited = list_json(app, globex, "--limit", "2")
    assert len(limited["data"]) == 2
    assert limited["has_more"] is True


def test_list_unknown_status_names_it(app, globex):
    """`--status bogus` exits 2 naming 'bogus'."""
    result = invoke(app, "invitations", "list", "--org", globex, "--status", "pending,bogus")
    input_error(result, "'bogus'")


def test_list_only_shows_the_orgs_own_invitations(app, globex, initech):
    """Another org's invitations never appear in a list."""
    invite(app, globex, "a@example.com")
    invite(app, initech, "b@example.com")
    assert [i["email"] for i in list_json(app, initech)["data"]] == ["b@example.com"]


# --- invitations get -------------------------------------------------------------------


def test_get_shows_one_invitation_as_text_and_json(app, globex):
    """`get` prints key/value lines; `--json` parses to the same invitation."""
    invitation_id = invite(app, globex, "a@example.com")["a@example.com"]
    text = ok(app, "invitations", "get", "--org", globex, invitation_id).stdout
    assert re.search(rf"^Id\s+{invitation_id}$", text, re.M)
    assert re.search(r"^Email\s+a@example.com$", text, re.M)
    assert re.search(r"^Status\s+pending$", text, re.M)
    data = json.loads(
        ok(app, "invitations", "get", "--org", globex, invitation_id, "--json").stdout
    )
    assert data["id"] == invitation_id
    assert data["email"] == "a@example.com"
    assert data["status"] == "pending"
    assert data["role"] == "member"


def test_get_another_orgs_invitation_is_not_found(app, globex, initech):
    """An id from another org exits 2 'no invitation' (nothing leaks across orgs)."""
    other = invite(app, initech, "b@example.com")["b@example.com"]
    result = invoke(app, "invitations", "get", "--org", globex, other, "--json")
    input_error(result, "no invitation", other)
    assert result.stdout == ""


# --- invitations revoke / delete -------------------------------------------------------


def test_revoke_by_id(app, globex):
    """`revoke --id` marks the invitation revoked."""
    invitation_id = invite(app, globex, "a@example.com")["a@example.com"]
    result = ok(app, "invitations", "revoke", "--org", globex, "--id", invitation_id)
    assert result.stdout.strip() == f"Revoked {invitation_id} (a@example.com)."
    assert stored_invitation(app, invitation_id)["status"] == "revoked"


def test_revoke_by_email(app, globex):
    """`revoke --email` revokes that address's pending invitation (case-insensitive)."""
    invitation_id = invite(app, globex, "a@example.com")["a@example.com"]
    ok(app, "invitations", "revoke", "--org", globex, "--email", "A@Example.com")
    assert stored_invitation(app, invitation_id)["status"] == "revoked"


@pytest.mark.parametrize(
    "selector", [[], ["--id", "inv_x", "--email", "a@example.com"]], ids=["neither", "both"]
)
def test_revoke_needs_exactly_one_of_id_or_email(app, globex, selector):
    """Neither or both of --id/--email exits 2."""
    input_error(invoke(app, "invitations", "revoke", "--org", globex, *selector), "exactly one")


def test_revoke_twice_says_it_is_revoked(app, globex):
    """A second revoke exits 2 saying the invitation is revoked."""
    invitation_id = invite(app, globex, "a@example.com")["a@example.com"]
    ok(app, "invitations", "revoke", "--org", globex, "--id", invitation_id)
    result = invoke(app, "invitations", "revoke", "--org", globex, "--id", invitation_id)
    input_error(result, invitation_id, "is revoked")
    by_email = invoke(app, "invitations", "revoke", "--org", globex, "--email", "a@example.com")
    input_error(by_email, "no pending invitation")


def test_revoke_another_orgs_invitation_is_not_found(app, globex, initech):
    """Revoking another org's id exits 2 and leaves it pending."""
    other = invite(app, initech, "b@example.com")["b@example.com"]
    input_error(
        invoke(app, "invitations", "revoke", "--org", globex, "--id", other), "no invitation"
    )
    assert stored_invitation(app, other)["status"] == "pending"


def test_delete_by_email_with_org(app, globex, initech):
    """`delete --email --org` revokes the pending invitation of that address in that org."""
    ids = invite(app, globex, "a@example.com")
    other = invite(app, initech, "a@example.com")
    result = ok(app, "invitations", "delete", "--email", "a@example.com", "--org", globex)
    assert "Revoked" in result.stdout
    assert stored_invitation(app, ids["a@example.com"])["status"] == "revoked"
    assert stored_invitation(app, other["a@example.com"])["status"] == "pending"


def test_delete_without_org_when_there_is_one_org(app, globex):
    """With a single org, `delete --email` needs no --org."""
    ids = invite(app, globex, "a@example.com")
    ok(app, "invitations", "delete", "--email", "a@example.com")
    assert stored_invitation(app, ids["a@example.com"])["status"] == "revoked"


def test_delete_without_org_when_there_are_two_orgs(app, globex, initech):
    """With two orgs, `delete --email` without --org exits 2 listing the slugs."""
    ids = invite(app, globex, "a@example.com")
    result = invoke(app, "invitations", "delete", "--email", "a@example.com")
    input_error(result, "--org", globex, initech)
    assert stored_invitation(app, ids["a@example.com"])["status"] == "pending"


def test_delete_without_a_pending_invitation(app, globex):
    """`delete --email` for an address with nothing pending exits 2 naming it."""
    result = invoke(app, "invitations", "delete", "--email", "z@example.com", "--org", globex)
    input_error(result, "z@example.com", "no pending invitation")


# --- invitations resend ----------------------------------------------------------------


def test_resend_right_after_creation_is_throttled(app, globex, clock):
    """A resend within RESEND_MIN_INTERVAL_SECONDS (60) exits 2 and keeps the old link."""
    invitation_id = invite(app, globex, "a@example.com")["a@example.com"]
    before = stored_invitation(app, invitation_id)
    result = invoke(app, "invitations", "resend", "--org", globex, invitation_id)
    input_error(result, invitation_id, "60 seconds", "try again")
    assert stored_invitation(app, invitation_id) == before


def test_resend_after_two_minutes_issues_a_new_link(app, globex, clock):
    """Two minutes later a resend exits 0, changes the token and queues a second email."""
    invitation_id = invite(app, globex, "a@example.com")["a@example.com"]
    before = stored_invitation(app, invitation_id)
    clock.shift(timedelta(minutes=2))
    result = ok(app, "invitations", "resend", "--org", globex, invitation_id)
    assert result.stdout.startswith(f"Resent {invitation_id} to a@example.com")
    assert "Link" not in result.stdout
    after = stored_invitation(app, invitation_id)
    assert after["token_hash"] != before["token_hash"]
    assert after["send_count"] == 2
    assert after["status"] == "pending"


def test_resend_no_notify_prints_the_new_link(app, globex, clock):
    """`resend --no-notify` prints a link whose token is the newly stored one."""
    invitation_id = invite(app, globex, "a@example.com")["a@example.com"]
    clock.shift(timedelta(minutes=2))
    result = ok(app, "invitations", "resend", "--org", globex, invitation_id, "--no-notify")
    (token,) = re.findall(rf"{re.escape(PUBLIC_BASE_URL)}/invitations/accept/(\S+)", result.stdout)
    after = stored_invitation(app, invitation_id)
    assert after["token_hash"] == hash_token(token)
    assert after["delivery_status"] == "not_sent"


def test_resend_a_revoked_invitation_is_refused(app, globex, clock):
    """A revoked invitation cannot be resent (exit 2 naming its status)."""
    invitation_id = invite(app, globex, "a@example.com")["a@example.com"]
    ok(app, "invitations", "revoke", "--org", globex, "--id", invitation_id)
    clock.shift(timedelta(minutes=2))
    input_error(invoke(app, "invitations", "resend", "--org", globex, invitation_id), "revoked")


# --- invitations expire ----------------------------------------------------------------


def test_expire_writes_expired_statuses(app, globex, clock):
    """Eight days on, `expire` marks the 7-day invitations expired and reports how many."""
    ids = invite(app, globex, "a@example.com", "b@example.com")
    lasting = invite(app, globex, "c@example.com", extra=("--expires-in-days", "30"))
    assert ok(app, "invitations", "expire").stdout.strip() == "Expired 0 invitations."
    clock.shift(timedelta(days=8))
    result = ok(app, "invitations", "expire")
    assert result.stdout.strip() == "Expired 2 invitations."
    for invitation_id in ids.values():
        assert stored_invitation(app, invitation_id)["status"] == "expired"
    assert stored_invitation(app, lasting["c@example.com"])["status"] == "pending"
    totals = list_json(app, globex)["totals_by_status"]
    assert totals["expired"] == 2
    assert totals["pending"] == 1
    assert ok(app, "invitations", "expire").stdout.strip() == "Expired 0 invitations."


def test_expire_in_small_batches(app, globex, clock):
    """`--batch-size 1` still expires every due invitation."""
    invite(app, globex, "a@example.com", "b@example.com", "c@example.com")
    clock.shift(timedelta(days=8))
    result = ok(app, "invitations", "expire", "--batch-size", "1")
    assert result.stdout.strip() == "Expired 3 invitations."


# --- demo ------------------------------------------------------------------------------


def test_demo_no_serve_seeds_every_status_once(make_app, monkeypatch):
    """`demo --no-serve` prints URL and login, seeds every status in acme; a rerun adds nothing."""
    app = make_app("sqlite")
    result = ok(app, "demo", "--no-serve")
    assert f"Open:          {PUBLIC_BASE_URL}/" in result.stdout
    assert re.search(r"Sign in:\s+admin@example.com / \S+", result.stdout)
    assert "acme" in result.stdout
    assert "Ctrl+C" not in result.stdout

    data = list_json(app, "acme", "--limit", "1")
    totals = data["totals_by_status"]
    assert set(totals) == STATUSES
    assert all(count > 0 for count in totals.values()), totals
    assert data["total"] >= 200

    # The second run goes through the console script's group (database already migrated).
    again = invoke_entry_point(app, monkeypatch, "demo", "--no-serve")
    assert again.exit_code == 0, again.output
    assert "Sign in:" in again.stdout
    assert list_json(app, "acme", "--limit", "1")["totals_by_status"] == totals
    assert query(app, select(func.count()).select_from(Organization)) == 1
    assert invitation_count(app) == data["total"]


# --- no tracebacks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["invitations", "list", "--org", "nope"],
        ["invitations", "list", "--org", "globex-corp", "--limit", "0"],
        ["invitations", "list", "--org", "globex-corp", "--order-by", "nope"],
        ["invitations", "list", "--org", "globex-corp", "--query", "x" * 300],
        ["invitations", "get", "--org", "globex-corp", "inv_nope"],
        ["invitations", "create", "--org", "globex-corp"],
        [
            "invitations",
            "create",
            "--org",
            "globex-corp",
            "--emails",
            "a@example.com",
            "--expires-in-days",
            "0",
        ],
        [
            "invitations",
            "create",
            "--org",
            "globex-corp",
            "--emails",
            "a@example.com",
            "--message",
            "x" * 1001,
        ],
        ["invitations", "revoke", "--org", "globex-corp", "--email", "not-an-email"],
        ["invitations", "resend", "--org", "globex-corp", "inv_nope"],
        ["invitations", "expire", "--batch-size", "0"],
        ["orgs", "create", "--name", "   "],
        ["orgs", "create", "--name", "x" * 201],
        ["orgs", "update", "globex-corp", "--invite-quota", "-1"],
        ["roles", "add", "--org", "nope", "billing"],
        ["projects", "create", "--org", "globex-corp", "--name", " "],
        ["api-keys", "create", "--org", "globex-corp", "--name", " "],
        ["users", "create-admin"],
        ["demo", "--port", "0"],
    ],
    ids=lambda args: "-".join(a for a in args[:2]) + f"-{len(args)}",
)
def test_bad_input_never_prints_a_traceback(app, globex, args):
    """Bad input exits 2 with a message and never a Python traceback."""
    result = invoke(app, *args)
    assert result.exit_code == 2, result.output
    assert "Error" in result.stderr
    assert invitation_count(app) == 0
