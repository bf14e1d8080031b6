"""Solana through a node's JSON-RPC 2.0 (``solana-validator --rpc-port``, a provider).

``send_raw_transaction`` takes the wire transaction in base64 (what ``chains.solana_signing``
prints as ``transaction_base64``) to ``sendTransaction``, with the node's preflight check on:
a stale blockhash, a bad signature or an empty account is refused at once, with the codes of
agave's rpc-client-api (``-32002`` preflight failure with ``data.err``, ``-32003`` signature
verification failure) mapped below. The signature (base58) is the transaction's id.

``get_receipt`` reads ``getSignatureStatuses`` (searching history): ``null`` while the cluster
has not seen it, then its slot and ``confirmationStatus``; ``confirmations`` is null once the
slot is rooted (finalized), counted here as "at least 32".
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from dataclasses import dataclass
from typing import Any, Final

import httpx

from bankwallet.connectors.chains._http import DEFAULT_TIMEOUT_S, JsonRpcClient, new_http
from bankwallet.connectors.chains.base import (
    ChainFailure,
    InsufficientFunds,
    InvalidRequest,
    InvalidTransaction,
    NativeBalance,
    NetworkUnreachable,
    ProviderError,
    SentTransaction,
    TokenBalance,
    TransactionExpired,
    TxReceipt,
    TxStatus,
)

PACKET_DATA_SIZE: Final = 1232  # the most a transaction may weigh on the wire
FINALIZED_CONFIRMATIONS: Final = 32  # a rooted slot: the cluster's supermajority voted it
_BASE58: Final = re.compile(r"^[1-9A-HJ-NP-Za-km-z]+$")

# agave rpc-client-api/src/custom_error.rs
SEND_TRANSACTION_PREFLIGHT_FAILURE: Final = -32002
TRANSACTION_SIGNATURE_VERIFICATION_FAILURE: Final = -32003
NODE_UNHEALTHY: Final = -32005
TRANSACTION_PRECOMPILE_VERIFICATION_FAILURE: Final = -32006
INVALID_PARAMS: Final = -32602

# TransactionError names (serde's JSON of the enum) → our failure.
_TX_ERRORS: Final[dict[str, type[ChainFailure]]] = {
    "BlockhashNotFound": TransactionExpired,
    "AccountNotFound": InsufficientFunds,  # the fee payer was never funded
    "InsufficientFundsForFee": InsufficientFunds,
    "InsufficientFundsForRent": InsufficientFunds,
    "SignatureFailure": InvalidTransaction,
    "MissingSignatureForFee": InvalidTransaction,
    "InvalidAccountForFee": InvalidTransaction,
    "AccountInUse": ProviderError,  # locked by another transaction for a moment
    "WouldExceedMaxBlockCostLimit": ProviderError,
}
SYSTEM_RESULT_WITH_NEGATIVE_LAMPORTS: Final = 1  # SystemError::ResultWithNegativeLamports


@dataclass(frozen=True, slots=True)
class RecentBlockhash:
    """What ``solana_signing.sign_transfer`` needs from the network."""

    blockhash: str  # base58
    last_valid_block_height: int


class SolanaRpcClient(JsonRpcClient):
    """A ``BroadcastClient`` for one Solana RPC node. Close it with ``aclose``."""

    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S, *,
                 commitment: str = "confirmed",
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        assert commitment in ("processed", "confirmed", "finalized")
        self.url = url
        self.commitment = commitment
        self._http = new_http(timeout_s, transport)
        self._ids = itertools.count(1)

    # -- BroadcastClient --------------------------------------------------------------------

    async def send_raw_transaction(self, raw: str, /) -> SentTransaction | ChainFailure:
        signature = signature_of(raw)
        if signature is None:
            return InvalidTransaction("not a base64 Solana transaction of at most "
                                      f"{PACKET_DATA_SIZE} bytes")
        result = await self._rpc("sendTransaction", [raw.strip(), {
            "encoding": "base64", "preflightCommitment": self.commitment}])
        if isinstance(result, _AlreadyProcessed):
            return SentTransaction(signature, already_known=True)
        if isinstance(result, ChainFailure):
            return result
        if result != signature:
            return ProviderError(f"sendTransaction answered {str(result)[:100]}, not "
                                 f"{signature}")
        return SentTransaction(signature)

    async def get_receipt(self, tx_hash: str, /) -> TxReceipt | ChainFailure:
        if not isinstance(tx_hash, str) or not _BASE58.match(tx_hash) or len(tx_hash) > 90:
            return InvalidRequest("a Solana signature is base58")
        statuses = await self._rpc("getSignatureStatuses",
                                   [[tx_hash], {"searchTransactionHistory": True}])
        if isinstance(statuses, ChainFailure):
            return statuses
        try:
            (status,) = statuses["value"]
        except (KeyError, TypeError, ValueError):
            return ProviderError("getSignatureStatuses: malformed answer")
        if not isinstance(status, dict):
            return TxReceipt(tx_hash, TxStatus.PENDING)
        level = status.get("confirmationStatus")
        if level not in ("confirmed", "finalized"):
            return TxReceipt(tx_hash, TxStatus.PENDING)  # "processed": may still be dropped
        confirmations = status.get("confirmations")
        if level == "finalized" or confirmations is None:
            confirmations = FINALIZED_CONFIRMATIONS
        try:
            slot, confirmations = int(status["slot"]), int(confirmations) + 1
        except (KeyError, TypeError, ValueError):
            return ProviderError("getSignatureStatuses: malformed status")
        outcome = TxStatus.FAILED if status.get("err") is not None else TxStatus.CONFIRMED
        return TxReceipt(tx_hash, outcome, block_number=slot, confirmations=confirmations)

    async def get_balance(self, address: str) -> NativeBalance | ChainFailure:
        if not isinstance(address, str) or not _BASE58.match(address) or len(address) > 44:
            return InvalidRequest("not a Solana address (base58)")
        answer = await self._rpc("getBalance", [address, {"commitment": self.commitment}])
        if isinstance(answer, ChainFailure):
            return answer
        try:
            return NativeBalance(address, int(answer["value"]))
        except (KeyError, TypeError, ValueError):
            return ProviderError("getBalance: malformed answer")

    async def get_token_balance(self, token: str, address: str) -> TokenBalance | ChainFailure:
        """An SPL balance: the sum of ``tokenAmount.amount`` over the owner's token accounts
        of the mint ``token`` (SPL Token or Token-2022), in the token's base unit; no
        account is zero. A mint the cluster does not know is an ``InvalidRequest``."""
        for value in (address, token):
            if not isinstance(value, str) or not _BASE58.match(value) or len(value) > 44:
                return InvalidRequest("not a Solana address (base58)")
        answer = await self._rpc("getTokenAccountsByOwner", [
            address, {"mint": token}, {"encoding": "jsonParsed",
                                       "commitment": self.commitment}])
        if isinstance(answer, ChainFailure):
            if answer.rpc_code == INVALID_PARAMS:  # "Invalid param: could not find mint"
                return InvalidRequest(answer.message, answer.rpc_code)
            return answer
        try:
            total = 0
            for entry in answer["value"]:
                info = entry["account"]["data"]["parsed"]["info"]
                if info["mint"] != token:
                    raise ValueError(info["mint"])
                total += int(info["tokenAmount"]["amount"])
        except (KeyError, TypeError, ValueError):
            return ProviderError("getTokenAccountsByOwner: malformed answer")
        return TokenBalance(token, address, total)

    # -- Solana only ------------------------------------------------------------------------

    async def latest_blockhash(self) -> RecentBlockhash | ChainFailure:
        answer = await self._rpc("getLatestBlockhash", [{"commitment": self.commitment}])
        if isinstance(answer, ChainFailure):
            return answer
        try:
            value = answer["value"]
            blockhash = str(value["blockhash"])
            if not _BASE58.match(blockhash):
                raise ValueError(blockhash)
            return RecentBlockhash(blockhash, int(value["lastValidBlockHeight"]))
        except (KeyError, TypeError, ValueError):
            return ProviderError("getLatestBlockhash: malformed answer")

    def rpc_error(self, method: str, error: Any) -> ChainFailure:
        return map_rpc_error(error)


@dataclass(frozen=True, slots=True)
class _AlreadyProcessed(ChainFailure):
    """The cluster has this very transaction already: a re-send, which is a success."""

    code = "already_processed"


def map_rpc_error(error: Any) -> ChainFailure:
    """A Solana JSON-RPC error object → the failure it means (``ProviderError`` if unknown)."""
    if not isinstance(error, dict):
        return ProviderError(f"malformed error: {str(error)[:80]}")
    code = error.get("code") if isinstance(error.get("code"), int) else None
    message = str(error.get("message", ""))[:500]
    if code in (TRANSACTION_SIGNATURE_VERIFICATION_FAILURE,
                TRANSACTION_PRECOMPILE_VERIFICATION_FAILURE, INVALID_PARAMS):
        return InvalidTransaction(message, code)
    if code == NODE_UNHEALTHY:
        return NetworkUnreachable(message, code)  # behind the cluster: try again shortly
    if code != SEND_TRANSACTION_PREFLIGHT_FAILURE:
        return ProviderError(message or f"JSON-RPC error {code}", code)
    data = error.get("data")
    err = data.get("err") if isinstance(data, dict) else None
    if err == "AlreadyProcessed":
        return _AlreadyProcessed(message, code)
    if isinstance(err, str):
        return _TX_ERRORS.get(err, InvalidTransaction)(message, code, err)
    if _is_negative_lamports(err):
        return InsufficientFunds(message, code, "InstructionError")
    return InvalidTransaction(message, code)  # a program refused it: not valid as is


def _is_negative_lamports(err: Any) -> bool:
    """``{"InstructionError": [0, {"Custom": 1}]}``: a System transfer of more than held."""
    try:
        _, detail = err["InstructionError"]
        return detail == {"Custom": SYSTEM_RESULT_WITH_NEGATIVE_LAMPORTS}
    except (KeyError, TypeError, ValueError):
        return False


def signature_of(raw_base64: str) -> str | None:
    """The first signature (the transaction's id, base58) of a base64 wire transaction."""
    from bip_utils import Base58Encoder

    if not isinstance(raw_base64, str):
        return None
    try:
        wire = base64.b64decode(raw_base64.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    if not 0 < len(wire) <= PACKET_DATA_SIZE or wire[0] == 0 or wire[0] & 0x80:
        return None  # no signature (or a count this client never builds: over 127)
    if len(wire) < 1 + 64 * wire[0]:
        return None
    return Base58Encoder.Encode(wire[1:65])
