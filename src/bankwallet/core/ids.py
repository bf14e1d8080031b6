"""Identifiers: time-ordered UUIDv7 for new rows, UUIDv5 for deterministic ids."""

from __future__ import annotations

import os
import threading
import time
import uuid

# Deterministic ids (e.g. a top-up's ledger transfer) live under this namespace.
BANKWALLET_NAMESPACE = uuid.UUID("6f1c3c1e-8a51-4d3e-9a0b-5b9a3c2f7d10")


_RAND_BITS = 74  # rand_a (12 bits) and rand_b (62 bits) of RFC 9562, read as one number
_lock = threading.Lock()
_last = (0, 0)  # (milliseconds, random part) of the last id this process made


def uuid7() -> uuid.UUID:
    """RFC 9562 UUIDv7: 48-bit Unix milliseconds, then random bits; sorts by creation time.

    Monotonic within the process (RFC 9562 §6.2, method 2): an id made in the same
    millisecond as the one before (or while the clock stepped back) is the previous one's
    random part plus one, so ids sort in the order they were made — an inbox listing by id
    shows two messages written in one millisecond in the order they were written."""
    global _last
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big") >> (80 - _RAND_BITS)
    with _lock:
        last_ms, last_rand = _last
        if ms <= last_ms:
            ms, rand = last_ms, last_rand + 1
            if rand >> _RAND_BITS:  # 2**74 ids in one millisecond: borrow the next one
                ms, rand = last_ms + 1, 0
        _last = (ms, rand)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (rand >> 62) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def derived_id(*parts: object) -> uuid.UUID:
    """A deterministic id from the parts, so a retried step re-submits the same id."""
    return uuid.uuid5(BANKWALLET_NAMESPACE, "\x1f".join(str(p) for p in parts))
