"""The CSV parser: what spreadsheets really export, and one typed error (with row and
column) for everything else. No database involved."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from webapp.services.importing.parsing import CsvFileError
from webapp.services.importing.parsing import ImportLimits
from webapp.services.importing.parsing import ParsedFile
from webapp.services.importing.parsing import column_letter
from webapp.services.importing.parsing import detect_delimiter
from webapp.services.importing.parsing import parse_csv

BOM = b"\xef\xbb\xbf"


def emails(parsed: ParsedFile) -> list[str]:
    index = parsed.index_of("email")
    return [row.cells[index if row.column == 0 else 0] for row in parsed.rows]


def fields(parsed: ParsedFile) -> dict[str, str]:
    """Header name → field it feeds (None: ignored)."""
    return {
        c.name: (f"{c.field}.{c.metadata_key}" if c.metadata_key else c.field)
        for c in parsed.columns
    }


# name, bytes, delimiter, has header, addresses, row numbers
SAMPLES = [
    (
        "Excel 'CSV UTF-8' (BOM, CRLF)",
        BOM + b"Email,Role\r\nann@example.com,admin\r\nbob@example.com,member\r\n",
        ",",
        True,
        ["ann@example.com", "bob@example.com"],
        [2, 3],
    ),
    (
        "Excel with a European locale (semicolons, BOM, non-ASCII)",
        BOM + "Email;Role;public_metadata.city\r\nann@example.com;member;Zürich\r\n".encode(),
        ";",
        True,
        ["ann@example.com"],
        [2],
    ),
    (
        "Google Sheets download (CRLF, quoted commas, no final newline)",
        b'email,role,private_metadata.note\r\nann@example.com,member,"Hello, world"\r\n'
        b'bob@example.com,admin,"say ""hi"""',
        ",",
        True,
        ["ann@example.com", "bob@example.com"],
        [2, 3],
    ),
    (
        "one bare column of addresses, no header",
        b"ann@example.com\nbob@example.com\ncarol@example.com\n",
        ",",
        False,
        ["ann@example.com", "bob@example.com", "carol@example.com"],
        [1, 2, 3],
    ),
    (
        "quoted newlines keep one spreadsheet row",
        b'email,public_metadata.note\nann@example.com,"line one\nline two"\nbob@example.com,x\n',
        ",",
        True,
        ["ann@example.com", "bob@example.com"],
        [2, 3],
    ),
    (
        "mixed-case and hyphenated headers in any order",
        b"Expires_In_Days,ROLE,E-Mail,Redirect_URL\n7,admin,ann@example.com,\n",
        ",",
        True,
        ["ann@example.com"],
        [2],
    ),
    (
        "trailing empty columns (spreadsheets export them)",
        b"email,role,,,\nann@example.com,member,,,\nbob@example.com,,,,\n",
        ",",
        True,
        ["ann@example.com", "bob@example.com"],
        [2, 3],
    ),
    (
        "tab separated (pasted from a spreadsheet)",
        b"email\trole\nann@example.com\tadmin\n",
        "\t",
        True,
        ["ann@example.com"],
        [2],
    ),
    (
        "blank lines and surrounding spaces are ignored",
        b"\n  email , role \n\n  ann@example.com ,  member \n   \n bob@example.com,admin\n\n",
        ",",
        True,
        ["ann@example.com", "bob@example.com"],
        [4, 6],
    ),
    (
        "classic Mac line endings (CR only)",
        b"email\rann@example.com\rbob@example.com\r",
        ",",
        True,
        ["ann@example.com", "bob@example.com"],
        [2, 3],
    ),
    (
        "one column whose header is not a known name",
        b"Addresses\nann@example.com\n",
        ",",
        True,
        ["ann@example.com"],
        [2],
    ),
    (
        "a pasted list: commas, semicolons, spaces, angle brackets",
        b"ann@example.com, bob@example.com; <carol@example.com>\ndave@example.com\n",
        ",",
        False,
        ["ann@example.com", "bob@example.com", "carol@example.com", "dave@example.com"],
        [1, 1, 1, 2],
    ),
]


@pytest.mark.parametrize(
    "data, delimiter, has_header, addresses, rows",
    [sample[1:] for sample in SAMPLES],
    ids=[sample[0] for sample in SAMPLES],
)
def test_real_world_samples(data, delimiter, has_header, addresses, rows):
    parsed = parse_csv(data)
    assert parsed.delimiter == delimiter
    assert parsed.has_header is has_header
    assert emails(parsed) == addresses
    assert [r.number for r in parsed.rows] == rows


