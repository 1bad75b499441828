"""The organization's settings: general settings, allowed redirect origins, roles, API keys."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import abort
from flask import flash
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField
from wtforms import HiddenField
from wtforms import SelectField
from wtforms import StringField
from wtforms import URLField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import ValidationError
from wtforms.widgets import NumberInput

from webapp.extensions import db
from webapp.models import Organization
from webapp.models import OrgRole
from webapp.services.actors import Actor
from webapp.services.api_keys import create_api_key
from webapp.services.api_keys import list_api_keys
from webapp.services.api_keys import revoke_api_key
from webapp.services.errors import NotFound
from webapp.services.errors import ServiceError
from webapp.services.errors import ValidationFailed
from webapp.services.organizations import add_redirect_origin
from webapp.services.organizations import add_role
from webapp.services.organizations import remove_redirect_origin
from webapp.services.organizations import remove_role
from webapp.services.organizations import rename_role
from webapp.services.organizations import role_usage
from webapp.services.organizations import update_organization
from webapp.web.dashboard import org_admin_view
from webapp.web.forms import EmptyForm
from webapp.web.forms import attach_service_errors
from webapp.web.htmx import is_partial
from webapp.web.htmx import vary_on_htmx

blueprint = Blueprint("settings", __name__, url_prefix="/orgs/<slug>/settings")

DAY = 86400
MIN_EXPIRY_DAYS = 1
MAX_EXPIRY_DAYS = 30
ADD_ROLE_PREFIX = "new-role"  # its "name" field must not clash with the general form's


# --- forms: the rules live in the services; these only carry the values -------------------


class GeneralSettingsForm(FlaskForm):
    name = StringField("Organization name")
    default_role = SelectField(
        "Default role",
        validate_choice=False,  # the service names the unknown value
        description="Given to invitations that do not name a role.",
    )
    default_expiry = StringField(
        "Default expiry (days)",
        widget=NumberInput(min=MIN_EXPIRY_DAYS, max=MAX_EXPIRY_DAYS),
        description=f"How long a new invitation's link works: {MIN_EXPIRY_DAYS} to "
        f"{MAX_EXPIRY_DAYS} days.",
    )
    default_redirect_url = URLField(
        "Default redirect URL",
        description="Where people go after accepting when their invitation names no URL. "
        "Optional; must be on an allowed origin.",
    )

    def validate_default_expiry(self, field: StringField) -> None:
        raw = (field.data or "").strip()
        if not raw.isdecimal() or not MIN_EXPIRY_DAYS <= int(raw) <= MAX_EXPIRY_DAYS:
            raise ValidationError(
                f"{raw!r} is not a whole number of days from {MIN_EXPIRY_DAYS} to {MAX_EXPIRY_DAYS}"
            )


class OriginForm(FlaskForm):
    origin = StringField(
        "Add an origin",
        description="Scheme, host and port only, like https://app.example.com.",
    )


class RemoveOriginForm(FlaskForm):
    origin = HiddenField()


class AddRoleForm(FlaskForm):
    key = StringField(
        "Key",
        description="What the API and invitations use, e.g. billing or org:viewer. "
        "Lower-case letters, digits, _ : . - ; it cannot be changed later.",
    )
    name = StringField("Display name", description="Optional; made from the key if empty.")
    is_admin = BooleanField("Members with this role administer the organization")


class RenameRoleForm(FlaskForm):
    name = StringField("Display name")


class ApiKeyForm(FlaskForm):
    name = StringField("Key name", description="What or who uses it, e.g. backend or CRM sync.")


# --- building the page --------------------------------------------------------------------


def _shown_days(org: Organization) -> int:
    """The default expiry in whole days (an API-set default like 2 hours shows as 1)."""
    return max(MIN_EXPIRY_DAYS, min(MAX_EXPIRY_DAYS, round(org.default_expiry_seconds / DAY)))


def _role_choices(org: Organization) -> list[SelectChoice]:
    return [SelectChoice(r.key, f"{r.name} ({r.key})") for r in org.roles]


def _general_form(org: Organization, formdata: Any = None) -> GeneralSettingsForm:
    if formdata is not None:
        form = GeneralSettingsForm(formdata=formdata)
    else:
        form = GeneralSettingsForm(
            formdata=None,
            data={
                "name": org.name,
                "default_role": org.default_role,
                "default_expiry": str(_shown_days(org)),
                "default_redirect_url": org.default_redirect_url or "",
            },
        )
    form.default_role.choices = _role_choices(org)
    return form


def _rename_form(role: OrgRole, formdata: Any = None) -> RenameRoleForm:
    prefix = f"role-{role.id}"
    if formdata is not None:
        return RenameRoleForm(formdata=formdata, prefix=prefix)
    return RenameRoleForm(formdata=None, prefix=prefix, data={"name": role.name})


def _context(org: Organization, **overrides: Any) -> dict[str, Any]:
    """Everything the three sections need; a posted form replaces its blank one."""
    rename_forms = {r.key: _rename_form(r) for r in org.roles}
    rename_forms.update(overrides.pop("rename_forms", {}))
    context = {
        "org": org,
        "general_form": _general_form(org),
        "origin_form": OriginForm(formdata=None),
        "add_role_form": AddRoleForm(formdata=None, prefix=ADD_ROLE_PREFIX),
        "rename_forms": rename_forms,
        "usage": role_usage(db.session, org),
        "api_keys": list_api_keys(db.session, org),
        "api_key_form": ApiKeyForm(formdata=None),
        # (key, secret) right after creating one: shown this once, never stored.
        "new_key": None,
        # section -> (message, "success" | "error"), shown at the top of that section
        "notices": {},
        # role key -> message, shown in that role's row
        "role_notices": {},
    }
    context.update(overrides)
    return context


SECTIONS = {
    "general": "settings/_general.html",
    "origins": "settings/_origins.html",
    "roles": "settings/_roles.html",
    "keys": "settings/_api_keys.html",
}


def _answer(
    org: Organization,
    section: str,
    message: str,
    *,
    ok: bool,
    in_place: bool = False,
    **overrides: Any,
):
    """htmx: the section alone. Plain POST: 303 back on success, the whole page (422) if not.

    ``message`` goes at the top of the section (nothing when empty: the errors are beside
    the fields or in a row). ``in_place`` answers a success with the page itself instead of
    a redirect (a new API key must not travel through the session cookie).
    """
    if ok and not is_partial() and not in_place:
        flash(message, "success")
        return redirect(
            url_for("settings.index", slug=org.slug, _anchor=f"settings-{section}"), code=303
        )
    notices = {section: (message, "success" if ok else "error")} if message else {}
    context = _context(org, notices=notices, **overrides)
    status = 200 if ok else 422
    if is_partial():
        # The sections show each other's state: the general section's default-role choices
        # follow the roles, and the roles table marks the default role.
        context["refresh_default_role"] = section == "roles"
        context["refresh_roles"] = section == "general" and ok
        template = SECTIONS[section]
    else:
        template = "settings/index.html"
    return vary_on_htmx(make_response(render_template(template, **context), status))


def _actor() -> Actor:
    return Actor.user(current_user.id)


def _check_csrf(form: FlaskForm) -> None:
    """CSRFProtect already refused token-less posts; this covers a form-level failure."""
    if not form.validate_on_submit() and "csrf_token" in form.errors:
        abort(400, "This form expired. Reload the page and try again.")


# --- views --------------------------------------------------------------------------------


@blueprint.get("")
@org_admin_view
def index(org: Organization):
    """The settings page (htmx: the three sections without the layout)."""
    template = "settings/_sections.html" if is_partial() else "settings/index.html"
    return vary_on_htmx(make_response(render_template(template, **_context(org))))


@blueprint.post("/general")
@org_admin_view
def general(org: Organization):
    """Name, default role, default expiry, default redirect URL: all checked together."""
    form = _general_form(org, request.form)
    _check_csrf(form)
    changes: dict[str, Any] = {
        "name": form.name.data or "",
        "default_role": form.default_role.data or "",
        "default_redirect_url": (form.default_redirect_url.data or "").strip() or None,
    }
    if not form.default_expiry.errors:
        days = int(form.default_expiry.data.strip())
        if days != _shown_days(org):  # keep a finer default set through the API
            changes["default_expiry_seconds"] = days * DAY
    try:
        update_organization(db.session, org, **changes, actor=_actor())
    except ValidationFailed as error:
        db.session.rollback()
        attach_service_errors(form, error)
    if form.errors or form.form_errors:
        db.session.rollback()
        form.default_role.choices = _role_choices(org)
        return _answer(org, "general", "The settings were not saved.", ok=False, general_form=form)
    db.session.commit()
    return _answer(org, "general", "Saved the settings.", ok=True)


@blueprint.post("/origins")
@org_admin_view
def add_origin(org: Organization):
    """Allow one more redirect origin."""
    form = OriginForm()
    _check_csrf(form)
    try:
        origin = add_redirect_origin(db.session, org, form.origin.data or "", actor=_actor())
    except ValidationFailed as error:
        db.session.rollback()
        attach_service_errors(form, error)
        return _answer(org, "origins", "", ok=False, origin_form=form)
    db.session.commit()
    return _answer(org, "origins", f"Added {origin}.", ok=True)


@blueprint.post("/origins/remove")
@org_admin_view
def remove_origin(org: Organization):
    """Stop allowing a redirect origin (refused while the default redirect URL uses it)."""
    form = RemoveOriginForm()
    _check_csrf(form)
    origin = form.origin.data or ""
    try:
        remove_redirect_origin(db.session, org, origin, actor=_actor())
    except ServiceError as error:
        db.session.rollback()
        return _answer(org, "origins", str(error), ok=False)
    db.session.commit()
    return _answer(org, "origins", f"Removed {origin}.", ok=True)


@blueprint.post("/roles")
@org_admin_view
def create_role(org: Organization):
    """Add a role with a key, a display name and whether it administers the org."""
    form = AddRoleForm(prefix=ADD_ROLE_PREFIX)
    _check_csrf(form)
    key = (form.key.data or "").strip()
    try:
        role = add_role(
            db.session, org, key, form.name.data, bool(form.is_admin.data), actor=_actor()
        )
    except ValidationFailed as error:
        db.session.rollback()
        attach_service_errors(form, error)
        return _answer(org, "roles", "", ok=False, add_role_form=form)
    except ServiceError as error:
        db.session.rollback()
        form.key.errors = [*form.key.errors, str(error)]
        return _answer(org, "roles", "", ok=False, add_role_form=form)
    db.session.commit()
    return _answer(org, "roles", f"Added the role {role.key}.", ok=True)


def _role_or_404(org: Organization, key: str) -> OrgRole:
    role = org.role(key)
    if role is None:
        abort(404)
    return role


@blueprint.post("/roles/<key>/rename")
@org_admin_view
def rename(org: Organization, key: str):
    """Change a role's display name."""
    role = _role_or_404(org, key)
    form = _rename_form(role, request.form)
    _check_csrf(form)
    try:
        rename_role(db.session, org, key, form.name.data or "", actor=_actor())
    except ValidationFailed as error:
        db.session.rollback()
        attach_service_errors(form, error)
        return _answer(org, "roles", "", ok=False, rename_forms={key: form})
    db.session.commit()
    return _answer(org, "roles", f"Renamed the role {key}.", ok=True)


