"""Organizations: creation, lookup, settings, roles and projects."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from sqlalchemy import Select
from sqlalchemy import bindparam
from sqlalchemy import exists
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm import selectinload

from webapp.clock import utcnow
from webapp.database import begin_writes
from webapp.ids import new_id
from webapp.models import Invitation
from webapp.models import InvitationStatus
from webapp.models import Membership
from webapp.models import Organization
from webapp.models import OrgRole
from webapp.models import Project
from webapp.models import User
from webapp.services.actors import Actor
from webapp.services.audit import record_event
from webapp.services.counters import create_counters
from webapp.services.errors import Conflict
from webapp.services.errors import FieldError
from webapp.services.errors import NotFound
from webapp.services.errors import ValidationFailed
from webapp.services.prepared import PreparedStatement
from webapp.services.prepared import WholeRow
from webapp.services.validation import check_redirect_url
from webapp.services.validation import clean_text
from webapp.services.validation import normalize_origin
from webapp.services.validation import required_text

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
ROLE_KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_:.-]{0,63}$")
MIN_EXPIRY_SECONDS = 3600
MAX_EXPIRY_SECONDS = 30 * 24 * 3600
# Pending invitations an organization may hold at once, at most (a 32-bit column).
MAX_INVITE_QUOTA = 1_000_000_000
DEFAULT_ROLES = (("admin", "Admin", True), ("member", "Member", False))
MAX_ROLE_NAME_LENGTH = 100
# The settings an ``org.updated`` audit event reports, before and after.
AUDITED_SETTINGS = (
    "name",
    "default_role",
    "default_expiry_seconds",
    "allowed_redirect_origins",
    "default_redirect_url",
    "invite_quota",
)


@dataclass(frozen=True)
class RoleSpec:
    key: str
    name: str
    is_admin: bool = False


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:64].strip("-") or "org"


def _check_role_key(key: object, field: str = "role") -> str | FieldError:
    if not isinstance(key, str) or not ROLE_KEY_PATTERN.match(key):
        return FieldError(
            field,
            "invalid_role_key",
            f"{key!r} is not a valid role key (lower-case letters, digits, _ : . -; "
            "starting with a letter; at most 64 characters)",
        )
    return key


def create_organization(
    session: Session,
    *,
    name: str,
    slug: str | None = None,
    roles: Sequence[RoleSpec] | None = None,
    default_role: str | None = None,
) -> Organization:
    """Create an organization with its roles (default ``admin`` and ``member``) and counters."""
    errors: list[FieldError] = []
    clean_name = required_text(name, "name", 200)
    if isinstance(clean_name, FieldError):
        errors.append(clean_name)
        clean_name = ""
    slug = slug.strip().lower() if slug else slugify(clean_name or "")
    if not SLUG_PATTERN.match(slug):
        errors.append(
            FieldError(
                "slug",
                "invalid_slug",
                f"{slug!r} is not a valid slug (lower-case letters, digits and hyphens)",
            )
        )
    role_specs = list(roles) if roles else [RoleSpec(*r) for r in DEFAULT_ROLES]
    for spec in role_specs:
        checked = _check_role_key(spec.key, "roles")
        if isinstance(checked, FieldError):
            errors.append(checked)
    keys = [r.key for r in role_specs]
    if len(set(keys)) != len(keys):
        errors.append(FieldError("roles", "duplicate_role", "role keys must be unique"))
    default_role = default_role or next(
        (r.key for r in role_specs if not r.is_admin), role_specs[0].key
    )
    if default_role not in keys:
        errors.append(
            FieldError("default_role", "unknown_role", f"{default_role!r} is not one of {keys}")
        )
    if errors:
        raise ValidationFailed(errors)
    if session.scalar(select(exists().where(Organization.slug == slug))):
        raise Conflict(f"an organization with slug {slug!r} already exists", code="slug_taken")

    org = Organization(
        id=new_id("org"),
        name=clean_name,
        slug=slug,
        default_role=default_role,
        allowed_redirect_origins=[],
        public_metadata={},
    )
    org.roles = [
        OrgRole(key=r.key, name=r.name, is_admin=r.is_admin, position=i)
        for i, r in enumerate(role_specs)
    ]
    try:
        with session.begin_nested():
            session.add(org)
            session.flush()
    except IntegrityError:
        raise Conflict(
            f"an organization with slug {slug!r} already exists", code="slug_taken"
        ) from None
    create_counters(session, org.id)
    return org


def admin_role(org: Organization) -> OrgRole | None:
    """The organization's first role that administers it (None if no role does)."""
    return next((r for r in org.roles if r.is_admin), None)


