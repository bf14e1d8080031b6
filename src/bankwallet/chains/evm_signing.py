"""EVM signing with eth-account: transactions, personal_sign and EIP-712 typed data.

Transactions are checked before signing: a legacy transaction (``gasPrice``) is always
EIP-155-protected by its chain id; an EIP-1559 one (``maxFeePerGas``) needs its priority fee;
a recipient is required (this wallet does not deploy contracts); unknown fields are refused
rather than silently dropped. ``preview_typed_data`` flattens typed data for the confirmation
screen, with warnings for what phishing sites ask customers to sign.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage, encode_defunct, encode_typed_data
from eth_keys.exceptions import ValidationError as EthKeysValidationError
from eth_utils import keccak, to_checksum_address

from bankwallet.chains.addresses import validate_address
from bankwallet.chains.errors import (
    AddressInvalid,
    PrivateKeyInvalid,
    TransactionInvalid,
    TypedDataInvalid,
)
from bankwallet.chains.registry import Family, get_chain

MAX_UINT256 = 2**256 - 1
MAX_TX_DATA_BYTES = 128 * 1024
MAX_TYPED_DATA_CHARS = 64 * 1024
MAX_PREVIEW_FIELDS = 200
MAX_PREVIEW_DEPTH = 8
MAX_MESSAGE_BYTES = 64 * 1024

_LEGACY_FIELDS = {"nonce", "gasPrice", "gas", "to", "value", "data", "chainId", "type", "from"}
_EIP1559_FIELDS = (_LEGACY_FIELDS - {"gasPrice"}) | {"maxFeePerGas", "maxPriorityFeePerGas",
                                                      "accessList"}
_ALIASES = {"gasLimit": "gas", "input": "data"}
# Typed-data primary types that hand a spender control of the signer's tokens.
_ALLOWANCE_TYPES = {"Permit", "PermitSingle", "PermitBatch", "PermitTransferFrom",
                    "PermitBatchTransferFrom", "PermitForAll"}


@dataclass(frozen=True, slots=True)
class SignedTransaction:
    raw: str  # 0x-prefixed hex, ready for eth_sendRawTransaction
    hash: str
    kind: str  # "legacy" or "eip1559"
    sender: str


@dataclass(frozen=True, slots=True)
class TypedDataSignature:
    digest: str  # 0x + 32 bytes: keccak256(0x19 0x01 ‖ domainSeparator ‖ hashStruct(message))
    signature: str  # 0x + r ‖ s ‖ v (65 bytes)
    signer: str


@dataclass(frozen=True, slots=True)
class PreviewField:
    path: str  # "from.wallet", "items[2].amount"
    type: str
    value: str


@dataclass(frozen=True, slots=True)
class TypedDataPreview:
    primary_type: str
    domain: list[PreviewField]
    fields: list[PreviewField]
    warnings: list[str] = field(default_factory=list)


# --- transactions ------------------------------------------------------------------------

def sign_transaction(tx: Mapping[str, Any], private_key: bytes, *,
                     chain: str | None = None) -> SignedTransaction:
    """Sign a legacy (EIP-155) or EIP-1559 transaction; ``chain`` pins or fills the chain id."""
    fields = _canonical_fields(tx)
    _apply_chain_id(fields, chain)
    account = _account(private_key)
    if "from" in fields:
        sender = _evm_address(fields.pop("from"), "from")
        if sender != account.address:
            raise TransactionInvalid("'from' is not the address of this key")
    prepared, kind = (_legacy(fields) if "gasPrice" in fields else _eip1559(fields))
    signed = account.sign_transaction(prepared)
    return SignedTransaction("0x" + bytes(signed.raw_transaction).hex(),
                             "0x" + bytes(signed.hash).hex(), kind, account.address)


def _canonical_fields(tx: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(tx, Mapping):
        raise TransactionInvalid("a transaction is a JSON object")
    fields: dict[str, Any] = {}
    for key, value in tx.items():
        name = _ALIASES.get(key, key)
        if name in fields:
            raise TransactionInvalid(f"{key!r} is given twice")
        fields[name] = value
    unknown = set(fields) - _LEGACY_FIELDS - _EIP1559_FIELDS
    if unknown:
        raise TransactionInvalid(f"unknown fields: {', '.join(sorted(unknown))}")
    return fields


def _apply_chain_id(fields: dict[str, Any], chain: str | None) -> None:
    if chain is not None:
        spec = get_chain(chain)
        if spec.family is not Family.EVM:
            raise TransactionInvalid(f"{spec.symbol} is not an EVM chain")
        given = _uint(fields.get("chainId", spec.evm_chain_id), "chainId")
        if given != spec.evm_chain_id:
            raise TransactionInvalid(f"chainId {given} is not {spec.name} "
                                     f"({spec.evm_chain_id})")
        fields["chainId"] = given
    if "chainId" not in fields:
        raise TransactionInvalid("chainId is required (replay protection, EIP-155)")


def _legacy(fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
    if _uint(fields.pop("type", 0), "type") != 0:
        raise TransactionInvalid("a transaction with gasPrice is a legacy (type 0) one")
    extra = set(fields) - _LEGACY_FIELDS
    if extra:
        raise TransactionInvalid(f"not allowed with gasPrice: {', '.join(sorted(extra))}")
    return {**_common(fields), "gasPrice": _uint(fields.get("gasPrice"), "gasPrice")}, "legacy"


def _eip1559(fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
    if "maxFeePerGas" not in fields:
        raise TransactionInvalid("give gasPrice (legacy) or maxFeePerGas (EIP-1559)")
    if _uint(fields.pop("type", 2), "type") != 2:
        raise TransactionInvalid("a transaction with maxFeePerGas is an EIP-1559 (type 2) one")
    max_fee = _uint(fields["maxFeePerGas"], "maxFeePerGas")
    priority_fee = _uint(fields.get("maxPriorityFeePerGas"), "maxPriorityFeePerGas")
    if priority_fee > max_fee:
        raise TransactionInvalid("maxPriorityFeePerGas is above maxFeePerGas")
    access_list = fields.get("accessList", [])
    if not isinstance(access_list, list):
        raise TransactionInvalid("accessList is a list")
    return {**_common(fields), "type": 2, "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": priority_fee, "accessList": access_list}, "eip1559"


def _common(fields: dict[str, Any]) -> dict[str, Any]:
    if fields.get("to") in (None, ""):
        raise TransactionInvalid("'to' is required: this wallet does not deploy contracts")
    return {
        "chainId": _uint(fields["chainId"], "chainId"),
        "nonce": _uint(fields.get("nonce"), "nonce"),
        "gas": _uint(fields.get("gas"), "gas"),
        "to": _evm_address(fields["to"], "to"),
        "value": _uint(fields.get("value", 0), "value"),
        "data": "0x" + _hex_bytes(fields.get("data", "0x"), "data").hex(),
    }


def _uint(value: Any, name: str) -> int:
    if value is None:
        raise TransactionInvalid(f"{name} is required")
    if isinstance(value, bool):
        raise TransactionInvalid(f"{name} is a number, not true/false")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
        except ValueError:
            raise TransactionInvalid(f"{name} is not a number: {value!r}") from None
    if not isinstance(value, int) or not 0 <= value <= MAX_UINT256:
        raise TransactionInvalid(f"{name} must be a whole number from 0 to 2^256-1")
    return value


def _hex_bytes(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise TransactionInvalid(f"{name} is a 0x-prefixed hex string")
    try:
        data = bytes.fromhex(value[2:])
    except ValueError:
        raise TransactionInvalid(f"{name} is not valid hex") from None
    if len(data) > MAX_TX_DATA_BYTES:
        raise TransactionInvalid(f"{name} is longer than {MAX_TX_DATA_BYTES} bytes")
    return data


def _evm_address(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TransactionInvalid(f"{name} is an address string")
    try:
        return validate_address("ETH", value)
    except AddressInvalid as exc:
        raise TransactionInvalid(f"{name}: {exc.detail}") from None


def _account(private_key: bytes) -> Any:
    if not isinstance(private_key, bytes | bytearray) or len(private_key) != 32:
        raise PrivateKeyInvalid("an EVM private key has 32 bytes (64 hex digits)")
    try:
        return Account.from_key(bytes(private_key))
    except (ValueError, EthKeysValidationError):
        raise PrivateKeyInvalid("the number is outside the secp256k1 key range") from None


def parse_private_key_hex(text: str) -> bytes:
    digits = text.strip().removeprefix("0x")
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        raise PrivateKeyInvalid("expected the private key as 64 hex digits") from None
    if len(raw) != 32:
        raise PrivateKeyInvalid("expected the private key as 64 hex digits")
    return raw


# --- messages ----------------------------------------------------------------------------

def personal_sign(message: bytes | str, private_key: bytes) -> str:
    """EIP-191 version 0x45: sign "\\x19Ethereum Signed Message:\\n" + length + message."""
    data = message.encode() if isinstance(message, str) else message
    if len(data) > MAX_MESSAGE_BYTES:
        raise TypedDataInvalid(f"the message is longer than {MAX_MESSAGE_BYTES} bytes")
    signed = _account(private_key).sign_message(encode_defunct(primitive=data))
    return "0x" + bytes(signed.signature).hex()


def recover_personal_sign(message: bytes | str, signature: str) -> str:
    data = message.encode() if isinstance(message, str) else message
    return Account.recover_message(encode_defunct(primitive=data), signature=signature)


def typed_data_digest(data: Mapping[str, Any]) -> bytes:
    return _eip191_digest(_encode_typed(data))


def sign_typed_data(data: Mapping[str, Any], private_key: bytes) -> TypedDataSignature:
    signable = _encode_typed(data)
    signed = _account(private_key).sign_message(signable)
    digest = _eip191_digest(signable)
    assert bytes(signed.message_hash) == digest
    return TypedDataSignature("0x" + digest.hex(), "0x" + bytes(signed.signature).hex(),
                              Account.from_key(bytes(private_key)).address)


def _encode_typed(data: Mapping[str, Any]) -> SignableMessage:
    _check_typed_shape(data)
    try:
        return encode_typed_data(full_message=dict(data))
    except Exception as exc:  # eth-account raises many kinds; all mean "bad typed data"
        raise TypedDataInvalid(f"cannot encode: {_short(exc)}") from None


def _eip191_digest(signable: SignableMessage) -> bytes:
    return keccak(b"\x19" + bytes(signable.version) + signable.header + signable.body)


def _check_typed_shape(data: Mapping[str, Any]) -> None:
    if not isinstance(data, Mapping):
        raise TypedDataInvalid("typed data is a JSON object")
    try:
        size = len(json.dumps(data, default=str))
    except (TypeError, ValueError):
        raise TypedDataInvalid("typed data must be plain JSON") from None
    if size > MAX_TYPED_DATA_CHARS:
        raise TypedDataInvalid(f"typed data is larger than {MAX_TYPED_DATA_CHARS} characters")
    for key, kind in (("types", Mapping), ("primaryType", str), ("domain", Mapping),
                      ("message", Mapping)):
        if not isinstance(data.get(key), kind):
            raise TypedDataInvalid(f"'{key}' is missing or of the wrong kind")
    if data["primaryType"] not in data["types"]:
        raise TypedDataInvalid(f"primaryType {data['primaryType']!r} is not among the types")


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# --- preview -----------------------------------------------------------------------------

def preview_typed_data(data: Mapping[str, Any]) -> TypedDataPreview:
    """What the customer is asked to sign, flattened for a confirmation screen."""
    _encode_typed(data)  # the same checks as signing: never preview what cannot be signed
    types = data["types"]
    domain_type = types.get("EIP712Domain") or [{"name": k, "type": _guess_domain_type(k)}
                                                for k in data["domain"]]
    domain = _flatten(types, domain_type, data["domain"], "", 0)
    fields = _flatten(types, types[data["primaryType"]], data["message"], "", 0)
    return TypedDataPreview(data["primaryType"], domain, fields,
                            _warnings(data, domain, fields))


def _flatten(types: Mapping[str, Any], members: list[dict[str, str]], value: Mapping[str, Any],
             prefix: str, depth: int) -> list[PreviewField]:
    if depth > MAX_PREVIEW_DEPTH:
        raise TypedDataInvalid("typed data is nested too deeply to show")
    out: list[PreviewField] = []
    for member in members:
        path = f"{prefix}{member['name']}"
        out += _flatten_value(types, member["type"], value.get(member["name"]), path, depth)
        if len(out) > MAX_PREVIEW_FIELDS:
            raise TypedDataInvalid("typed data has too many fields to show")
    return out


def _flatten_value(types: Mapping[str, Any], kind: str, value: Any, path: str,
                   depth: int) -> list[PreviewField]:
    if kind.endswith("]"):
        inner = kind[:kind.rindex("[")]
        items = value if isinstance(value, list) else []
        return [f for i, item in enumerate(items)
                for f in _flatten_value(types, inner, item, f"{path}[{i}]", depth + 1)]
    if kind in types:
        return _flatten(types, types[kind], value or {}, f"{path}.", depth + 1)
    return [PreviewField(path, kind, _display(kind, value))]


def _display(kind: str, value: Any) -> str:
    if kind == "address" and isinstance(value, str):
        return to_checksum_address(value)
    if kind.startswith(("uint", "int")) and isinstance(value, str) and value.startswith("0x"):
        return str(int(value, 16))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _guess_domain_type(name: str) -> str:
    return {"chainId": "uint256", "verifyingContract": "address", "salt": "bytes32"}.get(
        name, "string")


def _warnings(data: Mapping[str, Any], domain: list[PreviewField],
              fields: list[PreviewField]) -> list[str]:
    warnings = []
    names = {f.path for f in domain}
    if "chainId" not in names:
        warnings.append("no_chain_id")  # valid on every chain: replayable elsewhere
    if "verifyingContract" not in names:
        warnings.append("no_verifying_contract")
    if data["primaryType"] in _ALLOWANCE_TYPES:
        warnings.append("token_allowance")  # a spender may move the customer's tokens
    if any(f.type.startswith("uint") and f.value == str(MAX_UINT256) for f in fields):
        warnings.append("unlimited_amount")
    return warnings
