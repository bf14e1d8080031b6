"""An EVM chain over JSON-RPC 2.0 HTTP (any node: go-ethereum, a provider, the sandbox chain).

Node errors come back as JSON-RPC errors whose code is nearly always -32000, so they are told
apart by go-ethereum's wording, which other nodes and providers copy; an unknown one becomes a
``ProviderError``. Fees follow EIP-1559 where the chain has a base fee (``eth_feeHistory``),
and fall back to ``eth_gasPrice`` where it does not.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import httpx
import orjson
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_utils import function_signature_to_4byte_selector, is_address, keccak
from eth_utils import to_checksum_address as checksum

from bankwallet.connectors.chains._http import NodeClient, new_http
from bankwallet.connectors.chains.base import (
    ChainFailure,
    ExecutionReverted,
    FeeEstimate,
    FeeTooLow,
    InsufficientFunds,
    InvalidRequest,
    InvalidTransaction,
    NativeBalance,
    NetworkUnreachable,
    NonceTooHigh,
    NonceTooLow,
    ProviderError,
    SentTransaction,
    TokenBalance,
    TxLog,
    TxReceipt,
    TxRequest,
    TxStatus,
    WrongChain,
)

DEFAULT_TIMEOUT_S: Final = 10.0
MAX_RESPONSE_BYTES: Final = 8 * 1024 * 1024
MAX_RAW_TX_BYTES: Final = 128 * 1024
MAX_LOG_BLOCK_RANGE: Final = 10_000
FEE_HISTORY_BLOCKS: Final = 5
PRIORITY_FEE_PERCENTILE: Final = 50
DEFAULT_PRIORITY_FEE_WEI: Final = 10**9  # 1 gwei, when the node cannot suggest one
# Max fee = 2 × next base fee + tip: still enough after six full blocks (+12.5 % each).
BASE_FEE_HEADROOM: Final = 2

METHOD_NOT_FOUND: Final = -32601
EXECUTION_REVERTED_CODE: Final = 3

ERC20_BALANCE_OF: Final = function_signature_to_4byte_selector("balanceOf(address)")
ERC20_TRANSFER: Final = function_signature_to_4byte_selector("transfer(address,uint256)")
ERC20_TRANSFER_TOPIC: Final = "0x" + keccak(text="Transfer(address,address,uint256)").hex()

# go-ethereum's words (shared by most nodes) → our failure; the first match wins.
_ERROR_WORDS: Final[tuple[tuple[tuple[str, ...], type[ChainFailure]], ...]] = (
    (("insufficient funds",), InsufficientFunds),
    (("nonce too low", "already known", "known transaction"), NonceTooLow),
    (("nonce too high",), NonceTooHigh),
    (("chain id", "chainid", "replay-protected", "replay protected", "eip-155", "eip155"),
     WrongChain),
    (("underpriced", "less than block base fee", "fee cap less than", "fee too low",
      "max fee per gas less than"), FeeTooLow),
    (("execution reverted", "revert"), ExecutionReverted),
    (("invalid raw transaction", "invalid sender", "invalid signature", "rlp",
      "intrinsic gas too low", "exceeds block gas limit", "gas limit reached",
      "oversized data", "transaction type not supported", "typed transaction too short",
      "invalid transaction"), InvalidTransaction),
)
_ALREADY_KNOWN_WORDS: Final = ("already known", "known transaction")


@dataclass(frozen=True, slots=True)
class Erc20Transfer:
    token: str
    from_address: str
    to_address: str
    amount_minor: int


class EvmJsonRpcClient(NodeClient):
    """A ``ChainClient`` for one EVM chain's JSON-RPC endpoint. Close it with ``aclose``."""

    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url
        self._http = new_http(timeout_s, transport)
        self._ids = itertools.count(1)

    # -- ChainClient ------------------------------------------------------------------------

    async def chain_id(self) -> int | ChainFailure:
        return await self._quantity("eth_chainId", [])

    async def get_balance(self, address: str) -> NativeBalance | ChainFailure:
        if not is_address(address):
            return InvalidRequest(f"not an address: {address[:80]}")
        balance = await self._quantity("eth_getBalance", [address, "latest"])
        if isinstance(balance, ChainFailure):
            return balance
        return NativeBalance(checksum(address), balance)

    async def get_token_balance(self, token: str, address: str) -> TokenBalance | ChainFailure:
        if not is_address(token) or not is_address(address):
            return InvalidRequest(f"not an address: {token[:80]} / {address[:80]}")
        output = await self.call(token, erc20_balance_of_data(address))
        if isinstance(output, ChainFailure):
            return output
        try:
            (balance,) = abi_decode(["uint256"], output)
        except DecodingError:  # "0x": no contract there, or not an ERC-20
            return InvalidRequest(f"no ERC-20 balanceOf answers at {checksum(token)}")
        return TokenBalance(checksum(token), checksum(address), balance)

    async def get_nonce(self, address: str) -> int | ChainFailure:
        if not is_address(address):
            return InvalidRequest(f"not an address: {address[:80]}")
        return await self._quantity("eth_getTransactionCount", [address, "pending"])

    async def estimate_fees(self) -> FeeEstimate | ChainFailure:
        history = await self._rpc("eth_feeHistory", [hex(FEE_HISTORY_BLOCKS), "latest",
                                                     [PRIORITY_FEE_PERCENTILE]])
        if isinstance(history, NetworkUnreachable):
            return history
        base_fee = _next_base_fee(history)
        if base_fee is None:  # no EIP-1559 on this chain (or no eth_feeHistory)
            gas_price = await self._quantity("eth_gasPrice", [])
            return gas_price if isinstance(gas_price, ChainFailure) else FeeEstimate(gas_price)
        priority_fee = await self._priority_fee(history)
        if isinstance(priority_fee, ChainFailure):
            return priority_fee
        return FeeEstimate(gas_price_wei=base_fee + priority_fee, base_fee_wei=base_fee,
                           max_priority_fee_wei=priority_fee,
                           max_fee_wei=BASE_FEE_HEADROOM * base_fee + priority_fee)

    async def estimate_gas(self, tx: TxRequest) -> int | ChainFailure:
        call: dict[str, Any] = {"value": hex(tx.value_wei), "data": "0x" + tx.data.hex()}
        for key, address in (("from", tx.from_address), ("to", tx.to_address)):
            if address is not None:
                if not is_address(address):
                    return InvalidRequest(f"not an address: {address[:80]}")
                call[key] = address
        return await self._quantity("eth_estimateGas", [call])

    async def send_raw_transaction(self, raw_hex: str) -> SentTransaction | ChainFailure:
        tx_hash = tx_hash_of(raw_hex)
        if tx_hash is None:
            return InvalidTransaction("invalid raw transaction: not 0x-prefixed hex, or "
                                      f"over {MAX_RAW_TX_BYTES} bytes")
        result = await self._rpc("eth_sendRawTransaction", [raw_hex])
        if isinstance(result, NonceTooLow):
            # A re-send of bytes the node already has or mined is a success, not a failure:
            # that is what makes re-sending after a timeout safe.
            known = await self._rpc("eth_getTransactionByHash", [tx_hash])
            if isinstance(known, dict) or any(w in result.message.lower()
                                              for w in _ALREADY_KNOWN_WORDS):
                return SentTransaction(tx_hash, already_known=True)
            return result
        if isinstance(result, ChainFailure):
            return result
        if not isinstance(result, str) or result.lower() != tx_hash:
            return ProviderError(f"the node answered hash {str(result)[:80]}, not {tx_hash}")
        return SentTransaction(tx_hash)

    async def get_receipt(self, tx_hash: str) -> TxReceipt | ChainFailure:
        receipt = await self._rpc("eth_getTransactionReceipt", [tx_hash])
        if isinstance(receipt, ChainFailure):
            return receipt
        if receipt is None or receipt.get("blockNumber") is None:
            return TxReceipt(tx_hash, TxStatus.PENDING)
        head = await self._quantity("eth_blockNumber", [])
        if isinstance(head, ChainFailure):
            return head
        try:
            return _receipt(tx_hash, receipt, head)
        except (KeyError, TypeError, ValueError) as exc:
            return ProviderError(f"malformed receipt: {exc!r}"[:200])

    # -- EVM only ---------------------------------------------------------------------------

    async def call(self, to_address: str, data: bytes, *,
                   from_address: str | None = None) -> bytes | ChainFailure:
        """``eth_call`` on the latest block: the return data, or ``ExecutionReverted``."""
        call = {"to": to_address, "data": "0x" + data.hex()}
        if from_address is not None:
            call["from"] = from_address
        output = await self._rpc("eth_call", [call, "latest"])
        if isinstance(output, ChainFailure):
            return output
        try:
            return bytes.fromhex(output.removeprefix("0x"))
        except (AttributeError, ValueError):
            return ProviderError(f"malformed eth_call result: {str(output)[:80]}")

    async def block_number(self) -> int | ChainFailure:
        return await self._quantity("eth_blockNumber", [])

    async def get_code(self, address: str) -> bytes | ChainFailure:
        code = await self._rpc("eth_getCode", [address, "latest"])
        if isinstance(code, ChainFailure):
            return code
        try:
            return bytes.fromhex(code.removeprefix("0x"))
        except (AttributeError, ValueError):
            return ProviderError(f"malformed eth_getCode result: {str(code)[:80]}")

    async def get_logs(self, *, address: str | Sequence[str] | None = None,
                       topics: Sequence[str | Sequence[str] | None] = (),
                       from_block: int, to_block: int) -> tuple[TxLog, ...] | ChainFailure:
        """Event logs of a bounded block range (e.g. incoming ERC-20 transfers)."""
        if not 0 <= from_block <= to_block or to_block - from_block >= MAX_LOG_BLOCK_RANGE:
            return InvalidRequest(f"block range must be at most {MAX_LOG_BLOCK_RANGE} blocks")
        criteria: dict[str, Any] = {"fromBlock": hex(from_block), "toBlock": hex(to_block),
                                    "topics": [t if t is None or isinstance(t, str) else list(t)
                                               for t in topics]}
        if address is not None:
            criteria["address"] = address if isinstance(address, str) else list(address)
        logs = await self._rpc("eth_getLogs", [criteria])
        if isinstance(logs, ChainFailure):
            return logs
        try:
            return tuple(_log(entry) for entry in logs)
        except (KeyError, TypeError, ValueError) as exc:
            return ProviderError(f"malformed logs: {exc!r}"[:200])

    # -- JSON-RPC ---------------------------------------------------------------------------

    async def _quantity(self, method: str, params: list[Any]) -> int | ChainFailure:
        result = await self._rpc(method, params)
        if isinstance(result, ChainFailure):
            return result
        try:
            return _to_int(result)
        except (TypeError, ValueError):
            return ProviderError(f"{method} answered a malformed quantity: {str(result)[:80]}")

    async def _priority_fee(self, history: Any) -> int | ChainFailure:
        suggested = await self._quantity("eth_maxPriorityFeePerGas", [])
        if not isinstance(suggested, ChainFailure):
            return suggested
        if isinstance(suggested, NetworkUnreachable):
            return suggested
        try:
            rewards = sorted(t for t in (_to_int(r[0]) for r in history.get("reward") or [] if r)
                             if t > 0)
        except (TypeError, ValueError):
            rewards = []
        return rewards[len(rewards) // 2] if rewards else DEFAULT_PRIORITY_FEE_WEI

    async def _rpc(self, method: str, params: list[Any]) -> Any:
        """The call's ``result``, or a ``ChainFailure`` (returned, never raised)."""
        body = orjson.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method,
                             "params": params})
        try:
            async with self._http.stream("POST", self.url, content=body) as response:
                content = await _read_bounded(response)
        except httpx.TransportError as exc:
            return NetworkUnreachable(f"{method}: {type(exc).__name__}: {exc}"[:200])
        except _ResponseTooLarge:
            return ProviderError(f"{method}: the answer is over {MAX_RESPONSE_BYTES} bytes")
        if response.status_code != 200:
            return ProviderError(f"{method}: HTTP {response.status_code}")
        try:
            answer = orjson.loads(content)
        except orjson.JSONDecodeError:
            return ProviderError(f"{method}: the answer is not JSON")
        if not isinstance(answer, dict):
            return ProviderError(f"{method}: the answer is not a JSON-RPC response")
        if answer.get("error") is not None:
            return map_rpc_error(answer["error"])
        if "result" not in answer:
            return ProviderError(f"{method}: the answer has neither result nor error")
        return answer["result"]


