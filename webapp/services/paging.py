"""Newest-first keyset pages over ``(created_at, id)`` within one organization."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select
from sqlalchemy import tuple_
from sqlalchemy.orm import Session

from webapp.database import written_limit
from webapp.services.errors import ValidationFailed


def newest_first_page(
    session: Session,
    statement: Select[Any],
    model: Any,
    *,
    org_id: str,
    limit: int,
    starting_after: str | None,
    ending_before: str | None,
    noun: str,
) -> tuple[list[Any], bool]:
    """Run ``statement`` (already filtered) as one page; return ``(rows, has_more)``.

    ``starting_after``/``ending_before`` are row ids of ``model`` in ``org_id``; another
    organization's id is refused like an unknown one (naming the parameter).
    """
    key = tuple_(model.created_at, model.id)
    cursor = starting_after or ending_before
    backwards = bool(ending_before)
    if cursor:
        anchor = session.get(model, cursor)
        if anchor is None or anchor.org_id != org_id:
            name = "starting_after" if starting_after else "ending_before"
            raise ValidationFailed.single(
                name, "unknown_cursor", f"{cursor!r} is not {noun} in this list"
            )
        anchor_key = tuple_(anchor.created_at, anchor.id)
        statement = statement.where(key > anchor_key if backwards else key < anchor_key)
    order = (
        [model.created_at.asc(), model.id.asc()]
        if backwards
        else [model.created_at.desc(), model.id.desc()]
    )
    rows = list(session.scalars(statement.order_by(*order).limit(written_limit(limit + 1))))
    has_more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    return rows, has_more
