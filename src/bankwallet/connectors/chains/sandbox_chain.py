"""The sandbox chain: an in-process EVM (eth-tester on py-evm) served over JSON-RPC 2.0 HTTP.

It is to the crypto wallet what the sandbox bank is to payments: a real chain to sign for, send
to and read from, in its own process (``bankwallet sandbox-chain``), started in milliseconds and
forgotten when it stops (state lives in memory). Every accepted transaction is mined into a
block at once (automine), so there is no transaction pool: a nonce gap is refused ("nonce too
high") instead of queued.

Refusals use go-ethereum's messages and JSON-RPC error code -32000, so that a client mapping
them (``evm.EvmJsonRpcClient``) works against a real node too. Unlike py-evm, which executes
any well-signed transaction, the server refuses a signature for another chain id and an
unprotected (pre-EIP-155) signature, as a mainnet node does.

TEST ONLY: the dev accounts' private keys derive from the publicly known mnemonic
``test test test test test test test test test test test junk`` (path m/44'/60'/0'/0/i, the
same accounts as Hardhat and Anvil). Anyone can spend from them on any chain. Never send real
value to them, never use them outside a sandbox.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Final

import orjson
from eth.estimators.gas import binary_gas_search
from eth.exceptions import Revert, VMError
from eth.vm.spoof import SpoofTransaction
from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.hdaccount import key_from_seed, seed_from_mnemonic
from eth_bloom import BloomFilter
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import BlockNotFound, TransactionNotFound
from eth_tester.exceptions import ValidationError as TesterValidationError
from eth_utils import (
    ValidationError as EthValidationError,
)
from eth_utils import (
    decode_hex,
    is_address,
    is_hex,
    to_canonical_address,
    to_checksum_address,
)

log = logging.getLogger(__name__)

DEV_MNEMONIC: Final = "test test test test test test test test test test test junk"
DEV_HD_PATH: Final = "m/44'/60'/0'/0"  # account i is at {DEV_HD_PATH}/i
FAUCET_HD_INDEX: Final = 999  # the faucet's own key, apart from the dev accounts' nonces
FAUCET_BALANCE_WEI: Final = 10**9 * 10**18

DEFAULT_CHAIN_ID: Final = 1337
MAX_ACCOUNTS: Final = 100
MAX_BALANCE_ETH: Final = 10**9
MAX_REQUEST_BYTES: Final = 1024 * 1024
MAX_BATCH_REQUESTS: Final = 100
MAX_RAW_TX_BYTES: Final = 128 * 1024  # go-ethereum's txMaxSize
MAX_LOG_BLOCK_RANGE: Final = 10_000
MAX_FEE_HISTORY_BLOCKS: Final = 1024
MAX_FEE_HISTORY_PERCENTILES: Final = 100
MAX_MINE_BLOCKS: Final = 1000
MAX_FAUCET_WEI: Final = 10**6 * 10**18
PRIORITY_FEE_WEI: Final = 10**9  # what eth_maxPriorityFeePerGas suggests (1 gwei)
BLOB_TX_TYPE: Final = 3
ERROR_STRING_SELECTOR: Final = bytes.fromhex("08c379a0")  # Error(string)
ZERO_ADDRESS: Final = "0x" + "00" * 20

# JSON-RPC 2.0 error codes, and -32000 / 3 as go-ethereum uses them.
PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
SERVER_ERROR: Final = -32000
EXECUTION_REVERTED: Final = 3


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def as_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def dev_private_keys(count: int) -> list[str]:
    """The dev accounts' private keys (0x hex), TEST ONLY: see the module's docstring."""
    assert 0 < count <= MAX_ACCOUNTS
    return [_hd_key(index) for index in range(count)]


def faucet_private_key() -> str:
    """The faucet's private key (TEST ONLY, from the same public mnemonic)."""
    return _hd_key(FAUCET_HD_INDEX)


@functools.cache
def _seed() -> bytes:
    return seed_from_mnemonic(DEV_MNEMONIC, "")


