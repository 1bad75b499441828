"""Flask-WTF forms of the public pages (every POST carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms import StringField
from wtforms.validators import Length
from wtforms.validators import Optional

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


def attach_service_errors(form: FlaskForm, error: ValidationFailed) -> None:
    """Show a service's field errors beside the matching form fields."""
    for field_error in error.errors:
        field = getattr(form, field_error.field, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = [*list(field.errors), field_error.message]
        else:
            form.form_errors.append(field_error.message)
