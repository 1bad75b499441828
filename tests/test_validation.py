"""Unit tests of the field rules in ``webapp.services.validation`` (no app, no database)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from webapp.services.errors import FieldError
from webapp.services.validation import MAX_EMAIL_LENGTH
from webapp.services.validation import MAX_URL_LENGTH
from webapp.services.validation import check_metadata
from webapp.services.validation import check_redirect_url
from webapp.services.validation import clean_text
from webapp.services.validation import email_key
from webapp.services.validation import normalize_email
from webapp.services.validation import normalize_origin
from webapp.services.validation import required_text

APP = "https://app.example.com"
ALLOWED = [APP]

# ---------------------------------------------------------------------------
# normalize_email
# ---------------------------------------------------------------------------


def test_valid_email_keeps_local_case_and_lowercases_key():
    """The stored email keeps the local part's case; the matching key is lower-cased."""
    assert normalize_email("John.Doe@Example.COM") == (
        "John.Doe@example.com",
        "john.doe@example.com",
    )


def test_email_is_stripped_of_surrounding_whitespace():
    """Leading and trailing whitespace is not part of the address."""
    assert normalize_email("  Bob@EXAMPLE.com \n") == ("Bob@example.com", "bob@example.com")


def test_email_key_helper_matches_normalize_email():
    """email_key() gives the same key normalize_email() does."""
    assert email_key("Mixed.Case@Example.org") == "mixed.case@example.org"


def _long_valid_email(length: int) -> str:
    local = "a" * 64
    domain_len = length - len(local) - 1
    labels = ["b" * 63, "c" * 63]
    rest = domain_len - sum(len(x) + 1 for x in labels) - len(".com")
    domain = ".".join([*labels, "d" * rest]) + ".com"
    address = f"{local}@{domain}"
    assert len(address) == length
    return address


def test_email_of_254_characters_is_accepted():
    """254 characters is the longest address accepted."""
    address = _long_valid_email(MAX_EMAIL_LENGTH)
    result = normalize_email(address)
    assert result == (address, address)


def test_email_longer_than_254_characters_is_refused_naming_it():
    """An address over 254 characters is an invalid_email error naming the value."""
    address = "x" * 250 + "@example.com"
    result = normalize_email(address)
    assert isinstance(result, FieldError)
    assert (result.field, result.code) == ("email", "invalid_email")
    assert "longer than 254" in result.message
    assert "xxxxxxxx" in result.message


def test_email_with_nul_byte_is_refused():
    """A NUL byte makes the address invalid (and the message shows it escaped)."""
    result = normalize_email("a\x00b@example.com")
    assert isinstance(result, FieldError)
    assert (result.field, result.code) == ("email", "invalid_email")
    assert "\x00" not in result.message
    assert "a\\x00b@example.com" in result.message


def test_html_in_email_is_refused_naming_the_value():
    """A markup-laden address is refused, and the error names the value given."""
    value = "<img src=x onerror=alert(1)>@x.io"
    result = normalize_email(value)
    assert isinstance(result, FieldError)
    assert (result.field, result.code) == ("email", "invalid_email")
    assert value in result.message


@pytest.mark.parametrize("value", [None, 42, ["a@example.com"], {"email": "a@example.com"}, b"a@x"])
def test_non_string_email_is_refused(value):
    """Anything but a string is an invalid_email error, never an exception."""
    result = normalize_email(value, field="emails[3]")
    assert isinstance(result, FieldError)
    assert (result.field, result.code) == ("emails[3]", "invalid_email")
    assert "not an email address" in result.message


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_email_is_required_error(value):
    """An empty address is a 'required' error."""
    result = normalize_email(value)
    assert isinstance(result, FieldError)
    assert (result.field, result.code) == ("email", "required")


