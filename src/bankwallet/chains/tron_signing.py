"""TRON: build and sign a TRX transfer (``TransferContract``) offline.

The transaction's ``raw_data`` is protobuf, encoded here by hand (the few fields a transfer
needs, in field-number order as protoc writes them). The transaction id is sha256 of the
``raw_data`` bytes, and the signature is a 65-byte recoverable secp256k1 signature of the id:
r ‖ s ‖ recovery id (0 or 1, as Trust Wallet writes it; java-tron also accepts 27/28).

The reference block (``ref_block_bytes``: bytes 6-7 of the block number, ``ref_block_hash``:
bytes 8-15 of the block id) and the expiration come from a recent block, which the caller
fetches online; the signing itself needs no network.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import coincurve
from bip_utils import Base58Decoder

from bankwallet.chains.addresses import validate_address
from bankwallet.chains.errors import (
    AddressInvalid,
    PrivateKeyInvalid,
    TransactionInvalid,
)
from bankwallet.connectors.chains.varint import encode_varint

TRANSFER_CONTRACT = 1  # protocol.Transaction.Contract.ContractType.TransferContract
TRANSFER_TYPE_URL = b"type.googleapis.com/protocol.TransferContract"
MAX_INT64 = 2**63 - 1
MAX_EXPIRATION_AHEAD_MS = 24 * 60 * 60 * 1000  # java-tron refuses more than 24 hours
FIELDS = {"to", "amount_sun", "ref_block_bytes", "ref_block_hash", "expiration_ms",
          "timestamp_ms", "from"}


@dataclass(frozen=True, slots=True)
class SignedTronTransaction:
    txid: str  # hex, sha256(raw_data)
    raw_data_hex: str  # the signed raw_data (what tronweb calls raw_data_hex)
    signature: str  # hex, 65 bytes r ‖ s ‖ recovery id
    raw_hex: str  # the whole signed Transaction protobuf, for /wallet/broadcasthex
    sender: str


# --- protobuf wire format ----------------------------------------------------------------

def _int_field(number: int, value: int) -> bytes:
    """A varint field (wire type 0); proto3 leaves out zeros."""
    return encode_varint(number << 3) + encode_varint(value) if value else b""


def _bytes_field(number: int, value: bytes) -> bytes:
    """A length-delimited field (wire type 2); proto3 leaves out empty values."""
    return encode_varint(number << 3 | 2) + encode_varint(len(value)) + value if value else b""


# --- the transaction ---------------------------------------------------------------------

def transfer_raw_data(*, owner: bytes, to: bytes, amount_sun: int, ref_block_bytes: bytes,
                      ref_block_hash: bytes, expiration_ms: int, timestamp_ms: int) -> bytes:
    """``protocol.Transaction.raw`` of a TRX transfer; addresses are 21 bytes (0x41 ...)."""
    transfer = (_bytes_field(1, owner) + _bytes_field(2, to)  # owner_address, to_address
                + _int_field(3, amount_sun))  # amount
    parameter = _bytes_field(1, TRANSFER_TYPE_URL) + _bytes_field(2, transfer)  # Any
    contract = _int_field(1, TRANSFER_CONTRACT) + _bytes_field(2, parameter)
    return (_bytes_field(1, ref_block_bytes) + _bytes_field(4, ref_block_hash)
            + _int_field(8, expiration_ms) + _bytes_field(11, contract)
            + _int_field(14, timestamp_ms))


def sign_transfer(tx: Mapping[str, Any], private_key: bytes) -> SignedTronTransaction:
    """Sign a TRX transfer described as ``{"to", "amount_sun", "ref_block_bytes" (4 hex),
    "ref_block_hash" (16 hex), "expiration_ms", "timestamp_ms"}`` (and optionally "from")."""
    if not isinstance(tx, Mapping):
        raise TransactionInvalid("a transaction is a JSON object")
    unknown = set(tx) - FIELDS
    if unknown:
        raise TransactionInvalid(f"unknown fields: {', '.join(sorted(unknown))}")
    key = _private_key(private_key)
    public = key.public_key.format(compressed=False)
    owner = tron_address_bytes(public)
    sender = _base58check(owner)
    if "from" in tx and _address(tx["from"], "from") != owner:
        raise TransactionInvalid("'from' is not the address of this key")
    to = _address(tx.get("to"), "to")
    if to == owner:
        raise TransactionInvalid("TRON refuses a transfer to the sender's own address")
    amount = _int(tx.get("amount_sun"), "amount_sun", minimum=1)
    expiration = _int(tx.get("expiration_ms"), "expiration_ms", minimum=1)
    timestamp = _int(tx.get("timestamp_ms"), "timestamp_ms", minimum=1)
    if expiration <= timestamp:
        raise TransactionInvalid("expiration_ms must be after timestamp_ms")
    if expiration - timestamp > MAX_EXPIRATION_AHEAD_MS:
        raise TransactionInvalid("expiration_ms is more than 24 hours after timestamp_ms")
    raw = transfer_raw_data(owner=owner, to=to, amount_sun=amount,
                            ref_block_bytes=_hex(tx.get("ref_block_bytes"), "ref_block_bytes", 2),
                            ref_block_hash=_hex(tx.get("ref_block_hash"), "ref_block_hash", 8),
                            expiration_ms=expiration, timestamp_ms=timestamp)
    txid = hashlib.sha256(raw).digest()
    signature = key.sign_recoverable(txid, hasher=None)  # r ‖ s ‖ recovery id
    signed = _bytes_field(1, raw) + _bytes_field(2, signature)  # Transaction
    return SignedTronTransaction(txid.hex(), raw.hex(), signature.hex(), signed.hex(), sender)


def tron_address_bytes(public_key_uncompressed: bytes) -> bytes:
    """0x41 ‖ the last 20 bytes of keccak256 of the 64-byte public key."""
    from eth_utils import keccak

    assert len(public_key_uncompressed) == 65
    return b"\x41" + keccak(public_key_uncompressed[1:])[-20:]


def _base58check(payload: bytes) -> str:
    from bip_utils import Base58Encoder

    return Base58Encoder.CheckEncode(payload)


def _private_key(private_key: bytes) -> coincurve.PrivateKey:
    if not isinstance(private_key, bytes | bytearray) or len(private_key) != 32:
        raise PrivateKeyInvalid("a TRON private key has 32 bytes (64 hex digits)")
    try:
        return coincurve.PrivateKey(bytes(private_key))
    except ValueError:
        raise PrivateKeyInvalid("the number is outside the secp256k1 key range") from None


def _address(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise TransactionInvalid(f"{name} is a TRON address (T...)")
    try:
        return Base58Decoder.CheckDecode(validate_address("TRON", value))
    except AddressInvalid as exc:
        raise TransactionInvalid(f"{name}: {exc.detail}") from None


def _int(value: Any, name: str, *, minimum: int) -> int:
    if value is None:
        raise TransactionInvalid(f"{name} is required")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TransactionInvalid(f"{name} is a whole number")
    if isinstance(value, str):
        try:
            value = int(value.strip(), 10)
        except ValueError:
            raise TransactionInvalid(f"{name} is not a whole number: {value!r}") from None
    if not minimum <= value <= MAX_INT64:
        raise TransactionInvalid(f"{name} must be from {minimum} to 2^63-1")
    return value


def _hex(value: Any, name: str, size: int) -> bytes:
    if not isinstance(value, str):
        raise TransactionInvalid(f"{name} is {size * 2} hex digits")
    try:
        data = bytes.fromhex(value.strip().removeprefix("0x"))
    except ValueError:
        raise TransactionInvalid(f"{name} is not valid hex") from None
    if len(data) != size:
        raise TransactionInvalid(f"{name} is {size} bytes ({size * 2} hex digits)")
    return data
