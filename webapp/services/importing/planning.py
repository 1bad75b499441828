"""What an import would do with each row (the plan and its preview), and doing it.

Each row becomes an ``InvitationRequest`` and is checked by the same rules as a single
invite (``normalize_email`` and ``InvitationChecker``), then created through the same
write path (``create_checked_invitations``), batch by batch, each batch one transaction
with its audit events and outbox emails. The one-pending-per-address index, not a
lookup, is what keeps a re-import or a concurrent import from inviting anyone twice.
"""

from __future__ import annotations

import gc
import json
import logging
import math
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from webapp.clock import utcnow
from webapp.database import end_sqlite_bulk_writes
from webapp.database import sqlite_bulk_batch
from webapp.models import Invitation
from webapp.models import InvitationStatus
from webapp.models import Membership
from webapp.models import Organization
from webapp.models import Project
from webapp.models import User
from webapp.services.actors import Actor
from webapp.services.counters import status_totals
from webapp.services.errors import FieldError
from webapp.services.errors import QuotaExceeded
from webapp.services.importing.parsing import ParsedFile
from webapp.services.importing.parsing import SourceRow
from webapp.services.invitations import PROJECT_ROLES
from webapp.services.invitations import CheckedRequest
from webapp.services.invitations import InvitationChecker
from webapp.services.invitations import InvitationRequest
from webapp.services.invitations import NewInvitationRows
from webapp.services.invitations import check_quota
from webapp.services.invitations import create_checked_invitations
from webapp.services.invitations import is_pending_by_address
from webapp.services.invitations import member_keys
from webapp.services.invitations import new_invitation_rows
from webapp.services.organizations import unknown_role_error
from webapp.services.validation import normalize_email

log = logging.getLogger("orginvites.import")

WILL_INVITE = "will_invite"
INVITED = "invited"
INVALID_EMAIL = "invalid_email"
DUPLICATE = "duplicate"
ALREADY_INVITED = "already_invited"
ALREADY_MEMBER = "already_member"
UNKNOWN_ROLE = "unknown_role"
REDIRECT_NOT_ALLOWED = "redirect_not_allowed"
BAD_EXPIRY = "bad_expiry"
BAD_METADATA = "bad_metadata"
BAD_PROJECTS = "bad_projects"
OVER_QUOTA = "over_quota"

# Every verdict a preview shows, in the order totals are listed.
VERDICTS = {
    WILL_INVITE: "will invite",
    INVALID_EMAIL: "invalid email",
    DUPLICATE: "duplicate in this file",
    ALREADY_INVITED: "already invited (pending)",
    ALREADY_MEMBER: "already a member",
    UNKNOWN_ROLE: "unknown role",
    REDIRECT_NOT_ALLOWED: "redirect not allowed",
    BAD_EXPIRY: "bad expiry",
    BAD_METADATA: "bad metadata",
    BAD_PROJECTS: "bad projects",
}
# What an import did with each row.
OUTCOMES = {INVITED: "invited", **{k: v for k, v in VERDICTS.items() if k != WILL_INVITE}}
OUTCOMES[OVER_QUOTA] = "over the quota"
# Totals are listed in this order: what happens, then what is skipped, then what failed.
COUNT_ORDER = tuple(dict.fromkeys((WILL_INVITE, INVITED, *VERDICTS, *OUTCOMES)))
SKIPPED = (DUPLICATE, ALREADY_INVITED, ALREADY_MEMBER)
FAILED = (
    INVALID_EMAIL,
    UNKNOWN_ROLE,
    REDIRECT_NOT_ALLOWED,
    BAD_EXPIRY,
    BAD_METADATA,
    BAD_PROJECTS,
    OVER_QUOTA,
)
# A row with several problems gets the first verdict of this order (all are described).
_FIELD_VERDICTS = {
    "email": INVALID_EMAIL,
    "role": UNKNOWN_ROLE,
    "redirect_url": REDIRECT_NOT_ALLOWED,
    "expires_in": BAD_EXPIRY,
    "expires_at": BAD_EXPIRY,
    "expires_in_days": BAD_EXPIRY,
    "public_metadata": BAD_METADATA,
    "private_metadata": BAD_METADATA,
    "projects": BAD_PROJECTS,
}
_PRIORITY = {code: n for n, code in enumerate(VERDICTS)}
BATCH_SIZE = 2000
LOOKUP_CHUNK = 1000
RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock, serialization failure (PostgreSQL)


