"""The dashboard in Chromium against a live server: every admin action of the issue.

Fails on any console error, failed request or CSP violation. Screenshots at desktop and
phone widths land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import select

from tests.browser import Problems
from tests.browser import screenshots
from tests.browser import serious_accessibility_violations
from tests.live import app_for_browser
from tests.live import chromium
from tests.live import free_port
from tests.live import serve
from webapp.extensions import db
from webapp.models import Invitation
from webapp.models import Organization
from webapp.services.demo import DEMO_ADMIN_EMAIL
from webapp.services.demo import DEMO_ADMIN_PASSWORD
from webapp.services.demo import seed_demo


@pytest.fixture
def demo_server(make_app):
    port = free_port()
    app = app_for_browser(make_app, "sqlite", port, MAIL_BACKEND="dev")
    with app.app_context():
        seed_demo(db.session, public_base_url=f"http://127.0.0.1:{port}")
        db.session.commit()
    with serve(app, port) as base:
        yield app, base


ROWS = "tbody#invitation-rows tr.invitation-row"


def rows(page) -> list[str]:
    return page.locator(f"{ROWS} td[data-label=Email]").all_inner_texts()


def eventually(check, seconds: float = 5.0) -> None:
    """Wait for an htmx swap to land (history restores and swaps are asynchronous)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the page did not reach the expected state"
        time.sleep(0.05)


def tab(page, name: str):
    return page.get_by_role("link", name=re.compile(rf"^{name} \d+$"))


def tab_count(page, name: str) -> int:
    return int(tab(page, name).locator(".count").inner_text())


