"""The client's mapping of node answers, against fake nodes (no chain needed)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bankwallet.connectors.chains.base import (
    ChainFailure,
    ExecutionReverted,
    FeeEstimate,
    FeeTooLow,
    InsufficientFunds,
    InvalidTransaction,
    NonceTooHigh,
    NonceTooLow,
    ProviderError,
    SentTransaction,
    TxReceipt,
    TxStatus,
    WrongChain,
)
from bankwallet.connectors.chains.evm import (
    DEFAULT_PRIORITY_FEE_WEI,
    EvmJsonRpcClient,
    map_rpc_error,
    tx_hash_of,
)

GWEI = 10**9


@pytest.mark.parametrize(("message", "expected"), [
    # go-ethereum's words, as nodes and providers send them
    ("insufficient funds for gas * price + value: address 0x1 have 0 want 21000",
     InsufficientFunds),
    ("nonce too low: address 0x1, tx: 0 state: 4", NonceTooLow),
    ("already known", NonceTooLow),
    ("nonce too high: address 0x1, tx: 9 state: 4", NonceTooHigh),
    ("invalid sender: invalid chain id for signer: have 1 want 1337", WrongChain),
    ("only replay-protected (EIP-155) transactions allowed over RPC", WrongChain),
    ("transaction underpriced: tip needed 1, tip permitted 0", FeeTooLow),
    ("replacement transaction underpriced", FeeTooLow),
    ("max fee per gas less than block base fee: address 0x1, maxFeePerGas: 1, baseFee: 7",
     FeeTooLow),
    ("intrinsic gas too low: gas 20000, minimum needed 21000", InvalidTransaction),
    ("rlp: expected input list for types.LegacyTx", InvalidTransaction),
    ("transaction type not supported", InvalidTransaction),
    ("invalid sender: invalid signature", InvalidTransaction),
    ("execution reverted", ExecutionReverted),
    ("something no client has heard of", ProviderError),
])
def test_node_words_map_to_failures(message: str, expected: type[ChainFailure]) -> None:
    failure = map_rpc_error({"code": -32000, "message": message})
    assert type(failure) is expected
    assert failure.message == message and failure.rpc_code == -32000


def test_code_3_is_a_revert_with_its_data() -> None:
    failure = map_rpc_error({"code": 3, "message": "execution reverted: no", "data": "0x08c3"})
    assert failure == ExecutionReverted("execution reverted: no", 3, "0x08c3")


def fake_node(answers: dict[str, Any]) -> httpx.MockTransport:
    """A node answering each method with a result, or an error when the value is a dict
    with "code"; methods it does not know are -32601."""
    def handle(request: httpx.Request) -> httpx.Response:
        call = json.loads(request.content)
        answer: Any = answers.get(call["method"], {"code": -32601,
                                                   "message": "method not found"})
        if callable(answer):
            answer = answer(call["params"])
        key = "error" if isinstance(answer, dict) and "code" in answer else "result"
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": call["id"], key: answer})
    return httpx.MockTransport(handle)


def client_for(answers: dict[str, Any | Callable[[list[Any]], Any]]) -> EvmJsonRpcClient:
    return EvmJsonRpcClient("http://node.invalid/", transport=fake_node(answers))


async def test_legacy_chain_falls_back_to_gas_price() -> None:
    async with client_for({"eth_gasPrice": hex(7 * GWEI)}) as client:
        fees = await client.estimate_fees()
    assert fees == FeeEstimate(gas_price_wei=7 * GWEI) and not fees.eip1559


async def test_pre_london_fee_history_falls_back_to_gas_price() -> None:
    history = {"oldestBlock": "0x1", "baseFeePerGas": ["0x0", "0x0"], "gasUsedRatio": [0.5]}
    async with client_for({"eth_feeHistory": history,
                           "eth_gasPrice": hex(3 * GWEI)}) as client:
        assert await client.estimate_fees() == FeeEstimate(gas_price_wei=3 * GWEI)


async def test_priority_fee_from_history_when_the_node_suggests_none() -> None:
    history = {"oldestBlock": "0x1", "baseFeePerGas": [hex(10 * GWEI), hex(12 * GWEI)],
               "gasUsedRatio": [0.5], "reward": [[hex(2 * GWEI)]]}
    async with client_for({"eth_feeHistory": history}) as client:
        fees = await client.estimate_fees()
    assert fees == FeeEstimate(gas_price_wei=14 * GWEI, base_fee_wei=12 * GWEI,
                               max_priority_fee_wei=2 * GWEI, max_fee_wei=26 * GWEI)
    empty = {**history, "reward": [["0x0"]]}
    async with client_for({"eth_feeHistory": empty}) as client:
        fees = await client.estimate_fees()
    assert fees.max_priority_fee_wei == DEFAULT_PRIORITY_FEE_WEI


async def test_resend_of_a_mined_transaction_is_already_known() -> None:
    raw = "0x" + "ab" * 120
    tx_hash = tx_hash_of(raw)
    async with client_for({
        "eth_sendRawTransaction": {"code": -32000, "message": "nonce too low"},
        "eth_getTransactionByHash": {"hash": tx_hash},
    }) as client:
        assert await client.send_raw_transaction(raw) == SentTransaction(tx_hash, True)
    async with client_for({
        "eth_sendRawTransaction": {"code": -32000, "message": "nonce too low"},
        "eth_getTransactionByHash": None,
    }) as client:
        assert isinstance(await client.send_raw_transaction(raw), NonceTooLow)


async def test_a_node_answering_another_hash_is_a_provider_error() -> None:
    async with client_for({"eth_sendRawTransaction": "0x" + "00" * 32}) as client:
        assert isinstance(await client.send_raw_transaction("0x" + "ab" * 120), ProviderError)


@pytest.mark.parametrize(("status", "expected"), [
    ("0x1", TxStatus.CONFIRMED), ("0x0", TxStatus.FAILED), (None, TxStatus.PENDING),
    ("0x7", TxStatus.PENDING)])
async def test_receipt_status_and_confirmations(status: str | None,
                                                expected: TxStatus) -> None:
    receipt = {"blockNumber": "0xa", "status": status, "gasUsed": "0x5208",
               "effectiveGasPrice": hex(GWEI), "logs": [], "contractAddress": None}
    async with client_for({"eth_getTransactionReceipt": receipt,
                           "eth_blockNumber": "0xc"}) as client:
        result = await client.get_receipt("0x" + "11" * 32)
    assert result == TxReceipt("0x" + "11" * 32, expected, block_number=10, confirmations=3,
                               gas_used=21_000, effective_gas_price_wei=GWEI)
    assert result.fee_wei == 21_000 * GWEI


async def test_http_errors_are_provider_errors() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(502, text="bad gateway"))
    async with EvmJsonRpcClient("http://node.invalid/", transport=transport) as client:
        result = await client.chain_id()
    assert isinstance(result, ProviderError) and result.retryable