def test_headers_map_to_fields_case_insensitively():
    parsed = parse_csv(
        b"E-Mail,ROLE,Redirect_URL,expires_in_days,Projects,public_metadata.Team,"
        b"PRIVATE_METADATA.cost center,private_metadata,Name\nann@example.com,,,,,,,,Ann\n"
    )
    assert fields(parsed) == {
        "E-Mail": "email",
        "ROLE": "role",
        "Redirect_URL": "redirect_url",
        "expires_in_days": "expires_in_days",
        "Projects": "projects",
        "public_metadata.Team": "public_metadata.Team",
        "PRIVATE_METADATA.cost center": "private_metadata.cost center",
        "private_metadata": "private_metadata",
        "Name": None,
    }
    assert parsed.ignored_columns == ["Name"]


def test_quoted_cells_keep_separators_quotes_and_newlines():
    parsed = parse_csv(b'email,public_metadata.note\nann@example.com,"a, b; c\n""d"""\n')
    assert parsed.rows[0].cells == ("ann@example.com", 'a, b; c\n"d"')


def test_an_error_report_column_is_not_reported_as_ignored():
    parsed = parse_csv(b"email,role,error\nann@example.com,boss,unknown role: 'boss'\n")
    assert parsed.ignored_columns == []
    assert parsed.report_header() == ["email", "role"]
    assert parsed.report_cells(parsed.rows[0]) == ["ann@example.com", "boss"]


def test_apostrophe_guards_written_by_the_app_are_removed():
    parsed = parse_csv(b"email,public_metadata.note\n'-ann@example.com,'=SUM(A1)\nb@x.io,'plain\n")
    assert parsed.rows[0].cells == ("-ann@example.com", "=SUM(A1)")
    # An apostrophe before anything else is the user's own text.
    assert parsed.rows[1].cells == ("b@x.io", "'plain")


def test_cells_beyond_the_header_are_ignored_with_a_warning():
    parsed = parse_csv(b"email,role\nann@example.com,admin,surprise\n")
    assert parsed.rows[0].cells == ("ann@example.com", "admin")
    assert parsed.warnings == ["row 2 has cells beyond the last named column; they were ignored"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a,b;c\n1,2;3\n", ","),
        ("a;b,c;d\n1;2,3;4\n", ";"),
        ("email;name\nx@y.z;Smith, Ann\n", ";"),
        ('email,note\nx@y.z,"a;b;c;d"\n', ","),
        ("email\tname\nx@y.z\tAnn; Bob\n", "\t"),
        ("x@y.z\n", ","),
    ],
)
def test_delimiter_detection(text, expected):
    assert detect_delimiter(text) == expected


def test_column_letters_are_spreadsheet_names():
    assert [column_letter(i) for i in (0, 1, 25, 26, 27, 51, 52, 701, 702)] == [
        "A",
        "B",
        "Z",
        "AA",
        "AB",
        "AZ",
        "BA",
        "ZZ",
        "AAA",
    ]


# --- files that cannot be imported: one clear message saying where --------------------

SMALL = ImportLimits(max_rows=3, max_bytes=2000, max_cell_chars=40, max_columns=5)