@pytest.mark.parametrize(
    "value",
    ["plainaddress", "a@", "@example.com", "a b@example.com", "a@b.test", "a@@example.com"],
)
def test_malformed_emails_are_refused_naming_the_value(value):
    """Malformed or reserved-domain addresses are refused and the message names them."""
    result = normalize_email(value)
    assert isinstance(result, FieldError)
    assert result.code == "invalid_email"
    assert repr(value) in result.message


# ---------------------------------------------------------------------------
# check_redirect_url
# ---------------------------------------------------------------------------

OPEN_REDIRECT_SPELLINGS = [
    "//evil.com",
    "//evil.com/https://app.example.com",
    "/\\evil.com",
    "\\\\evil.com",
    "https:evil.com",
    "https:/app.example.com",
    "https:///app.example.com",
    "https://good.example.com@evil.com",
    "https://app.example.com@evil.com",
    "https://app.example.com:443@evil.com",
    "https://user:pass@app.example.com/",
    "https://app.example.com.evil.com",
    "https://app.example.com.",
    "https://evil.com/https://app.example.com",
    "https://evil.com#https://app.example.com",
    "https://evil.com?next=https://app.example.com",
    "\x00https://app.example.com",
    "\x01https://app.example.com",
    "\x1fhttps://app.example.com",
    "\thttps://app.example.com",
    "\nhttps://app.example.com",
    "https://app.example.com\r\n",
    "https://app.exa\tmple.com",
    "https://app.example.com\x7f",
    "https://app.example.com\x85",
    "javascript:alert(1)",
    "JavaScript://app.example.com/%0aalert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "ftp://app.example.com/",
    "https://ａｐｐ.example.com",
    "https://app。example.com",
    "https://xn--pp-8ja.example.com",
    "https://xn--80ak6aa92e.com",
    "http://app.example.com",
    "http://app.example.com:443",
    "https://app.example.com\\@evil.com",
    "https://app.example.com\\.evil.com",
    "https://app.example.com/\\evil.com",
    "https://app.example.com/welcome?next=\\evil.com",
    "https://app.example.com%2f@evil.com",
    "https://app.example.com%2e.evil.com",
    "https://app.example.com:8443/",
    "https://app.example.com:443:80",
    "https://app.example.com:+443",
    "https://app.example.com:99999",
    "https://evil..com",
    "https://.app.example.com",
    "https://[::1]/",
    "https://127.0.0.1/",
    "https://evil.com",
    "app.example.com",
    "/relative/path",
    "https://",
    "https://app.example.com/" + "a" * MAX_URL_LENGTH,
    " https://app.example.com",
    "https://app.example.com/ welcome",
    "https://app.example.com\u3000",
    "https://app.example.com\u200b",
    "",
]


@pytest.mark.parametrize("url", OPEN_REDIRECT_SPELLINGS)
def test_open_redirect_spellings_are_rejected(url):
    """Every open-redirect spelling is a redirect_url FieldError, never a URL."""
    result = check_redirect_url(url, ALLOWED)
    assert isinstance(result, FieldError), url
    assert result.field == "redirect_url"
    assert result.code in {"invalid_url", "insecure_url", "redirect_not_allowed"}


@pytest.mark.parametrize(
    "value", [None, 7, ["https://app.example.com"], b"https://app.example.com"]
)
def test_non_string_redirect_url_is_rejected(value):
    """A redirect URL that is not a string is an invalid_url error."""
    result = check_redirect_url(value, ALLOWED)
    assert isinstance(result, FieldError)
    assert (result.field, result.code) == ("redirect_url", "invalid_url")


def test_redirect_url_error_codes_are_specific():
    """Userinfo, plain http and an unlisted origin each get their own code and name the URL."""
    userinfo = check_redirect_url("https://good.example.com@evil.com", ALLOWED)
    insecure = check_redirect_url("http://app.example.com/x", ALLOWED)
    unlisted = check_redirect_url("https://evil.com/x", ALLOWED)
    assert isinstance(userinfo, FieldError) and userinfo.code == "invalid_url"
    assert "user info" in userinfo.message
    assert isinstance(insecure, FieldError) and insecure.code == "insecure_url"
    assert "http://app.example.com/x" in insecure.message
    assert isinstance(unlisted, FieldError) and unlisted.code == "redirect_not_allowed"
    assert "https://evil.com/x" in unlisted.message