def add_admin_member(
    session: Session, org: Organization, user: User, *, actor: Actor
) -> Membership:
    """Make ``user`` a member of ``org`` with its first admin role (e.g. its creator)."""
    role = admin_role(org)
    if role is None:
        raise Conflict(f"{org.name} has no admin role", code="no_admin_role")
    if session.scalar(
        select(exists().where(Membership.org_id == org.id, Membership.user_id == user.id))
    ):
        raise Conflict(f"{user.email} is already a member of {org.name}", code="already_member")
    now = utcnow()
    membership = Membership(
        id=new_id("mem"),
        org_id=org.id,
        user_id=user.id,
        role=role.key,
        public_metadata={},
        private_metadata={},
        created_at=now,
        updated_at=now,
    )
    session.add(membership)
    session.flush()
    record_event(
        session,
        "member.added",
        actor=actor,
        org_id=org.id,
        data={"user_id": user.id, "email": user.email, "role": role.key},
    )
    return membership


def get_organization(session: Session, ref: str, *, with_roles: bool = True) -> Organization:
    """Find an organization by slug or id, or raise NotFound naming the reference.

    ``with_roles=False`` skips loading the roles up front (they load when first used),
    and reads the row with a prepared statement (every API request looks its
    organization up).
    """
    if not with_roles and isinstance(ref, str):
        rows = _ORGANIZATION_BY_REF.run(session.connection(), {"ref": ref})
        if not rows:
            raise NotFound(f"no organization {ref!r}")
        return _ORGANIZATION_ROW.attach(session, rows[0])
    org = session.scalar(_organization_statement(with_roles), {"ref": ref})
    if org is None:
        raise NotFound(f"no organization {ref!r}")
    return org


_ORGANIZATION_ROW = WholeRow(Organization)
_ORGANIZATION_BY_REF = PreparedStatement(
    lambda: select(*_ORGANIZATION_ROW.columns).where(
        or_(Organization.slug == bindparam("ref"), Organization.id == bindparam("ref"))
    )
)


@cache
def _organization_statement(with_roles: bool) -> Select:
    """Built once: most requests look their organization up by the URL's reference."""
    ref = bindparam("ref")
    statement = select(Organization).where(or_(Organization.slug == ref, Organization.id == ref))
    if with_roles:
        statement = statement.options(selectinload(Organization.roles))
    return statement


def list_organizations(session: Session) -> list[Organization]:
    return list(
        session.scalars(
            select(Organization)
            .order_by(Organization.name)
            .options(selectinload(Organization.roles))
        )
    )


