"""TRON through a full node's HTTP API (java-tron ``/wallet/*``, as TronGrid serves it).

``send_raw_transaction`` takes the whole signed ``Transaction`` protobuf in hex (what
``chains.tron_signing`` prints as ``raw_hex``) to ``/wallet/broadcasthex``. The node answers
``{"result": true, "txid": ...}`` or ``{"code": "SIGERROR", "message": ..., "txid": ...}``
with a ``response_code`` of protocol's ``Return``; the message is text from broadcasthex and
hex-encoded text from ``/wallet/broadcasttransaction``, so both are read.

A transaction's outcome is ``/wallet/gettransactioninfobyid``: ``{}`` while it is not in a
block, then its block number and, for a failed contract, ``"result": "FAILED"``. Blocks are
counted from ``/wallet/getnowblock``. A provider key (TronGrid's ``TRON-PRO-API-KEY``) goes in
the ``api_key`` argument, never in a log line.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Final

import httpx

from bankwallet.connectors.chains._http import DEFAULT_TIMEOUT_S, NodeClient, new_http, post_json
from bankwallet.connectors.chains.base import (
    ChainFailure,
    InsufficientFunds,
    InvalidRequest,
    InvalidTransaction,
    NativeBalance,
    ProviderError,
    SentTransaction,
    TokenBalance,
    TransactionExpired,
    TxReceipt,
    TxStatus,
)
from bankwallet.connectors.chains.varint import read_varint

MAX_RAW_TX_BYTES: Final = 500 * 1024  # java-tron's TRANSACTION_MAX_BYTE_SIZE
_HEX: Final = re.compile(r"^(?:[0-9a-fA-F]{2})+$")
_TXID: Final = re.compile(r"^[0-9a-fA-F]{64}$")
_ADDRESS: Final = re.compile(r"^T[1-9A-HJ-NP-Za-km-z]{33}$")

# protocol.Return.response_code → our failure (the message picks among a few).
_RETRYABLE_CODES: Final = {"SERVER_BUSY", "NO_CONNECTION", "NOT_ENOUGH_EFFECTIVE_CONNECTION",
                           "BLOCK_UNSOLIDIFIED", "OTHER_ERROR"}
_CODES: Final[dict[str, type[ChainFailure]]] = {
    "SIGERROR": InvalidTransaction,
    "CONTRACT_VALIDATE_ERROR": InvalidTransaction,  # unless the balance is short, below
    "CONTRACT_EXE_ERROR": InvalidTransaction,
    "BANDWITH_ERROR": InsufficientFunds,  # (sic) no bandwidth and no TRX to burn for it
    "TAPOS_ERROR": TransactionExpired,
    "TRANSACTION_EXPIRATION_ERROR": TransactionExpired,
    "TOO_BIG_TRANSACTION_ERROR": InvalidTransaction,
    "TOO_BIG_TRANSACTION_RESULT_ERROR": InvalidTransaction,
}
_SHORT_WORDS: Final = ("balance is not sufficient", "no owneraccount", "not enough",
                       "insufficient")


@dataclass(frozen=True, slots=True)
class ReferenceBlock:
    """What ``tron_signing.sign_transfer`` needs from the network: a recent block."""

    number: int
    block_id: str  # hex, 32 bytes
    timestamp_ms: int

    @property
    def ref_block_bytes(self) -> str:
        return (self.number & 0xFFFF).to_bytes(2, "big").hex()

    @property
    def ref_block_hash(self) -> str:
        return self.block_id[16:32]


class TronHttpClient(NodeClient):
    """A ``BroadcastClient`` for one TRON full node. Close it with ``aclose``."""

    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S, *,
                 api_key: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = new_http(timeout_s, transport)
        if api_key:
            self._http.headers["TRON-PRO-API-KEY"] = api_key

    # -- BroadcastClient --------------------------------------------------------------------

    async def send_raw_transaction(self, raw: str, /) -> SentTransaction | ChainFailure:
        raw = raw.strip().removeprefix("0x") if isinstance(raw, str) else ""
        if not _HEX.match(raw) or len(raw) > 2 * MAX_RAW_TX_BYTES:
            return InvalidTransaction(f"not a hex transaction of at most {MAX_RAW_TX_BYTES} "
                                      "bytes")
        expected = txid_of(raw)
        if expected is None:
            return InvalidTransaction("not a TRON transaction (protobuf without raw_data)")
        answer = await self._post("/wallet/broadcasthex", {"transaction": raw.lower()})
        if isinstance(answer, ChainFailure):
            return answer
        if answer.get("result") is True:
            return SentTransaction(expected)
        code = str(answer.get("code") or "")
        if code == "DUP_TRANSACTION_ERROR":  # a re-send of what the node has: success
            return SentTransaction(expected, already_known=True)
        return map_return(code, answer.get("message"))

    async def get_receipt(self, tx_hash: str, /) -> TxReceipt | ChainFailure:
        if not isinstance(tx_hash, str) or not _TXID.match(tx_hash):
            return InvalidRequest("a TRON transaction id is 64 hex digits")
        txid = tx_hash.lower()
        info = await self._post("/wallet/gettransactioninfobyid", {"value": txid})
        if isinstance(info, ChainFailure):
            return info
        if not info.get("blockNumber"):
            return TxReceipt(txid, TxStatus.PENDING)  # {} until it is in a block
        head = await self.reference_block()
        if isinstance(head, ChainFailure):
            return head
        try:
            block = int(info["blockNumber"])
            fee = int(info.get("fee") or 0)
        except (TypeError, ValueError):
            return ProviderError("gettransactioninfobyid: malformed answer")
        status = TxStatus.FAILED if info.get("result") == "FAILED" else TxStatus.CONFIRMED
        return TxReceipt(txid, status, block_number=block,
                         confirmations=max(0, head.number - block + 1),
                         gas_used=fee, effective_gas_price_wei=1)  # fee in sun

    async def get_balance(self, address: str) -> NativeBalance | ChainFailure:
        if not isinstance(address, str) or not _ADDRESS.match(address):
            return InvalidRequest("not a TRON address (T...)")
        account = await self._post("/wallet/getaccount", {"address": address, "visible": True})
        if isinstance(account, ChainFailure):
            return account
        try:
            # {} for an address never funded; "balance" is left out when it is zero.
            return NativeBalance(address, int(account.get("balance") or 0))
        except (TypeError, ValueError):
            return ProviderError("getaccount: malformed balance")

    async def get_token_balance(self, token: str, address: str) -> TokenBalance | ChainFailure:
        """A TRC-20 balance: ``balanceOf(address)`` of the contract ``token`` (base58), run
        as a constant call (no transaction, no energy spent), in the token's base unit."""
        if not isinstance(address, str) or not _ADDRESS.match(address):
            return InvalidRequest("not a TRON address (T...)")
        if not isinstance(token, str) or not _ADDRESS.match(token):
            return InvalidRequest("not a TRC-20 contract address (T...)")
        owner = _address_bytes(address)
        if owner is None or _address_bytes(token) is None:
            return InvalidRequest("the TRON address checksum does not match")
        answer = await self._post("/wallet/triggerconstantcontract", {
            "owner_address": address, "contract_address": token,
            "function_selector": "balanceOf(address)",
            "parameter": owner[1:].rjust(32, b"\0").hex(), "visible": True})
        if isinstance(answer, ChainFailure):
            return answer
        result: dict[str, Any] = answer.get("result") or {}
        if not isinstance(result, dict):
            return ProviderError("triggerconstantcontract: malformed answer")
        if result.get("result") is not True:
            # e.g. CONTRACT_VALIDATE_ERROR "Smart contract is not exist." (hex-encoded)
            code = str(result.get("code") or "no result")
            text = _message_text(result.get("message"))
            failure = InvalidRequest if code == "CONTRACT_VALIDATE_ERROR" else ProviderError
            return failure(f"triggerconstantcontract: {code}: {text}"[:500])
        words = answer.get("constant_result")
        if not isinstance(words, list) or not words or not isinstance(words[0], str) \
                or not _HEX.match(words[0]) or len(words[0]) != 64:
            return InvalidRequest("triggerconstantcontract: balanceOf answered no uint256 "
                                  "(not a TRC-20 contract?)")
        return TokenBalance(token, address, int(words[0], 16))

    # -- TRON only --------------------------------------------------------------------------

    async def reference_block(self) -> ReferenceBlock | ChainFailure:
        """The newest block, to sign against (TaPoS) and to count confirmations."""
        block = await self._post("/wallet/getnowblock", {})
        if isinstance(block, ChainFailure):
            return block
        try:
            raw = block["block_header"]["raw_data"]
            block_id = str(block["blockID"])
            if not _TXID.match(block_id):
                raise ValueError(block_id)
            return ReferenceBlock(int(raw.get("number") or 0), block_id.lower(),
                                  int(raw["timestamp"]))
        except (KeyError, TypeError, ValueError):
            return ProviderError("getnowblock: malformed block")

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any] | ChainFailure:
        answer = await post_json(self._http, self.url + path, body, path)
        if isinstance(answer, ChainFailure):
            return answer
        status, parsed = answer
        if status != 200 or not isinstance(parsed, dict):
            return ProviderError(f"{path}: HTTP {status}")
        if "Error" in parsed and len(parsed) == 1:  # java-tron's servlet exception shape
            return ProviderError(f"{path}: {str(parsed['Error'])[:200]}")
        return parsed