BAD_FILES = [
    (
        "Windows-1252 / Latin-1 bytes",
        b"email,role\nann@example.com,member\nJos\xe9@example.com,member\n",
        ImportLimits(),
        (3, "A"),
        "0xE9 are not UTF-8",
    ),
    (
        "a bad byte in the second column",
        b"email;role\nann@example.com;memb\xffer\n",
        ImportLimits(),
        (2, "B"),
        "0xFF are not UTF-8",
    ),
    (
        "UTF-16 (Excel's 'Unicode text')",
        "email\nann@example.com\n".encode("utf-16"),
        ImportLimits(),
        (1, "A"),
        "UTF-16",
    ),
    (
        "a NUL byte",
        b"email,role\nann@example.com,mem\x00ber\n",
        ImportLimits(),
        (2, "B"),
        "NUL byte",
    ),
    (
        "an Excel workbook",
        b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 40,
        ImportLimits(),
        (1, "A"),
        "Excel workbook",
    ),
    (
        "control characters of binary data",
        b"email\nann@example.com\n\x01\x02\x03\n",
        ImportLimits(),
        (3, "A"),
        "control character U+0001",
    ),
    (
        "a cell over the size cap",
        b"email,public_metadata.note\nann@example.com," + b"x" * 41 + b"\n",
        SMALL,
        (2, "B (public_metadata.note)"),
        "41 characters; the limit is 40",
    ),
    (
        "an open quote swallowing the rest of the file",
        b'email,public_metadata.note\nann@example.com,"oops\n' + b"bob@example.com,x\n" * 5,
        SMALL,
        (2, "B (public_metadata.note)"),
        "is a quote left open?",
    ),
    (
        "more rows than allowed",
        b"email\n" + b"".join(b"p%d@example.com\n" % n for n in range(4)),
        SMALL,
        (5, None),
        "more than 3 rows",
    ),
    (
        "more columns than allowed",
        b"email,a,b,c,d,e\n",
        SMALL,
        (1, None),
        "6 columns; the limit is 5",
    ),
    (
        "no email column",
        b"name,role\nAnn,admin\n",
        ImportLimits(),
        (1, None),
        "no email column",
    ),
    (
        "several columns of data without a header",
        b"ann@example.com,admin\n",
        ImportLimits(),
        (1, None),
        "no email column",
    ),
    (
        "a field named twice",
        b"email,role,Email\n",
        ImportLimits(),
        (1, "C"),
        "columns A ('email') and C ('Email') are both email",
    ),
    (
        "a metadata column without a key",
        b"email,public_metadata.\n",
        ImportLimits(),
        (1, "B"),
        "needs a key after the dot",
    ),
    (
        "a header and no rows",
        b"email,role\n\n",
        ImportLimits(),
        (2, None),
        "no rows after the header",
    ),
]


@pytest.mark.parametrize(
    "data, limits, where, words",
    [sample[1:] for sample in BAD_FILES],
    ids=[sample[0] for sample in BAD_FILES],
)
def test_bad_files_get_one_error_naming_row_and_column(data, limits, where, words):
    with pytest.raises(CsvFileError) as caught:
        parse_csv(data, limits)
    error = caught.value
    assert (error.row, error.column) == where
    assert words in str(error)
    location = f"row {where[0]}" + (f", column {where[1]}" if where[1] else "")
    assert str(error).startswith(location + ": ")


def test_a_file_over_the_byte_limit_is_refused_before_reading_it():
    with pytest.raises(CsvFileError) as caught:
        parse_csv(b"email\n" + b"a@example.com\n" * 200, SMALL)
    assert str(caught.value) == (
        "the file is 3 KiB; the limit is 2 KiB. Split it into smaller files."
    )


@pytest.mark.parametrize("data", [b"", b"   \n\r\n\t\n", BOM, b'""\n""\n'])
def test_an_empty_file_is_refused(data):
    with pytest.raises(CsvFileError, match="the file is empty|every cell is empty"):
        parse_csv(data)


def test_the_default_limits_are_the_issue_s():
    limits = ImportLimits()
    assert (limits.max_rows, limits.max_bytes) == (100_000, 10 * 1024 * 1024)


# --- never anything but CsvFileError ---------------------------------------------------

CSV_ALPHABET = [
    b",",
    b";",
    b"\t",
    b'"',
    b"\n",
    b"\r",
    b" ",
    b"@",
    b"'",
    b"=",
    b"a",
    b"email",
    b"role",
    b"public_metadata.",
    b"x@example.com",
    b"\x00",
    b"\xff",
    b"\xc3\xa9",
    b"\xef\xbb\xbf",
    b"\x01",
    b"<",
    b">",
]


def _parses_or_explains(data: bytes, limits: ImportLimits) -> None:
    try:
        parsed = parse_csv(data, limits)
    except CsvFileError as error:
        assert str(error)
        return
    assert parsed.rows
    assert 0 < len(parsed.rows) <= limits.max_rows
    for row in parsed.rows:
        assert all(len(cell) <= limits.max_cell_chars for cell in row.cells)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_arbitrary_bytes_give_rows_or_the_typed_error(data):
    _parses_or_explains(data, ImportLimits())
    _parses_or_explains(data, SMALL)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(CSV_ALPHABET), max_size=80).map(b"".join))
def test_csv_like_bytes_give_rows_or_the_typed_error(data):
    _parses_or_explains(data, ImportLimits())
    _parses_or_explains(data, SMALL)
