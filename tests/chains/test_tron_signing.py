"""TRX transfers: Trust Wallet's published vector, a protobuf decode and key recovery."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import coincurve
import pytest
from bip_utils import Base58Decoder
from typer.testing import CliRunner

from bankwallet.chains.errors import PrivateKeyInvalid, TransactionInvalid
from bankwallet.chains.tron_signing import sign_transfer, tron_address_bytes
from bankwallet.cli import app

# trustwallet/wallet-core tests/chains/Tron/SignerTests.cpp, TEST(TronSigner, SignTransfer).
TW_KEY = "2d8f68944bdbfbc0769542fba8fc2d2a3de67393334471624364c7006da2aa54"
TW_OWNER = "TJRyWwFs9wTFGZg3JbrVriFbNfCug5tDeC"
TW_TO = "THTR75o8xXAgCTQqpiot2AFRAjvW1tSbVV"
TW_TIMESTAMP = 1539295479000
TW_HEADER = {  # the reference block's header; ref_block_* are computed from it as wallet-core does
    "timestamp": 1539295479000,
    "tx_trie_root": "64288c2db0641316762a99dbb02ef7c90f968b60f9f2e410835980614332f86d",
    "parent_hash": "00000000002f7b3af4f5f8b9e23a30c530f719f165b742e7358536b280eead2d",
    "number": 3111739,
    "witness_address": "415863f6091b8e71766da808b1dd3159790f61de7d",
    "version": 3,
}
TW_TXID = "dc6f6d9325ee44ab3c00528472be16e1572ab076aa161ccd12515029869d0451"
TW_SIGNATURE = ("ede769f6df28aefe6a846be169958c155e23e7e5c9621d2e8dce1719b4d952b63e8a8bf9f00e41204a"
                "c1bf69b1a663dacdf764367e48e4a5afcd6b055a747fb200")


# --- a generic protobuf wire encoder and decoder, independent of the module ----------------

def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def _pb(*fields: tuple[int, int | bytes]) -> bytes:
    out = b""
    for number, value in fields:
        if isinstance(value, int):
            out += _varint(number << 3) + _varint(value)
        else:
            out += _varint(number << 3 | 2) + _varint(len(value)) + value
    return out


def decode(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: varints as int, length-delimited as bytes."""
    fields, pos = [], 0

    def read_varint() -> int:
        nonlocal pos
        value = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while pos < len(data):
        key = read_varint()
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            fields.append((number, read_varint()))
        elif wire_type == 2:
            length = read_varint()
            fields.append((number, data[pos:pos + length]))
            pos += length
        else:
            raise AssertionError(f"unexpected wire type {wire_type}")
    assert pos == len(data)
    return fields


def _reference_block() -> tuple[str, str]:
    h = TW_HEADER
    header_raw = _pb((1, h["timestamp"]), (2, bytes.fromhex(h["tx_trie_root"])),
                     (3, bytes.fromhex(h["parent_hash"])), (7, h["number"]),
                     (9, bytes.fromhex(h["witness_address"])), (10, h["version"]))
    ref_block_hash = hashlib.sha256(header_raw).digest()[8:16]
    ref_block_bytes = h["number"].to_bytes(8, "big")[6:8]
    return ref_block_bytes.hex(), ref_block_hash.hex()


def _tw_tx(**changes: object) -> dict[str, object]:
    ref_bytes, ref_hash = _reference_block()
    tx = {"to": TW_TO, "amount_sun": 2_000_000, "ref_block_bytes": ref_bytes,
          "ref_block_hash": ref_hash, "timestamp_ms": TW_TIMESTAMP,
          "expiration_ms": TW_TIMESTAMP + 10 * 60 * 60 * 1000}
    tx.update(changes)
    return tx


def test_trust_wallet_transfer_vector() -> None:
    signed = sign_transfer(_tw_tx(), bytes.fromhex(TW_KEY))
    assert signed.txid == TW_TXID
    assert signed.signature == TW_SIGNATURE
    assert signed.sender == TW_OWNER