@pytest.mark.parametrize(
    "url", ["https://app.example.com/\\evil.com", "https://app.example.com\\@evil.com"]
)
def test_backslash_anywhere_is_rejected(url):
    """A backslash anywhere in a redirect URL is refused (browsers read it as a slash)."""
    result = check_redirect_url(url, ALLOWED)
    assert isinstance(result, FieldError)
    assert result.code == "invalid_url"
    assert "backslashes" in result.message


def test_redirect_url_over_2048_characters_is_rejected():
    """A redirect URL one character over 2048 is refused; exactly 2048 is accepted."""
    base = APP + "/"
    at_limit = base + "a" * (MAX_URL_LENGTH - len(base))
    over = at_limit + "a"
    assert check_redirect_url(at_limit, ALLOWED) == at_limit
    result = check_redirect_url(over, ALLOWED)
    assert isinstance(result, FieldError)
    assert result.code == "invalid_url"
    assert "2048" in result.message


def test_redirect_url_with_custom_field_name():
    """The error names the field the caller passes."""
    result = check_redirect_url("//evil.com", ALLOWED, field="default_redirect_url")
    assert isinstance(result, FieldError)
    assert result.field == "default_redirect_url"


@pytest.mark.parametrize(
    "url",
    [
        "https://app.example.com",
        "https://app.example.com/",
        "https://app.example.com/welcome",
        "https://app.example.com/welcome?team=7&x=%20y",
        "https://app.example.com/welcome?team=7#section",
        "https://app.example.com:443",
        "https://app.example.com:443/welcome",
        "https://APP.Example.COM/welcome",
        "HTTPS://app.example.com/welcome",
    ],
)
def test_allowed_redirect_urls_are_returned_unchanged(url):
    """A https URL on an allowed origin (default port :443 included) is returned as given."""
    assert check_redirect_url(url, ALLOWED) == url


def test_http_loopback_redirect_allowed_when_listed():
    """http is allowed for a loopback origin that is on the list."""
    allowed = [APP, "http://localhost:3000"]
    assert check_redirect_url("http://localhost:3000/cb?x=1", allowed) == (
        "http://localhost:3000/cb?x=1"
    )
    # Same host, other port, or another loopback name: not on the list.
    for url in ("http://localhost:3001/cb", "http://localhost/cb", "http://127.0.0.1:3000/"):
        result = check_redirect_url(url, allowed)
        assert isinstance(result, FieldError), url
        assert result.code == "redirect_not_allowed"


def test_non_default_port_origin_must_match_exactly():
    """An origin with a port only accepts URLs on that port."""
    allowed = ["https://app.example.com:8443"]
    assert check_redirect_url("https://app.example.com:8443/x", allowed) == (
        "https://app.example.com:8443/x"
    )
    for url in ("https://app.example.com/x", "https://app.example.com:443/x"):
        result = check_redirect_url(url, allowed)
        assert isinstance(result, FieldError)
        assert result.code == "redirect_not_allowed"


def test_empty_allowlist_refuses_everything():
    """With no allowed origins, no redirect URL is accepted."""
    result = check_redirect_url("https://app.example.com/", [])
    assert isinstance(result, FieldError)
    assert result.code == "redirect_not_allowed"


