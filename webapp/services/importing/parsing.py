"""Reading an uploaded or pasted CSV into rows, or one typed error that says where.

Accepts what spreadsheets export: UTF-8 with or without a BOM; comma, semicolon or tab
separators (detected); a header row in any order with case-insensitive names, or no
header when the file is just addresses; blank lines and surrounding spaces ignored;
quoted cells with separators and newlines. Everything else (another encoding, binary
data, NUL bytes, an oversized cell, too many rows or bytes) raises ``CsvFileError``
naming the row and column, and nothing is imported.

Rows are numbered as a spreadsheet numbers them: the header is row 1, a blank line
still takes a row, a quoted cell with newlines stays in one row.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from webapp.services.csv_export import FORMULA_TRIGGERS
from webapp.services.errors import ServiceError

DELIMITERS = (",", ";", "\t")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
MiB = 1024 * 1024


_CONTROL = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NAME_SEPARATORS = re.compile(r"[\s_\-]+")
_ADDRESS_SEPARATORS = re.compile(r"[\s,;]+")

EMAIL_HEADERS = frozenset(
    {"email", "emails", "email_address", "email_addresses", "emailaddress", "e_mail", "mail"}
    | {"e_mail_address"}
)
FIELD_HEADERS = {
    "role": "role",
    "redirect_url": "redirect_url",
    "redirect": "redirect_url",
    "expires_in_days": "expires_in_days",
    "expiry_days": "expires_in_days",
    "projects": "projects",
    "project": "projects",
    "public_metadata": "public_metadata",
    "private_metadata": "private_metadata",
}
METADATA_SCOPES = ("public_metadata", "private_metadata")
# The error report's own column: ignored when a fixed report comes back.
REPORT_COLUMN = "error"

_MAGIC = (
    (b"PK\x03\x04", "an Excel workbook (.xlsx) or another ZIP archive"),
    (b"\xd0\xcf\x11\xe0", "an Excel 97-2003 workbook (.xls)"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
)
SAVE_AS_CSV = "In your spreadsheet choose Save As (or Download) › CSV UTF-8, then upload that file."


class CsvFileError(ServiceError):
    """The file as a whole cannot be imported; ``row``/``column`` say where (1-based)."""

    code = "invalid_csv"

    def __init__(self, problem: str, *, row: int | None = None, column: str | None = None):
        self.problem = problem
        self.row = row
        self.column = column
        where = []
        if row is not None:
            where.append(f"row {row:,}")
        if column is not None:
            where.append(f"column {column}")
        super().__init__(f"{', '.join(where)}: {problem}" if where else problem)


@dataclass(frozen=True)
class ImportLimits:
    """Caps on what one import may hold (``ORGINVITES_IMPORT_MAX_*``)."""

    max_rows: int = 100_000
    max_bytes: int = 10 * MiB
    max_cell_chars: int = 10_000
    max_columns: int = 200

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ImportLimits:
        return cls(
            max_rows=config.get("IMPORT_MAX_ROWS", cls.max_rows),
            max_bytes=config.get("IMPORT_MAX_BYTES", cls.max_bytes),
            max_cell_chars=config.get("IMPORT_MAX_CELL_CHARS", cls.max_cell_chars),
        )


@dataclass(frozen=True)
class Column:
    """A header cell and the invitation field it feeds (None: ignored)."""

    index: int
    name: str
    field: str | None
    metadata_key: str | None = None

    @property
    def letter(self) -> str:
        return column_letter(self.index)


@dataclass(slots=True)
class SourceRow:
    """One invitation's cells as uploaded (stripped; apostrophe guards removed).

    ``number`` is the spreadsheet row; ``column`` the 1-based column of the address
    in a plain list of addresses (0 when the file has a header).
    """

    number: int
    column: int
    cells: tuple[str, ...]


@dataclass
class ParsedFile:
    delimiter: str
    has_header: bool
    columns: list[Column]
    rows: list[SourceRow]
    ignored_columns: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def delimiter_name(self) -> str:
        return DELIMITER_NAMES[self.delimiter]

    def index_of(self, field_name: str) -> int | None:
        return next(
            (c.index for c in self.columns if c.field == field_name and not c.metadata_key), None
        )

    def _reported_columns(self) -> list[Column]:
        # An uploaded error report's own column is not repeated (a fresh one is added).
        return [c for c in self.columns if _normalized_name(c.name) != REPORT_COLUMN]

    def report_header(self) -> list[str]:
        """The header an error report repeats (the upload's own names, or ``email``)."""
        if not self.has_header:
            return ["email"]
        return [c.name for c in self._reported_columns()]

    def report_cells(self, row: SourceRow) -> list[str]:
        """The row's cells under ``report_header``."""
        if not self.has_header:
            return [row.cells[0]]
        return [
            row.cells[c.index] if c.index < len(row.cells) else "" for c in self._reported_columns()
        ]


def column_letter(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA (as spreadsheets name columns)."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def unguard(cell: str) -> str:
    """Remove the apostrophe the app puts before formula-like cells it writes.

    So that an error report can be fixed and uploaded as it is (see csv_export).
    """
    if len(cell) > 1 and cell[0] == "'" and cell[1] in FORMULA_TRIGGERS:
        return cell[1:]
    return cell


def format_size(count: int) -> str:
    """``10.0 MiB``, ``300 KiB``, ``12 bytes``."""
    if count >= MiB:
        return f"{count / MiB:.1f} MiB"
    if count >= 1024:
        return f"{count / 1024:.0f} KiB"
    return f"{count} bytes"


def _reader(text: str, delimiter: str) -> Iterator[list[str]]:
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)


def _locate(prefix: str, delimiter: str) -> tuple[int, str]:
    """Row and column of the character just after ``prefix`` (for errors found in bytes)."""
    records = 0
    last: list[str] = []
    try:
        # The sentinel stands for the offending character: it lands in its cell.
        for record in _reader(prefix + "x", delimiter):
            records += 1
            last = record
    except csv.Error:
        return max(records, 1), "A"
    return max(records, 1), column_letter(max(len(last), 1) - 1)


def _refuse_binary(data: bytes) -> None:
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            raise CsvFileError(f"this is {kind}, not a CSV file. {SAVE_AS_CSV}", row=1, column="A")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CsvFileError(f"the file is UTF-16, not UTF-8. {SAVE_AS_CSV}", row=1, column="A")


def decode(data: bytes, limits: ImportLimits) -> str:
    """UTF-8 text without a BOM, or CsvFileError saying where the bytes went wrong."""
    if len(data) > limits.max_bytes:
        raise CsvFileError(
            f"the file is {format_size(len(data))}; the limit is {format_size(limits.max_bytes)}. "
            "Split it into smaller files."
        )
    _refuse_binary(data)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    nul = data.find(b"\x00")
    if nul != -1:
        prefix = data[:nul].decode("utf-8", errors="replace")
        row, column = _locate(prefix, detect_delimiter(prefix))
        raise CsvFileError(
            f"the file contains a NUL byte, so it is binary data or not UTF-8. {SAVE_AS_CSV}",
            row=row,
            column=column,
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        prefix = data[: exc.start].decode("utf-8")
        row, column = _locate(prefix, detect_delimiter(prefix))
        bad = " ".join(f"0x{b:02X}" for b in data[exc.start : min(exc.end, exc.start + 4)])
        raise CsvFileError(
            f"the bytes {bad} are not UTF-8 (the file may be Windows-1252 or Latin-1). "
            f"{SAVE_AS_CSV}",
            row=row,
            column=column,
        ) from None
    control = _CONTROL.search(text)
    if control:
        row, column = _locate(text[: control.start()], detect_delimiter(text))
        raise CsvFileError(
            f"control character U+{ord(control.group()):04X} found; this looks like binary "
            f"data, not text. {SAVE_AS_CSV}",
            row=row,
            column=column,
        )
    return text


def detect_delimiter(text: str, sample_records: int = 20) -> str:
    """Comma, semicolon or tab: the one that splits the first rows most consistently."""
    best = (False, 0, 0)
    chosen = ","
    for delimiter in DELIMITERS:
        counts: list[int] = []
        try:
            for record in itertools.islice(_reader(text, delimiter), sample_records * 3):
                while record and not record[-1].strip():
                    record.pop()
                if record:
                    counts.append(len(record))
                if len(counts) >= sample_records:
                    break
        except csv.Error:
            continue
        if not counts:
            continue
        first = counts[0]
        score = (first > 1, sum(1 for c in counts if c == first), first)
        if score > best:
            best, chosen = score, delimiter
    return chosen


def _normalized_name(name: str) -> str:
    return _NAME_SEPARATORS.sub("_", name.strip().lower())


def _header_columns(record: list[str], row: int, limits: ImportLimits) -> list[Column]:
    """Map header cells to fields; refuse a header that names a field twice."""
    columns: list[Column] = []
    seen: dict[tuple[str, str | None], Column] = {}
    for index, raw in enumerate(record):
        name = raw.strip()
        if len(name) > limits.max_cell_chars:
            raise CsvFileError(
                f"the header cell is {len(name):,} characters; the limit is "
                f"{limits.max_cell_chars:,}",
                row=row,
                column=column_letter(index),
            )
        normalized = _normalized_name(name)
        field_name: str | None = None
        metadata_key: str | None = None
        if normalized in EMAIL_HEADERS:
            field_name = "email"
        elif normalized in FIELD_HEADERS:
            field_name = FIELD_HEADERS[normalized]
        else:
            scope, dot, key = name.partition(".")
            if dot and _normalized_name(scope) in METADATA_SCOPES:
                key = key.strip()
                if not key:
                    raise CsvFileError(
                        f"{name!r} needs a key after the dot, like {scope}.department",
                        row=row,
                        column=column_letter(index),
                    )
                field_name, metadata_key = _normalized_name(scope), key
        column = Column(index, name, field_name, metadata_key)
        if field_name is not None:
            other = seen.get((field_name, metadata_key))
            if other is not None:
                shown = f"{field_name}.{metadata_key}" if metadata_key else field_name
                raise CsvFileError(
                    f"columns {other.letter} ({other.name!r}) and {column.letter} ({name!r}) "
                    f"are both {shown}; keep one",
                    row=row,
                    column=column.letter,
                )
            seen[(field_name, metadata_key)] = column
        columns.append(column)
    while columns and not columns[-1].name:
        columns.pop()  # trailing empty columns (spreadsheets export them)
    return columns


def _looks_like_address(cell: str) -> bool:
    return "@" in cell


def parse_csv(data: bytes, limits: ImportLimits | None = None) -> ParsedFile:
    """Parse an upload; raise CsvFileError (with row and column) for a file we cannot take."""
    limits = limits or ImportLimits()
    text = decode(data, limits)
    if not text.strip():
        raise CsvFileError("the file is empty: there are no rows to import")
    delimiter = detect_delimiter(text)
    records = enumerate(_reader(text, delimiter), start=1)
    parsed: ParsedFile | None = None
    number = 0
    try:
        for number, record in records:
            if len(record) > limits.max_columns:
                raise CsvFileError(
                    f"the row has {len(record):,} columns; the limit is {limits.max_columns}",
                    row=number,
                )
            if not any(cell.strip() for cell in record):
                continue
            if parsed is None:
                parsed = _start(record, number, delimiter, limits)
                if parsed.has_header:
                    continue
            _add_row(parsed, record, number, limits)
    except csv.Error as exc:
        raise CsvFileError(
            f"the row cannot be read as CSV ({exc}); is a quote left open?", row=number + 1
        ) from None
    if parsed is None:  # only quotes and separators
        raise CsvFileError("the file has no rows to import: every cell is empty")
    if not parsed.rows:
        raise CsvFileError("there are no rows after the header", row=number)
    return parsed


def _start(record: list[str], number: int, delimiter: str, limits: ImportLimits) -> ParsedFile:
    """Decide from the first non-blank row: a header, or a plain list of addresses."""
    cells = [c.strip() for c in record]
    while cells and not cells[-1]:
        cells.pop()
    columns = _header_columns(record, number, limits)
    if any(c.field == "email" for c in columns):
        ignored = [
            c.name
            for c in columns
            if c.field is None and c.name and _normalized_name(c.name) != REPORT_COLUMN
        ]
        return ParsedFile(delimiter, True, columns, [], ignored_columns=ignored)
    filled = [c for c in cells if c]
    if all(_looks_like_address(c) for c in filled):
        return ParsedFile(delimiter, False, [Column(0, "email", "email")], [])
    if len(filled) == 1 and len(cells) == 1 and any(c.isalpha() for c in cells[0]):
        # One column whose first cell is not an address: its header, whatever its name.
        return ParsedFile(delimiter, True, [Column(0, cells[0], "email")], [])
    names = ", ".join(repr(c) for c in filled[:6])
    raise CsvFileError(
        "no email column. Name the column of addresses email (other columns: role, "
        "redirect_url, expires_in_days, projects, public_metadata.KEY, private_metadata.KEY); "
        f"this row has {names}",
        row=number,
    )


def _cell(raw: str, number: int, index: int, limits: ImportLimits, name: str | None) -> str:
    if len(raw) > limits.max_cell_chars:
        hint = "; is a quote left open?" if "\n" in raw else ""
        label = f"{column_letter(index)} ({name})" if name else column_letter(index)
        raise CsvFileError(
            f"the cell is {len(raw):,} characters; the limit is {limits.max_cell_chars:,}{hint}",
            row=number,
            column=label,
        )
    return unguard(raw.strip())


def _add_row(parsed: ParsedFile, record: list[str], number: int, limits: ImportLimits) -> None:
    if max(map(len, record)) > limits.max_cell_chars:
        for index, raw in enumerate(record):
            name = parsed.columns[index].name if index < len(parsed.columns) else None
            _cell(raw, number, index, limits, name if parsed.has_header else None)
    if parsed.has_header:
        width = len(parsed.columns)
        cells = [raw.strip() for raw in record[:width]]
        for index, cell in enumerate(cells):
            if cell[:1] == "'":
                cells[index] = unguard(cell)
        extra = len(record) > width and any(c.strip() for c in record[width:])
        if extra and len(parsed.warnings) < 5:
            parsed.warnings.append(
                f"row {number:,} has cells beyond the last named column; they were ignored"
            )
        _append(parsed, SourceRow(number, 0, tuple(cells)), limits)
        return
    for index, raw in enumerate(record):
        cell = unguard(raw.strip())
        for token in _ADDRESS_SEPARATORS.split(cell):
            if token:
                if token.startswith("<") and token.endswith(">"):
                    token = token[1:-1]
                _append(parsed, SourceRow(number, index + 1, (token,)), limits)


def _append(parsed: ParsedFile, row: SourceRow, limits: ImportLimits) -> None:
    if len(parsed.rows) >= limits.max_rows:
        raise CsvFileError(
            f"the file has more than {limits.max_rows:,} rows to import; split it into "
            "smaller files",
            row=row.number,
        )
    parsed.rows.append(row)
