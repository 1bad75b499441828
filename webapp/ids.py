"""Prefixed, time-ordered public identifiers such as ``inv_01jd…``."""

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
# Each random byte becomes one digit from its low five bits: 32 equally likely digits.
_DIGIT_OF_BYTE = bytes(_ALPHABET.encode("ascii")[b & 31] for b in range(256))
_last_millis = -1
_last_time_digits = ""


def _time_digits(millis: int) -> str:
    """Ten base32 digits of a 48-bit millisecond count, most significant first."""
    global _last_millis, _last_time_digits
    if millis != _last_millis:
        _last_time_digits = "".join(_ALPHABET[(millis >> (5 * i)) & 31] for i in range(9, -1, -1))
        _last_millis = millis
    return _last_time_digits


def new_id(prefix: str) -> str:
    """Return ``prefix_`` + 26 characters: 10 digits of milliseconds, then 16 random
    digits (80 random bits).

    Ids sort by creation time, which keeps B-tree inserts local and makes ids readable.
    Bulk imports make hundreds of thousands: the random digits come from one
    ``bytes.translate`` of 16 random bytes, the time digits once per millisecond.
    """
    millis = time.time_ns() // 1_000_000
    random_digits = os.urandom(16).translate(_DIGIT_OF_BYTE).decode("ascii")
    return f"{prefix}_{_time_digits(millis)}{random_digits}"


def new_ids(prefix: str, count: int) -> list[str]:
    """``count`` ids as ``new_id`` makes them (same format, same 80 random bits each),
    from one read of random bytes and one ``bytes.translate`` (bulk imports)."""
    time_part = f"{prefix}_{_time_digits(time.time_ns() // 1_000_000)}"
    digits = os.urandom(16 * count).translate(_DIGIT_OF_BYTE).decode("ascii")
    return [time_part + digits[n : n + 16] for n in range(0, 16 * count, 16)]
