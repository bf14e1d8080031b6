"""SOL transfers: Trust Wallet's published vectors, the layout byte by byte, ed25519 checks."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from bip_utils import Base58Decoder, Base58Encoder
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from typer.testing import CliRunner

from bankwallet.chains.errors import PrivateKeyInvalid, TransactionInvalid
from bankwallet.chains.solana_signing import sign_transfer, transfer_message
from bankwallet.cli import app

# trustwallet/wallet-core tests/chains/Solana/TWAnySignerTests.cpp (SignTransfer) and
# rust/tw_any_coin/tests/chains/solana/solana_sign.rs (test_solana_sign_transfer); the
# address of the key is in swift/Tests/Blockchains/SolanaTests.swift.
TW_KEY = "A7psj2GW7ZMdY4E5hJq14KMeYg7HFjULSsWSrTXZLvYr"  # 32-byte seed, base58
TW_FROM = "7v91N7iZ9mNicL8WfG6cgSCKyRXydQjLh6UYBWwm6y1Q"
TW_TO = "EN2sCsJ1WDV8UFqsiTXHcUPUxQ4juE71eCknHYYMifkd"
TW_BLOCKHASH = "11111111111111111111111111111111"
TW_ENCODED = (
    "3p2kzZ1DvquqC6LApPuxpTg5CCDVPqJFokGSnGhnBHrta4uq7S2EyehV1XNUVXp51D69GxGzQZU"
    "jikfDzbWBG2aFtG3gHT1QfLzyFKHM4HQtMQMNXqay1NAeiiYZjNhx9UvMX4uAQZ4Q6rx6m2AYfQ"
    "7aoMUrejq298q1wBFdtS9XVB5QTiStnzC7zs97FUEK2T4XapjF1519EyFBViTfHpGpnf5bfizDz"
    "sW9kYUtRDW1UC2LgHr7npgq5W9TBmHf9hSmRgM9XXucjXLqubNWE7HUMhbKjuBqkirRM")
# trustwallet/wallet-core tests/chains/Solana/TransactionTests.cpp, TransferMessageData.
TW_MESSAGE_FROM = "6eoo7i1khGhVm8tLBMAdq4ax2FxkKP4G7mCcfHyr3STN"
TW_MESSAGE_TO = "56B334QvCDMSirsmtEJGfanZm8GqeQarrSjdAb2MbeNM"
TW_MESSAGE_HEX = (
    "0100010353f9d600fe925083bb399907ea648d23a6a081fc7e9059202fd725f7edd281dd3cc1ff9ba3c7a876c8"
    "082df2f8a36ea9342ce3819dd4b6fa72d4a18e04a5363a00000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000010202"
    "00010c020000002a00000000000000")
TX = {"to": TW_TO, "lamports": 42, "recent_blockhash": TW_BLOCKHASH}


def _seed() -> bytes:
    return Base58Decoder.Decode(TW_KEY)


def _keypair_base58() -> str:
    """The 64-byte secret key (seed ‖ public key) as Phantom and solana-keygen export it."""
    return Base58Encoder.Encode(_seed() + Base58Decoder.Decode(TW_FROM))


def test_trust_wallet_message_vector() -> None:
    message = transfer_message(Base58Decoder.Decode(TW_MESSAGE_FROM),
                               Base58Decoder.Decode(TW_MESSAGE_TO), 42, bytes(32))
    assert message.hex() == TW_MESSAGE_HEX


def test_trust_wallet_transfer_vector() -> None:
    signed = sign_transfer(TX, _seed())
    assert signed.transaction_base58 == TW_ENCODED
    assert signed.sender == TW_FROM
    assert base64.b64decode(signed.transaction_base64) == Base58Decoder.Decode(TW_ENCODED)


def test_layout_byte_by_byte_and_signature() -> None:
    blockhash = bytes(range(1, 33))
    lamports = 1_234_567_890_123
    signed = sign_transfer({"to": TW_TO, "lamports": str(lamports),
                            "recent_blockhash": Base58Encoder.Encode(blockhash),
                            "from": TW_FROM}, _seed())
    wire = base64.b64decode(signed.transaction_base64)
    assert wire[0] == 1  # shortvec: one signature
    signature, message = wire[1:65], wire[65:]
    assert Base58Encoder.Encode(signature) == signed.signature
    assert base64.b64decode(signed.message_base64) == message
    assert message[:3] == bytes([1, 0, 1])  # 1 signer, 0 read-only signed, 1 read-only
    assert message[3] == 3  # three account keys
    assert message[4:36] == Base58Decoder.Decode(TW_FROM)
    assert message[36:68] == Base58Decoder.Decode(TW_TO)
    assert message[68:100] == bytes(32)  # the System Program
    assert message[100:132] == blockhash
    assert message[132] == 1  # one instruction
    assert message[133] == 2  # program: account 2
    assert message[134:137] == bytes([2, 0, 1])  # accounts [from, to]
    assert message[137] == 12  # data length
    assert message[138:142] == (2).to_bytes(4, "little")  # SystemInstruction::Transfer
    assert message[142:150] == lamports.to_bytes(8, "little")
    assert len(message) == 150
    Ed25519PublicKey.from_public_bytes(Base58Decoder.Decode(TW_FROM)).verify(signature, message)


@pytest.mark.parametrize(("changes", "message"), [
    ({"to": "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"}, "to:"),
    ({"to": "EN2sCsJ1WDV8UFqsiTXHcUPUxQ4juE71eCknHYYMif"}, "32 bytes"),
    ({"lamports": 0}, "lamports"),
    ({"lamports": 2**64}, "lamports"),
    ({"lamports": 1.5}, "lamports"),
    ({"recent_blockhash": ""}, "recent_blockhash"),
    ({"recent_blockhash": "1111"}, "32 bytes"),
    ({"recent_blockhash": "0OIl"}, "base58"),
    ({"memo": "hi"}, "unknown fields"),
    ({"from": TW_TO}, "not the address of this key"),
])
def test_invalid_transfers(changes: dict[str, object], message: str) -> None:
    with pytest.raises(TransactionInvalid, match=message):
        sign_transfer({**TX, **changes}, _seed())


def test_invalid_keys() -> None:
    with pytest.raises(PrivateKeyInvalid):
        sign_transfer(TX, b"\x01" * 31)
    with pytest.raises(PrivateKeyInvalid, match="public half"):
        sign_transfer(TX, _seed() + bytes(32))


def _cli(tmp_path: Path, tx: dict[str, object], stdin: str):
    tx_file = tmp_path / "tx.json"
    tx_file.write_text(json.dumps(tx))
    return CliRunner().invoke(app, ["chains", "sign-tx", "--chain", "SOL", "--tx",
                                    str(tx_file)], input=stdin)


@pytest.mark.parametrize("key", ["phantom", "hex"])
def test_cli_signs_a_sol_transfer(tmp_path: Path, key: str) -> None:
    secret = _keypair_base58() if key == "phantom" else _seed().hex()
    result = _cli(tmp_path, TX, secret + "\n")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["transaction_base58"] == TW_ENCODED
    assert base64.b64decode(printed["transaction_base64"]) == Base58Decoder.Decode(TW_ENCODED)
    assert Base58Decoder.Decode(printed["signature"]) == Base58Decoder.Decode(TW_ENCODED)[1:65]
    assert printed["from"] == TW_FROM
    assert secret not in result.output


def test_cli_sol_errors(tmp_path: Path) -> None:
    result = _cli(tmp_path, {**TX, "lamports": -5}, _keypair_base58())
    assert result.exit_code == 2 and "lamports" in result.stderr
    assert _keypair_base58() not in result.output
    result = _cli(tmp_path, TX, "not a key")
    assert result.exit_code == 2
    assert "not a key" not in result.output
