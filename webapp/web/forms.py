"""Flask-WTF forms of the public pages (every POST carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField
from wtforms import EmailField
from wtforms import PasswordField
from wtforms import SelectField
from wtforms import SelectMultipleField
from wtforms import StringField
from wtforms import TextAreaField
from wtforms import URLField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired
from wtforms.validators import Length
from wtforms.validators import Optional
from wtforms.widgets import CheckboxInput
from wtforms.widgets import ListWidget

from webapp.services.errors import ValidationFailed


class AcceptInvitationForm(FlaskForm):
    name = StringField("Your name", validators=[Optional(), Length(max=200)])
    password = PasswordField(
        "Choose a password",
        validators=[Optional(), Length(max=256)],
        description="At least 10 characters. You will use it to sign in to the dashboard.",
    )


class DeclineInvitationForm(FlaskForm):
    """Only the CSRF token: declining needs no input."""


def csrf_failed(form: FlaskForm) -> bool:
    """The form was posted without a valid CSRF token."""
    return form.is_submitted() and bool(
        getattr(form, "csrf_token", None) and form.csrf_token.errors
    )


def attach_service_errors(form: FlaskForm, error: ValidationFailed) -> None:
    """Show a service's field errors beside the matching form fields."""
    for field_error in error.errors:
        field = getattr(form, field_error.field, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = [*list(field.errors), field_error.message]
        else:
            form.form_errors.append(field_error.message)


class EmptyForm(FlaskForm):
    """A bare button POST that still carries the CSRF token (revoke, resend, sign out)."""


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])


class PasswordResetRequestForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])


class PasswordResetForm(FlaskForm):
    password = PasswordField(
        "New password",
        validators=[DataRequired(), Length(max=256)],
        description="At least 10 characters.",
    )


def choices(pairs) -> list[SelectChoice]:
    """``[(value, label), …]`` as WTForms choices."""
    return [SelectChoice(value, label) for value, label in pairs]


EXPIRY_CHOICES = choices(
    [
        ("", "Organization default"),
        ("3600", "1 hour"),
        ("86400", "1 day"),
        ("259200", "3 days"),
        ("604800", "7 days"),
        ("1209600", "14 days"),
        ("2592000", "30 days"),
    ]
)


class InviteForm(FlaskForm):
    email = EmailField("Email address", validators=[DataRequired(), Length(max=254)])
    role = SelectField("Role")
    expires_in = SelectField("Expires", choices=EXPIRY_CHOICES, default="")
    redirect_url = URLField(
        "Redirect after accepting",
        validators=[Optional(), Length(max=2048)],
        description="Optional; must be on the organization's allowed origins.",
    )
    projects = SelectMultipleField(
        "Projects",
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
        validate_choice=False,
    )
    message = TextAreaField(
        "Message", validators=[Optional(), Length(max=1000)], description="Optional note."
    )
    notify = BooleanField("Send the invitation email", default=True)


class OrganizationForm(FlaskForm):
    """The superuser's new-organization form."""

    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    slug = StringField(
        "Slug",
        validators=[Optional(), Length(max=64)],
        description="Optional: lower-case letters, digits, hyphens (made from the name if empty).",
    )
    make_admin = BooleanField("Make me an admin member of the new organization", default=False)


class ImportDefaultsForm(FlaskForm):
    """What rows of a CSV import that leave a field empty get."""

    role = SelectField("Default role")
    expires_in = SelectField("Default expiry", choices=EXPIRY_CHOICES, default="")
    redirect_url = URLField(
        "Default redirect after accepting",
        validators=[Optional(), Length(max=2048)],
        description="Optional; must be on the organization's allowed origins.",
    )


class ImportForm(ImportDefaultsForm):
    """Upload a CSV file or paste addresses (or CSV text) to invite many people."""

    file = FileField("CSV file", description="UTF-8 CSV, comma, semicolon or tab separated.")
    text = TextAreaField(
        "Or paste addresses or CSV text",
        description="One address per line, or separated by commas or spaces; or CSV with "
        "a header row.",
    )
