"""End to end in Chromium: invite, read the dev mailbox, click, accept, land in the product."""

from __future__ import annotations

from urllib.parse import parse_qs
from urllib.parse import urlsplit

from tests.live import app_for_browser
from tests.live import chromium
from tests.live import free_port
from tests.live import landing_app
from tests.live import serve
from webapp.delivery.worker import DeliveryWorker
from webapp.extensions import db
from webapp.services.actors import SYSTEM
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import create_invitation
from webapp.services.organizations import create_organization
from webapp.services.organizations import update_organization
from webapp.services.tickets import verify_ticket


def test_invitee_accepts_from_the_dev_mailbox_and_lands_in_the_product(make_app):
    """The whole invitee path in a real browser, with CSRF on and the real CSP."""
    app_port, product_port = free_port(), free_port()
    app = app_for_browser(make_app, "sqlite", app_port, MAIL_BACKEND="dev")
    product = f"http://127.0.0.1:{product_port}"
    with app.app_context():
        org = create_organization(db.session, name="Acme Rockets")
        update_organization(db.session, org, allowed_redirect_origins=[product])
        issued = create_invitation(
            db.session,
            org,
            InvitationRequest(
                email="ada@example.com",
                redirect_url=f"{product}/welcome",
                message="See you on board!",
            ),
            actor=SYSTEM,
        )
        db.session.commit()
        invitation_id = issued.invitation.id
    worker = DeliveryWorker(app)
    assert worker.run_once() == 1

    with serve(app, app_port) as base, serve(landing_app, product_port), chromium() as browser:
        page = browser.new_page()
        console_errors: list[str] = []
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)

        page.goto(f"{base}/dev/mailbox")
        page.get_by_role("link", name="You're invited to join Acme Rockets").click()
        page.locator("a.mail-link", has_text="/invitations/accept/").click()

        page.get_by_role("heading", name="Join Acme Rockets").wait_for()
        assert page.get_by_text("See you on board!").is_visible()
        page.get_by_label("Your name").fill("Ada Lovelace")
        page.get_by_role("button", name="Accept invitation").click()
        page.wait_for_url(f"{product}/welcome?*")

        query = parse_qs(urlsplit(page.url).query)
        assert query["invitation_id"] == [invitation_id]
        assert query["status"] == ["accepted"]
        assert page.get_by_role("heading", name="Welcome").is_visible()
        assert console_errors == []
        page.close()

    with app.app_context():
        verified = verify_ticket(db.session, query["ticket"][0])
        assert verified.user.name == "Ada Lovelace"
        assert verified.membership.role == "member"
