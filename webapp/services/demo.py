"""Sample data for ``orginvites demo``: one organization with invitations in every status."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.clock import utcnow
from webapp.ids import new_id
from webapp.models import AuditEvent
from webapp.models import DeliveryStatus
from webapp.models import Invitation
from webapp.models import Membership
from webapp.models import Organization
from webapp.services.actors import Actor
from webapp.services.counters import rebuild_counters
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import create_invitation
from webapp.services.organizations import RoleSpec
from webapp.services.organizations import create_organization
from webapp.services.organizations import create_project
from webapp.services.organizations import update_organization
from webapp.services.users import create_admin_user
from webapp.services.users import get_or_create_user

DEMO_SLUG = "acme"
DEMO_ADMIN_EMAIL = "admin@example.com"
DEMO_ADMIN_PASSWORD = "orginvites-demo"
FIRST_NAMES = "ada alan grace linus margaret dennis barbara ken frances tim radia guido".split()
LAST_NAMES = "lovelace turing hopper torvalds hamilton ritchie liskov thompson allen lee".split()
DOMAINS = ("example.com", "example.org", "example.net", "acme.example", "globex.example")
# status -> weight in the sample
STATUS_MIX = {"accepted": 45, "pending": 25, "expired": 12, "revoked": 8, "declined": 10}


@dataclass
class DemoInfo:
    org: Organization
    admin_email: str
    admin_password: str
    created: bool


def _address(rng: random.Random, n: int) -> str:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return f"{first}.{last}{n}@{rng.choice(DOMAINS)}"


def seed_demo(
    session: Session, *, public_base_url: str, invitation_count: int = 300, seed: int = 7
) -> DemoInfo:
    """Create the demo organization once; later calls only reset the admin's password."""
    admin, _ = create_admin_user(
        session, email=DEMO_ADMIN_EMAIL, password=DEMO_ADMIN_PASSWORD, name="Demo Admin"
    )
    existing = session.scalar(select(Organization).where(Organization.slug == DEMO_SLUG))
    if existing is not None:
        return DemoInfo(existing, DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, created=False)

    org = create_organization(
        session,
        name="Acme Inc",
        slug=DEMO_SLUG,
        roles=[
            RoleSpec("admin", "Admin", True),
            RoleSpec("member", "Member"),
            RoleSpec("billing", "Billing"),
        ],
        default_role="member",
    )
    update_organization(
        session,
        org,
        add_redirect_origins=[public_base_url],
        default_redirect_url=public_base_url.rstrip("/") + "/welcome",
    )
    web = create_project(session, org, "Web App", is_default=True)
    create_project(session, org, "Data Platform")
    now = utcnow()
    session.execute(
        insert(Membership),
        [
            {
                "id": new_id("mem"),
                "org_id": org.id,
                "user_id": admin.id,
                "role": "admin",
                "public_metadata": {},
                "private_metadata": {},
                "created_at": now - timedelta(days=60),
                "updated_at": now - timedelta(days=60),
            }
        ],
    )

    rng = random.Random(seed)
    statuses = rng.choices(list(STATUS_MIX), weights=list(STATUS_MIX.values()), k=invitation_count)
    invitations, events, memberships = [], [], []
    for n, status in enumerate(statuses):
        email = _address(rng, n)
        # Pending ones are recent (still valid); the rest spread over six weeks.
        age = (
            timedelta(hours=rng.uniform(1, 6 * 24))
            if status == "pending"
            else timedelta(hours=rng.uniform(7 * 24 + 1, 42 * 24))
        )
        created = now - age
        expires = created + timedelta(days=7)
        row = {
            "id": new_id("inv"),
            "org_id": org.id,
            "email": email,
            "email_key": email.lower(),
            "role": rng.choices(["member", "billing", "admin"], weights=[85, 10, 5])[0],
            "status": status,
            "source": rng.choice(["dashboard", "api", "cli", "csv"]),
            "inviter_user_id": admin.id,
            "public_metadata": {},
            "private_metadata": {},
            "project_grants": [{"project_id": web.id, "role": "member"}],
            "token_hash": secrets.token_hex(32),
            "created_at": created,
            "updated_at": created,
            "expires_at": expires,
            "send_count": 1,
            "last_sent_at": created,
            "delivery_status": DeliveryStatus.SENT.value,
        }
        events.append(_event(org.id, row["id"], "invitation.created", admin.id, created, email))
        if status in ("accepted", "declined", "revoked"):
            when = created + timedelta(hours=rng.uniform(0.2, 24 * 5))
            row[f"{status}_at"] = when
            row["updated_at"] = when
            if status == "revoked":
                row["revoked_by_user_id"] = admin.id
            if status == "accepted":
                user = get_or_create_user(session, email, email.lower())
                row["accepted_user_id"] = user.id
                memberships.append(
                    {
                        "id": new_id("mem"),
                        "org_id": org.id,
                        "user_id": user.id,
                        "role": row["role"],
                        "public_metadata": {},
                        "private_metadata": {},
                        "invitation_id": row["id"],
                        "created_at": when,
                        "updated_at": when,
                    }
                )
            events.append(_event(org.id, row["id"], f"invitation.{status}", admin.id, when, email))
        elif status == "expired":
            row["updated_at"] = expires
            events.append(_event(org.id, row["id"], "invitation.expired", None, expires, email))
        if rng.random() < 0.04 and status in ("pending", "expired"):
            row["delivery_status"] = DeliveryStatus.FAILED.value
            row["delivery_error"] = "550 5.1.1 mailbox unavailable"
        invitations.append(row)
    session.execute(insert(Invitation), invitations)
    if memberships:
        session.execute(insert(Membership), memberships)
    session.execute(insert(AuditEvent), events)
    rebuild_counters(session, org.id)

    # A few made the normal way, so their emails wait in the outbox.
    for email in ("new.hire@example.com", "contractor@example.org"):
        create_invitation(
            session,
            org,
            InvitationRequest(email=email, message="Welcome aboard!"),
            actor=Actor.user(admin.id),
            source="demo",
        )
    return DemoInfo(org, DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, created=True)


def _event(org_id, invitation_id, event_type, actor_id, when, email):
    return {
        "id": new_id("evt"),
        "org_id": org_id,
        "invitation_id": invitation_id,
        "type": event_type,
        "actor_type": "user" if actor_id else "system",
        "actor_id": actor_id,
        "data": {"email": email},
        "created_at": when,
    }