def test_an_admin_does_everything_in_the_browser(demo_server):
    """Sign in, tabs with counts, search, sort, pages with back/forward, invite (with the
    two field errors), revoke and resend with confirmation, change a setting, sign out;
    axe-core finds nothing serious on the sign-in, list, invite and settings pages."""
    app, base = demo_server
    problems = Problems(allowed_statuses={422})
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        problems.watch(page)

        page.goto(f"{base}/login")
        assert serious_accessibility_violations(page) == []
        screenshots(browser, page, "sign-in")
        page.get_by_label("Email").fill(DEMO_ADMIN_EMAIL)
        page.get_by_label("Password").fill(DEMO_ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/orgs/acme/invitations", wait_until="commit")
        assert serious_accessibility_violations(page) == []
        screenshots(browser, page, "invitations")

        # Tabs: each shows its own rows, and its count matches them (page size 100).
        page.get_by_label("Per page").select_option("100")
        page.wait_for_url(re.compile(r"limit=100"), wait_until="commit")
        for name in ("Pending", "Accepted", "Declined", "Revoked", "Expired"):
            page.get_by_role("link", name=re.compile(rf"^{name} \d+$")).click()
            page.wait_for_url(re.compile(rf"status={name.lower()}"), wait_until="commit")
            expected = tab_count(page, name)
            assert expected > 0
            # A full page when there are more than 100, else exactly the count.
            assert page.locator(ROWS).count() == min(expected, 100)
            badges = page.locator(f"{ROWS} td[data-label=Status] .badge").all_inner_texts()
            assert set(badges) == {name}
        page.get_by_role("link", name=re.compile(r"^All \d+$")).click()
        page.wait_for_url(re.compile(r"invitations\?limit=100$"), wait_until="commit")

        # Search as you type, then clear it.
        page.get_by_label("Search by email").fill("turing")
        page.wait_for_url(re.compile(r"q=turing"), wait_until="commit")
        found = rows(page)
        assert found and all("turing" in e for e in found)
        page.get_by_label("Search by email").fill("")
        page.wait_for_url(re.compile(r"q=&|q=$|invitations\?(?!.*q=)"), wait_until="commit")

        # Sort by email, then back to newest first.
        page.get_by_label("Sort").select_option("email")
        page.wait_for_url(re.compile(r"sort=email"), wait_until="commit")
        listed = rows(page)
        assert listed == sorted(listed, key=str.lower)
        page.get_by_label("Sort").select_option("-created_at")
        page.get_by_label("Per page").select_option("25")
        page.wait_for_url(re.compile(r"limit=25|invitations\?(?!.*limit)"), wait_until="commit")

        # Pages: older, older, then the browser's back button restores the view.
        first_page = rows(page)
        page.get_by_role("link", name="Older →").click()
        page.wait_for_url(re.compile(r"after=inv_"), wait_until="commit")
        second_page = rows(page)
        assert second_page and not set(second_page) & set(first_page)
        second_url = page.url
        page.get_by_role("link", name="Older →").click()
        page.wait_for_url(lambda url: url != second_url, wait_until="commit")
        page.go_back()
        page.wait_for_url(second_url, wait_until="commit")
        eventually(lambda: rows(page) == second_page)
        page.get_by_role("link", name="← Newer").click()
        page.wait_for_function("() => !location.search.includes('after=')")
        eventually(lambda: rows(page) == first_page)

        # Invite: a bad address, then a redirect off the allowlist, then success.
        page.get_by_text("Invite someone", exact=True).click()
        form = page.locator("#invite-form")
        assert serious_accessibility_violations(page) == []
        form.get_by_label("Email address").fill("not-an-address")
        form.get_by_role("button", name="Send invitation").click()
        page.locator("#email-error").wait_for()
        assert "'not-an-address' is not valid" in page.locator("#email-error").inner_text()
        form = page.locator("#invite-form")
        form.get_by_label("Email address").fill("grace@example.com")
        form.get_by_label("Redirect after accepting").fill("https://evil.example/")
        form.get_by_role("button", name="Send invitation").click()
        page.locator("#redirect_url-error").wait_for()
        assert "allowed redirect origins" in page.locator("#redirect_url-error").inner_text()
        form = page.locator("#invite-form")
        form.get_by_label("Redirect after accepting").fill("")
        form.get_by_role("button", name="Send invitation").click()
        page.get_by_text("Invited grace@example.com.").wait_for()
        page.locator("tr", has_text="grace@example.com").wait_for(timeout=5000)
        screenshots(browser, page, "invited")

        # Revoke the new invitation, confirming first.
        row = page.locator("tr", has_text="grace@example.com")
        row.get_by_role("link", name="Revoke").click()
        confirm = page.locator("tr", has_text="Revoke the invitation of")
        confirm.get_by_role("button", name="Revoke").click()
        page.get_by_text("Revoked the invitation of grace@example.com.").wait_for()
        assert (
            page.locator("tr", has_text="grace@example.com").locator(".badge").inner_text()
            == "Revoked"
        )

        # Resend an older pending invitation.
        page.get_by_role("link", name=re.compile(r"^Pending \d+$")).click()
        page.wait_for_url(re.compile(r"status=pending"), wait_until="commit")
        target = page.locator("tbody#invitation-rows tr.invitation-row").nth(3)
        address = target.locator("td[data-label=Email]").inner_text()
        target.get_by_role("link", name="Resend").click()
        page.locator("tr", has_text="Send").get_by_role("button", name="Resend").click()
        page.get_by_text(f"Sent a new link to {address}").wait_for()
        screenshots(browser, page, "resent")

        # Change a setting: the organization's name.
        page.get_by_role("link", name="Settings").click()
        page.wait_for_url(f"{base}/orgs/acme/settings")
        assert serious_accessibility_violations(page) == []
        page.get_by_label("Organization name").fill("Acme Rockets")
        page.get_by_role("button", name="Save settings").click()
        page.get_by_text("Saved the settings.").wait_for()
        screenshots(browser, page, "settings")

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(f"{base}/login", wait_until="commit")
        page.get_by_text("You are signed out.").wait_for()
        problems.assert_clean()
        context.close()

    with app.app_context():
        grace = db.session.scalar(
            select(Invitation).where(Invitation.email_key == "grace@example.com")
        )
        assert grace.status == "revoked"
        resent = db.session.scalar(select(Invitation).where(Invitation.email_key == address))
        assert resent.send_count == 2
        assert db.session.scalar(select(Organization.name).where(Organization.slug == "acme")) == (
            "Acme Rockets"
        )