_FRAGMENTS = st.sampled_from(
    [
        "https://",
        "http://",
        "//",
        "https:",
        "app.example.com",
        "evil.com",
        "@",
        ":",
        "443",
        ":443",
        "/",
        "\\",
        "?",
        "#",
        ".",
        "%",
        "%2f",
        "%40",
        "[",
        "]",
        "::1",
        " ",
        "\t",
        "\x00",
        "ａｐｐ",
        "xn--",
        "localhost",
        "HTTPS://",
        "APP.EXAMPLE.COM",
        "user:pass",
    ]
)
_URLISH = st.lists(st.one_of(_FRAGMENTS, st.text(max_size=3)), max_size=8).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), _URLISH, _URLISH.map(lambda s: "https://app.example.com" + s)))
@example("https://app.example.com")
@example("https://app.example.com:443/x")
@example("https://app.example.com@evil.com")
@example("https://app.example.com\\@evil.com")
def test_property_redirect_url_is_error_or_on_the_allowed_origin(url):
    """Any string either fails or is a https URL on app.example.com (port 443) without userinfo."""
    result = check_redirect_url(url, ["https://app.example.com"])
    if isinstance(result, FieldError):
        assert result.field == "redirect_url"
        return
    assert isinstance(result, str)
    parts = urlsplit(result)
    assert parts.scheme == "https"
    assert parts.hostname == "app.example.com"
    assert parts.port in (None, 443)
    assert "@" not in parts.netloc


# ---------------------------------------------------------------------------
# normalize_origin
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://app.example.com", "https://app.example.com"),
        ("https://App.Example.COM/", "https://app.example.com"),
        ("  https://app.example.com  ", "https://app.example.com"),
        ("https://app.example.com:443", "https://app.example.com"),
        ("https://app.example.com:8443", "https://app.example.com:8443"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://localhost:80", "http://localhost"),
        ("http://127.0.0.1:5000/", "http://127.0.0.1:5000"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("https://xn--pp-8ja.example.com", "https://xn--pp-8ja.example.com"),
    ],
)
def test_normalize_origin_canonical_form(value, expected):
    """Origins are lower-cased, default ports dropped, a trailing slash removed."""
    assert normalize_origin(value) == expected


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("https://app.example.com/path", "invalid_origin"),
        ("https://app.example.com/?q=1", "invalid_origin"),
        ("https://app.example.com/#x", "invalid_origin"),
        ("http://app.example.com", "insecure_url"),
        ("app.example.com", "invalid_url"),
        ("https://user@app.example.com", "invalid_url"),
        ("https://ａｐｐ.example.com", "invalid_url"),
        ("javascript:alert(1)", "invalid_url"),
        ("//app.example.com", "invalid_url"),
        ("", "invalid_url"),
        (None, "invalid_url"),
    ],
)
def test_normalize_origin_rejects_non_origins(value, code):
    """Paths, queries, http on a public host, userinfo and non-ASCII hosts are refused."""
    result = normalize_origin(value)
    assert isinstance(result, FieldError)
    assert (result.field, result.code) == ("allowed_redirect_origins", code)


# ---------------------------------------------------------------------------
# check_metadata
# ---------------------------------------------------------------------------


def _sized(total: int) -> dict:
    """A JSON object whose compact UTF-8 serialization is exactly ``total`` bytes."""
    value = {"k": "x" * (total - len('{"k":""}'))}
    assert len(json.dumps(value, separators=(",", ":")).encode()) == total
    return value


def test_metadata_none_becomes_empty_object():
    """Missing metadata is an empty object."""
    assert check_metadata(None, "public_metadata", 8192) == {}


def test_metadata_at_cap_is_accepted_and_one_byte_over_is_refused():
    """The size cap counts serialized UTF-8 bytes: 8192 passes, 8193 fails naming both sizes."""
    assert check_metadata(_sized(8192), "public_metadata", 8192) == _sized(8192)
    result = check_metadata(_sized(8193), "public_metadata", 8192)
    assert isinstance(result, FieldError)
    assert (result.field, result.code) == ("public_metadata", "metadata_too_large")
    assert "8193" in result.message and "8192" in result.message


def test_metadata_size_counts_utf8_bytes_not_characters():
    """Multi-byte characters count by their UTF-8 size."""
    value = {"k": "é" * 10}  # 8 + 20 bytes
    assert check_metadata(value, "private_metadata", 28) == value
    result = check_metadata(value, "private_metadata", 27)
    assert isinstance(result, FieldError)
    assert result.code == "metadata_too_large"


