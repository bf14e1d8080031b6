"""Bitcoin through a Bitcoin Core node's JSON-RPC (``bitcoind -server``): relay a transaction
signed offline (``chains.btc_psbt``), follow it, estimate a fee rate, read a balance.

The URL carries the RPC credentials (``http://user:password@host:8332/``), as bitcoin-cli's
``-rpcconnect``/``-rpcuser`` would: they are never logged nor put in a failure. Bitcoin Core
answers errors as ``{"result": null, "error": {"code": -26, "message": ...}}`` (with HTTP 500
for JSON-RPC 1.0 requests); the codes are ``RPCErrorCode`` of src/rpc/protocol.h, the messages
its validation's reject reasons.

Status needs no wallet in the node: ``getrawtransaction <txid> true`` finds a transaction in
the mempool, and in a block when the node keeps ``-txindex``; not found is "pending" (unknown
provider answers never mean success or failure). ``get_balance`` uses ``scantxoutset``, a scan
of the whole UTXO set: it takes seconds on mainnet, so it is for an occasional look only.
"""

from __future__ import annotations

import itertools
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import httpx

from bankwallet.connectors.chains._http import DEFAULT_TIMEOUT_S, JsonRpcClient, new_http
from bankwallet.connectors.chains.base import (
    ChainFailure,
    FeeTooLow,
    InputsMissingOrSpent,
    InvalidRequest,
    InvalidTransaction,
    NativeBalance,
    NetworkUnreachable,
    ProviderError,
    SentTransaction,
    TxReceipt,
    TxStatus,
)

MAX_RAW_TX_BYTES: Final = 400_000  # a standard transaction weighs at most 400,000 WU
SAT_PER_BTC: Final = 100_000_000
DEFAULT_CONF_TARGET: Final = 6

# src/rpc/protocol.h
RPC_MISC_ERROR: Final = -1
RPC_INVALID_ADDRESS_OR_KEY: Final = -5
RPC_DESERIALIZATION_ERROR: Final = -22
RPC_VERIFY_ERROR: Final = -25  # also RPC_TRANSACTION_ERROR
RPC_VERIFY_REJECTED: Final = -26
RPC_VERIFY_ALREADY_IN_CHAIN: Final = -27
RPC_IN_WARMUP: Final = -28

_HEX: Final = re.compile(r"^(?:[0-9a-fA-F]{2})+$")
_TXID: Final = re.compile(r"^[0-9a-fA-F]{64}$")
# Reject reasons (src/validation.cpp, src/policy) → our failures; the first match wins.
_REJECT_WORDS: Final[tuple[tuple[tuple[str, ...], type[ChainFailure]], ...]] = (
    (("missingorspent", "missing inputs", "txn-mempool-conflict", "bad-txns-spends-conflicting",
      "insufficient-inputs"), InputsMissingOrSpent),
    (("min relay fee not met", "mempool min fee not met", "insufficient fee",
      "min-fee-not-met", "bad-txns-in-belowout", "dust"), FeeTooLow),
)