def _hd_key(index: int) -> str:
    return "0x" + key_from_seed(_seed(), f"{DEV_HD_PATH}/{index}").hex()


class SandboxChain:
    """The EVM and the JSON-RPC methods on it. Not thread-safe: call it from one thread."""

    def __init__(self, *, chain_id: int = DEFAULT_CHAIN_ID, accounts: int = 10,
                 balance_wei: int = 10_000 * 10**18) -> None:
        assert 0 < chain_id < 2**63
        assert 0 < accounts <= MAX_ACCOUNTS
        assert 0 <= balance_wei <= MAX_BALANCE_ETH * 10**18
        self.chain_id = chain_id
        self.dev_addresses = [Account.from_key(k).address for k in dev_private_keys(accounts)]
        self._faucet = Account.from_key(faucet_private_key())
        self.faucet_address = self._faucet.address
        genesis_state = {to_canonical_address(a): _genesis_account(balance_wei)
                         for a in self.dev_addresses}
        genesis_state[to_canonical_address(self._faucet.address)] = _genesis_account(
            FAUCET_BALANCE_WEI)
        backend = PyEVMBackend(genesis_state=genesis_state)
        # eth-tester hard-codes its chain id as a class attribute; py-evm reads it from the
        # chain object for each new VM (the CHAINID opcode, signing), so this sets ours.
        backend.chain.chain_id = chain_id
        self._backend = backend
        self._tester = EthereumTester(backend=backend, auto_mine_transactions=True)
        self._methods: dict[str, Callable[[list[Any]], Any]] = {
            "web3_clientVersion": lambda p: "bankwallet-sandbox-chain/eth-tester-py-evm",
            "net_version": lambda p: str(self.chain_id),
            "net_listening": lambda p: True,
            "eth_chainId": lambda p: hex(self.chain_id),
            "eth_syncing": lambda p: False,
            "eth_accounts": lambda p: [],  # the server holds no keys it would sign with
            "eth_blockNumber": lambda p: hex(self._latest_number()),
            "eth_gasPrice": lambda p: hex(self._pending_base_fee() + PRIORITY_FEE_WEI),
            "eth_maxPriorityFeePerGas": lambda p: hex(PRIORITY_FEE_WEI),
            "eth_feeHistory": self._fee_history,
            "eth_getBalance": self._get_balance,
            "eth_getTransactionCount": self._get_transaction_count,
            "eth_getCode": self._get_code,
            "eth_getBlockByNumber": self._get_block_by_number,
            "eth_getBlockByHash": self._get_block_by_hash,
            "eth_estimateGas": self._estimate_gas,
            "eth_call": self._call,
            "eth_sendRawTransaction": self._send_raw_transaction,
            "eth_getTransactionReceipt": self._get_transaction_receipt,
            "eth_getTransactionByHash": self._get_transaction_by_hash,
            "eth_getLogs": self._get_logs,
            "evm_mine": self._evm_mine,
            "sandbox_fund": self._sandbox_fund,
            "sandbox_accounts": lambda p: list(self.dev_addresses),
        }

    # -- JSON-RPC envelope ------------------------------------------------------------------

    def handle_payload(self, payload: Any) -> Any:
        """One parsed request body (object or batch) → the response body, or None for none."""
        if isinstance(payload, list):
            if not payload:
                return _error_response(None, RpcError(INVALID_REQUEST, "empty batch"))
            if len(payload) > MAX_BATCH_REQUESTS:
                return _error_response(None, RpcError(
                    INVALID_REQUEST, f"batch too large: at most {MAX_BATCH_REQUESTS} requests"))
            responses = [r for r in map(self.handle_one, payload) if r is not None]
            return responses or None
        return self.handle_one(payload)

    def handle_one(self, request: Any) -> dict[str, Any] | None:
        if not isinstance(request, dict):
            return _error_response(None, RpcError(INVALID_REQUEST, "invalid request"))
        request_id = request.get("id")
        is_notification = "id" not in request
        if not isinstance(request_id, str | int | None) or isinstance(request_id, bool):
            return _error_response(None, RpcError(INVALID_REQUEST, "invalid request id"))
        try:
            result = self._dispatch(request)
        except RpcError as exc:
            return None if is_notification else _error_response(request_id, exc)
        except Exception:  # a bug here must not take the server down, nor leak details
            log.exception("sandbox chain: %s failed", request.get("method"))
            error = RpcError(INTERNAL_ERROR, "internal error")
            return None if is_notification else _error_response(request_id, error)
        return None if is_notification else {"jsonrpc": "2.0", "id": request_id,
                                             "result": result}

    def _dispatch(self, request: dict[str, Any]) -> Any:
        method, params = request.get("method"), request.get("params", [])
        if request.get("jsonrpc") != "2.0" or not isinstance(method, str):
            raise RpcError(INVALID_REQUEST, "invalid request")
        if not isinstance(params, list):
            raise RpcError(INVALID_PARAMS, "params must be an array")
        handler = self._methods.get(method)
        if handler is None:
            raise RpcError(METHOD_NOT_FOUND, f"the method {method} does not exist/is not "
                                             "available")
        return handler(params)

    # -- reads ------------------------------------------------------------------------------

    def _latest_number(self) -> int:
        return int(self._tester.get_block_by_number("latest")["number"])

    def _pending_base_fee(self) -> int:
        return int(self._tester.get_block_by_number("pending")["base_fee_per_gas"])

    def _get_balance(self, params: list[Any]) -> str:
        address, block = _address(_param(params, 0)), self._block_id(_param(params, 1, "latest"))
        return hex(self._state_read(self._tester.get_balance, address, block))

    def _get_transaction_count(self, params: list[Any]) -> str:
        address, block = _address(_param(params, 0)), self._block_id(_param(params, 1, "latest"))
        return hex(self._state_read(self._tester.get_nonce, address, block))

    def _get_code(self, params: list[Any]) -> str:
        address, block = _address(_param(params, 0)), self._block_id(_param(params, 1, "latest"))
        return str(self._state_read(self._tester.get_code, address, block))

    def _state_read(self, read: Callable[[str, Any], Any], address: str, block: Any) -> Any:
        try:
            return read(address, block)
        except BlockNotFound:
            raise RpcError(SERVER_ERROR, "header not found") from None

    def _get_block_by_number(self, params: list[Any]) -> dict[str, Any] | None:
        block_id, full = self._block_id(_param(params, 0)), _param(params, 1, False)
        try:
            block = self._tester.get_block_by_number(block_id, full_transactions=bool(full))
        except BlockNotFound:
            return None
        return _format_block(block)

    def _get_block_by_hash(self, params: list[Any]) -> dict[str, Any] | None:
        block_hash, full = _hash32(_param(params, 0)), _param(params, 1, False)
        try:
            block = self._tester.get_block_by_hash(block_hash, full_transactions=bool(full))
        except BlockNotFound:
            return None
        return _format_block(block)

    def _get_transaction_receipt(self, params: list[Any]) -> dict[str, Any] | None:
        try:
            receipt = self._tester.get_transaction_receipt(_hash32(_param(params, 0)))
        except TransactionNotFound:
            return None
        return _format_receipt(receipt)

    def _get_transaction_by_hash(self, params: list[Any]) -> dict[str, Any] | None:
        try:
            transaction = self._tester.get_transaction_by_hash(_hash32(_param(params, 0)))
        except TransactionNotFound:
            return None
        return _format_transaction(transaction)

    def _get_logs(self, params: list[Any]) -> list[dict[str, Any]]:
        criteria = _param(params, 0)
        if not isinstance(criteria, dict):
            raise RpcError(INVALID_PARAMS, "the filter must be an object")
        latest = self._latest_number()
        if criteria.get("blockHash") is not None:
            block = self._get_block_by_hash([criteria["blockHash"], False])
            if block is None:
                raise RpcError(SERVER_ERROR, "unknown block")
            from_block = to_block = int(block["number"], 16)
        else:
            from_block = self._block_number(criteria.get("fromBlock", "latest"), latest)
            to_block = self._block_number(criteria.get("toBlock", "latest"), latest)
        if from_block > to_block:
            raise RpcError(INVALID_PARAMS, "invalid block range params")
        if to_block - from_block >= MAX_LOG_BLOCK_RANGE:
            raise RpcError(SERVER_ERROR, f"block range too large: at most "
                                         f"{MAX_LOG_BLOCK_RANGE} blocks per query")
        address = criteria.get("address")
        if isinstance(address, list):
            address = tuple(_address(a) for a in address) or None
        elif address is not None:
            address = _address(address)
        topics = criteria.get("topics")
        if topics is not None:
            topics = _topics(topics)
        logs = self._tester.get_logs(from_block=from_block, to_block=min(to_block, latest),
                                     address=address, topics=topics)
        return [_format_log(entry) for entry in logs]

    def _fee_history(self, params: list[Any]) -> dict[str, Any]:
        block_count = min(_quantity(_param(params, 0)), MAX_FEE_HISTORY_BLOCKS)
        latest = self._latest_number()
        newest = self._block_number(_param(params, 1, "latest"), latest)
        percentiles = _param(params, 2, None) or []
        _check_percentiles(percentiles)
        if block_count < 1:
            return {"oldestBlock": hex(newest + 1), "baseFeePerGas": [], "gasUsedRatio": []}
        oldest = max(0, newest - block_count + 1)
        blocks = [self._tester.get_block_by_number(n, full_transactions=True)
                  for n in range(oldest, newest + 1)]
        next_base_fee = (self._pending_base_fee() if newest == latest else
                         self._tester.get_block_by_number(newest + 1)["base_fee_per_gas"])
        history: dict[str, Any] = {
            "oldestBlock": hex(oldest),
            "baseFeePerGas": [hex(b["base_fee_per_gas"]) for b in blocks] + [hex(next_base_fee)],
            "gasUsedRatio": [b["gas_used"] / b["gas_limit"] for b in blocks],
        }
        if percentiles:
            history["reward"] = [[hex(r) for r in self._rewards(b, percentiles)]
                                 for b in blocks]
        return history

    def _rewards(self, block: dict[str, Any], percentiles: list[float]) -> list[int]:
        """Tips at the given percentiles of the block's gas, as go-ethereum computes them."""
        if not block["transactions"]:
            return [0] * len(percentiles)
        receipts = [self._tester.get_transaction_receipt(tx["hash"])
                    for tx in block["transactions"]]
        tips = sorted((r["effective_gas_price"] - block["base_fee_per_gas"], r["gas_used"])
                      for r in receipts)
        rewards, index, cumulative_gas = [], 0, tips[0][1]
        for percentile in percentiles:
            threshold = block["gas_used"] * percentile / 100
            while cumulative_gas < threshold and index < len(tips) - 1:
                index += 1
                cumulative_gas += tips[index][1]
            rewards.append(tips[index][0])
        return rewards

    # -- execution --------------------------------------------------------------------------

    # Calls and estimates run in a "costless" next block (base fee 0, gas price 0), as
    # go-ethereum runs a call that names no fee: any sender may read, funded or not. Fee
    # fields in the call object are ignored; the value must still be affordable.

    def _call(self, params: list[Any]) -> str:
        call, block = _call_object(_param(params, 0)), self._block_id(_param(params, 1, "latest"))
        with self._costless_state(block) as state:
            transaction = self._spoof(call, state, gas=call.get("gas", state.gas_limit))
            computation = state.apply_transaction(transaction)
        if computation.is_error:
            raise _execution_error(computation.error)
        return "0x" + bytes(computation.output).hex()

    def _estimate_gas(self, params: list[Any]) -> str:
        call, block = _call_object(_param(params, 0)), self._block_id(_param(params, 1, "latest"))
        with self._costless_state(block) as state:
            transaction = self._spoof(call, state, gas=state.gas_limit)
            try:
                return hex(binary_gas_search(state, transaction, tolerance=1))
            except VMError as exc:  # the run with the most gas failed: say why
                raise _execution_error(exc) from None

    @contextlib.contextmanager
    def _costless_state(self, block: int | str) -> Iterator[Any]:
        number = self._block_number(block, self._latest_number())
        chain = self._backend.chain
        vm = chain.get_vm(at_header=chain.get_canonical_block_header_by_number(number))
        try:
            with vm.in_costless_state() as state:
                yield state
        except (EthValidationError, TesterValidationError) as exc:
            raise RpcError(SERVER_ERROR, _validation_message(exc)) from None

    def _spoof(self, call: dict[str, Any], state: Any, *, gas: int) -> Any:
        sender = to_canonical_address(call["from"])
        unsigned = self._backend.chain.get_vm().create_unsigned_transaction(
            nonce=state.get_nonce(sender), gas_price=0, gas=gas,
            to=to_canonical_address(call["to"]) if "to" in call else b"",
            value=call.get("value", 0), data=decode_hex(call.get("data", "0x")))
        return SpoofTransaction(unsigned, from_=sender)

    def _send_raw_transaction(self, params: list[Any]) -> str:
        raw_hex = _param(params, 0)
        if not isinstance(raw_hex, str) or not raw_hex.startswith("0x") or not is_hex(raw_hex):
            raise RpcError(INVALID_PARAMS, "invalid raw transaction: not 0x-prefixed hex")
        raw = decode_hex(raw_hex)
        if len(raw) > MAX_RAW_TX_BYTES:
            raise RpcError(SERVER_ERROR, "oversized data")
        self._check_admissible(self._decode(raw))
        return self._submit("0x" + raw.hex())

    def _decode(self, raw: bytes) -> Any:
        if not raw:
            raise RpcError(SERVER_ERROR, "invalid raw transaction: empty")
        if raw[0] == BLOB_TX_TYPE:
            raise RpcError(SERVER_ERROR, "transaction type not supported")
        try:
            transaction = self._backend.chain.get_vm().get_transaction_builder().decode(raw)
            transaction.validate()
        except Exception as exc:  # py-evm raises many kinds for malformed bytes
            raise RpcError(SERVER_ERROR, f"invalid raw transaction: "
                                         f"{_validation_message(exc)}") from None
        return transaction

    def _check_admissible(self, transaction: Any) -> None:
        """The checks a node's pool makes before it accepts a transaction, with its words."""
        if transaction.chain_id is None:
            raise RpcError(SERVER_ERROR, "only replay-protected (EIP-155) transactions "
                                         "allowed over RPC")
        if transaction.chain_id != self.chain_id:
            raise RpcError(SERVER_ERROR, f"invalid chain id for signer: have "
                                         f"{transaction.chain_id} want {self.chain_id}")
        try:
            sender = to_checksum_address(transaction.sender)
        except Exception:
            raise RpcError(SERVER_ERROR, "invalid sender: invalid signature") from None
        state_nonce = self._tester.get_nonce(sender, "pending")
        if transaction.nonce < state_nonce:
            raise RpcError(SERVER_ERROR, f"nonce too low: address {sender}, "
                                         f"tx: {transaction.nonce} state: {state_nonce}")
        if transaction.nonce > state_nonce:  # no pool to queue it in: automine
            raise RpcError(SERVER_ERROR, f"nonce too high: address {sender}, "
                                         f"tx: {transaction.nonce} state: {state_nonce}")
        if transaction.intrinsic_gas > transaction.gas:
            raise RpcError(SERVER_ERROR, f"intrinsic gas too low: gas {transaction.gas}, "
                                         f"minimum needed {transaction.intrinsic_gas}")
        gas_limit = self._tester.get_block_by_number("pending")["gas_limit"]
        if transaction.gas > gas_limit:
            raise RpcError(SERVER_ERROR, "exceeds block gas limit")
        base_fee = self._pending_base_fee()
        if transaction.max_fee_per_gas < base_fee:
            raise RpcError(SERVER_ERROR, f"max fee per gas less than block base fee: address "
                                         f"{sender}, maxFeePerGas: "
                                         f"{transaction.max_fee_per_gas}, baseFee: {base_fee}")
        cost_wei = transaction.gas * transaction.max_fee_per_gas + transaction.value
        balance_wei = self._tester.get_balance(sender, "pending")
        if balance_wei < cost_wei:
            raise RpcError(SERVER_ERROR, f"insufficient funds for gas * price + value: "
                                         f"address {sender} have {balance_wei} want {cost_wei}")

    def _submit(self, raw_hex: str) -> str:
        try:
            return str(self._tester.send_raw_transaction(raw_hex))
        except (EthValidationError, TesterValidationError) as exc:
            raise RpcError(SERVER_ERROR, _validation_message(exc)) from None

    # -- dev helpers ------------------------------------------------------------------------

    def _evm_mine(self, params: list[Any]) -> str:
        count = _quantity(_param(params, 0, "0x1"))
        if not 1 <= count <= MAX_MINE_BLOCKS:
            raise RpcError(INVALID_PARAMS, f"mine 1 to {MAX_MINE_BLOCKS} blocks at a time")
        self._tester.mine_blocks(count)
        return "0x0"

    def _sandbox_fund(self, params: list[Any]) -> str:
        """Send wei from the faucet in a real, mined transaction; returns its hash."""
        address, amount_wei = _address(_param(params, 0)), _quantity(_param(params, 1))
        if not 0 < amount_wei <= MAX_FAUCET_WEI:
            raise RpcError(INVALID_PARAMS, f"fund 1 wei to {MAX_FAUCET_WEI} wei at a time")
        base_fee = self._pending_base_fee()
        signed = self._faucet.sign_transaction({
            "type": 2, "chainId": self.chain_id, "to": to_checksum_address(address),
            "value": amount_wei, "gas": 21_000,
            "nonce": self._tester.get_nonce(self._faucet.address, "pending"),
            "maxPriorityFeePerGas": PRIORITY_FEE_WEI,
            "maxFeePerGas": 2 * base_fee + PRIORITY_FEE_WEI})
        return self._submit(signed.raw_transaction.to_0x_hex())

    # -- parameters -------------------------------------------------------------------------

    def _block_id(self, value: Any) -> int | str:
        """A block tag or number, as eth-tester takes it."""
        if value in ("latest", "pending", "earliest"):
            return str(value)
        if value in ("safe", "finalized"):  # automine, no reorgs: final at once
            return "latest"
        if isinstance(value, dict):  # EIP-1898
            if "blockNumber" in value:
                return self._block_id(value["blockNumber"])
            if "blockHash" in value:
                block = self._get_block_by_hash([value["blockHash"], False])
                if block is None:
                    raise RpcError(SERVER_ERROR, "header not found")
                return int(block["number"], 16)
        return _quantity(value)

    def _block_number(self, value: Any, latest: int) -> int:
        block = self._block_id(value)
        if block in ("latest", "pending"):
            return latest
        if block == "earliest":
            return 0
        assert isinstance(block, int)
        if block > latest:
            raise RpcError(SERVER_ERROR, "header not found")
        return block