def test_raw_data_decodes_to_the_transfer() -> None:
    tx = _tw_tx()
    signed = sign_transfer(tx, bytes.fromhex(TW_KEY))
    raw = bytes.fromhex(signed.raw_data_hex)
    assert hashlib.sha256(raw).hexdigest() == signed.txid
    fields = dict(decode(raw))
    assert [n for n, _ in decode(raw)] == [1, 4, 8, 11, 14]
    assert fields[1] == bytes.fromhex(tx["ref_block_bytes"])
    assert fields[4] == bytes.fromhex(tx["ref_block_hash"])
    assert fields[8] == tx["expiration_ms"] and fields[14] == tx["timestamp_ms"]
    contract = dict(decode(fields[11]))
    assert contract[1] == 1  # ContractType.TransferContract
    parameter = dict(decode(contract[2]))
    assert parameter[1] == b"type.googleapis.com/protocol.TransferContract"
    transfer = dict(decode(parameter[2]))
    assert transfer[1] == Base58Decoder.CheckDecode(TW_OWNER)
    assert transfer[2] == Base58Decoder.CheckDecode(TW_TO)
    assert transfer[3] == 2_000_000
    # The broadcastable Transaction: raw_data (1) and one signature (2).
    assert decode(bytes.fromhex(signed.raw_hex)) == [(1, raw),
                                                     (2, bytes.fromhex(signed.signature))]


def test_signature_recovers_the_sender() -> None:
    key = hashlib.sha256(b"bankwallet tron test key").digest()
    tx = _tw_tx(to=TW_OWNER, amount_sun="123456789")
    signed = sign_transfer(tx, key)
    signature = bytes.fromhex(signed.signature)
    assert len(signature) == 65 and signature[64] in (0, 1)
    public = coincurve.PublicKey.from_signature_and_message(signature,
                                                            bytes.fromhex(signed.txid),
                                                            hasher=None)
    owner = tron_address_bytes(public.format(compressed=False))
    transfer = dict(decode(dict(decode(dict(decode(dict(decode(
        bytes.fromhex(signed.raw_data_hex)))[11]))[2]))[2]))
    assert transfer[1] == owner
    assert transfer[3] == 123456789
    assert Base58Decoder.CheckDecode(signed.sender) == owner


@pytest.mark.parametrize(("changes", "message"), [
    ({"to": "TJRyWwFs9wTFGZg3JbrVriFbNfCug5tDeD"}, "checksum"),
    ({"to": "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"}, "to:"),
    ({"to": TW_OWNER}, "own address"),
    ({"amount_sun": 0}, "amount_sun"),
    ({"amount_sun": True}, "amount_sun"),
    ({"amount_sun": 2**63}, "amount_sun"),
    ({"ref_block_hash": "00"}, "8 bytes"),
    ({"ref_block_bytes": "zz"}, "not valid hex"),
    ({"expiration_ms": TW_TIMESTAMP}, "after"),
    ({"expiration_ms": TW_TIMESTAMP + 25 * 60 * 60 * 1000}, "24 hours"),
    ({"fee_limit": 1}, "unknown fields"),
    ({"from": TW_TO}, "not the address of this key"),
])
def test_invalid_transfers(changes: dict[str, object], message: str) -> None:
    with pytest.raises(TransactionInvalid, match=message):
        sign_transfer(_tw_tx(**changes), bytes.fromhex(TW_KEY))


def test_invalid_keys() -> None:
    with pytest.raises(PrivateKeyInvalid):
        sign_transfer(_tw_tx(), b"\x01" * 31)
    with pytest.raises(PrivateKeyInvalid):
        sign_transfer(_tw_tx(), b"\x00" * 32)


def test_cli_signs_a_tron_transfer(tmp_path: Path) -> None:
    tx_file = tmp_path / "tx.json"
    tx_file.write_text(json.dumps(_tw_tx(**{"from": TW_OWNER})))
    result = CliRunner().invoke(app, ["chains", "sign-tx", "--chain", "tron", "--tx",
                                      str(tx_file)], input=TW_KEY + "\n")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["txid"] == TW_TXID
    assert printed["signature"] == TW_SIGNATURE
    assert printed["from"] == TW_OWNER
    assert decode(bytes.fromhex(printed["raw_hex"]))[1] == (2, bytes.fromhex(TW_SIGNATURE))
    assert TW_KEY not in result.output


def test_cli_tron_errors(tmp_path: Path) -> None:
    tx_file = tmp_path / "tx.json"
    tx_file.write_text(json.dumps(_tw_tx(amount_sun=-1)))
    result = CliRunner().invoke(app, ["chains", "sign-tx", "--chain", "TRON", "--tx",
                                      str(tx_file)], input=TW_KEY)
    assert result.exit_code == 2 and "amount_sun" in result.stderr
    assert TW_KEY not in result.output
    result = CliRunner().invoke(app, ["chains", "sign-tx", "--chain", "TRON", "--tx",
                                      str(tx_file)], input="not a key")
    assert result.exit_code == 2 and "64 hex digits" in result.stderr
