"""The API guide in Chromium: readable at desktop and phone widths, no CSP violation,
nothing serious for axe-core, and its getting-started example works as written."""

from __future__ import annotations

from tests.browser import Problems
from tests.browser import screenshots
from tests.browser import serious_accessibility_violations
from tests.live import app_for_browser
from tests.live import chromium
from tests.live import free_port
from tests.live import serve


def test_the_api_guide_reads_well_in_a_browser(make_app):
    port = free_port()
    app = app_for_browser(make_app, "sqlite", port)
    with serve(app, port) as base, chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        problems = Problems()
        problems.watch(page)
        page.goto(f"{base}/api/docs")
        assert page.get_by_role("heading", name="OrgInvites API").is_visible()
        # The table of contents leads to each operation.
        page.get_by_role("link", name="Create an invitation").first.click()
        assert page.url.endswith("#create")
        assert page.locator("#create").is_visible()
        assert serious_accessibility_violations(page) == []
        screenshots(browser, page, "api-docs")
        problems.assert_clean()
        document = page.request.get(f"{base}/api/v1/openapi.json").json()
        assert document["openapi"] == "3.1.0"
