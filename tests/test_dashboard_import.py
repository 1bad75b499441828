"""The CSV import pages (HTTP level, CSRF on): upload or paste, preview, confirm, progress
that survives a reload, result, error report download; limits, access and bad input."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import func
from sqlalchemy import select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from tests.dashboard_pages import Client
from tests.dashboard_pages import body
from tests.dashboard_pages import in_db
from tests.dashboard_pages import text
from tests.dashboard_support import FRAGMENT
from webapp.extensions import db
from webapp.models import ImportJob
from webapp.models import Invitation
from webapp.services.importing import jobs
from webapp.services.importing.jobs import run_import_round
from webapp.services.organizations import get_organization
from webapp.services.organizations import update_organization

PAGE = "/orgs/acme/invitations/import"
SMALL = b"email,role\nann@example.com,admin\ncy@example.com,\nbroken,member\nann@example.com,\n"


@pytest.fixture(autouse=True)
def fresh_runner_memory():
    jobs._prepared.clear()
    yield
    jobs._prepared.clear()


def upload(client: Client, data: bytes | None = None, *, text_value: str = "", **fields):
    """POST the upload form as a browser does (multipart, with the CSRF token)."""
    form = {
        "csrf_token": client.token,
        "role": "member",
        "expires_in": "",
        "redirect_url": "",
        "text": text_value,
    }
    form.update(fields)
    if data is not None:
        form["file"] = FileStorage(io.BytesIO(data), "people.csv", content_type="text/csv")
    # Encoded here: the test client would spool a large body to a file it never closes.
    boundary, payload = encode_multipart(form)
    return client.raw.post(
        PAGE, data=payload, content_type=f"multipart/form-data; boundary={boundary}"
    )


def job_url(response) -> str:
    assert response.status_code == 303, body(response)
    location = response.headers["Location"]
    assert re.fullmatch(r"/orgs/acme/invitations/import/imp_[0-9a-z]+", location), location
    return location


def invitations(app) -> dict[str, str]:
    with app.app_context():
        return dict(db.session.execute(select(Invitation.email_key, Invitation.role)).all())


def job_of(app, url: str) -> ImportJob:
    return in_db(app, lambda s: s.get(ImportJob, url.rsplit("/", 1)[1]))


def test_the_upload_page_is_linked_from_the_list(app, admin):
    listing = admin.get("/orgs/acme/invitations")
    assert f'href="{PAGE}"' in body(listing)
    page = admin.get(PAGE)
    assert page.status_code == 200
    html = body(page)
    assert 'enctype="multipart/form-data"' in html
    assert 'type="file"' in html and "data-drop-zone" in html
    assert re.search(r'<textarea [^>]*name="text"', html)
    assert "/static/js/import-upload.js" in html
    assert "<script>" not in html and "style=" not in html and "hx-on" not in html


def test_a_small_file_is_previewed_then_imported(app, admin):
    url = job_url(upload(admin, SMALL))
    preview = admin.get(url)
    words = text(preview)
    assert "Preview 4 rows · comma-separated · header row with email, role" in words
    assert "Will invite 2" in words and "Invalid email 1" in words
    assert "Duplicate in this file 1" in words
    assert "'broken' is not valid" in words
    assert "Invite 2 people" in words
    assert invitations(app) == {}  # nothing yet

    confirmed = admin.post(f"{url}/confirm")
    assert confirmed.status_code == 303 and confirmed.headers["Location"] == url
    assert invitations(app) == {"ann@example.com": "admin", "cy@example.com": "member"}
    result = admin.get(url)
    html = body(result)
    assert 'data-count="invited">2<' in html
    assert 'data-count="skipped">1<' in html and 'data-count="failed">1<' in html
    assert '<progress id="import-progress-bar" max="100" value="100">' in html
    assert "Download the error report (CSV)" in text(result)

    report = admin.get(f"{url}/report.csv")
    assert report.status_code == 200
    assert report.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert report.headers["Content-Disposition"].startswith("attachment; filename=")
    assert report.headers["Cache-Control"] == "no-store"
    rows = list(csv.reader(io.StringIO(report.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows == [
        ["email", "role", "error"],
        [
            "broken",
            "member",
            "invalid email: 'broken' is not valid: An email address must have an @-sign.",
        ],
    ]


def test_pasted_addresses_are_imported_too(app, admin):
    url = job_url(upload(admin, text_value="ann@example.com, cy@example.com\ncarol@example.com"))
    assert "Will invite 3" in text(admin.get(url))
    admin.post(f"{url}/confirm")
    assert set(invitations(app)) == {"ann@example.com", "cy@example.com", "carol@example.com"}


def test_a_large_file_is_left_to_the_worker_and_its_progress_survives_a_reload(app, admin):
    app.config.update(IMPORT_INLINE_MAX_ROWS=3, IMPORT_BATCH_ROWS=4)
    data = b"email\n" + b"".join(b"p%d@example.com\n" % n for n in range(10))
    url = job_url(upload(admin, data))

    page = body(admin.get(url))
    assert 'data-status="checking"' in page
    assert f'hx-get="{url}" hx-trigger="every 1s" hx-target="this" hx-swap="outerHTML"' in page
    fragment = admin.get(url, headers=FRAGMENT)
    assert body(fragment).lstrip().startswith("{#") is False
    assert "<html" not in body(fragment) and 'id="import-panel"' in body(fragment)
    assert "HX-Request" in fragment.headers["Vary"]

    run_import_round(app, "worker-1")
    assert "Will invite 10" in text(admin.get(url))
    admin.post(f"{url}/confirm")
    assert invitations(app) == {}  # not in the request
    importing = body(admin.get(url))
    assert 'data-status="importing"' in importing and 'hx-trigger="every 1s"' in importing

    run_import_round(app, "worker-1", budget_seconds=0)  # one batch of 4
    reloaded = admin.get(url)  # a fresh page load reads the progress from the database
    assert '<progress id="import-progress-bar" max="100" value="40">' in body(reloaded)
    assert "40 % · 4 of 10 rows to invite" in text(reloaded)

    while run_import_round(app, "worker-1"):
        pass
    done = admin.get(url, headers=FRAGMENT)  # the last poll: the result, no more polling
    assert 'data-status="done"' in body(done) and "hx-trigger" not in body(done)
    assert 'value="100"' in body(done)
    assert len(invitations(app)) == 10


def test_a_file_that_cannot_be_read_says_where(app, admin):
    url = job_url(upload(admin, b"email,role\nann@example.com,member\nJos\xe9@x.io,member\n"))
    page = admin.get(url)
    assert page.status_code == 200
    assert "This file cannot be imported. row 3, column A: the bytes 0xE9 are not UTF-8" in text(
        page
    )
    assert "Nothing was imported" in text(page)


def test_uploads_up_to_the_import_limit_pass_the_app_s_1_mib_limit(app, admin):
    assert app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024
    big = b"email\n" + b"".join(b"person%07d@example.com\n" % n for n in range(80_000))
    assert len(big) > 1.5 * 1024 * 1024
    url = job_url(upload(admin, big))
    assert job_of(app, url).byte_size == len(big)
    # Everywhere else the app's limit holds.
    elsewhere = admin.raw.post(
        "/orgs/acme/invitations/new",
        data=b"email=" + b"x" * len(big),
        content_type="application/x-www-form-urlencoded",
    )
    assert elsewhere.status_code == 413


def test_an_upload_over_the_limit_is_refused_with_a_clear_message(app, admin):
    app.config["IMPORT_MAX_BYTES"] = 300 * 1024
    response = upload(admin, b"email\n" + b"a@example.com\n" * 50_000)
    assert response.status_code == 413
    assert "The upload is larger than 300 KiB. Split the file into smaller ones." in text(response)
    # Just over the limit, but under it with the form around it: the service says so.
    response = upload(admin, b"email\n" + b"a@example.com\n" * 22_000)
    assert response.status_code == 422
    assert "the limit is 300 KiB. Split it into smaller files." in text(response)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ImportJob)) == 0


def test_a_file_and_text_together_or_neither_is_refused(app, admin):
    both = upload(admin, SMALL, text_value="ann@example.com")
    assert both.status_code == 422 and "Choose a file or paste text, not both." in text(both)
    neither = upload(admin)
    assert neither.status_code == 422
    assert "Choose a CSV file or paste some addresses." in text(neither)


def test_bad_defaults_are_shown_beside_their_fields(app, admin):
    response = upload(admin, SMALL, redirect_url="https://evil.example/")
    assert response.status_code == 422
    assert re.search(r'id="redirect_url-error"[^>]*>[^<]*allowed redirect origins', body(response))


def test_every_post_needs_the_csrf_token(app, admin):
    form = {"role": "member", "text": "ann@example.com", "file": (io.BytesIO(b""), "")}
    response = admin.raw.post(PAGE, data=form)
    assert response.status_code == 400
    assert "This form expired" in text(response)
    url = job_url(upload(admin, SMALL))
    assert admin.post(f"{url}/confirm", csrf=False).status_code == 400
    assert admin.post(f"{url}/discard", csrf=False).status_code == 400
    assert admin.post(f"{url}/recheck", {"role": "admin"}, csrf=False).status_code == 400
    assert invitations(app) == {}
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ImportJob)) == 1


def test_only_the_organization_s_admins_get_in(app, world, admin):
    url = job_url(upload(admin, SMALL))
    member = Client(app, world.member)
    assert member.get(PAGE).status_code == 403
    assert member.get(url).status_code == 403
    outsider = Client(app, world.outsider)
    assert outsider.get(url).status_code == 404
    assert outsider.get(f"{url}/report.csv").status_code == 404
    assert outsider.post(f"{url}/confirm").status_code == 404
    anonymous = app.test_client()
    assert anonymous.post(PAGE, data={"text": "ann@example.com"}).status_code in (302, 303)
    # Another organization's job under this organization's URL is not found either.
    other = url.replace("/orgs/acme/", "/orgs/globex/")
    assert Client(app, world.root).get(other).status_code == 404
    assert invitations(app) == {}


def test_checking_again_with_other_defaults(app, admin):
    url = job_url(upload(admin, b"ann@example.com\ncy@example.com\n"))
    bad = admin.post(
        f"{url}/recheck", {"role": "member", "expires_in": "", "redirect_url": "http://x.io/"}
    )
    assert bad.status_code == 422
    assert "must use https" in text(bad)
    again = admin.post(f"{url}/recheck", {"role": "admin", "expires_in": "86400"})
    assert again.status_code == 303
    page = body(admin.get(url))
    assert re.search(r'<option selected value="admin">Admin</option>', page)
    assert re.search(r'<option selected value="86400">1 day</option>', page)
    admin.post(f"{url}/confirm")
    assert invitations(app) == {"ann@example.com": "admin", "cy@example.com": "admin"}


def test_an_import_over_the_quota_cannot_be_confirmed(app, world, admin):
    in_db(app, lambda s: update_organization(s, get_organization(s, "acme"), invite_quota=1))
    url = job_url(upload(admin, b"ann@example.com\ncy@example.com\n"))
    page = admin.get(url)
    assert "at most 1 more can be added" in text(page)
    assert re.search(r"<button[^>]*disabled[^>]*>Invite 2 people</button>", body(page))
    refused = admin.post(f"{url}/confirm")
    assert refused.status_code == 422
    assert "at most 1 more can be added" in text(refused)
    assert invitations(app) == {}


def test_too_many_running_imports_are_throttled(app, admin):
    app.config.update(IMPORT_INLINE_MAX_ROWS=0, IMPORT_MAX_ACTIVE_PER_ORG=1)
    job_url(upload(admin, SMALL))
    response = upload(admin, SMALL)
    assert response.status_code == 422
    assert "Acme already has 1 imports being checked or imported" in text(response)


def test_hostile_cells_render_inert(app, admin):
    hostile = (
        b'email,role\n"<img src=x onerror=alert(1)>@x.io",member\nok@example.com,"hx-get=/x"\n'
    )
    page = body(admin.get(job_url(upload(admin, hostile))))
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;@x.io" in page
    assert 'hx-get=/x"' not in page


def test_discarding_and_the_report_before_the_end(app, admin):
    url = job_url(upload(admin, SMALL))
    assert admin.get(f"{url}/report.csv").status_code == 404
    response = admin.post(f"{url}/discard")
    assert response.status_code == 303 and response.headers["Location"] == PAGE
    assert "This upload was discarded" in text(admin.get(url))
    assert admin.post(f"{url}/confirm").status_code == 422
    assert "discarded" in text(admin.get(PAGE))  # the recent imports list
