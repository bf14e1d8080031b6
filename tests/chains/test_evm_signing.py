from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import keccak

from bankwallet.chains.errors import PrivateKeyInvalid, TransactionInvalid, TypedDataInvalid
from bankwallet.chains.evm_signing import (
    MAX_UINT256,
    personal_sign,
    preview_typed_data,
    recover_personal_sign,
    sign_transaction,
    sign_typed_data,
    typed_data_digest,
)
from tests.chains.vectors import (
    EIP155_SIGNED,
    EIP155_TX,
    EIP712_COW_ADDRESS,
    EIP712_MAIL,
    EIP712_MAIL_DIGEST,
    EIP712_MAIL_SIGNATURE,
    KEY_46,
)

KEY = bytes.fromhex(KEY_46)
SENDER = "0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F"
COW = keccak(text="cow")


def test_eip155_example() -> None:
    signed = sign_transaction(EIP155_TX, KEY)
    assert signed.raw == EIP155_SIGNED
    assert signed.kind == "legacy"
    assert signed.sender == SENDER


def test_eip155_example_with_hex_strings_and_aliases() -> None:
    tx = {"nonce": "0x9", "gasPrice": "20000000000", "gasLimit": "0x5208",
          "to": EIP155_TX["to"], "value": "0xde0b6b3a7640000", "input": "0x"}
    assert sign_transaction(tx, KEY, chain="ETH").raw == EIP155_SIGNED


def test_eip1559_transaction_recovers_to_the_sender() -> None:
    tx = {"nonce": 0, "maxFeePerGas": 30 * 10**9, "maxPriorityFeePerGas": 10**9, "gas": 21000,
          "to": EIP155_TX["to"], "value": 1, "chainId": 56}
    signed = sign_transaction(tx, KEY, chain="BSC")
    assert signed.kind == "eip1559"
    assert signed.raw.startswith("0x02")
    assert Account.recover_transaction(signed.raw) == SENDER


@pytest.mark.parametrize(("change", "message"), [
    ({"maxFeePerGas": 1}, "not allowed with gasPrice"),
    ({"chainId": None}, "chainId is required"),
    ({"to": None}, "'to' is required"),
    ({"to": "0x3535353535353535353535353535353535353535".upper()[:-1]}, "to:"),
    ({"nonce": -1}, "nonce must be"),
    ({"nonce": True}, "not true/false"),
    ({"value": "lots"}, "value is not a number"),
    ({"data": "0xzz"}, "data is not valid hex"),
    ({"type": 2}, "legacy (type 0)"),
    ({"from": "0x3535353535353535353535353535353535353535"}, "'from' is not the address"),
    ({"gasprice": 1}, "unknown fields: gasprice"),
])
def test_bad_legacy_transactions(change: dict, message: str) -> None:
    tx = {**EIP155_TX, **change}
    tx = {k: v for k, v in tx.items() if v is not None}
    with pytest.raises(TransactionInvalid) as caught:
        sign_transaction(tx, KEY)
    assert message in caught.value.detail


def test_fee_market_rules() -> None:
    base = {k: v for k, v in EIP155_TX.items() if k != "gasPrice"}
    with pytest.raises(TransactionInvalid, match=r"gasPrice .legacy. or maxFeePerGas"):
        sign_transaction(base, KEY)
    with pytest.raises(TransactionInvalid, match="above maxFeePerGas"):
        sign_transaction({**base, "maxFeePerGas": 1, "maxPriorityFeePerGas": 2}, KEY)


def test_chain_pins_the_chain_id() -> None:
    with pytest.raises(TransactionInvalid, match="not BNB Smart Chain"):
        sign_transaction(EIP155_TX, KEY, chain="BSC")
    with pytest.raises(TransactionInvalid, match="not an EVM chain"):
        sign_transaction(EIP155_TX, KEY, chain="TRON")
    tx = {k: v for k, v in EIP155_TX.items() if k != "chainId"}
    assert Account.recover_transaction(sign_transaction(tx, KEY, chain="POLYGON").raw) == SENDER


@pytest.mark.parametrize("key", [b"", b"\x00" * 32, b"\xff" * 32, b"\x01" * 31])
def test_bad_keys(key: bytes) -> None:
    with pytest.raises(PrivateKeyInvalid):
        sign_transaction(EIP155_TX, key)


def test_personal_sign_round_trip() -> None:
    signature = personal_sign("Sign in to bankwallet", KEY)
    assert len(bytes.fromhex(signature[2:])) == 65
    assert recover_personal_sign("Sign in to bankwallet", signature) == SENDER
    assert recover_personal_sign("Sign in to bankwallet!", signature) != SENDER


def test_eip712_mail_example() -> None:
    assert "0x" + typed_data_digest(EIP712_MAIL).hex() == EIP712_MAIL_DIGEST
    signed = sign_typed_data(EIP712_MAIL, COW)
    assert signed.digest == EIP712_MAIL_DIGEST
    assert signed.signature == EIP712_MAIL_SIGNATURE
    assert signed.signer == EIP712_COW_ADDRESS


def test_preview_of_the_mail_example() -> None:
    preview = preview_typed_data(EIP712_MAIL)
    assert preview.primary_type == "Mail"
    assert [(f.path, f.value) for f in preview.domain] == [
        ("name", "Ether Mail"), ("version", "1"), ("chainId", "1"),
        ("verifyingContract", "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC")]
    assert [(f.path, f.type, f.value) for f in preview.fields] == [
        ("from.name", "string", "Cow"),
        ("from.wallet", "address", "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"),
        ("to.name", "string", "Bob"),
        ("to.wallet", "address", "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"),
        ("contents", "string", "Hello, Bob!")]
    assert preview.warnings == []


def test_preview_warns_about_unlimited_permits() -> None:
    permit = {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}],
            "Permit": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                       {"name": "value", "type": "uint256"}, {"name": "deadlines",
                                                               "type": "uint256[]"}],
        },
        "primaryType": "Permit",
        "domain": {"name": "USD Coin"},
        "message": {"owner": SENDER.lower(), "spender": EIP712_COW_ADDRESS,
                    "value": MAX_UINT256, "deadlines": [1, 2]},
    }
    preview = preview_typed_data(permit)
    assert set(preview.warnings) == {"no_chain_id", "no_verifying_contract", "token_allowance",
                                     "unlimited_amount"}
    assert ("deadlines[1]", "2") in [(f.path, f.value) for f in preview.fields]
    assert preview.fields[0].value == SENDER


@pytest.mark.parametrize("bad", [
    {},
    {**EIP712_MAIL, "primaryType": "Letter"},
    {**EIP712_MAIL, "message": "hi"},
    {**EIP712_MAIL, "message": {**EIP712_MAIL["message"], "contents": {"nested": 1}}},
    {**EIP712_MAIL, "domain": {**EIP712_MAIL["domain"], "verifyingContract": "0x12"}},
    {**EIP712_MAIL, "message": {**EIP712_MAIL["message"], "contents": "x" * 70_000}},
])
def test_bad_typed_data(bad: dict) -> None:
    with pytest.raises(TypedDataInvalid):
        sign_typed_data(bad, COW)
    with pytest.raises(TypedDataInvalid):
        preview_typed_data(bad)
