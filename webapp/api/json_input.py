"""Checks on request input shared by the native API and the compat layers: each
surface turns the FieldError these answer into its own error envelope."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from webapp.services.errors import FieldError

# Deeper documents are refused before anything walks them recursively (a 1 MiB body of
# brackets would otherwise exhaust Python's recursion limit: a 500).
MAX_JSON_DEPTH = 32
# What a decoder that hit the recursion limit returns instead of a document.
TOO_DEEP = object()


def too_deep(document: Any) -> bool:
    """Whether ``document`` nests lists and objects deeper than MAX_JSON_DEPTH."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return False


def nul_location(value: Any, path: str = "") -> str | None:
    """Where a NUL character hides in decoded JSON (no database stores one); None if nowhere."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                return inner
            found = nul_location(item, inner)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_location(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def nul_character(name: str) -> FieldError:
    """No database stores a NUL character (PostgreSQL refuses it): say so, naming where."""
    return FieldError(name, "nul_character", f"{name} contains a NUL character")


def parameter_problem(parameters: Iterable[tuple[str, str]]) -> FieldError | None:
    """The first path or query parameter holding a NUL character, as an error; else None."""
    for name, value in parameters:
        if "\x00" in value:
            return nul_character(name)
    return None


def document_problem(document: Any) -> FieldError | None:
    """Why a decoded body cannot be used (nested too deep, a NUL character), or None.

    ``document`` is TOO_DEEP when the decoder itself hit the recursion limit.
    """
    if document is TOO_DEEP or too_deep(document):
        return FieldError(
            "body", "too_deep", f"the request body nests deeper than {MAX_JSON_DEPTH} levels"
        )
    where = nul_location(document)
    if where is not None:
        return nul_character(where or "body")
    return None