def organizations_by_id(session: Session, ids: Sequence[str]) -> dict[str, Organization]:
    """The organizations with these ids, in one query (for lists that span organizations)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    return {
        org.id: org
        for org in session.scalars(select(Organization).where(Organization.id.in_(wanted)))
    }


# "Leave as it is" (None means: clear it) for the settings that can be cleared.
UNSET = object()


def update_organization(
    session: Session,
    org: Organization,
    *,
    name: str | None = None,
    default_role: str | None = None,
    default_expiry_seconds: int | None = None,
    allowed_redirect_origins: Sequence[str] | None = None,
    add_redirect_origins: Sequence[str] = (),
    default_redirect_url: object = UNSET,
    invite_quota: object = UNSET,
    actor: Actor | None = None,
) -> Organization:
    """Change settings; every value is checked and all problems are reported together.

    With an ``actor``, a change is recorded as ``org.updated`` (nothing when nothing changed).
    On ValidationFailed the caller rolls back: some attributes may already be assigned.
    """
    before = _settings_of(org)
    errors: list[FieldError] = []
    if name is not None:
        clean = required_text(name, "name", 200)
        if isinstance(clean, FieldError):
            errors.append(clean)
        else:
            org.name = clean
    if default_role is not None:
        _lock_roles(session, org)
        if not role_exists(session, org, default_role):
            errors.append(
                FieldError(
                    "default_role",
                    "unknown_role",
                    f"{default_role!r} is not one of {[r.key for r in org.roles]}",
                )
            )
        else:
            org.default_role = default_role
    if default_expiry_seconds is not None:
        if not MIN_EXPIRY_SECONDS <= default_expiry_seconds <= MAX_EXPIRY_SECONDS:
            errors.append(
                FieldError(
                    "default_expiry",
                    "expiry_out_of_range",
                    "the default expiry must be between 1 hour and 30 days",
                )
            )
        else:
            org.default_expiry_seconds = default_expiry_seconds
    if allowed_redirect_origins is not None or add_redirect_origins:
        origins = list(org.allowed_redirect_origins if allowed_redirect_origins is None else [])
        for raw in list(allowed_redirect_origins or []) + list(add_redirect_origins):
            origin = normalize_origin(raw)
            if isinstance(origin, FieldError):
                errors.append(origin)
            elif origin not in origins:
                origins.append(origin)
        org.allowed_redirect_origins = origins
    if default_redirect_url is not UNSET:
        if default_redirect_url in (None, ""):
            org.default_redirect_url = None
        else:
            checked = check_redirect_url(
                default_redirect_url, org.allowed_redirect_origins, "default_redirect_url"
            )
            if isinstance(checked, FieldError):
                errors.append(checked)
            else:
                org.default_redirect_url = checked
    if invite_quota is not UNSET:
        if invite_quota is not None and (
            not isinstance(invite_quota, int)
            or isinstance(invite_quota, bool)
            or not 0 <= invite_quota <= MAX_INVITE_QUOTA
        ):
            errors.append(
                FieldError(
                    "invite_quota",
                    "invalid",
                    f"the quota must be a whole number from 0 to {MAX_INVITE_QUOTA:,}, "
                    f"not {invite_quota!r}",
                )
            )
        else:
            org.invite_quota = invite_quota
    if errors:
        raise ValidationFailed(errors)
    session.flush()
    if actor is not None:
        _record_settings_change(session, org, before, actor)
    return org


def _settings_of(org: Organization) -> dict[str, object]:
    return {
        name: list(value) if isinstance(value, list) else value
        for name in AUDITED_SETTINGS
        for value in [getattr(org, name)]
    }


def _record_settings_change(
    session: Session, org: Organization, before: dict[str, object], actor: Actor
) -> None:
    """One ``org.updated`` event listing each changed setting as ``{"from", "to"}``."""
    after = _settings_of(org)
    changes = {
        name: {"from": before[name], "to": after[name]}
        for name in AUDITED_SETTINGS
        if before[name] != after[name]
    }
    if changes:
        record_event(session, "org.updated", actor=actor, org_id=org.id, data={"changes": changes})


def add_redirect_origin(
    session: Session, org: Organization, origin: str, *, actor: Actor | None = None
) -> str:
    """Allow one more redirect origin; returns it in canonical form (``https://host[:port]``)."""
    checked = normalize_origin(origin, "origin")
    if isinstance(checked, FieldError):
        raise ValidationFailed([checked])
    if checked in org.allowed_redirect_origins:
        raise ValidationFailed.single("origin", "duplicate_origin", f"{checked} is already allowed")
    before = _settings_of(org)
    org.allowed_redirect_origins = [*org.allowed_redirect_origins, checked]
    session.flush()
    if actor is not None:
        _record_settings_change(session, org, before, actor)
    return checked


def remove_redirect_origin(
    session: Session, org: Organization, origin: str, *, actor: Actor | None = None
) -> None:
    """Stop allowing a redirect origin, unless the default redirect URL is on it.

    Invitations that already point at the origin lose their redirect at acceptance
    (redirect URLs are checked again then).
    """
    if origin not in org.allowed_redirect_origins:
        raise NotFound(f"{origin!r} is not an allowed redirect origin of {org.name}")
    default_url = org.default_redirect_url
    if default_url and isinstance(check_redirect_url(default_url, [origin]), str):
        raise Conflict(
            f"{origin} is the origin of the default redirect URL {default_url}; "
            "change or clear the default redirect URL first",
            code="origin_in_use",
        )
    before = _settings_of(org)
    org.allowed_redirect_origins = [o for o in org.allowed_redirect_origins if o != origin]
    session.flush()
    if actor is not None:
        _record_settings_change(session, org, before, actor)


def _role_name(name: object, key: str) -> str | FieldError:
    checked = clean_text(name, "name", MAX_ROLE_NAME_LENGTH)
    if isinstance(checked, FieldError):
        return checked
    return checked or key.replace("_", " ").title()


def add_role(
    session: Session,
    org: Organization,
    key: str,
    name: str | None = None,
    is_admin: bool = False,
    *,
    actor: Actor | None = None,
) -> OrgRole:
    """Add a role key to the organization (``role.added`` when an actor is given)."""
    errors: list[FieldError] = []
    checked = _check_role_key(key, "key")
    if isinstance(checked, FieldError):
        errors.append(checked)
    display = _role_name(name, key if isinstance(key, str) else "")
    if isinstance(display, FieldError):
        errors.append(display)
    if errors:
        raise ValidationFailed(errors)
    assert isinstance(display, str)
    if org.role(key) is not None:
        raise Conflict(f"role {key!r} already exists in {org.name}", code="role_exists")
    role = OrgRole(
        key=key,
        name=display,
        is_admin=is_admin,
        position=max((r.position for r in org.roles), default=-1) + 1,
    )
    org.roles.append(role)
    session.flush()
    if actor is not None:
        record_event(
            session,
            "role.added",
            actor=actor,
            org_id=org.id,
            data={"key": key, "name": display, "is_admin": is_admin},
        )
    return role


def rename_role(
    session: Session, org: Organization, key: str, name: str, *, actor: Actor | None = None
) -> OrgRole:
    """Change a role's display name (its key, which members and invitations use, stays)."""
    role = org.role(key)
    if role is None:
        raise NotFound(f"{org.name} has no role {key!r}")
    clean = required_text(name, "name", MAX_ROLE_NAME_LENGTH)
    if isinstance(clean, FieldError):
        raise ValidationFailed([clean])
    old = role.name
    if clean == old:
        return role
    role.name = clean
    session.flush()
    if actor is not None:
        record_event(
            session,
            "role.renamed",
            actor=actor,
            org_id=org.id,
            data={"key": key, "from": old, "to": clean},
        )
    return role


@dataclass(frozen=True)
class RoleUsage:
    members: int = 0
    pending_invitations: int = 0

    @property
    def in_use(self) -> bool:
        return bool(self.members or self.pending_invitations)


def role_usage(session: Session, org: Organization) -> dict[str, RoleUsage]:
    """How many members and pending invitations use each role of the organization."""
    members = dict(
        session.execute(
            select(Membership.role, func.count())
            .where(Membership.org_id == org.id)
            .group_by(Membership.role)
        ).all()
    )
    pending = dict(
        session.execute(
            select(Invitation.role, func.count())
            .where(
                Invitation.org_id == org.id,
                Invitation.status == InvitationStatus.PENDING.value,
            )
            .group_by(Invitation.role)
        ).all()
    )
    return {r.key: RoleUsage(members.get(r.key, 0), pending.get(r.key, 0)) for r in org.roles}


def _lock_roles(session: Session, org: Organization) -> str | None:
    """Lock the organization's row until the commit and return its default role as
    committed now.

    Removing a role and making a role the default each check the other's column
    (``default_role``; the role's row) and change their own: on PostgreSQL, under
    Read Committed, both checks could pass at once and leave a default role that no
    longer exists. Both take this lock first, so the second waits for the first and
    then reads what it committed. (SQLite: the write transaction already serializes
    them; FOR UPDATE is not emitted there.)
    """
    return session.execute(
        select(Organization.default_role).where(Organization.id == org.id).with_for_update()
    ).scalar()


def role_exists(session: Session, org: Organization, key: str) -> bool:
    """Whether ``key`` is one of the organization's roles as committed now (the roles
    loaded with ``org`` may predate a removal that committed since). One prepared
    statement: every invitation whose role is not loaded yet asks it."""
    return bool(_ROLE_EXISTS.run(session.connection(), {"org_id": org.id, "key": key}))


_ROLE_EXISTS = PreparedStatement(
    lambda: select(OrgRole.id).where(
        OrgRole.org_id == bindparam("org_id"), OrgRole.key == bindparam("key")
    )
)


def held_roles(session: Session, org_id: str, keys: Iterable[str]) -> set[str]:
    """The keys among ``keys`` that are roles of the organization, each held against
    removal until the commit.

    Every write of a new invitation takes this in its write transaction (before its
    INSERT locks the organization's row for the foreign key), and ``remove_role`` locks
    the role before it counts its users: on PostgreSQL (FOR KEY SHARE here, FOR UPDATE
    there) whichever comes second waits for the first and then sees what it committed,
    so a role is never removed while an invitation with it is being written. On SQLite
    the write transaction serializes them; this opens it first (an API create reads
    before it writes). (A member's role change locks the organization's row before it
    checks the role, which serializes it with ``remove_role`` already.)
    """
    wanted = sorted({k for k in keys if isinstance(k, str)})
    if not wanted:
        return set()
    connection = session.connection()
    begin_writes(connection)
    # One prepared statement per key: a create has one, an import batch a handful.
    return {key for key in wanted if _ROLE_HELD.run(connection, {"org_id": org_id, "key": key})}


_ROLE_HELD = PreparedStatement(
    lambda: (
        select(OrgRole.key)
        .where(OrgRole.org_id == bindparam("org_id"), OrgRole.key == bindparam("key"))
        .with_for_update(read=True, key_share=True)
    )
)


def unknown_role_error(org: Organization, role: object) -> FieldError:
    """The error every surface shows for a role the organization does not have."""
    keys = ", ".join(r.key for r in org.roles)
    message = f"{role!r} is not a role of {org.name} (roles: {keys})"
    return FieldError("role", "unknown_role", message)


def _lock_role_for_removal(session: Session, org: Organization, key: str) -> bool:
    """Lock the role's row until the commit (see ``held_roles``); False if it is gone.
    On SQLite, where FOR UPDATE is not emitted, the write transaction serializes."""
    return (
        session.scalar(
            select(OrgRole.id).where(OrgRole.org_id == org.id, OrgRole.key == key).with_for_update()
        )
        is not None
    )


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def remove_role(
    session: Session, org: Organization, key: str, *, actor: Actor | None = None
) -> None:
    """Remove a role that no member, no pending invitation and no default uses."""
    role = org.role(key)
    if role is None:
        raise NotFound(f"{org.name} has no role {key!r}")
    # The role's row first, then the organization's: the order in which a new
    # invitation takes them (its role, then the organization's row for its foreign key),
    # so that the two wait for each other instead of deadlocking.
    if not _lock_role_for_removal(session, org, key):  # removed meanwhile by someone else
        raise NotFound(f"{org.name} has no role {key!r}")
    default_role = _lock_roles(session, org)
    if default_role == key:
        raise Conflict(
            f"{key!r} is the default role; choose another default first", code="role_in_use"
        )
    usage = role_usage(session, org)[key]
    if usage.in_use:
        users = []
        if usage.members:
            users.append(_counted(usage.members, "member"))
        if usage.pending_invitations:
            users.append(_counted(usage.pending_invitations, "pending invitation"))
        raise Conflict(
            f"role {key!r} is used by {' and '.join(users)}; give them another role first",
            code="role_in_use",
        )
    org.roles.remove(role)
    session.flush()
    if actor is not None:
        record_event(
            session,
            "role.removed",
            actor=actor,
            org_id=org.id,
            data={"key": key, "name": role.name},
        )


def create_project(
    session: Session, org: Organization, name: str, *, is_default: bool = False
) -> Project:
    clean = required_text(name, "name", 200)
    if isinstance(clean, FieldError):
        raise ValidationFailed([clean])
    if session.scalar(select(exists().where(Project.org_id == org.id, Project.name == clean))):
        raise Conflict(f"project {clean!r} already exists in {org.name}", code="project_exists")
    project = Project(id=new_id("proj"), org_id=org.id, name=clean, is_default=is_default)
    session.add(project)
    session.flush()
    return project


def list_projects(session: Session, org: Organization) -> list[Project]:
    return list(
        session.scalars(select(Project).where(Project.org_id == org.id).order_by(Project.name))
    )
