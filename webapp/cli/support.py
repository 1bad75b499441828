"""What every command shares: error translation, one commit, output helpers."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click
from flask.cli import AppGroup

from webapp.config import ConfigError
from webapp.extensions import db
from webapp.models import Organization
from webapp.services.errors import ServiceError
from webapp.services.organizations import get_organization


class InputError(click.ClickException):
    """Bad input: one line on stderr and exit status 2, never a traceback."""

    exit_code = 2


def committing(callback: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command in one transaction: commit on success, roll back on a rule violation."""

    @functools.wraps(callback)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = callback(*args, **kwargs)
        except (ServiceError, ConfigError) as exc:
            db.session.rollback()
            raise InputError(str(exc)) from None
        except click.exceptions.Exit:
            # The command finished its work and chose its exit status.
            db.session.commit()
            raise
        db.session.commit()
        return result

    return wrapper


class CommandGroup(AppGroup):
    """An AppGroup whose commands run in an app context, in one committed transaction."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], click.Command]:
        parent = super().command

        def decorator(f: Callable[..., Any]) -> click.Command:
            return parent(*args, **kwargs)(committing(f))

        return decorator


def load_org(ref: str) -> Organization:
    return get_organization(db.session, ref)


def split_list(value: str | None) -> list[str]:
    """``a@x, b@y`` → ``['a@x', 'b@y']`` (empty items dropped)."""
    if not value:
        return []
    return [item.strip() for item in value.split(",") if item.strip()]


def timestamp(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """An aligned plain-text table (two spaces between columns)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(str(cell))) for w, cell in zip(widths, row, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    click.echo(line.format(*headers).rstrip())
    for row in rows:
        click.echo(line.format(*(str(c) for c in row)).rstrip())


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))
