"""Walking a few thousand invitations by offset and by cursor visits each row exactly once,
in order, also with status filters and while new invitations keep arriving."""

from __future__ import annotations

import random
import threading
from datetime import timedelta

from sqlalchemy import insert

from tests.api_support import build_world
from webapp.clock import utcnow
from webapp.extensions import db
from webapp.ids import new_id
from webapp.models import Invitation
from webapp.services.counters import rebuild_counters
from webapp.services.organizations import get_organization

ROWS = 2500
STATUSES = ["pending", "accepted", "declined", "revoked"]
INVITATIONS = "/api/v1/organizations/acme/invitations"


def _seed(app, rows: int = ROWS) -> dict[str, str]:
    """Insert ``rows`` invitations (several share a created_at) and return id → status."""
    rng = random.Random(7)
    now = utcnow()
    with app.app_context():
        org = get_organization(db.session, "acme")
        values = []
        for i in range(rows):
            created = now - timedelta(minutes=rng.randrange(rows // 3))  # many ties
            values.append(
                {
                    "id": new_id("inv"),
                    "org_id": org.id,
                    "email": f"user{i:05d}@example.com",
                    "email_key": f"user{i:05d}@example.com",
                    "role": "member",
                    "status": STATUSES[i % 4],
                    "source": "api",
                    "public_metadata": {},
                    "private_metadata": {},
                    "project_grants": [],
                    "token_hash": f"{i:064x}",
                    "created_at": created,
                    "updated_at": created,
                    "expires_at": now + timedelta(days=7),
                    "send_count": 1,
                    "accepted_at": created if STATUSES[i % 4] == "accepted" else None,
                    "declined_at": created if STATUSES[i % 4] == "declined" else None,
                    "revoked_at": created if STATUSES[i % 4] == "revoked" else None,
                }
            )
        db.session.execute(insert(Invitation), values)
        rebuild_counters(db.session, org.id)
        db.session.commit()
        return {v["id"]: v["status"] for v in values}


def _walk(world, query: str, cursor_field: str | None, limit: int = 97):
    """Follow pages until has_more is false; return the items in the order seen."""
    seen: list[dict] = []
    offset = 0
    url = f"{INVITATIONS}?limit={limit}&{query}"
    while True:
        if cursor_field is None:
            page_url = f"{url}&offset={offset}"
        elif seen:
            anchor = seen[-1]["id"] if cursor_field == "starting_after" else seen[0]["id"]
            page_url = f"{url}&{cursor_field}={anchor}"
        else:
            page_url = url
        body = world.client.get(
            page_url, headers={"Authorization": f"Bearer {world.org_key}"}
        ).get_json()
        if cursor_field == "ending_before":
            seen[:0] = body["data"]
        else:
            seen.extend(body["data"])
        offset += len(body["data"])
        if not body["has_more"]:
            return seen, body


def _sort_key(item: dict, field: str):
    return (item[field] if field == "email" else item["created_at"], item["id"])


def test_offset_and_cursor_walks_visit_every_row_once_in_order(make_app, backend):
    world = build_world(make_app(backend))
    statuses = _seed(world.app)
    for order, field, reverse in [
        ("-created_at", "created_at", True),
        ("email", "email", False),
    ]:
        for cursor in (None, "starting_after"):
            seen, last = _walk(world, f"order_by={order}", cursor)
            ids = [i["id"] for i in seen]
            assert len(ids) == len(set(ids)) == ROWS, (order, cursor)
            assert set(ids) == set(statuses)
            keys = [_sort_key(i, field) for i in seen]
            assert keys == sorted(keys, reverse=reverse), (order, cursor)
            assert last["total_count"] == ROWS


def test_filtered_walks_and_backwards_walk(make_app, backend):
    world = build_world(make_app(backend))
    statuses = _seed(world.app)
    wanted = {i for i, s in statuses.items() if s in ("accepted", "revoked")}
    for cursor in (None, "starting_after"):
        seen, last = _walk(world, "status=accepted,revoked", cursor)
        ids = [i["id"] for i in seen]
        assert len(ids) == len(set(ids)) and set(ids) == wanted
        assert {i["status"] for i in seen} == {"accepted", "revoked"}
        assert last["total_count"] == len(wanted)
    # Start from the oldest page and walk back up with ending_before.
    oldest = world.client.get(
        f"{INVITATIONS}?order_by=created_at&limit=50&status=pending",
        headers={"Authorization": f"Bearer {world.org_key}"},
    ).get_json()["data"]
    start = oldest[0]["id"]
    seen: list[dict] = []
    body = world.client.get(
        f"{INVITATIONS}?limit=61&status=pending&ending_before={start}",
        headers={"Authorization": f"Bearer {world.org_key}"},
    ).get_json()
    seen = body["data"]
    while body["has_more"]:
        body = world.client.get(
            f"{INVITATIONS}?limit=61&status=pending&ending_before={seen[0]['id']}",
            headers={"Authorization": f"Bearer {world.org_key}"},
        ).get_json()
        seen = body["data"] + seen
    pending = {i for i, s in statuses.items() if s == "pending"}
    ids = [i["id"] for i in seen]
    assert len(ids) == len(set(ids)) == len(pending) - 1  # all but the oldest
    keys = [_sort_key(i, "created_at") for i in seen]
    assert keys == sorted(keys, reverse=True)


def test_cursor_walk_is_exact_while_invitations_are_created(make_app, backend):
    world = build_world(make_app(backend))
    statuses = _seed(world.app, 2000)
    stop = threading.Event()
    created: list[str] = []

    def keep_inviting() -> None:
        client = world.app.test_client()
        n = 0
        while not stop.is_set():
            response = client.post(
                INVITATIONS,
                json={"email": f"late{n}@example.com"},
                headers={"Authorization": f"Bearer {world.org_key}"},
            )
            assert response.status_code == 201, response.get_data(as_text=True)
            created.append(response.get_json()["id"])
            n += 1

    writer = threading.Thread(target=keep_inviting)
    writer.start()
    try:
        seen, _ = _walk(world, "order_by=-created_at", "starting_after", limit=50)
    finally:
        stop.set()
        writer.join()
    assert created, "the writer should have created invitations during the walk"
    ids = [i["id"] for i in seen]
    assert len(ids) == len(set(ids))
    # Every row that existed before the walk is visited once; new ones are newer than
    # the first page, so a newest-first walk that already passed them never sees them.
    assert set(statuses) <= set(ids)
    keys = [_sort_key(i, "created_at") for i in seen]
    assert keys == sorted(keys, reverse=True)
