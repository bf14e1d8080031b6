"""Solana: build and sign a System Program transfer offline.

A legacy message: header (1 required signature, 0 read-only signed, 1 read-only unsigned),
the account keys [from, to, System Program], the recent blockhash, and one instruction
(program index 2, accounts [0, 1], data u32 LE 2 (Transfer) ‖ u64 LE lamports). The sender
signs the message bytes with ed25519; the wire transaction is shortvec(signatures) ‖ message.
The recent blockhash comes from the network (getLatestBlockhash); signing needs none.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bip_utils import Base58Decoder, Base58Encoder
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bankwallet.chains.addresses import validate_address
from bankwallet.chains.errors import (
    AddressInvalid,
    PrivateKeyInvalid,
    TransactionInvalid,
)
from bankwallet.connectors.chains.varint import encode_varint

SYSTEM_PROGRAM = bytes(32)  # 11111111111111111111111111111111
TRANSFER_INSTRUCTION = 2
MAX_U64 = 2**64 - 1
FIELDS = {"to", "lamports", "recent_blockhash", "from"}


@dataclass(frozen=True, slots=True)
class SignedSolanaTransaction:
    signature: str  # base58: the transaction id explorers show
    message_base64: str
    transaction_base58: str  # what older RPC clients and Trust Wallet print
    transaction_base64: str  # for sendTransaction with encoding "base64"
    sender: str


def shortvec(length: int) -> bytes:
    """Solana's compact-u16 length prefix."""
    assert 0 <= length <= 0xFFFF
    return encode_varint(length)


def transfer_message(sender: bytes, recipient: bytes, lamports: int,
                     recent_blockhash: bytes) -> bytes:
    """The legacy message of one System Program transfer (32-byte keys and blockhash)."""
    header = bytes([1, 0, 1])
    keys = shortvec(3) + sender + recipient + SYSTEM_PROGRAM
    data = TRANSFER_INSTRUCTION.to_bytes(4, "little") + lamports.to_bytes(8, "little")
    instruction = bytes([2]) + shortvec(2) + bytes([0, 1]) + shortvec(len(data)) + data
    return header + keys + recent_blockhash + shortvec(1) + instruction


def sign_transfer(tx: Mapping[str, Any], private_key: bytes) -> SignedSolanaTransaction:
    """Sign ``{"to", "lamports", "recent_blockhash"}`` (and optionally "from") with a 32-byte
    ed25519 seed or a 64-byte keypair (seed ‖ public key)."""
    if not isinstance(tx, Mapping):
        raise TransactionInvalid("a transaction is a JSON object")
    unknown = set(tx) - FIELDS
    if unknown:
        raise TransactionInvalid(f"unknown fields: {', '.join(sorted(unknown))}")
    key = _private_key(private_key)
    sender = key.public_key().public_bytes_raw()
    if "from" in tx and _key32(tx["from"], "from") != sender:
        raise TransactionInvalid("'from' is not the address of this key")
    recipient = _key32(tx.get("to"), "to")
    lamports = _lamports(tx.get("lamports"))
    blockhash = _blockhash(tx.get("recent_blockhash"))
    message = transfer_message(sender, recipient, lamports, blockhash)
    signature = key.sign(message)
    wire = shortvec(1) + signature + message
    return SignedSolanaTransaction(
        Base58Encoder.Encode(signature), base64.b64encode(message).decode(),
        Base58Encoder.Encode(wire), base64.b64encode(wire).decode(),
        Base58Encoder.Encode(sender))


def parse_solana_private_key(text: str) -> bytes:
    """A key as hex (32 or 64 bytes) or a 64-byte base58 keypair as Phantom exports it."""
    from bankwallet.chains.derive import import_private_key

    return import_private_key("SOL", text).keys.private_key


def _private_key(private_key: bytes) -> Ed25519PrivateKey:
    if not isinstance(private_key, bytes | bytearray) or len(private_key) not in (32, 64):
        raise PrivateKeyInvalid("an ed25519 key has 32 bytes (or 64 with its public key)")
    key = Ed25519PrivateKey.from_private_bytes(bytes(private_key[:32]))
    if len(private_key) == 64 and private_key[32:] != key.public_key().public_bytes_raw():
        raise PrivateKeyInvalid("the keypair's public half does not match its secret half")
    return key


def _key32(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise TransactionInvalid(f"{name} is a Solana address (base58)")
    try:
        return Base58Decoder.Decode(validate_address("SOL", value))
    except AddressInvalid as exc:
        raise TransactionInvalid(f"{name}: {exc.detail}") from None


def _lamports(value: Any) -> int:
    if isinstance(value, str):
        try:
            value = int(value.strip(), 10)
        except ValueError:
            raise TransactionInvalid("lamports is not a whole number") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TransactionInvalid("lamports is a whole number")
    if not 1 <= value <= MAX_U64:
        raise TransactionInvalid("lamports must be from 1 to 2^64-1")
    return value


def _blockhash(value: Any) -> bytes:
    if not isinstance(value, str) or not value.strip():
        raise TransactionInvalid("recent_blockhash is required (base58, from the network)")
    try:
        raw = Base58Decoder.Decode(value.strip())
    except ValueError:
        raise TransactionInvalid("recent_blockhash is not base58") from None
    if len(raw) != 32:
        raise TransactionInvalid("recent_blockhash encodes 32 bytes")
    return raw