class _ResponseTooLarge(Exception):
    pass


async def _read_bounded(response: httpx.Response) -> bytes:
    content = bytearray()
    async for chunk in response.aiter_bytes():
        content += chunk
        if len(content) > MAX_RESPONSE_BYTES:
            raise _ResponseTooLarge
    return bytes(content)


def map_rpc_error(error: Any) -> ChainFailure:
    """A JSON-RPC error object → the failure it means (``ProviderError`` when unknown)."""
    if not isinstance(error, dict):
        return ProviderError(f"malformed error: {str(error)[:80]}")
    code = error.get("code") if isinstance(error.get("code"), int) else None
    message = str(error.get("message", ""))[:500]
    data = error.get("data") if isinstance(error.get("data"), str) else None
    if code == EXECUTION_REVERTED_CODE:
        return ExecutionReverted(message, code, data)
    lowered = message.lower()
    for words, failure in _ERROR_WORDS:
        if any(word in lowered for word in words):
            return failure(message, code, data)
    return ProviderError(message or f"JSON-RPC error {code}", code, data)


# -- pure helpers -----------------------------------------------------------------------------


def _to_int(value: Any) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"not a quantity: {value!r}")
    return int(value, 16)


def _next_base_fee(history: Any) -> int | None:
    """The next block's base fee from an ``eth_feeHistory`` answer; None without EIP-1559."""
    if not isinstance(history, dict):
        return None
    base_fees = history.get("baseFeePerGas") or []
    try:
        next_base_fee = _to_int(base_fees[-1])
    except (IndexError, TypeError, ValueError):
        return None
    return next_base_fee if next_base_fee > 0 else None