@blueprint.post("/roles/<key>/remove")
@org_admin_view
def delete_role(org: Organization, key: str):
    """Remove a role nobody uses (refused for the default role and roles in use)."""
    _role_or_404(org, key)
    _check_csrf(EmptyForm())
    try:
        remove_role(db.session, org, key, actor=_actor())
    except NotFound:
        db.session.rollback()
        abort(404)
    except ServiceError as error:
        db.session.rollback()
        message = f"Cannot remove {key}: {error}."
        return _answer(org, "roles", "", ok=False, role_notices={key: message})
    db.session.commit()
    return _answer(org, "roles", f"Removed the role {key}.", ok=True)


@blueprint.post("/api-keys")
@org_admin_view
def create_key(org: Organization):
    """Create an API key for this organization and show it once."""
    form = ApiKeyForm()
    _check_csrf(form)
    try:
        key, secret = create_api_key(
            db.session, org=org, name=form.name.data or "", created_by_user_id=current_user.id
        )
    except ValidationFailed as error:
        db.session.rollback()
        attach_service_errors(form, error)
        return _answer(org, "keys", "", ok=False, api_key_form=form)
    db.session.commit()
    response = _answer(
        org,
        "keys",
        f"Created the key {key.name}. Copy it now: it is not shown again.",
        ok=True,
        in_place=True,
        new_key=(key, secret),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.post("/api-keys/<key_id>/revoke")
@org_admin_view
def revoke_key(org: Organization, key_id: str):
    """Revoke a key: it stops working at once."""
    _check_csrf(EmptyForm())
    try:
        key = revoke_api_key(db.session, key_id, org)
    except NotFound:
        db.session.rollback()
        abort(404)
    db.session.commit()
    return _answer(org, "keys", f"Revoked the key {key.name}.", ok=True)
