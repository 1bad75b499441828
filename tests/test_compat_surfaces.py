"""An invitation made through any compat prefix is an ordinary invitation.

It is listed by the native API, shown on the dashboard, accepted on the acceptance page,
and its vendor then reads it as accepted.
"""

from __future__ import annotations

import httpx
import pytest

from tests.compat_support import accept_on_page
from tests.compat_support import deliver_and_read_link
from tests.dashboard_support import make_member
from tests.dashboard_support import sign_in
from webapp.extensions import db
from webapp.models import Organization

clerk_backend_api = pytest.importorskip("clerk_backend_api", reason="needs the compat-test extra")
openai = pytest.importorskip("openai", reason="needs the compat-test extra")
anthropic = pytest.importorskip("anthropic", reason="needs the compat-test extra")

from clerk_backend_api.utils import BackoffStrategy  # noqa: E402
from clerk_backend_api.utils import RetryConfig  # noqa: E402


def clerk_invitations(live):
    return clerk_backend_api.Clerk(
        bearer_auth=live.key,
        server_url=live.base + "/compat/clerk/v1",
        retry_config=RetryConfig("none", BackoffStrategy(1, 1, 1, 1), False),
    ).organization_invitations


def openai_invites(live):
    return openai.OpenAI(
        admin_api_key=live.key,
        base_url=live.base + "/compat/openai/v1",
        max_retries=0,
        _strict_response_validation=True,
    ).admin.organization.invites


def anthropic_invites(live):
    return anthropic.Anthropic(
        api_key=live.key,
        base_url=live.base + "/compat/anthropic",
        max_retries=0,
        _strict_response_validation=True,
    ).organization.invites


def create_through(vendor: str, live, email: str) -> str:
    """Invite ``email`` through the vendor's SDK (the email is sent); return the id."""
    if vendor == "clerk":
        return (
            clerk_invitations(live)
            .create(organization_id=live.org_id, email_address=email, role="org:member")
            .id
        )
    if vendor == "openai":
        return openai_invites(live).create(email=email, role="reader").id
    return anthropic_invites(live).create(email=email, role="user").id


def status_through(vendor: str, live, invitation_id: str) -> str:
    if vendor == "clerk":
        return (
            clerk_invitations(live)
            .get(organization_id=live.org_id, invitation_id=invitation_id)
            .status
        )
    if vendor == "openai":
        return openai_invites(live).retrieve(invitation_id).status
    return anthropic_invites(live).retrieve(invitation_id).status


def natively_listed(live) -> dict[str, dict]:
    response = httpx.get(
        f"{live.base}/api/v1/organizations/{live.org_slug}/invitations",
        headers={"Authorization": f"Bearer {live.key}"},
    )
    assert response.status_code == 200, response.text
    return {item["id"]: item for item in response.json()["data"]}


@pytest.mark.parametrize("vendor", ["clerk", "openai", "anthropic"])
def test_listed_by_the_native_api_and_accepted_on_the_page(live, vendor):
    email = f"{vendor}-user@example.com"
    invitation_id = create_through(vendor, live, email)
    listed = natively_listed(live)[invitation_id]
    assert (listed["email"], listed["status"], listed["source"]) == (email, "pending", vendor)

    accept_on_page(live.app, deliver_and_read_link(live.app, email), name="Ada Lovelace")

    assert natively_listed(live)[invitation_id]["status"] == "accepted"
    assert status_through(vendor, live, invitation_id) == "accepted"


def test_the_dashboard_shows_them_like_any_other(live):
    vendors = ("clerk", "openai", "anthropic")
    for vendor in vendors:
        create_through(vendor, live, f"{vendor}-user@example.com")
    client = live.app.test_client()
    with live.app.app_context():
        person = make_member(db.session.get(Organization, live.org_id), "boss@example.com", "admin")
    sign_in(client, person)
    page = client.get(f"/orgs/{live.org_slug}/invitations").get_data(as_text=True)
    for vendor in vendors:
        assert f"{vendor}-user@example.com" in page
