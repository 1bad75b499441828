"""Public ids keep their format: prefix, 10 digits of milliseconds, 16 random digits."""

from __future__ import annotations

from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from webapp.ids import new_id

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def digits(value: int, length: int) -> str:
    """The reference encoding: Crockford base32, most significant digit first."""
    out = []
    for _ in range(length):
        value, rest = divmod(value, 32)
        out.append(ALPHABET[rest])
    return "".join(reversed(out))


@given(st.integers(0, 2**48 - 1), st.binary(min_size=16, max_size=16))
def test_ids_encode_time_then_randomness(millis, random_bytes):
    with (
        mock.patch("webapp.ids.time.time_ns", return_value=millis * 1_000_000 + 999_999),
        mock.patch("webapp.ids.os.urandom", return_value=random_bytes),
    ):
        made = new_id("inv")
    # Each random byte gives one digit (its low five bits): 16 digits, 80 random bits.
    random_digits = "".join(ALPHABET[b & 31] for b in random_bytes)
    assert made == f"inv_{digits(millis, 10)}{random_digits}"


def test_ids_sort_by_creation_time():
    with mock.patch("webapp.ids.time.time_ns", side_effect=[1_000_000_000_000, 1_000_001_000_000]):
        first, second = new_id("evt"), new_id("evt")
    assert first < second and len(first) == len("evt_") + 26
