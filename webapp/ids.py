"""Prefixed, time-ordered public identifiers such as ``inv_01jd…``."""

import base64
import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
# base64's RFC 4648 base32 digits, mapped digit for digit onto the alphabet above.
_FROM_RFC4648 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode("ascii"))


def _encode80(value: bytes) -> str:
    """10 bytes (80 bits) as 16 base32 digits, most significant first."""
    return base64.b32encode(value).translate(_FROM_RFC4648).decode("ascii")


def new_id(prefix: str) -> str:
    """Return ``prefix_`` + 26 characters: 48 bits of milliseconds then 80 random bits.

    Ids sort by creation time, which keeps B-tree inserts local and makes ids readable.
    (Encoded through base64's C base32: bulk imports make hundreds of thousands.)
    """
    millis = time.time_ns() // 1_000_000
    # The time fits in 50 bits, so its 80-bit encoding starts with six zero digits.
    stamp = _encode80(millis.to_bytes(10, "big"))[6:]
    return f"{prefix}_{stamp}{_encode80(os.urandom(10))}"
