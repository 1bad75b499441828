"""``orginvites invitations import``: the dashboard's importer from the command line.

Run through ``app.test_cli_runner()`` with no app context held by the test (see
test_cli.py); the database is read back in a fresh app context.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import func
from sqlalchemy import select

from tests.test_cli import input_error
from tests.test_cli import invoke
from tests.test_cli import ok
from webapp.extensions import db
from webapp.models import AuditEvent
from webapp.models import Invitation
from webapp.models import OutboxMessage

FILE = (
    "email,role,public_metadata.team\n"
    "ann@example.com,admin,red\n"
    "not-an-address,member,blue\n"
    "cy@example.com,,=1+1\n"
    "ann@example.com,member,red\n"
    "dan@example.com,boss,\n"
)


@pytest.fixture
def acme(app):
    ok(app, "orgs", "create", "--name", "Acme")
    return "acme"


@pytest.fixture
def people(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(FILE)
    return path


def invitations(app) -> dict[str, tuple[str, dict]]:
    with app.app_context():
        rows = db.session.execute(
            select(Invitation.email_key, Invitation.role, Invitation.public_metadata)
        ).all()
    return {email: (role, metadata) for email, role, metadata in rows}


def test_dry_run_prints_the_preview_and_changes_nothing(app, acme, people):
    result = ok(app, "invitations", "import", "--org", acme, str(people), "--dry-run")
    assert result.stdout.splitlines()[:4] == [
        "Checked 5 rows of people.csv: 2 will invite, 1 invalid email, "
        "1 duplicate in this file, 1 unknown role.",
        "2 rows to fix:",
        "  row      3  not-an-address  invalid email: 'not-an-address' is not valid: "
        "An email address must have an @-sign.",
        "  row      6  dan@example.com  unknown role: 'boss' is not a role of Acme "
        "(roles: admin, member)",
    ]
    assert invitations(app) == {}


def test_import_creates_the_valid_rows_and_writes_the_report(app, acme, people, tmp_path):
    report = tmp_path / "fix-me.csv"
    result = invoke(
        app, "invitations", "import", "--org", acme, str(people), "--report", str(report)
    )
    assert result.exit_code == 1  # some rows failed; the rest are committed
    assert "Done: 2 invited, 1 invalid email, 1 duplicate in this file, 1 unknown role." in (
        result.stdout
    )
    assert f"Wrote them to {report} (fix and import it as it is)." in result.stdout
    assert "Importing 2 rows" in result.stderr  # the progress bar (on stderr)
    assert invitations(app) == {
        "ann@example.com": ("admin", {"team": "red"}),
        "cy@example.com": ("member", {"team": "=1+1"}),
    }
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 2
        sources = db.session.scalars(
            select(AuditEvent.data).where(AuditEvent.type == "invitation.created")
        ).all()
        assert [(d["source"], d["import_file"]) for d in sources] == [("import", "people.csv")] * 2
    rows = list(csv.reader(io.StringIO(report.read_text(encoding="utf-8-sig"))))
    assert [r[:3] for r in rows] == [
        ["email", "role", "public_metadata.team"],
        ["not-an-address", "member", "blue"],
        ["dan@example.com", "boss", ""],
    ]

    # Fixed in a spreadsheet and imported as it is: only the fixed row is new.
    report.write_text(report.read_text(encoding="utf-8-sig").replace(",boss,", ",admin,"))
    again = invoke(app, "invitations", "import", "--org", acme, str(report))
    assert again.exit_code == 1
    assert "Done: 1 invited, 1 invalid email." in again.stdout
    assert invitations(app)["dan@example.com"] == ("admin", {})


def test_importing_again_creates_nothing(app, acme, people):
    invoke(app, "invitations", "import", "--org", acme, str(people))
    result = invoke(app, "invitations", "import", "--org", acme, str(people), "--json")
    data = json.loads(result.stdout)
    assert data["counts"] == {
        "already_invited": 2,
        "invalid_email": 1,
        "duplicate": 1,
        "unknown_role": 1,
    }
    assert [f["row"] for f in data["failed"]] == [3, 6]
    assert len(invitations(app)) == 2


def test_defaults_for_rows_without_values(app, acme, tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("ann@example.com\ncy@example.com\n")
    ok(
        app,
        "invitations",
        "import",
        "--org",
        acme,
        str(path),
        "--role",
        "admin",
        "--expires-in-days",
        "3",
        "--no-notify",
    )
    assert {role for role, _ in invitations(app).values()} == {"admin"}
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_a_file_that_cannot_be_read_is_one_error_line(app, acme, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"email\nJos\xe9@example.com\n")
    result = invoke(app, "invitations", "import", "--org", acme, str(path))
    input_error(result, "latin1.csv: row 2, column A: the bytes 0xE9 are not UTF-8")
    assert invitations(app) == {}


def test_bad_options_and_missing_files_are_one_error_line(app, acme, people, tmp_path):
    result = invoke(app, "invitations", "import", "--org", acme, str(people), "--role", "boss")
    input_error(result, "'boss' is not a role of Acme")
    missing = invoke(app, "invitations", "import", "--org", acme, str(tmp_path / "nope.csv"))
    input_error(missing, "nope.csv", "No such file or directory")


def test_a_file_over_the_limit_is_refused_unread(app, acme, tmp_path):
    app.config["IMPORT_MAX_BYTES"] = 100
    path = tmp_path / "big.csv"
    path.write_text("email\n" + "a@example.com\n" * 20)
    result = invoke(app, "invitations", "import", "--org", acme, str(path))
    input_error(result, "big.csv: the file is 286 bytes; the limit is 100 bytes")


def test_an_import_over_the_quota_is_refused_with_the_numbers(app, acme, people):
    ok(app, "orgs", "update", acme, "--invite-quota", "1")
    result = invoke(app, "invitations", "import", "--org", acme, str(people))
    input_error(result, "This import would add 2 pending invitations", "at most 1 more")
    assert invitations(app) == {}


def test_the_import_refuses_to_act_through_a_remote_server(people):
    """The importer writes to the local database; with a server URL it says so."""
    from tests.test_cli_remote import bare

    result = bare(
        "--url",
        "http://127.0.0.1:9",
        "--api-key",
        "k",
        "invitations",
        "import",
        "--org",
        "acme",
        str(people),
    )
    assert result.exit_code == 2
    assert "`invitations import` works on the local database only" in result.stderr
