"""PostgreSQL plans the API's list page once per connection (a generic plan), not at
every request: a bound LIMIT hid the page's cost from the planner, which then planned
each run anew (on a list page that cost more than running it)."""

from __future__ import annotations

from sqlalchemy import text

from tests.api_support import build_world
from webapp.extensions import db
from webapp.models import Invitation

# Enough rows that a page's plan matters: with a handful, any plan costs next to nothing
# and PostgreSQL keeps the generic one whatever the statement.
ROWS = 50_000


def _copies_of(app, invitation_id: str, count: int) -> None:
    """``count`` copies of an invitation (new ids, addresses and times), then ANALYZE."""
    unique = {"id", "email", "email_key", "token_hash", "created_at"}
    others = [c.name for c in Invitation.__table__.columns if c.name not in unique]
    with app.app_context():
        db.session.execute(
            text(
                f"INSERT INTO invitations (id, email, email_key, token_hash, created_at, "
                f"{', '.join(others)}) "
                "SELECT 'inv_copy' || n, 'copy' || n || '@example.com', "
                "'copy' || n || '@example.com', md5('copy' || n), "
                "created_at - n * interval '1 second', "
                f"{', '.join(others)} FROM invitations, generate_series(1, :count) AS n "
                "WHERE id = :id"
            ),
            {"id": invitation_id, "count": count},
        )
        db.session.commit()
    with app.app_context(), db.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.execute(text("ANALYZE invitations"))


PAGE = "/organizations/acme/invitations"


def _plans_of_page_statements(app) -> list[tuple[str, int, int]]:
    with app.app_context():
        rows = db.session.execute(
            text(
                "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement LIKE 'SELECT invitations.id%'"
            )
        ).all()
        db.session.rollback()
    return [tuple(row) for row in rows]


def test_list_pages_run_on_a_generic_plan(make_app):
    # One pooled connection: every request and the check below use the same one (the
    # plans are kept per connection).
    app = make_app("postgresql", DATABASE_POOL_SIZE=1)
    api = build_world(app)
    api.invite("ada@example.com")
    first = api.invite("grace@example.com")["id"]
    _copies_of(app, first, ROWS)
    queries = ["", "?status=pending", f"?starting_after={first}", "?limit=5"]
    for query in queries:
        for _ in range(12):  # psycopg prepares a statement at its 5th run
            response = api.call("GET", PAGE + query)
            assert response.status_code == 200, response.get_json()
    plans = _plans_of_page_statements(app)
    assert len(plans) >= 3, plans  # first page, status filter, cursor (and page sizes)
    for statement, generic, _custom in plans:
        assert generic > 0, statement