@dataclass(frozen=True)
class ImportDefaults:
    """What rows that leave a field empty get (None: the organization's default)."""

    role: str | None = None
    expires_in: timedelta | None = None
    redirect_url: str | None = None
    notify: bool = True


@dataclass(slots=True)
class PlannedRow:
    """One row's verdict (then outcome) and, for a valid row, its checked request."""

    source: SourceRow
    email: str
    verdict: str
    detail: str = ""
    checked: CheckedRequest | None = None
    key: str = ""

    @property
    def label(self) -> str:
        return OUTCOMES.get(self.verdict) or VERDICTS[self.verdict]


@dataclass
class ImportPlan:
    parsed: ParsedFile
    defaults: ImportDefaults
    rows: list[PlannedRow]
    now: datetime

    def counts(self) -> dict[str, int]:
        counts = Counter(r.verdict for r in self.rows)
        return {code: counts[code] for code in COUNT_ORDER if counts[code]}

    def valid_rows(self) -> list[PlannedRow]:
        return [r for r in self.rows if r.checked is not None]

    def failures(self) -> Iterator[PlannedRow]:
        """Rows that need fixing (the error report), in file order."""
        return (r for r in self.rows if r.verdict in FAILED)


def verdict_label(code: str) -> str:
    return OUTCOMES.get(code) or VERDICTS.get(code, code)


class _RowReader:
    """Turns a row's cells into an InvitationRequest (problems of the CSV text itself
    come back as FieldErrors, like the service's own)."""

    def __init__(self, session: Session, org: Organization, parsed: ParsedFile, defaults):
        self.org = org
        self.defaults = defaults
        self.email = parsed.index_of("email")
        self.role = parsed.index_of("role")
        self.redirect = parsed.index_of("redirect_url")
        self.expiry = parsed.index_of("expires_in_days")
        self.projects = parsed.index_of("projects")
        self.metadata_json = {
            scope: parsed.index_of(scope) for scope in ("public_metadata", "private_metadata")
        }
        self.metadata_keys = [
            (c.field, c.metadata_key, c.index) for c in parsed.columns if c.metadata_key
        ]
        roles = [r.key for r in org.roles]
        self.role_by_folded: dict[str, str] = {}
        for key in roles:
            folded = key.casefold()
            # Only an unambiguous case-insensitive match is taken ("Admin" → admin).
            self.role_by_folded[folded] = key if folded not in self.role_by_folded else ""
        self.exact_roles = set(roles)
        self._project_ids: dict[str, str] | None = None
        self._session = session
        self._grants: dict[str, list[dict[str, str]]] = {}

    @staticmethod
    def _cell(cells: tuple[str, ...], index: int | None) -> str:
        if index is None or index >= len(cells):
            return ""
        return cells[index]

    def email_of(self, row: SourceRow) -> str:
        return self._cell(row.cells, self.email if row.column == 0 else 0)

    def request(self, row: SourceRow) -> tuple[InvitationRequest, list[FieldError]]:
        cells = row.cells
        problems: list[FieldError] = []
        role = self._cell(cells, self.role) or self.defaults.role
        if role and role not in self.exact_roles:
            role = self.role_by_folded.get(role.casefold()) or role
        expires_in = self.defaults.expires_in
        days = self._cell(cells, self.expiry)
        if days:
            expires_in = _days(days, problems)
        public, private = self._metadata(cells, problems)
        grants = None
        projects = self._cell(cells, self.projects)
        if projects:
            grants = self._project_grants(projects)
        request = InvitationRequest(
            email=self.email_of(row),
            role=role or None,
            expires_in=expires_in,
            redirect_url=self._cell(cells, self.redirect) or self.defaults.redirect_url,
            public_metadata=public,
            private_metadata=private,
            project_grants=grants,
            notify=self.defaults.notify,
        )
        return request, problems

    def _metadata(self, cells, problems) -> tuple[dict | None, dict | None]:
        found: dict[str, dict[str, Any] | None] = {}
        for scope, index in self.metadata_json.items():
            text = self._cell(cells, index)
            if not text:
                continue
            try:
                value = json.loads(text)
            except ValueError:
                value = None
            if not isinstance(value, dict):
                problems.append(
                    FieldError(
                        scope,
                        "invalid_metadata",
                        f'{scope} {_shown(text)} is not a JSON object like {{"team": "red"}}',
                    )
                )
                continue
            found[scope] = value
        for scope, key, index in self.metadata_keys:
            text = self._cell(cells, index)
            if text:
                target = found.setdefault(scope, {})
                if target is not None:
                    target[key] = text
        return found.get("public_metadata"), found.get("private_metadata")

    def _project_ids_by_name(self) -> dict[str, str]:
        if self._project_ids is None:
            self._project_ids = {}
            for project_id, name in self._session.execute(
                select(Project.id, Project.name).where(Project.org_id == self.org.id)
            ):
                self._project_ids[project_id] = project_id
                self._project_ids.setdefault(name.casefold(), project_id)
        return self._project_ids

    def _project_grants(self, text: str) -> list[dict[str, str]]:
        """``proj_1; Research:owner`` (ids or names, each optionally ``:member|owner``).

        A name that is no project of the organization is passed on as it is, for the
        service's rule to refuse.
        """
        cached = self._grants.get(text)
        if cached is not None:
            return cached
        grants: list[dict[str, str]] = []
        known = self._project_ids_by_name()
        for item in (part.strip() for part in text.replace("|", ";").split(";")):
            if not item:
                continue
            name, colon, role = item.rpartition(":")
            if not colon or role.strip().lower() not in PROJECT_ROLES:
                name, role = item, "member"
            name = name.strip()
            project_id = known.get(name) or known.get(name.casefold()) or name
            grants.append({"project_id": project_id, "role": role.strip().lower()})
        self._grants[text] = grants
        return grants