def map_return(code: str, message: Any) -> ChainFailure:
    """A broadcast's ``Return`` (response code and message) → the failure it means."""
    text = _message_text(message)
    if code in _RETRYABLE_CODES or not code:
        return ProviderError(f"{code or 'no result'}: {text}"[:500])
    failure = _CODES.get(code, ProviderError)
    if code in ("CONTRACT_VALIDATE_ERROR", "CONTRACT_EXE_ERROR") and any(
            word in text.lower() for word in _SHORT_WORDS):
        failure = InsufficientFunds
    return failure(f"{code}: {text}"[:500])


def _message_text(message: Any) -> str:
    """broadcasthex writes the message as text, broadcasttransaction as hex of the text."""
    text = str(message or "")
    if _HEX.match(text):
        try:
            return bytes.fromhex(text).decode("utf-8")
        except UnicodeDecodeError:
            pass
    return text


def _address_bytes(address: str) -> bytes | None:
    """The 21 bytes (0x41 + 20) of a base58check TRON address; None if the checksum fails."""
    from bip_utils import Base58ChecksumError, Base58Decoder

    try:
        raw = Base58Decoder.CheckDecode(address)
    except (Base58ChecksumError, ValueError):
        return None
    return raw if len(raw) == 21 and raw[0] == 0x41 else None


def txid_of(raw_hex: str) -> str | None:
    """sha256 of the transaction's ``raw_data`` (field 1 of the ``Transaction`` protobuf)."""
    try:
        data = bytes.fromhex(raw_hex)
    except ValueError:
        return None
    for number, value in protobuf_fields(data) or ():
        if number == 1 and isinstance(value, bytes):
            return hashlib.sha256(value).hexdigest()
    return None


def protobuf_fields(data: bytes) -> list[tuple[int, int | bytes]] | None:
    """The (field number, value) pairs of a protobuf message: varints and length-delimited
    fields only, which is all a TRON transaction holds; None if it is not one."""
    fields: list[tuple[int, int | bytes]] = []
    at = 0
    try:
        while at < len(data):
            key, at = read_varint(data, at)
            number, wire = key >> 3, key & 7
            if number == 0:
                return None
            if wire == 0:
                value, at = read_varint(data, at)
                fields.append((number, value))
            elif wire == 2:
                length, at = read_varint(data, at)
                if at + length > len(data):
                    return None
                fields.append((number, data[at:at + length]))
                at += length
            else:
                return None
    except (IndexError, ValueError):  # past the end, or a varint over 10 bytes
        return None
    return fields
