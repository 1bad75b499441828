"""CSV import in Chromium against a live server: drop a file, see the preview, confirm,
watch the progress bar (polled by htmx, surviving a reload) reach 100 %, download the
error report. The import runs in a delivery worker started by the test, as in
``orginvites run``. Fails on any console error, failed request or CSP violation.
"""

from __future__ import annotations

import csv
import io
import re
import threading

import pytest
from sqlalchemy import func
from sqlalchemy import select

from tests.browser import Problems
from tests.browser import screenshots
from tests.browser import serious_accessibility_violations
from tests.conftest import APP_ORIGIN
from tests.dashboard_support import PASSWORD
from tests.dashboard_support import make_member
from tests.live import app_for_browser
from tests.live import chromium
from tests.live import free_port
from tests.live import serve
from webapp.delivery.worker import DeliveryWorker
from webapp.delivery.worker import WorkerSettings
from webapp.extensions import db
from webapp.models import Invitation
from webapp.services.importing import jobs
from webapp.services.organizations import create_organization
from webapp.services.organizations import update_organization

ROWS = 40
CSV_TEXT = (
    "Email;Role;public_metadata.team\n"
    + "".join(f"person{n}@example.com;member;blue\n" for n in range(ROWS))
    + "not-an-address;member;red\n"
    + "person1@example.com;member;blue\n"
    + "eve@example.com;wizard;=1+1\n"
)
DROP_FILE = """
([text]) => {
  const zone = document.querySelector("[data-drop-zone]");
  const data = new DataTransfer();
  data.items.add(new File([text], "people.csv", {type: "text/csv"}));
  const init = {dataTransfer: data, bubbles: true, cancelable: true};
  zone.dispatchEvent(new DragEvent("dragover", init));
  zone.dispatchEvent(new DragEvent("drop", init));
}
"""


@pytest.fixture
def server(make_app):
    port = free_port()
    # Every file goes to the worker, a few rows per batch: the bar has steps to show.
    app = app_for_browser(
        make_app, "sqlite", port, MAIL_BACKEND="dev", IMPORT_INLINE_MAX_ROWS=0, IMPORT_BATCH_ROWS=5
    )
    with app.app_context():
        org = create_organization(db.session, name="Acme", slug="acme")
        update_organization(db.session, org, allowed_redirect_origins=[APP_ORIGIN])
        db.session.commit()
        make_member(org, "ada@example.com", "admin")
    jobs._prepared.clear()
    with serve(app, port) as base:
        yield app, base
    jobs._prepared.clear()


class Worker:
    """The delivery worker in a thread, as ``orginvites run`` starts it; joined on stop."""

    def __init__(self, app) -> None:
        self.worker = DeliveryWorker(app, settings=WorkerSettings(poll_interval=0.1))
        self.thread = threading.Thread(target=self.worker.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.worker.stop()
        self.thread.join(10)


def worker_for(app) -> Worker:
    return Worker(app)


def test_an_admin_imports_a_csv_in_the_browser(server, tmp_path):
    app, base = server
    problems = Problems()
    workers = []
    try:
        with chromium() as browser:
            context = browser.new_context(
                viewport={"width": 1280, "height": 900}, accept_downloads=True
            )
            page = context.new_page()
            problems.watch(page)
            page.goto(f"{base}/login")
            page.get_by_label("Email").fill("ada@example.com")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{base}/orgs/acme/invitations", wait_until="commit")

            page.get_by_role("link", name="Import from CSV").click()
            page.wait_for_url(f"{base}/orgs/acme/invitations/import")
            assert serious_accessibility_violations(page) == []
            # Drag and drop the file onto the drop zone (static/js/import-upload.js).
            page.evaluate(DROP_FILE, [CSV_TEXT])
            page.get_by_text("Selected: people.csv").wait_for()
            screenshots(browser, page, "import-upload")
            page.get_by_role("button", name="Check the rows").click()
            page.wait_for_url(re.compile(r"/import/imp_\w+$"))
            job_url = page.url

            # No worker yet: the job waits; a reload shows the same state.
            page.locator("[data-status=checking]").wait_for()
            page.reload()
            page.locator("[data-status=checking]").wait_for()
            workers.append(worker_for(app))
            # The panel polls itself and turns into the preview.
            page.get_by_role("heading", name="Preview").wait_for(timeout=15000)
            workers.pop().stop()
            assert page.url == job_url
            verdicts = page.get_by_role("navigation", name="Rows by verdict")
            assert "Will invite 40" in verdicts.inner_text().replace("\n", " ")
            for label in ("Invalid email 1", "Duplicate in this file 1", "Unknown role 1"):
                assert label in verdicts.inner_text().replace("\n", " ")
            assert page.locator("table.import-rows tbody tr").count() == 43
            verdicts.get_by_role("link", name=re.compile(r"^Invalid email")).click()
            page.wait_for_url(re.compile(r"verdict=invalid_email"))
            page.locator("table.import-rows tbody tr").first.wait_for()
            rows = page.locator("table.import-rows tbody tr")
            assert rows.count() == 1 and "not-an-address" in rows.inner_text()
            assert serious_accessibility_violations(page) == []
            screenshots(browser, page, "import-preview")

            page.get_by_role("button", name="Invite 40 people").click()
            page.wait_for_url(job_url)
            page.locator("[data-status=importing]").wait_for()
            bar = page.locator("progress#import-progress-bar")
            assert bar.get_attribute("value") == "0"
            page.reload()  # the progress bar survives a reload
            page.locator("[data-status=importing]").wait_for()
            workers.append(worker_for(app))
            page.locator("progress#import-progress-bar[value='100']").wait_for(timeout=20000)
            assert page.locator("[data-percent]").inner_text() == "100 %"
            page.locator("[data-status=done]").wait_for()
            assert page.locator("[data-count=invited]").inner_text() == "40"
            assert page.locator("[data-count=skipped]").inner_text() == "1"
            assert page.locator("[data-count=failed]").inner_text() == "2"
            screenshots(browser, page, "import-done")

            with page.expect_download() as download_info:
                page.get_by_role("link", name="Download the error report (CSV)").click()
            download = download_info.value
            assert download.suggested_filename.startswith("acme-import-errors-imp_")
            saved = tmp_path / "report.csv"
            download.save_as(saved)
            problems.assert_clean()
            context.close()
    finally:
        for worker in workers:
            worker.stop()

    rows = list(csv.reader(io.StringIO(saved.read_text("utf-8-sig")), delimiter=";"))
    assert rows[0] == ["Email", "Role", "public_metadata.team", "error"]
    assert [r[:3] for r in rows[1:]] == [
        ["not-an-address", "member", "red"],
        ["eve@example.com", "wizard", "'=1+1"],
    ]
    with app.app_context():
        pending = db.session.scalar(
            select(func.count()).select_from(Invitation).where(Invitation.status == "pending")
        )
        assert pending == ROWS
