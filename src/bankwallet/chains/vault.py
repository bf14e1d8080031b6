"""Seal a wallet secret (the recovery phrase's entropy, a private key) under the customer's PIN.

Blob, version 1 (all integers big-endian)::

    b"BWV" | version (1) | kdf (1 = argon2id) | time_cost (u32) | memory_kib (u32)
    | parallelism (u8) | salt (16) | pin_check (16) | nonce (12) | AES-256-GCM ciphertext+tag

The header is the GCM associated data, so changed parameters fail authentication. Argon2id
gives 48 bytes: a 32-byte AES key and a 16-byte ``pin_check``. The check tells a wrong PIN from
a damaged blob and gives an attacker nothing the GCM tag does not already give (both need the
same Argon2 work per guess).

A 6-digit PIN has only a million values, so a stolen blob alone is guessable offline in days
whatever the KDF: the service must keep the blob server-side under the bank's envelope
encryption (``core.crypto``) and count wrong PINs. The PIN is what keeps bank staff out.
"""

from __future__ import annotations

import hmac
import os
import struct
import unicodedata
from dataclasses import dataclass

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bankwallet.chains.errors import SealedSecretInvalid, WalletPinInvalid, WalletPinWrong

MAGIC = b"BWV"
VERSION = 1
KDF_ARGON2ID = 1
MIN_PIN_CHARS = 6
MAX_PIN_CHARS = 256
MAX_SECRET_BYTES = 4096
_HEADER = struct.Struct(">3sBBIIB16s16s12s")


@dataclass(frozen=True, slots=True)
class KdfCost:
    time_cost: int
    memory_kib: int
    parallelism: int


# RFC 9106's second recommended setting (64 MiB, 3 passes, 4 lanes).
PRODUCTION_COST = KdfCost(time_cost=3, memory_kib=64 * 1024, parallelism=4)
# Bounds on what a blob may ask for when opened: a crafted blob must not exhaust the server.
MAX_COST = KdfCost(time_cost=10, memory_kib=1024 * 1024, parallelism=16)
MIN_COST = KdfCost(time_cost=1, memory_kib=8, parallelism=1)  # argon2's floor; for tests


def seal_secret(secret: bytes, pin: str, *, cost: KdfCost = PRODUCTION_COST) -> bytes:
    if not 0 < len(secret) <= MAX_SECRET_BYTES:
        raise SealedSecretInvalid(f"a secret has 1 to {MAX_SECRET_BYTES} bytes")
    _check_cost(cost)
    salt, nonce = os.urandom(16), os.urandom(12)
    key, pin_check = _derive(_normalize_pin(pin), salt, cost)
    header = _HEADER.pack(MAGIC, VERSION, KDF_ARGON2ID, cost.time_cost, cost.memory_kib,
                          cost.parallelism, salt, pin_check, nonce)
    return header + AESGCM(key).encrypt(nonce, secret, header)


def open_secret(blob: bytes, pin: str) -> bytes:
    """The sealed secret; ``WalletPinWrong`` for a wrong PIN, ``SealedSecretInvalid`` for a
    blob that is damaged, truncated or of an unknown version."""
    header, ciphertext = blob[:_HEADER.size], blob[_HEADER.size:]
    if len(header) < _HEADER.size or len(ciphertext) < 17:
        raise SealedSecretInvalid("the sealed secret is truncated")
    magic, version, kdf, time_cost, memory_kib, lanes, salt, pin_check, nonce = (
        _HEADER.unpack(header))
    if magic != MAGIC or version != VERSION or kdf != KDF_ARGON2ID:
        raise SealedSecretInvalid("not a version 1 argon2id sealed secret")
    cost = KdfCost(time_cost, memory_kib, lanes)
    _check_cost(cost, error=SealedSecretInvalid)
    key, expected_check = _derive(_normalize_pin(pin), salt, cost)
    if not hmac.compare_digest(expected_check, pin_check):
        raise WalletPinWrong()
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, header)
    except InvalidTag:
        raise SealedSecretInvalid("the sealed secret was changed or damaged") from None


def needs_reseal(blob: bytes, cost: KdfCost = PRODUCTION_COST) -> bool:
    """True when the blob was sealed with weaker parameters than ``cost`` (re-seal on the
    next correct PIN)."""
    if len(blob) < _HEADER.size:
        raise SealedSecretInvalid("the sealed secret is truncated")
    _, _, _, time_cost, memory_kib, lanes, *_ = _HEADER.unpack(blob[:_HEADER.size])
    return (time_cost, memory_kib) < (cost.time_cost, cost.memory_kib) or lanes != cost.parallelism


def _normalize_pin(pin: str) -> bytes:
    # NFKC: full-width digits from a Chinese input method are the same PIN as ASCII ones.
    normalized = unicodedata.normalize("NFKC", pin)
    if len(normalized) < MIN_PIN_CHARS:
        raise WalletPinInvalid()
    if len(normalized) > MAX_PIN_CHARS:
        raise WalletPinInvalid(f"a wallet PIN has at most {MAX_PIN_CHARS} characters")
    return normalized.encode()


def _derive(pin: bytes, salt: bytes, cost: KdfCost) -> tuple[bytes, bytes]:
    material = hash_secret_raw(pin, salt, time_cost=cost.time_cost, memory_cost=cost.memory_kib,
                               parallelism=cost.parallelism, hash_len=48, type=Type.ID)
    return material[:32], material[32:]


def _check_cost(cost: KdfCost, error: type[Exception] = ValueError) -> None:
    for name in ("time_cost", "memory_kib", "parallelism"):
        value = getattr(cost, name)
        if not getattr(MIN_COST, name) <= value <= getattr(MAX_COST, name):
            raise error(f"argon2 {name} {value} is out of bounds")
    if cost.memory_kib < 8 * cost.parallelism:
        raise error("argon2 needs at least 8 KiB of memory per lane")
