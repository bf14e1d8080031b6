"""Identifiers: time-ordered UUIDv7 for new rows, UUIDv5 for deterministic ids."""

from __future__ import annotations

import os
import time
import uuid

# Deterministic ids (e.g. a top-up's ledger transfer) live under this namespace.
BANKWALLET_NAMESPACE = uuid.UUID("6f1c3c1e-8a51-4d3e-9a0b-5b9a3c2f7d10")


def uuid7() -> uuid.UUID:
    """RFC 9562 UUIDv7: 48-bit Unix milliseconds, then random bits; sorts by creation time."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def derived_id(*parts: object) -> uuid.UUID:
    """A deterministic id from the parts, so a retried step re-submits the same id."""
    return uuid.uuid5(BANKWALLET_NAMESPACE, "\x1f".join(str(p) for p in parts))