def _days(text: str, problems: list[FieldError]) -> timedelta | None:
    try:
        days = float(text.replace(",", "."))
    except ValueError:
        days = math.nan
    if not math.isfinite(days) or days <= 0:
        problems.append(
            FieldError(
                "expires_in_days",
                "invalid_expiry",
                f"expires_in_days {_shown(text)} is not a number of days (1 to 30)",
            )
        )
        return None
    return timedelta(days=min(days, 36500))


def _shown(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _verdict(errors: Sequence[FieldError]) -> tuple[str, str]:
    codes = [_FIELD_VERDICTS.get(e.field, BAD_METADATA) for e in errors]
    verdict = min(codes, key=lambda c: _PRIORITY[c])
    return verdict, "; ".join(e.message for e in errors)


def plan_import(
    session: Session,
    org: Organization,
    parsed: ParsedFile,
    defaults: ImportDefaults,
    *,
    now: datetime | None = None,
    look_up: bool = True,
) -> ImportPlan:
    """Give every row its verdict; changes nothing in the database.

    In order: the address (``normalize_email``), duplicates within the file (the first
    row with an address claims it), what the database knows (a member, a pending
    invitation that has not lapsed), then every other field rule (``InvitationChecker``).
    A row that will be skipped anyway is not checked further, so importing a file again
    costs little.

    ``look_up=False`` leaves members and pending invitations to the import's batches
    (which check them anyway): the rows to import then depend on the file and the
    organization's settings only, so a job that resumes finds them in the same order.
    """
    now = now or utcnow()
    reader = _RowReader(session, org, parsed, defaults)
    first_row_of: dict[str, int] = {}
    rows: list[PlannedRow] = []
    fresh: list[PlannedRow] = []
    for source in parsed.rows:
        raw = reader.email_of(source)
        normalized = normalize_email(raw)
        if isinstance(normalized, FieldError):
            rows.append(PlannedRow(source, raw, INVALID_EMAIL, normalized.message))
            continue
        email, key = normalized
        first = first_row_of.get(key)
        if first is not None:
            rows.append(
                PlannedRow(source, email, DUPLICATE, f"{email} is already on row {first:,}")
            )
            continue
        first_row_of[key] = source.number
        row = PlannedRow(source, email, WILL_INVITE, key=key)
        rows.append(row)
        fresh.append(row)
    del first_row_of
    members, pending = (
        existing_addresses(session, org, [r.key for r in fresh], now) if look_up else ((), ())
    )
    checker = InvitationChecker(session, org, now)
    for row in fresh:
        if row.key in members:
            row.verdict, row.detail = (
                ALREADY_MEMBER,
                f"{row.email} is already a member of {org.name}",
            )
            continue
        if row.key in pending:
            row.verdict, row.detail = (
                ALREADY_INVITED,
                f"{row.email} already has a pending invitation",
            )
            continue
        request, problems = reader.request(row.source)
        checked, errors = checker.problems(request, skip_email=True)
        if problems or errors:
            row.verdict, row.detail = _verdict(problems + errors)
            continue
        assert checked is not None
        checked.email, checked.email_key = row.email, row.key
        row.checked = checked
    return ImportPlan(parsed, defaults, rows, now)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def live_pending_keys(
    session: Session, org_id: str, email_keys: Sequence[str], now: datetime
) -> set[str]:
    """Addresses with a pending invitation that has not lapsed (what a reader sees).

    The expiry is compared here, not in SQL: with it in the WHERE clause SQLite's planner
    walks the org's (status, expires_at) index, every pending row, once per chunk.
    """
    rows = session.execute(
        select(Invitation.email_key, Invitation.expires_at).where(
            Invitation.org_id == org_id,
            is_pending_by_address(),
            Invitation.email_key.in_(list(email_keys)),
        )
    )
    return {key for key, expires_at in rows if expires_at > now}


def existing_addresses(
    session: Session, org: Organization, email_keys: Sequence[str], now: datetime
) -> tuple[set[str], set[str]]:
    """``(members, pending)``: which of these addresses are members of the organization,
    and which have a pending invitation there that has not lapsed.

    A file as large as a good part of what the organization has is answered by reading
    its pending invitations (or members) once; a small one by lookups of its addresses.
    """
    wanted = set(email_keys)
    if not wanted:
        return set(), set()
    pending_total = status_totals(session, org.id, now)[InvitationStatus.PENDING.value]
    if pending_total <= 4 * len(wanted):
        rows = session.execute(
            select(Invitation.email_key).where(
                Invitation.org_id == org.id,
                Invitation.status == InvitationStatus.PENDING.value,
                Invitation.expires_at > now,
            )
        )
        pending = {key for (key,) in rows if key in wanted}
    else:
        pending = set()
        for chunk in _chunks(list(wanted), LOOKUP_CHUNK):
            pending |= live_pending_keys(session, org.id, chunk, now)
    member_total = session.scalar(
        select(func.count()).select_from(Membership).where(Membership.org_id == org.id)
    )
    if member_total <= 4 * len(wanted):
        members = {
            key
            for key in session.scalars(
                select(User.email_key)
                .join(Membership, Membership.user_id == User.id)
                .where(Membership.org_id == org.id)
            )
            if key in wanted
        }
    else:
        members = set()
        for chunk in _chunks(list(wanted), LOOKUP_CHUNK):
            members |= member_keys(session, org.id, chunk)
    return members, pending


@dataclass
class QuotaCheck:
    """Whether ``adding`` more pending invitations fit the organization's quota."""

    adding: int
    pending: int
    quota: int | None
    message: str | None = None

    @property
    def room(self) -> int | None:
        return None if self.quota is None else max(0, self.quota - self.pending)


def quota_check(
    session: Session, org: Organization, adding: int, now: datetime | None = None
) -> QuotaCheck:
    """The invite quota rule (``check_quota``) for a whole import, with a clear message."""
    now = now or utcnow()
    pending = status_totals(session, org.id, now)[InvitationStatus.PENDING.value]
    result = QuotaCheck(adding, pending, org.invite_quota)
    try:
        check_quota(session, org, now, adding=adding)
    except QuotaExceeded:
        result.message = (
            f"This import would add {adding:,} pending invitations, but {org.name} has "
            f"{pending:,} pending of its quota of {org.invite_quota:,}: at most "
            f"{result.room:,} more can be added. Remove rows from the file or raise the "
            "quota in the organization's settings."
        )
    return result


@dataclass
class Preview:
    plan: ImportPlan
    counts: dict[str, int]
    quota: QuotaCheck

    @property
    def will_invite(self) -> int:
        return self.counts.get(WILL_INVITE, 0)


def preview_import(session: Session, org: Organization, plan: ImportPlan) -> Preview:
    """Totals by verdict and whether the rows to invite fit the organization's quota."""
    counts = plan.counts()
    return Preview(plan, counts, quota_check(session, org, counts.get(WILL_INVITE, 0), plan.now))


@dataclass
class ImportResult:
    counts: Counter = field(default_factory=Counter)
    stopped: str | None = None

    def add(self, rows: Sequence[PlannedRow]) -> None:
        self.counts.update(r.verdict for r in rows)

    def totals(self) -> dict[str, int]:
        """``{outcome: rows}`` in the listing order (invited first)."""
        return {code: self.counts[code] for code in COUNT_ORDER if self.counts[code]}


def _candidates(rows: Sequence[PlannedRow]) -> list[PlannedRow]:
    """The rows of a batch that it tries to invite."""
    return [r for r in rows if r.checked is not None and r.verdict == WILL_INVITE]


class BatchRowsAhead:
    """Builds the rows of the next batch in a helper thread while this one is written.

    Building a batch's rows (ids, link tokens, seals, invitation, event and email rows
    converted for the driver: ``new_invitation_rows``) is about a fifth of an import's
    time and needs no database. While the database writes a batch, the writing thread
    waits on it with the GIL released (SQLite's statements, PostgreSQL's round trips),
    so the helper thread builds the next batch's rows meanwhile; that pays when a core
    is free (on a machine whose cores are all busy it was measured as neither faster
    nor slower). Rows built ahead are only used for exactly the requests they were
    built for (``take``); anything else builds its rows where it is written, as
    without this.
    """

    def __init__(
        self,
        session: Session,
        org: Organization,
        *,
        actor: Actor,
        source: str,
        now: datetime,
        event_data: dict[str, Any] | None,
    ) -> None:
        self._app = current_app._get_current_object()  # type: ignore[attr-defined]
        self._arguments = (actor, source, now, event_data)
        self._org_id = org.id
        self._dialect = session.get_bind().dialect.name
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-rows")
        # Batches being built, by their first request: (requests, future rows).
        self._building: dict[int, tuple[list[CheckedRequest], Future[NewInvitationRows]]] = {}

    def build(self, rows: Sequence[PlannedRow]) -> None:
        """Start building the rows of this batch (the one after the batch being written)."""
        requests = [r.checked for r in _candidates(rows)]
        if not requests or id(requests[0]) in self._building:
            return
        actor, source, now, event_data = self._arguments
        future = self._pool.submit(
            self._built,
            requests,  # type: ignore[arg-type]
            actor=actor,
            source=source,
            now=now,
            event_data=event_data,
        )
        self._building[id(requests[0])] = (requests, future)  # type: ignore[assignment]

    def _built(self, requests: list[CheckedRequest], **arguments: Any) -> NewInvitationRows:
        with self._app.app_context():  # the seals' key comes from the app's secret key
            return new_invitation_rows(self._org_id, requests, dialect=self._dialect, **arguments)

    def take(
        self, requests: Sequence[CheckedRequest], arguments: tuple[Any, ...]
    ) -> NewInvitationRows | None:
        """The rows built for exactly these requests and arguments (waiting for them), or
        None. Each build is taken once (a batch run again builds its rows anew)."""
        if not requests:
            return None
        entry = self._building.pop(id(requests[0]), None)
        if entry is None or arguments != self._arguments:
            return None
        built_for, future = entry
        if len(built_for) != len(requests) or any(
            a is not b for a, b in zip(built_for, requests, strict=True)
        ):
            return None
        return future.result()

    def close(self) -> None:
        self._building.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BatchRowsAhead:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def import_batch(
    session: Session,
    org: Organization,
    rows: Sequence[PlannedRow],
    *,
    actor: Actor,
    source: str,
    now: datetime,
    event_data: dict[str, Any] | None = None,
    ahead: BatchRowsAhead | None = None,
) -> None:
    """Create the invitations of one batch in the caller's transaction; set each outcome.

    Raises QuotaExceeded (nothing written) when the batch does not fit the quota. With
    ``ahead``, the batch's rows are taken from it if it built them.
    """
    candidates = _candidates(rows)
    if not candidates:
        return
    sqlite_bulk_batch(session)
    requests: list[CheckedRequest] = [r.checked for r in candidates]  # type: ignore[misc]
    built = ahead.take(requests, (actor, source, now, event_data)) if ahead else None
    outcome = create_checked_invitations(
        session,
        org,
        requests,
        actor=actor,
        source=source,
        now=now,
        event_data=event_data,
        rows=built,
    )
    for created in outcome.created:
        candidates[created.index].verdict = INVITED
    for index in outcome.already_invited:
        row = candidates[index]
        row.verdict, row.detail = ALREADY_INVITED, f"{row.email} already has a pending invitation"
    for index in outcome.already_member:
        row = candidates[index]
        row.verdict, row.detail = ALREADY_MEMBER, f"{row.email} is already a member of {org.name}"
    for index in outcome.unknown_role:
        row = candidates[index]
        row.verdict, row.detail = UNKNOWN_ROLE, unknown_role_error(org, row.checked.role).message


def mark_existing(session: Session, org: Organization, rows: Sequence[PlannedRow], now) -> None:
    """Mark the rows whose address is a member or has a pending invitation (as of now).

    For a job that planned without lookups: its batches then skip these rows cheaply
    instead of offering each to the unique index.
    """
    members, pending = existing_addresses(session, org, [r.key for r in rows], now)
    for row in rows:
        if row.key in members:
            row.verdict = ALREADY_MEMBER
            row.detail = f"{row.email} is already a member of {org.name}"
        elif row.key in pending:
            row.verdict = ALREADY_INVITED
            row.detail = f"{row.email} already has a pending invitation"


def mark_over_quota(rows: Sequence[PlannedRow], message: str) -> None:
    for row in rows:
        if row.verdict == WILL_INVITE:
            row.verdict, row.detail = OVER_QUOTA, message


def is_retryable(exc: DBAPIError) -> bool:
    """A deadlock or serialization failure: the batch's transaction can simply run again."""
    return getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES


def import_batch_committed(
    session: Session,
    org: Organization,
    rows: Sequence[PlannedRow],
    *,
    actor: Actor,
    source: str,
    now: datetime,
    event_data: dict[str, Any] | None = None,
    attempts: int = 3,
    ahead: BatchRowsAhead | None = None,
) -> str | None:
    """``import_batch`` then commit; retried on a deadlock. Returns a quota message if the
    batch did not fit (its rows are marked over the quota, nothing written)."""
    for attempt in range(1, attempts + 1):
        try:
            import_batch(
                session,
                org,
                rows,
                actor=actor,
                source=source,
                now=now,
                event_data=event_data,
                ahead=ahead,
            )
            session.commit()
            return None
        except QuotaExceeded as exc:
            session.rollback()
            mark_over_quota(rows, str(exc))
            return str(exc)
        except DBAPIError as exc:
            session.rollback()
            if attempt == attempts or not is_retryable(exc):
                raise
            log.warning("import.batch_retry attempt=%d reason=%s", attempt, exc.orig)
            for row in rows:
                if row.verdict == INVITED:
                    row.verdict, row.detail = WILL_INVITE, ""
    return None


def refresh_statistics(session: Session, rows_to_come: int) -> None:
    """ANALYZE invitations on PostgreSQL once a large import's first batch is in.

    Until autovacuum gets to it (after a tenth of the table has changed), the planner
    judges the organization by what it had before the import, often almost nothing, and
    may look addresses up by walking its (org_id, status) index: every pending row, for
    each batch. Fresh statistics make it probe (org_id, email_key). SQLite has no such
    statistics to refresh (see ``is_pending_by_address``).
    """
    if rows_to_come > 2 * LOOKUP_CHUNK and session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE invitations"))
        session.commit()


@contextmanager
def gc_skips_existing_objects() -> Iterator[None]:
    """While importing: the garbage collector leaves the objects that exist now alone.

    An import holds the parsed file and its plan (millions of objects) while each batch
    makes thousands of rows that live through several young collections; every few
    batches that promotes enough of them to trigger a full collection, which walks the
    whole plan again (about 0.14 s each, half a second per 100,000-row import). Frozen
    objects (``gc.freeze``) are skipped by every collection; what the import and other
    threads create meanwhile is collected as usual, and the frozen objects go back to
    the oldest generation afterwards. Left as it is when something else froze objects.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run_import(
    session: Session,
    org: Organization,
    plan: ImportPlan,
    *,
    actor: Actor,
    source: str,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int, int], None] | None = None,
    event_data: dict[str, Any] | None = None,
) -> ImportResult:
    """Import every valid row of the plan, one committed transaction per batch.

    Stops at the first batch that would pass the quota; that batch and the rest are
    reported as over the quota. ``progress(done, total)`` follows the valid rows.
    """
    valid = plan.valid_rows()
    result = ImportResult()
    done = 0
    chunks = list(_chunks(valid, batch_size))
    try:
        with (
            gc_skips_existing_objects(),
            BatchRowsAhead(
                session, org, actor=actor, source=source, now=plan.now, event_data=event_data
            ) as ahead,
        ):
            for number, chunk in enumerate(chunks):
                if result.stopped:
                    mark_over_quota(chunk, result.stopped)
                else:
                    if number + 1 < len(chunks):
                        ahead.build(chunks[number + 1])
                    result.stopped = import_batch_committed(
                        session,
                        org,
                        chunk,
                        actor=actor,
                        source=source,
                        now=plan.now,
                        event_data=event_data,
                        ahead=ahead,
                    )
                    if done == 0:
                        refresh_statistics(session, len(valid) - len(chunk))
                done += len(chunk)
                if progress:
                    progress(done, len(valid))
    finally:
        if len(valid) > batch_size:
            end_sqlite_bulk_writes(session)
    result.add(plan.rows)
    return result