def _log(entry: dict[str, Any]) -> TxLog:
    return TxLog(address=checksum(entry["address"]), topics=tuple(entry["topics"]),
                 data=entry["data"], log_index=_to_int(entry["logIndex"]))


def _receipt(tx_hash: str, receipt: dict[str, Any], head: int) -> TxReceipt:
    block_number = _to_int(receipt["blockNumber"])
    status = {"0x1": TxStatus.CONFIRMED, "0x0": TxStatus.FAILED}.get(
        receipt.get("status"), TxStatus.PENDING)  # pre-Byzantium or unknown: not decided
    contract = receipt.get("contractAddress")
    price = receipt.get("effectiveGasPrice")
    return TxReceipt(
        tx_hash=tx_hash, status=status, block_number=block_number,
        confirmations=max(0, head - block_number + 1), gas_used=_to_int(receipt["gasUsed"]),
        effective_gas_price_wei=_to_int(price) if price is not None else None,
        contract_address=checksum(contract) if contract else None,
        logs=tuple(_log(entry) for entry in receipt.get("logs") or ()))


def tx_hash_of(raw_hex: str) -> str | None:
    """The hash a signed transaction will have (keccak of its bytes); None if not hex."""
    if not isinstance(raw_hex, str) or not raw_hex.startswith("0x"):
        return None
    try:
        raw = bytes.fromhex(raw_hex[2:])
    except ValueError:
        return None
    if not raw or len(raw) > MAX_RAW_TX_BYTES:
        return None
    return "0x" + keccak(raw).hex()


def erc20_balance_of_data(owner: str) -> bytes:
    return ERC20_BALANCE_OF + abi_encode(["address"], [owner])


def erc20_transfer_data(to_address: str, amount_minor: int) -> bytes:
    """Call data of ``transfer(to, amount)``: the ``data`` of a transaction sent to the token."""
    assert 0 <= amount_minor < 2**256
    return ERC20_TRANSFER + abi_encode(["address", "uint256"], [to_address, amount_minor])


def decode_erc20_transfer(log: TxLog) -> Erc20Transfer | None:
    """The ERC-20 ``Transfer`` a log records, or None if it is another event."""
    if len(log.topics) != 3 or log.topics[0].lower() != ERC20_TRANSFER_TOPIC:
        return None
    try:
        (amount,) = abi_decode(["uint256"], bytes.fromhex(log.data.removeprefix("0x")))
    except (DecodingError, ValueError):
        return None
    return Erc20Transfer(token=log.address, from_address=checksum("0x" + log.topics[1][-40:]),
                         to_address=checksum("0x" + log.topics[2][-40:]), amount_minor=amount)
