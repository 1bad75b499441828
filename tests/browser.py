"""Browser-test support: a watched page (console errors, failed requests, CSP), screenshots
at desktop and phone widths into test-artifacts/, and axe-core accessibility checks."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
AXE_SOURCE = (Path(__file__).resolve().parent / "vendor" / "axe-4.14.1.min.js").read_text()
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 780}


@dataclass
class Problems:
    """Everything that went wrong on a page, for one assertion at the end."""

    console: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    allowed_statuses: set[int] = field(default_factory=set)

    def watch(self, page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.console.append(f"page error: {error}"))
        page.on("requestfailed", lambda r: self.failed_requests.append(f"{r.url} {r.failure}"))
        page.on("response", self._response)

    def _console(self, message) -> None:
        # CSP violations and script errors arrive as console errors.
        if message.type == "error" and "status of 422" not in message.text:
            self.console.append(message.text)

    def _response(self, response) -> None:
        if response.status >= 400 and response.status not in self.allowed_statuses:
            self.failed_requests.append(
                f"{response.status} {response.request.method} {response.url}"
            )

    def assert_clean(self) -> None:
        assert self.console == [], self.console
        assert self.failed_requests == [], self.failed_requests


def screenshots(browser, page, name: str) -> None:
    """Save the current page at desktop width and, in a fresh tab, at phone width."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-desktop.png"), full_page=True)
    phone = page.context.new_page()
    phone.set_viewport_size(PHONE)
    phone.goto(page.url)
    phone.screenshot(path=str(ARTIFACTS / f"{name}-phone.png"), full_page=True)
    phone.close()


def serious_accessibility_violations(page) -> list[str]:
    """axe-core's serious and critical violations on the current page (none expected).

    Injected through the DevTools protocol (``evaluate``), which the page's CSP does not
    govern, so the page is checked with its real policy in force.
    """
    page.evaluate(AXE_SOURCE)
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => v.id + ': ' + v.help + ' @ ' + v.nodes.map(n => n.target.join(' ')).join(', '))"
    )
    return result