@pytest.mark.parametrize("value", [[1, 2], "text", 3, True, ["k", "v"]])
def test_metadata_must_be_an_object(value):
    """Lists, strings, numbers and booleans are refused as metadata."""
    result = check_metadata(value, "private_metadata", 8192)
    assert isinstance(result, FieldError)
    assert (result.field, result.code) == ("private_metadata", "invalid_metadata")
    assert "JSON object" in result.message


@pytest.mark.parametrize(
    "value",
    [
        {"when": object()},
        {"set": {1, 2}},
        {"nan": float("nan")},
        {"inf": float("inf")},
        {"bytes": b"x"},
        {"nested": {"deep": [1, object()]}},
    ],
)
def test_metadata_must_hold_only_json_values(value):
    """Values JSON cannot represent (objects, sets, NaN, infinity, bytes) are refused."""
    result = check_metadata(value, "public_metadata", 8192)
    assert isinstance(result, FieldError)
    assert result.code == "invalid_metadata"
    assert "JSON values" in result.message


def test_metadata_nested_json_is_accepted():
    """Nested JSON objects, lists, numbers, booleans and null are fine."""
    value = {"a": [1, 2.5, None, True], "b": {"c": "d"}}
    assert check_metadata(value, "public_metadata", 8192) == value


# ---------------------------------------------------------------------------
# clean_text / required_text
# ---------------------------------------------------------------------------


def test_clean_text_strips_and_normalizes_to_nfc():
    """Text is stripped and NFC-normalized."""
    assert clean_text("  Cafe\u0301  ", "name", 50) == "Caf\u00e9"


@pytest.mark.parametrize("value", [None, "", "   "])
def test_clean_text_empty_is_none(value):
    """Missing or blank text becomes None."""
    assert clean_text(value, "name", 50) is None


@pytest.mark.parametrize("value", [5, ["x"], b"x"])
def test_clean_text_non_string_is_refused(value):
    """Non-text values are an 'invalid' error naming the field."""
    result = clean_text(value, "name", 50)
    assert isinstance(result, FieldError)
    assert (result.field, result.code) == ("name", "invalid")


@pytest.mark.parametrize("value", ["a\x00b", "a\nb", "a\rb", "a\x1bb", "a\x7fb", "a\x9bb"])
def test_clean_text_refuses_control_characters(value):
    """Control characters (newlines included) are refused in single-line text."""
    result = clean_text(value, "name", 50)
    assert isinstance(result, FieldError)
    assert (result.field, result.code) == ("name", "invalid")


def test_clean_text_multiline_allows_newlines_only():
    """Multi-line text keeps CRLF and LF line breaks but still refuses other controls."""
    assert clean_text("hello\r\nworld\nbye", "message", 50, multiline=True) == (
        "hello\r\nworld\nbye"
    )
    result = clean_text("hello\x00world", "message", 50, multiline=True)
    assert isinstance(result, FieldError)
    assert result.code == "invalid"
    lone_cr = clean_text("hello\rworld", "message", 50, multiline=True)
    assert isinstance(lone_cr, FieldError)


def test_clean_text_length_cap():
    """Text longer than the cap is a too_long error; exactly the cap is fine."""
    assert clean_text("x" * 10, "name", 10) == "x" * 10
    result = clean_text("x" * 11, "name", 10)
    assert isinstance(result, FieldError)
    assert (result.field, result.code) == ("name", "too_long")
    assert "11" in result.message and "10" in result.message


def test_required_text_refuses_blank():
    """required_text turns a blank value into a 'required' error."""
    result = required_text("  ", "name", 10)
    assert isinstance(result, FieldError)
    assert (result.field, result.code) == ("name", "required")
    assert required_text(" Acme ", "name", 10) == "Acme"
