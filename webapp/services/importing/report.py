"""The error report (rows to fix, as uploaded, plus why) and the stored preview table."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from webapp.services.csv_export import csv_bytes
from webapp.services.importing.parsing import REPORT_COLUMN
from webapp.services.importing.planning import ImportPlan
from webapp.services.importing.planning import PlannedRow
from webapp.services.importing.planning import verdict_label


def error_report(plan: ImportPlan) -> bytes:
    """A CSV of the rows that need fixing: their cells as uploaded, then an ``error`` column.

    Same columns and separator as the upload, every cell neutralised against formula
    injection; fixed and uploaded again as it is, it imports exactly the fixed rows
    (the ``error`` column is ignored, duplicates and existing invitations are skipped).
    """
    parsed = plan.parsed
    header = [*parsed.report_header(), REPORT_COLUMN]
    rows = ([*parsed.report_cells(row.source), _reason(row)] for row in plan.failures())
    return csv_bytes(header, rows, delimiter=parsed.delimiter)


def _reason(row: PlannedRow) -> str:
    return f"{row.label}: {row.detail}" if row.detail else row.label


@dataclass(frozen=True)
class PreviewEntry:
    row: int
    column: int
    email: str
    verdict: str
    detail: str

    @property
    def label(self) -> str:
        return verdict_label(self.verdict)


def encode_preview(rows: Iterable[PlannedRow]) -> bytes:
    """Each row's verdict, compactly (one line per row, compressed) for the paged table."""
    lines = (
        f"{r.verdict}\t"
        + json.dumps([r.source.number, r.source.column, r.email, r.detail], ensure_ascii=False)
        for r in rows
    )
    return zlib.compress("\n".join(lines).encode("utf-8"), 1)


def preview_entries(
    blob: bytes, verdict: str | None, page: int, per_page: int
) -> tuple[list[PreviewEntry], int, int]:
    """One page of entries (optionally of one verdict): ``(entries, matching, page)``.

    The page number is clamped to the pages there are.
    """
    text = zlib.decompress(blob).decode("utf-8")
    lines = text.split("\n") if text else []
    if verdict:
        prefix = verdict + "\t"
        lines = [line for line in lines if line.startswith(prefix)]
    pages = max(1, -(-len(lines) // per_page))
    page = min(max(1, page), pages)
    entries = []
    for line in lines[(page - 1) * per_page : page * per_page]:
        code, _, rest = line.partition("\t")
        number, column, email, detail = json.loads(rest)
        entries.append(PreviewEntry(number, column, email, code, detail))
    return entries, len(lines), page