# -- pure helpers ---------------------------------------------------------------------------


def _genesis_account(balance_wei: int) -> dict[str, Any]:
    return {"balance": balance_wei, "nonce": 0, "code": b"", "storage": {}}


def _error_response(request_id: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": error.as_json()}


def _param(params: list[Any], index: int, default: Any = ...) -> Any:
    if index < len(params):
        return params[index]
    if default is ...:
        raise RpcError(INVALID_PARAMS, f"missing value for required argument {index}")
    return default


def _quantity(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value  # lenient, as go-ethereum is for block counts
    if not isinstance(value, str) or not value.startswith("0x") or len(value) > 66:
        raise RpcError(INVALID_PARAMS, f"invalid quantity: {str(value)[:80]}")
    try:
        return int(value, 16)
    except ValueError:
        raise RpcError(INVALID_PARAMS, f"invalid quantity: {value[:80]}") from None


def _address(value: Any) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise RpcError(INVALID_PARAMS, f"invalid address: {str(value)[:80]}")
    return to_checksum_address(value)


def _hash32(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 66 or not is_hex(value):
        raise RpcError(INVALID_PARAMS, f"invalid hash: {str(value)[:80]}")
    return value.lower()


def _topics(value: Any) -> tuple[Any, ...]:
    if not isinstance(value, list) or len(value) > 4:
        raise RpcError(INVALID_PARAMS, "topics must be an array of at most 4 entries")
    topics: list[Any] = []
    for entry in value:
        if entry is None:
            topics.append(None)
        elif isinstance(entry, list):
            topics.append(tuple(_hash32(t) for t in entry))
        else:
            topics.append(_hash32(entry))
    # eth-tester takes either flat topics or all-nested ones: nest when any entry is a list.
    if any(isinstance(t, tuple) for t in topics):
        topics = [t if isinstance(t, tuple) else (t,) for t in topics]
    return tuple(topics)


def _check_percentiles(percentiles: Any) -> None:
    if (not isinstance(percentiles, list) or len(percentiles) > MAX_FEE_HISTORY_PERCENTILES
            or any(not isinstance(p, int | float) or not 0 <= p <= 100 for p in percentiles)
            or any(a > b for a, b in zip(percentiles, percentiles[1:], strict=False))):
        raise RpcError(INVALID_PARAMS, "reward percentiles must rise from 0 to 100")


_CALL_FIELDS: Final = {"from": "from", "to": "to", "gas": "gas", "value": "value",
                       "data": "data", "input": "data"}


def _call_object(value: Any) -> dict[str, Any]:
    """A JSON-RPC call object's from, to, gas, value and data (ints, 0x-hex data)."""
    if not isinstance(value, dict):
        raise RpcError(INVALID_PARAMS, "the transaction must be an object")
    transaction: dict[str, Any] = {"from": ZERO_ADDRESS}
    for key, raw in value.items():
        field = _CALL_FIELDS.get(key)
        if field is None or raw is None:
            continue  # fees, nonce, accessList, type, chainId: not used by a costless call
        if field in ("from", "to"):
            transaction[field] = _address(raw)
        elif field == "data":
            if not isinstance(raw, str) or not is_hex(raw) or not raw.startswith("0x"):
                raise RpcError(INVALID_PARAMS, "invalid data: not 0x-prefixed hex")
            transaction[field] = raw
        else:
            transaction[field] = _quantity(raw)
    return transaction


def _execution_error(error: Exception) -> RpcError:
    """A failed call as go-ethereum reports it: code 3 and the revert data for a revert."""
    if not isinstance(error, Revert):
        return RpcError(SERVER_ERROR, str(error) or type(error).__name__)
    data = bytes(error.args[0]) if error.args and isinstance(error.args[0], bytes) else b""
    message = "execution reverted"
    if data[:4] == ERROR_STRING_SELECTOR:  # Error(string): a require() with a reason
        try:
            message += f": {abi_decode(['string'], data[4:])[0]}"
        except Exception:
            pass
    return RpcError(EXECUTION_REVERTED, message, "0x" + data.hex())


def _validation_message(exc: Exception) -> str:
    """py-evm's wording of a refusal, mapped onto go-ethereum's where a client relies on it."""
    message = str(exc.args[0]) if exc.args else type(exc).__name__
    if "does not have enough balance" in message:
        return f"insufficient funds for gas * price + value ({message})"
    return message[:300]


# -- output formatting: eth-tester's snake_case Python values → JSON-RPC's -------------------

def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word.capitalize() for word in rest)


def _rpc_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return [_rpc_value(v) for v in value]
    if isinstance(value, dict):
        return {_camel(k): _rpc_value(v) for k, v in value.items()}
    return value


def _bloom_hex(bloom: int) -> str:
    return "0x" + bloom.to_bytes(256, "big").hex()


def _format_block(block: dict[str, Any]) -> dict[str, Any]:
    formatted = {_camel(k): _rpc_value(v) for k, v in block.items()
                 if k not in ("coinbase", "logs_bloom", "transactions")}
    formatted["miner"] = block["coinbase"]
    formatted["logsBloom"] = _bloom_hex(int(block["logs_bloom"]))
    formatted["transactions"] = [tx if isinstance(tx, str) else _format_transaction(tx)
                                 for tx in block["transactions"]]
    return formatted


def _format_transaction(transaction: dict[str, Any]) -> dict[str, Any]:
    formatted = {_camel(k): _rpc_value(v) for k, v in transaction.items() if k != "data"}
    formatted["input"] = transaction["data"]
    formatted.setdefault("type", "0x0")
    return formatted


def _format_log(entry: dict[str, Any]) -> dict[str, Any]:
    formatted = {_camel(k): _rpc_value(v) for k, v in entry.items() if k != "type"}
    formatted["removed"] = False
    return formatted


def _format_receipt(receipt: dict[str, Any]) -> dict[str, Any]:
    # state_root: eth-tester's placeholder; post-Byzantium receipts carry status instead.
    formatted = {_camel(k): _rpc_value(v) for k, v in receipt.items()
                 if k not in ("state_root", "logs")}
    formatted["logs"] = [_format_log(entry) for entry in receipt["logs"]]
    bloom = BloomFilter()
    for entry in receipt["logs"]:
        bloom.add(decode_hex(entry["address"]))
        for topic in entry["topics"]:
            bloom.add(decode_hex(topic) if isinstance(topic, str) else topic)
    formatted["logsBloom"] = _bloom_hex(int(bloom))
    return formatted


# -- HTTP -----------------------------------------------------------------------------------


def create_app(chain: SandboxChain) -> Any:
    """The Starlette app: POST / takes JSON-RPC 2.0 (single or batch); GET /healthz."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    # eth-tester is not thread-safe, and requests must apply in order: one thread runs them
    # all, off the event loop so that it keeps accepting connections meanwhile.
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                     thread_name_prefix="sandbox-evm")

    def rpc_response(body: Any, status_code: int = 200) -> Response:
        return Response(orjson.dumps(body), status_code=status_code,
                        media_type="application/json")

    async def rpc(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit()
                                     or int(declared) > MAX_REQUEST_BYTES):
            return _too_large(rpc_response)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_REQUEST_BYTES:
                return _too_large(rpc_response)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return rpc_response(_error_response(None, RpcError(PARSE_ERROR, "parse error")))
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(executor, chain.handle_payload, payload)
        return Response(status_code=204) if result is None else rpc_response(result)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "chain_id": chain.chain_id})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    return Starlette(routes=[Route("/", rpc, methods=["POST"]),
                             Route("/healthz", healthz, methods=["GET"])],
                     lifespan=lifespan)


def _too_large(rpc_response: Callable[..., Any]) -> Any:
    error = RpcError(INVALID_REQUEST, f"request too large: at most {MAX_REQUEST_BYTES} bytes")
    return rpc_response(_error_response(None, error), status_code=413)


def serve(*, host: str, port: int, chain_id: int, accounts: int, balance_eth: int,
          echo: Callable[[str], None] = print) -> None:
    """Run the sandbox chain until interrupted, after printing its funded dev accounts."""
    import uvicorn

    chain = SandboxChain(chain_id=chain_id, accounts=accounts, balance_wei=balance_eth * 10**18)
    echo(f"sandbox chain: chain id {chain_id}, JSON-RPC on http://{host}:{port}/")
    echo(f"dev accounts, {balance_eth} ETH each (TEST ONLY keys: mnemonic "
         f"\"{DEV_MNEMONIC}\", path {DEV_HD_PATH}/i):")
    for index, address in enumerate(chain.dev_addresses):
        echo(f"  ({index}) {address}")
    echo(f"faucet (sandbox_fund): {chain.faucet_address}")
    uvicorn.run(create_app(chain), host=host, port=port, log_config=None, access_log=False,
                lifespan="on")
