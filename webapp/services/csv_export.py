"""Every CSV the app writes goes through here: cells neutralised against formula injection.

A cell that starts with ``=``, ``+``, ``-``, ``@``, tab, CR or LF would be run as a
formula by spreadsheets (OWASP "CSV Injection"); it gets a leading apostrophe, which
spreadsheets show as text. The importer removes that apostrophe again
(``importing.parsing.unguard``), so a report can be fixed and uploaded as it is.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from collections.abc import Sequence

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")
BOM = "\ufeff"  # so that Excel reads the file as UTF-8


def neutralize(cell: object) -> str:
    """The cell as text, with an apostrophe in front if a spreadsheet would evaluate it."""
    text = "" if cell is None else str(cell)
    if text.startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


def csv_bytes(
    header: Sequence[object], rows: Iterable[Sequence[object]], *, delimiter: str = ","
) -> bytes:
    """A UTF-8 CSV (with BOM) of ``header`` and ``rows``, every cell neutralised."""
    buffer = io.StringIO()
    buffer.write(BOM)
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow([neutralize(c) for c in header])
    for row in rows:
        writer.writerow([neutralize(c) for c in row])
    return buffer.getvalue().encode("utf-8")
