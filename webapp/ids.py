"""Prefixed, time-ordered public identifiers such as ``inv_01jd…``."""

import base64
import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
# base64's RFC 4648 base32 digits, mapped digit for digit onto the alphabet above.
_FROM_RFC4648 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode("ascii"))


def new_id(prefix: str) -> str:
    """Return ``prefix_`` + 26 characters: 48 bits of milliseconds then 80 random bits.

    Ids sort by creation time, which keeps B-tree inserts local and makes ids readable.
    Encoded by base64's C base32 (bulk imports make hundreds of thousands): the 128-bit
    value in 20 bytes is 32 digits, of which the first six are always zero.
    """
    millis = time.time_ns() // 1_000_000
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    digits = base64.b32encode(value.to_bytes(20, "big")).translate(_FROM_RFC4648)
    return f"{prefix}_{digits[6:].decode('ascii')}"