class BitcoinCoreClient(JsonRpcClient):
    """A ``BroadcastClient`` for one Bitcoin Core node. Close it with ``aclose``."""

    jsonrpc_version = "1.0"

    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        parsed = httpx.URL(url)
        # The credentials travel as Basic auth, not in the URL, which httpx logs.
        self.url = str(parsed.copy_with(username=None, password=None))
        self._http = new_http(timeout_s, transport)
        if parsed.username or parsed.password:
            self._http.auth = httpx.BasicAuth(parsed.username, parsed.password)
        self._ids = itertools.count(1)

    # -- BroadcastClient --------------------------------------------------------------------

    async def send_raw_transaction(self, raw: str, /) -> SentTransaction | ChainFailure:
        raw = raw.strip() if isinstance(raw, str) else ""
        if not _HEX.match(raw) or len(raw) > 2 * MAX_RAW_TX_BYTES:
            return InvalidTransaction("TX decode failed: not hex, or over "
                                      f"{MAX_RAW_TX_BYTES} bytes")
        expected = txid_of(raw)
        if expected is None:
            return InvalidTransaction("TX decode failed: not a Bitcoin transaction",
                                      RPC_DESERIALIZATION_ERROR)
        txid = await self._rpc("sendrawtransaction", [raw.lower()])
        if isinstance(txid, ChainFailure) and (txid.rpc_code == RPC_VERIFY_ALREADY_IN_CHAIN
                                               or "txn-already-" in txid.message):
            # A re-send of a transaction already mined: that is what makes re-sending safe.
            return SentTransaction(expected, already_known=True)
        if isinstance(txid, ChainFailure):
            return txid
        if not isinstance(txid, str) or txid.lower() != expected:
            return ProviderError(f"sendrawtransaction answered {str(txid)[:80]}, "
                                 f"not {expected}")
        return SentTransaction(expected)

    async def get_receipt(self, tx_hash: str, /) -> TxReceipt | ChainFailure:
        if not isinstance(tx_hash, str) or not _TXID.match(tx_hash):
            return InvalidRequest("a Bitcoin txid is 64 hex digits")
        found = await self._rpc("getrawtransaction", [tx_hash.lower(), True])
        if isinstance(found, ChainFailure):
            if found.rpc_code == RPC_INVALID_ADDRESS_OR_KEY:  # not in the mempool nor indexed
                return TxReceipt(tx_hash.lower(), TxStatus.PENDING)
            return found
        try:
            confirmations = int(found.get("confirmations") or 0)
        except (AttributeError, TypeError, ValueError):
            return ProviderError("getrawtransaction: malformed answer")
        if confirmations <= 0:
            return TxReceipt(tx_hash.lower(), TxStatus.PENDING)
        height = await self.block_count()
        if isinstance(height, ChainFailure):
            return height
        return TxReceipt(tx_hash.lower(), TxStatus.CONFIRMED,
                         block_number=height - confirmations + 1, confirmations=confirmations)

    async def get_balance(self, address: str) -> NativeBalance | ChainFailure:
        """Confirmed coins of ``address`` (``scantxoutset``: slow on mainnet, see above)."""
        if not isinstance(address, str) or not re.fullmatch(r"[0-9A-Za-z]{14,90}", address):
            return InvalidRequest("not a Bitcoin address")
        scan = await self._rpc("scantxoutset", ["start", [f"addr({address})"]])
        if isinstance(scan, ChainFailure):
            return scan
        try:
            if scan.get("success") is False:
                return ProviderError("scantxoutset did not finish")
            return NativeBalance(address, btc_to_sat(scan["total_amount"]))
        except (AttributeError, KeyError, TypeError, ValueError, InvalidOperation):
            return ProviderError("scantxoutset: malformed answer")

    # -- Bitcoin only -----------------------------------------------------------------------

    async def block_count(self) -> int | ChainFailure:
        count = await self._rpc("getblockcount", [])
        if isinstance(count, ChainFailure):
            return count
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            return ProviderError(f"getblockcount answered {str(count)[:80]}")
        return count

    async def estimate_fee_rate(self, conf_target: int = DEFAULT_CONF_TARGET
                                ) -> int | ChainFailure:
        """Satoshi per virtual byte to confirm within ``conf_target`` blocks (at least 1)."""
        if not 1 <= conf_target <= 1008:
            return InvalidRequest("conf_target is 1 to 1008 blocks")
        estimate = await self._rpc("estimatesmartfee", [conf_target])
        if isinstance(estimate, ChainFailure):
            return estimate
        if not isinstance(estimate, dict) or estimate.get("feerate") is None:
            errors = estimate.get("errors") if isinstance(estimate, dict) else None
            return ProviderError("estimatesmartfee: " + "; ".join(map(str, errors or ["no rate"]))
                                 [:200])
        try:
            per_kvb = btc_to_sat(estimate["feerate"])
        except (TypeError, ValueError, InvalidOperation):
            return ProviderError("estimatesmartfee: malformed fee rate")
        return max(1, -(-per_kvb // 1000))  # BTC/kvB → sat/vB, rounded up

    # -- JSON-RPC ---------------------------------------------------------------------------

    def rpc_error(self, method: str, error: Any) -> ChainFailure:
        return map_rpc_error(error)


def map_rpc_error(error: Any) -> ChainFailure:
    """A Bitcoin Core error object → the failure it means (``ProviderError`` when unknown)."""
    if not isinstance(error, dict):
        return ProviderError(f"malformed error: {str(error)[:80]}")
    code = error.get("code") if isinstance(error.get("code"), int) else None
    message = str(error.get("message", ""))[:500]
    lowered = message.lower()
    if code in (RPC_VERIFY_ERROR, RPC_VERIFY_REJECTED):
        for words, failure in _REJECT_WORDS:
            if any(word in lowered for word in words):
                return failure(message, code)
        if "max-fee-exceeded" in lowered or "fee exceeds maximum" in lowered:
            return InvalidTransaction(message, code)  # the node's -maxtxfee guard
        if code == RPC_VERIFY_REJECTED:  # script (signature), standardness, consensus
            return InvalidTransaction(message, code)
    if code in (RPC_DESERIALIZATION_ERROR, RPC_VERIFY_ALREADY_IN_CHAIN):
        return InvalidTransaction(message, code)
    if code == RPC_IN_WARMUP:
        return NetworkUnreachable(message, code)  # up soon: the caller tries again
    return ProviderError(message or f"JSON-RPC error {code}", code)


def btc_to_sat(amount: Any) -> int:
    """An amount as Bitcoin Core writes it (a JSON number of BTC, 8 decimals) in satoshi."""
    if isinstance(amount, bool) or not isinstance(amount, int | float | str | Decimal):
        raise TypeError(f"not an amount: {amount!r}")
    sat = Decimal(str(amount)) * SAT_PER_BTC
    if sat != sat.to_integral_value() or sat < 0:
        raise ValueError(f"not a whole number of satoshi: {amount!r}")
    return int(sat)


def txid_of(raw_hex: str) -> str | None:
    """The id a signed transaction will have (its hash without the witness); None if the
    bytes are not a transaction."""
    from embit.transaction import Transaction

    try:
        return Transaction.parse(bytes.fromhex(raw_hex)).txid().hex()
    except Exception:  # embit raises assorted errors on malformed bytes
        return None
