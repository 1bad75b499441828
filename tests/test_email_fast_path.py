"""normalize_email's fast path for plain addresses answers exactly as email-validator does.

Bulk imports check 100,000 addresses, so plain ``local@domain`` addresses skip most of
email-validator (its domain check is remembered per domain). These tests hold the two
paths equal: same normalized address for every input the fast path accepts, and the
same result as calling email-validator directly for anything at all.
"""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError
from email_validator import validate_email
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from webapp.services.errors import FieldError
from webapp.services.validation import _plain_address
from webapp.services.validation import normalize_email


def reference(value: str) -> tuple[str, str] | str:
    """What normalize_email answered before the fast path: email-validator alone."""
    candidate = value.strip()
    if not candidate or len(candidate) > 254:
        return "error"
    try:
        normalized = validate_email(candidate, check_deliverability=False).normalized
    except EmailNotValidError:
        return "error"
    return normalized, normalized.lower()


def current(value: str) -> tuple[str, str] | str:
    result = normalize_email(value)
    return "error" if isinstance(result, FieldError) else result


LOCAL = st.text(alphabet="abcXYZ019._-+!#$%&'*/=?^`{|}~\"() <>@\\é", min_size=0, max_size=70)
LABEL = st.one_of(
    st.text(alphabet="abcXYZ019-_é", min_size=0, max_size=66),
    st.sampled_from(["xn--bcher-kva", "xn--", "-a", "a-", "a--b", "123", "localhost"]),
)
TLD = st.sampled_from(
    ["com", "COM", "org", "test", "local", "invalid", "onion", "arpa", "example", "123", "x"]
)
DOMAIN = st.builds(lambda labels, tld: ".".join([*labels, tld]), st.lists(LABEL, max_size=4), TLD)
ROUGH = st.builds(lambda local, domain: f"{local}@{domain}", LOCAL, DOMAIN)
# Mostly valid addresses, so that the fast path is taken often (and its edges found).
PLAIN_LOCAL = st.from_regex(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,30}(\.[A-Za-z0-9_+-]{1,20}){0,2}", fullmatch=True
)
PLAIN_LABEL = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?", fullmatch=True)
PLAIN = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join([*labels, tld])}",
    st.one_of(PLAIN_LOCAL, st.sampled_from(["Postmaster", "ABUSE", "www", "info"])),
    st.lists(st.one_of(PLAIN_LABEL, LABEL), min_size=1, max_size=4),
    TLD,
)
ADDRESS = st.one_of(ROUGH, PLAIN)


@settings(max_examples=1500, deadline=None)
@given(ADDRESS)
def test_the_fast_path_agrees_with_email_validator(address):
    fast = _plain_address(address)
    if fast is not None:
        assert validate_email(address, check_deliverability=False).normalized == fast
    assert current(address) == reference(address)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_judged_as_email_validator_judges_it(value):
    assert current(value) == reference(value)


@pytest.mark.parametrize(
    "address, expected",
    [
        ("Ann.Smith@Example.COM", ("Ann.Smith@example.com", "ann.smith@example.com")),
        ("Postmaster@example.com", ("postmaster@example.com", "postmaster@example.com")),
        ("ann@xn--bcher-kva.ch", ("ann@bücher.ch", "ann@bücher.ch")),
        ("ann@localhost", "error"),
        ("ann@example.test", "error"),
        ("ann..smith@example.com", "error"),
        ("a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 60 + ".com", "error"),
    ],
)
def test_examples(address, expected):
    assert current(address) == expected == reference(address)
