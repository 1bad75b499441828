"""``orginvites --url … --api-key … invitations …``: the CLI through the SDK against a
live server, on SQLite and PostgreSQL, printing what local mode prints for the same data.

Remote runs invoke the real ``orginvites`` group with a plain ``CliRunner`` whose app
factory fails the test if called: remote mode must need no local app, database or
secret key. Local runs invoke the same group bound to the served app.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from click.testing import Result

from tests.live import free_port
from tests.sdk_world import OWNER_EMAIL
from tests.sdk_world import LiveApi
from tests.sdk_world import RecordingTransport
from tests.sdk_world import live_api
from webapp.cli import cli as orginvites_cli
from webapp.cli.invitation_backends import CreateOptions
from webapp.cli.invitation_backends import RemoteInvitations
from webapp.cli.invitations import show_created
from webapp.sdk import Client


@pytest.fixture
def live(make_app, backend) -> Iterator[LiveApi]:
    with live_api(make_app, backend, RESEND_MIN_INTERVAL_SECONDS=0) as world:
        yield world


@pytest.fixture(autouse=True)
def cli_environment(monkeypatch):
    """No remote settings from the outside; and any attempt to build the local app from
    the environment fails the test."""
    # FlaskGroup sets FLASK_RUN_FROM_CLI; let monkeypatch restore the environment after.
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "true")
    for name in ("ORGINVITES_URL", "ORGINVITES_API_KEY"):
        monkeypatch.delenv(name, raising=False)

    def refuse():
        raise AssertionError("remote mode loaded the local app")

    monkeypatch.setattr(orginvites_cli, "create_app", refuse)


def no_traceback(result: Result) -> Result:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result


def remote(live: LiveApi, *args: str, key: str = "org") -> Result:
    options = ["--url", live.url, "--api-key", live.key(key)]
    return no_traceback(CliRunner().invoke(orginvites_cli, [*options, *args]))


def bare(*args: str, env: dict[str, str] | None = None) -> Result:
    """The CLI as a shell runs it, with no app bound (only the environment)."""
    return no_traceback(CliRunner().invoke(orginvites_cli, list(args), env=env))


def local(live: LiveApi, *args: str) -> Result:
    return no_traceback(live.app.test_cli_runner().invoke(orginvites_cli, list(args)))


def same(live: LiveApi, *args: str) -> Result:
    """Run in both modes; insist on the same exit status, stdout and stderr."""
    here, there = local(live, *args), remote(live, *args)
    assert there.exit_code == here.exit_code, (here.output, there.output)
    assert there.stdout == here.stdout
    assert there.stderr == here.stderr
    return there


def normalized(text: str) -> str:
    """Ids, times and links differ between two runs that create; the rest may not."""
    text = re.sub(r"inv_[0-9a-z]+", "inv_…", text)
    text = re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?Z| UTC)", "<time>", text)
    return re.sub(r"https?://[^\s\"]+/invitations/accept/[\w-]+", "<link>", text)


def seed(live: LiveApi, count: int = 12, revoke: int = 3) -> list[str]:
    with live.client() as client:
        created, errors = client.organization_invitations.create_many(
            "acme", emails=[f"r{n:03d}@example.com" for n in range(count)]
        )
        assert errors == []
        ids = [s.invitation.id for s in created]
        for invitation_id in ids[:revoke]:
            client.organization_invitations.revoke("acme", invitation_id)
    return ids


# --- same output as local mode ---------------------------------------------------------


def test_list_and_get_print_the_same_as_local_mode(live):
    ids = seed(live)
    table = same(live, "invitations", "list", "--org", "acme")
    assert table.stdout.splitlines()[0].split() == [
        "ID", "Email", "Role", "Status", "Created", "At", "Expires", "At",
    ]  # fmt: skip
    assert table.stdout.rstrip().endswith("1-12 of 12")
    listed = json.loads(same(live, "invitations", "list", "--org", "acme", "--json").stdout)
    assert listed["total"] == 12
    assert listed["totals_by_status"]["revoked"] == 3
    for extra in (
        ("--status", "revoked"),
        ("--status", "pending,revoked", "--order-by", "email", "--limit", "4", "--offset", "2"),
        ("--status", "pending", "--status", "expired", "--json"),
        ("--query", "r00", "--order-by", "-email"),
        ("--order-by", "created_at", "--limit", "5", "--json"),
    ):
        same(live, "invitations", "list", "--org", "acme", *extra)
    same(live, "invitations", "list", "--org", live.org_id, "--limit", "3")
    shown = same(live, "invitations", "get", "--org", "acme", ids[0])
    assert f"Id               {ids[0]}" in shown.stdout
    assert "Status           revoked" in shown.stdout
    document = json.loads(
        same(live, "invitations", "get", "--org", "acme", ids[5], "--json").stdout
    )
    assert document["id"] == ids[5] and document["status"] == "pending"


def test_create_prints_the_same_as_local_mode(live):
    with live.client() as client:
        pending = client.organization_invitations.create("acme", email="dup@example.com")
    args = (
        "invitations",
        "create",
        "--org",
        "acme",
        "--emails",
        f"n1@example.com, not-an-address, dup@example.com, {OWNER_EMAIL}, n2@example.com",
        "--role",
        "admin",
        "--expires-in-hours",
        "5",
    )
    there = remote(live, *args)
    assert there.exit_code == 1  # some failed; the others were invited
    lines = there.stdout.splitlines()
    assert lines[0] == "Invited 2 of 5 to Acme."
    assert (
        lines[1].startswith("  invited  n1@example.com  inv_") and "  admin  expires " in lines[1]
    )
    assert lines[3] == "Failed 3:"
    assert lines[4].startswith("  failed   not-an-address  email: 'not-an-address' is not valid")
    assert lines[5] == (
        f"  failed   dup@example.com  dup@example.com already has a pending invitation "
        f"({pending.id})"
    )
    assert lines[6] == f"  failed   {OWNER_EMAIL}  {OWNER_EMAIL} is already a member of Acme"

    with live.client() as client:
        for email in ("n1@example.com", "n2@example.com"):
            client.organization_invitations.delete("acme", email=email)
    here = local(live, *args)
    assert here.exit_code == 1
    assert normalized(there.stdout) == normalized(here.stdout)


def test_create_json_and_links_match_local_mode(live):
    args = ("invitations", "create", "--org", "acme", "--emails", "j@example.com,bad@")
    there = remote(live, *args, "--no-notify", "--json")
    with live.client() as client:
        client.organization_invitations.delete("acme", email="j@example.com")
    here = local(live, *args, "--no-notify", "--json")
    assert (there.exit_code, here.exit_code) == (1, 1)
    remote_doc, local_doc = json.loads(there.stdout), json.loads(here.stdout)
    assert remote_doc["failed"] == local_doc["failed"]
    assert remote_doc["failed"][0]["code"] == "validation_failed"
    (made_remotely,) = remote_doc["invited"]
    (made_locally,) = local_doc["invited"]
    # Where an invitation came from is part of its data: the API, or the local CLI.
    assert (made_remotely.pop("source"), made_locally.pop("source")) == ("api", "cli")
    assert made_remotely["accept_url"].startswith(live.url + "/invitations/accept/")
    assert made_remotely.keys() == made_locally.keys()
    assert normalized(json.dumps(made_remotely)) == normalized(json.dumps(made_locally))

    text = remote(
        live, "invitations", "create", "--org", "acme", "--emails", "t@x.io", "--no-notify"
    )
    assert text.exit_code == 0
    assert text.stdout.splitlines()[2].startswith(
        f"           link (shown once): {live.url}/invitations/accept/"
    )


def test_a_request_failing_midway_reports_the_rest_as_failed(live, capsys):
    """Over 1,000 addresses go as several requests; when a later one fails, what the
    earlier ones did is still reported (the backend, driven as the command drives it)."""
    addresses = [f"m{n:04d}@example.com" for n in range(1003)]
    transport = RecordingTransport(gateway_passes=2, gateway_failures=1)  # GET org, 1st POST
    with Client(live.url, live.org_key, transport=transport, max_retries=0) as client:
        created = RemoteInvitations(client).create("acme", addresses, CreateOptions())
    assert created.org_name == "Acme"
    assert [i.email for i in created.invited] == addresses[:1000]
    assert [f.email for f in created.failed] == addresses[1000:]
    assert {(f.code, f.message.split(":")[0]) for f in created.failed} == {("http_503", "HTTP 503")}
    show_created(created, len(addresses), as_json=False)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "Invited 1000 of 1003 to Acme."
    assert printed[1001] == "Failed 3:"


def test_options_wrong_for_every_address_are_one_error_as_in_local_mode(live):
    for options in (
        ("--role", "emperor"),
        ("--redirect-url", "https://evil.example.net/landing"),
        ("--role", "emperor", "--redirect-url", "https://evil.example.net/landing"),
    ):
        result = same(
            live,
            "invitations",
            "create",
            "--org",
            "acme",
            "--emails",
            "a@example.com,b@example.com,not-an-address",
            *options,
        )
        assert result.exit_code == 2
        assert result.stdout == ""
        assert result.stderr.startswith("Error: ")
        assert len(result.stderr.strip().splitlines()) == 1
    assert "'emperor' is not a role of Acme" in result.stderr
    assert "redirect_url" in result.stderr
    with live.client() as client:
        assert client.organization_invitations.list_page("acme").total_count == 0


def test_revoke_delete_and_resend_act_on_the_server(live):
    ids = seed(live, count=6, revoke=0)
    emails = [f"r{n:03d}@example.com" for n in range(6)]

    by_id = remote(live, "invitations", "revoke", "--org", "acme", "--id", ids[0])
    assert (by_id.exit_code, by_id.stdout) == (0, f"Revoked {ids[0]} ({emails[0]}).\n")
    by_email = remote(live, "invitations", "revoke", "--org", "acme", "--email", "R001@example.COM")
    assert by_email.stdout == f"Revoked {ids[1]} ({emails[1]}).\n"
    deleted = remote(live, "invitations", "delete", "--email", emails[2], "--org", "acme")
    assert deleted.stdout == f"Revoked {ids[2]} ({emails[2]}).\n"
    # An organization key sees one organization: --org may be left out, as locally with one.
    only_org = remote(live, "invitations", "delete", "--email", emails[3])
    assert only_org.stdout == f"Revoked {ids[3]} ({emails[3]}).\n"

    resent = remote(live, "invitations", "resend", "--org", "acme", ids[4])
    assert resent.exit_code == 0
    assert re.fullmatch(
        rf"Resent {ids[4]} to {re.escape(emails[4])}; expires \d{{4}}-\d\d-\d\d \d\d:\d\d UTC\.\n",
        resent.stdout,
    )
    linked = remote(live, "invitations", "resend", "--org", "acme", ids[4], "--no-notify")
    first_line, link_line = linked.stdout.splitlines()
    assert link_line.startswith(f"Link (shown once): {live.url}/invitations/accept/")

    with live.client() as client:
        statuses = {i.id: i.status for i in client.organization_invitations.list("acme")}
        assert client.organization_invitations.get("acme", ids[4]).delivery.send_count == 3
    assert [statuses[i] for i in ids] == ["revoked"] * 4 + ["pending"] * 2

    # Same words as local mode for a resend, once ids and times are set aside.
    assert normalized(local(live, "invitations", "resend", "--org", "acme", ids[5]).stdout) == (
        normalized(resent.stdout).replace(emails[4], emails[5])
    )


def test_delete_without_org_needs_exactly_one_organization(live):
    seed(live, count=1, revoke=0)
    args = ("invitations", "delete", "--email", "r000@example.com")
    here = local(live, *args)
    there = remote(live, *args, key="instance")  # an instance key sees both organizations
    assert (here.exit_code, there.exit_code) == (2, 2)
    assert there.stderr == here.stderr
    assert "not exactly one organization (acme, globex)" in there.stderr


def test_errors_are_the_same_as_in_local_mode(live):
    ids = seed(live, count=2, revoke=1)
    for args in (
        ("invitations", "get", "--org", "acme", "inv_doesnotexist"),
        ("invitations", "list", "--org", "nope"),
        ("invitations", "revoke", "--org", "acme", "--id", ids[0]),
        ("invitations", "resend", "--org", "acme", ids[0]),
        ("invitations", "revoke", "--org", "acme"),
        ("invitations", "revoke", "--org", "acme", "--email", "nobody@example.com"),
        ("invitations", "create", "--org", "acme", "--emails", " , "),
        ("invitations", "create", "--org", "nope", "--emails", "a@example.com"),
        ("invitations", "list", "--org", "acme", "--limit", "0"),
    ):
        result = same(live, *args)
        assert result.exit_code == 2, args
        assert "Error: " in result.stderr, args
    # The server's parser words a bad filter its own way; both name the value.
    here = local(live, "invitations", "list", "--org", "acme", "--status", "pending,bogus")
    there = remote(live, "invitations", "list", "--org", "acme", "--status", "pending,bogus")
    assert (here.exit_code, there.exit_code) == (2, 2)
    assert "'bogus'" in here.stderr and "'bogus'" in there.stderr


def test_a_too_early_resend_is_refused_as_in_local_mode(make_app, backend):
    with live_api(make_app, backend, RESEND_MIN_INTERVAL_SECONDS=600) as world:
        with world.client() as client:
            invitation = client.organization_invitations.create("acme", email="soon@example.com")
        args = ("invitations", "resend", "--org", "acme", invitation.id)
        here, there = local(world, *args), remote(world, *args)
    assert (here.exit_code, there.exit_code) == (2, 2)
    prefix = f"Error: invitation {invitation.id} was sent less than 600 seconds ago; try again in "
    assert here.stderr.startswith(prefix) and there.stderr.startswith(prefix)


def test_another_organization_is_not_found(live):
    with live.client("other") as globex:
        theirs = globex.organization_invitations.create("globex", email="g@example.com")
    listing = remote(live, "invitations", "list", "--org", "globex")
    assert listing.exit_code == 2
    assert listing.stderr == "Error: no organization 'globex'\n"
    getting = remote(live, "invitations", "get", "--org", "acme", theirs.id)
    assert getting.stderr == f"Error: no invitation {theirs.id!r}\n"


# --- settings, authentication, reachability -------------------------------------------


def test_environment_variables_select_remote_mode(live):
    seed(live, count=3, revoke=1)
    env = {"ORGINVITES_URL": live.url, "ORGINVITES_API_KEY": live.org_key}
    through_env = bare("invitations", "list", "--org", "acme", env=env)
    assert through_env.exit_code == 0
    assert through_env.stdout == local(live, "invitations", "list", "--org", "acme").stdout
    # The options win over the variables.
    wrong = {"ORGINVITES_URL": "http://127.0.0.1:9", "ORGINVITES_API_KEY": "oik_wrong"}
    options = ["--url", live.url, "--api-key", live.org_key]
    assert bare(*options, "invitations", "list", "--org", "acme", env=wrong).exit_code == 0


def test_a_bad_key_is_refused_with_exit_status_2(live):
    result = remote(live, "invitations", "list", "--org", "acme", key="oik_not_a_key")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: send a valid API key")


def test_an_unreachable_server_is_exit_status_1():
    url = f"http://127.0.0.1:{free_port()}"
    result = bare("--url", url, "--api-key", "oik_x", "invitations", "get", "--org", "a", "inv_1")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: could not reach {url}/api/v1: ")
    assert "refused" in result.stderr


def test_incomplete_or_misplaced_remote_settings_are_input_errors(live):
    no_key = bare("invitations", "list", "--org", "acme", env={"ORGINVITES_URL": live.url})
    assert no_key.exit_code == 2
    assert "needs an API key: give --api-key or set ORGINVITES_API_KEY" in no_key.stderr
    no_url = bare("--api-key", live.org_key, "invitations", "list", "--org", "acme")
    assert no_url.exit_code == 2
    assert "--api-key needs --url" in no_url.stderr
    bad_url = bare("--url", "invites.example.com", "--api-key", "k", "invitations", "get",
                   "--org", "acme", "inv_1")  # fmt: skip
    assert bad_url.exit_code == 2
    assert "http(s) URL" in bad_url.stderr
    # Finding `orgs` loads the app (its commands live there), so bind it for this one.
    elsewhere = local(live, "--url", live.url, "--api-key", live.org_key, "orgs", "list")
    assert elsewhere.exit_code == 2
    assert "apply to the invitations commands only" in elsewhere.stderr
    local_only = remote(live, "invitations", "expire")
    assert local_only.exit_code == 2
    assert "`invitations expire` works on the local database only" in local_only.stderr
    from_env = bare("invitations", "expire", env={"ORGINVITES_URL": live.url})
    assert "cannot act through ORGINVITES_URL" in from_env.stderr
