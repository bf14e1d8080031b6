"""Signed webhooks: one scheme for every webhook bankwallet sends or receives.

The header is Stripe's: ``Bankwallet-Signature: t=<unix seconds>,v1=<hex>``, where ``<hex>`` is
HMAC-SHA256 of ``f"{t}.{body}"`` under the shared secret. The timestamp is signed too, so a
captured delivery cannot be replayed outside the tolerance window. While a secret is being
rotated the sender signs with both secrets (two ``v1`` entries) and a receiver accepts any
entry that matches any of the secrets it holds.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence
from typing import Final

from bankwallet.core.errors import BankwalletError

SIGNATURE_HEADER: Final = "Bankwallet-Signature"
SCHEME: Final = "v1"
DEFAULT_TOLERANCE_S: Final = 300
HEADER_MAX_CHARS: Final = 2048   # a handful of signatures; anything longer is not ours
SIGNATURES_MAX: Final = 8        # v1 entries looked at; rotation needs two
SECRETS_MAX: Final = 8

Secrets = str | bytes | Sequence[str | bytes]


class WebhookVerificationFailed(BankwalletError):
    """Base of both verification errors, for receivers that answer them alike."""

    code = "webhook_verification_failed"
    status = 400
    title = "Webhook could not be verified"


class WebhookSignatureInvalid(WebhookVerificationFailed):
    code = "webhook_signature_invalid"
    title = "Webhook signature invalid"


class WebhookTimestampOutsideTolerance(WebhookVerificationFailed):
    code = "webhook_timestamp_outside_tolerance"
    title = "Webhook timestamp outside tolerance"


def sign(secret: Secrets, body: bytes | str, timestamp: int | None = None) -> str:
    """The header value for ``body`` at ``timestamp`` (now when omitted): one ``v1`` entry per
    secret, so a sender in the middle of a rotation passes a list of two."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    entries = [f"t={t}"] + [f"{SCHEME}={_digest(s, t, body)}" for s in _secret_list(secret)]
    return ",".join(entries)


def verify(secret: Secrets, body: bytes | str, header: str | None, *,
           tolerance_s: int = DEFAULT_TOLERANCE_S, now: float | None = None) -> int:
    """Check ``header`` against ``body``; return the signed timestamp.

    Raises ``WebhookSignatureInvalid`` when the header is missing or malformed or no ``v1``
    entry matches any of the secrets, and ``WebhookTimestampOutsideTolerance`` when it matches
    but was signed more than ``tolerance_s`` away from ``now`` (either way: a clock far ahead
    is as suspect as a replay)."""
    assert tolerance_s > 0, tolerance_s
    timestamp, signatures = _parse(header)
    expected = [_digest(s, timestamp, body) for s in _secret_list(secret)]
    # Every pair is compared (no early exit), each in constant time.
    matched = False
    for candidate in signatures:
        for digest in expected:
            matched |= hmac.compare_digest(candidate, digest)
    if not matched:
        raise WebhookSignatureInvalid("No signature matches the body and the shared secret.")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise WebhookTimestampOutsideTolerance(
            f"The signature is older (or newer) than {tolerance_s} s.")
    return timestamp


def _digest(secret: str | bytes, timestamp: int, body: bytes | str) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    data = body.encode() if isinstance(body, str) else body
    return hmac.new(key, b"%d." % timestamp + data, hashlib.sha256).hexdigest()


def _secret_list(secret: Secrets) -> list[str | bytes]:
    secrets = [secret] if isinstance(secret, (str, bytes)) else list(secret)
    assert 0 < len(secrets) <= SECRETS_MAX, "give between one and eight secrets"
    assert all(secrets), "an empty secret signs nothing"
    return secrets


def _parse(header: str | None) -> tuple[int, list[str]]:
    if not header:
        raise WebhookSignatureInvalid(f"The {SIGNATURE_HEADER} header is missing.")
    if len(header) > HEADER_MAX_CHARS:
        raise WebhookSignatureInvalid(f"The {SIGNATURE_HEADER} header is too long.")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            if not (value.isascii() and value.isdigit()) or len(value) > 12:
                raise WebhookSignatureInvalid("The signature timestamp is not a number.")
            timestamp = int(value)
        elif key == SCHEME and value.isascii() and len(signatures) < SIGNATURES_MAX:
            signatures.append(value)  # compare_digest refuses non-ASCII text
    if timestamp is None or not signatures:
        raise WebhookSignatureInvalid(
            f"The {SIGNATURE_HEADER} header needs a timestamp and a {SCHEME} signature.")
    return timestamp, signatures
