"""``EvmJsonRpcClient`` against the sandbox chain in its own process: reads, signed native and
ERC-20 transfers to the wei, and every refusal mapped to its typed failure."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import function_signature_to_4byte_selector as selector
from eth_utils import keccak

from bankwallet.connectors.chains.base import (
    ChainClient,
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
    SentTransaction,
    TokenBalance,
    TxReceipt,
    TxRequest,
    TxStatus,
    WrongChain,
)
from bankwallet.connectors.chains.contracts import load_artifact
from bankwallet.connectors.chains.evm import (
    ERC20_TRANSFER_TOPIC,
    EvmJsonRpcClient,
    decode_erc20_transfer,
    erc20_transfer_data,
    tx_hash_of,
)
from conftest import free_port

from .conftest import CHAIN_ID, DEV_BALANCE_ETH, rpc, wait_for

ETHER = 10**18
GWEI = 10**9
TOKEN_DECIMALS = 6
TOKEN_SUPPLY_MINOR = 1_000_000 * 10**TOKEN_DECIMALS


def sign(key: str, **tx: Any) -> str:
    return Account.from_key(key).sign_transaction(tx).raw_transaction.to_0x_hex()


def address_of(key: str) -> str:
    return Account.from_key(key).address


def ok(result: Any) -> Any:
    assert not isinstance(result, ChainFailure), result
    return result


async def balance_wei(client: EvmJsonRpcClient, address: str) -> int:
    balance = ok(await client.get_balance(address))
    assert isinstance(balance, NativeBalance)
    return balance.balance_wei


async def settled(client: EvmJsonRpcClient, tx_hash: str) -> TxReceipt:
    receipt = await wait_for(lambda: client.get_receipt(tx_hash),
                             lambda r: isinstance(r, TxReceipt)
                             and r.status is not TxStatus.PENDING)
    assert isinstance(receipt, TxReceipt)
    return receipt


async def send(client: EvmJsonRpcClient, raw: str) -> TxReceipt:
    sent = ok(await client.send_raw_transaction(raw))
    assert isinstance(sent, SentTransaction) and sent.tx_hash == tx_hash_of(raw)
    return await settled(client, sent.tx_hash)


async def eip1559_tx(client: EvmJsonRpcClient, key: str, **tx: Any) -> dict[str, Any]:
    fees = ok(await client.estimate_fees())
    nonce = ok(await client.get_nonce(address_of(key)))
    return {"type": 2, "chainId": CHAIN_ID, "nonce": nonce, "gas": 21_000,
            "maxFeePerGas": fees.max_fee_wei, "maxPriorityFeePerGas": fees.max_priority_fee_wei,
            "value": 0, **tx}


async def test_the_client_is_a_chain_client(client: EvmJsonRpcClient) -> None:
    assert isinstance(client, ChainClient)


async def test_reads_chain_id_and_dev_balances(client: EvmJsonRpcClient,
                                               dev_keys: list[str]) -> None:
    assert await client.chain_id() == CHAIN_ID
    untouched = address_of(dev_keys[-1])  # no test spends from the last dev account
    assert await client.get_balance(untouched) == NativeBalance(untouched,
                                                                DEV_BALANCE_ETH * ETHER)
    stranger = Account.create().address
    assert await balance_wei(client, stranger) == 0
    assert await client.get_nonce(stranger) == 0
    assert isinstance(await client.get_balance("0xnot-an-address"), InvalidRequest)


async def test_fee_estimate_is_eip1559(client: EvmJsonRpcClient, chain_url: str) -> None:
    fees = ok(await client.estimate_fees())
    assert isinstance(fees, FeeEstimate) and fees.eip1559
    history = (await rpc(chain_url, "eth_feeHistory", "0x1", "latest", []))["result"]
    next_base_fee = int(history["baseFeePerGas"][-1], 16)
    assert fees.base_fee_wei == next_base_fee > 0
    assert fees.max_priority_fee_wei == 1 * GWEI
    assert fees.max_fee_wei == 2 * next_base_fee + fees.max_priority_fee_wei
    assert fees.gas_price_wei == next_base_fee + fees.max_priority_fee_wei


async def test_native_eip1559_transfer_moves_value_plus_fee(client: EvmJsonRpcClient,
                                                             dev_keys: list[str]) -> None:
    key, recipient, value = dev_keys[0], Account.create().address, 3 * ETHER // 2
    sender = address_of(key)
    gas = await client.estimate_gas(TxRequest(sender, recipient, value_wei=value))
    assert gas == 21_000
    before = await balance_wei(client, sender)
    tx = await eip1559_tx(client, key, to=recipient, value=value, gas=gas)

    receipt = await send(client, sign(key, **tx))

    assert receipt.status is TxStatus.CONFIRMED and receipt.confirmations >= 1
    assert receipt.gas_used == 21_000 and receipt.logs == ()
    assert receipt.effective_gas_price_wei is not None
    assert tx["maxPriorityFeePerGas"] < receipt.effective_gas_price_wei <= tx["maxFeePerGas"]
    assert await balance_wei(client, recipient) == value
    assert await balance_wei(client, sender) == before - value - receipt.fee_wei
    assert await client.get_nonce(sender) == tx["nonce"] + 1


async def test_legacy_eip155_transfer_pays_its_gas_price(client: EvmJsonRpcClient,
                                                         dev_keys: list[str]) -> None:
    key, recipient, value = dev_keys[1], Account.create().address, 12_345
    sender = address_of(key)
    fees = ok(await client.estimate_fees())
    before = await balance_wei(client, sender)
    raw = sign(key, chainId=CHAIN_ID, nonce=ok(await client.get_nonce(sender)), gas=21_000,
               gasPrice=fees.gas_price_wei, to=recipient, value=value)
    assert int(raw[2:4], 16) >= 0xC0  # an RLP list: a legacy (untyped) transaction

    receipt = await send(client, raw)

    assert receipt.status is TxStatus.CONFIRMED
    assert receipt.effective_gas_price_wei == fees.gas_price_wei
    assert await balance_wei(client, recipient) == value
    assert await balance_wei(client, sender) == before - value - 21_000 * fees.gas_price_wei


async def test_sending_the_same_bytes_again_is_a_success(client: EvmJsonRpcClient,
                                                         dev_keys: list[str]) -> None:
    key, recipient = dev_keys[0], Account.create().address
    raw = sign(key, **await eip1559_tx(client, key, to=recipient, value=1))
    first = ok(await client.send_raw_transaction(raw))
    again = ok(await client.send_raw_transaction(raw))
    assert again == SentTransaction(first.tx_hash, already_known=True)
    await settled(client, first.tx_hash)
    assert await balance_wei(client, recipient) == 1  # once, not twice


async def test_erc20_deploy_transfer_and_transfer_log(client: EvmJsonRpcClient,
                                                      dev_keys: list[str]) -> None:
    key = dev_keys[2]
    deployer, recipient = address_of(key), Account.create().address
    artifact = load_artifact("BankwalletToken")
    deploy_data = bytes.fromhex(artifact["bytecode"][2:]) + abi_encode(
        ["string", "string", "uint8", "uint256"],
        ["Bankwallet Dollar", "BWD", TOKEN_DECIMALS, TOKEN_SUPPLY_MINOR])
    gas = ok(await client.estimate_gas(TxRequest(deployer, None, data=deploy_data)))
    tx = await eip1559_tx(client, key, data=deploy_data, gas=gas * 6 // 5)

    deployed = await send(client, sign(key, **tx))

    assert deployed.status is TxStatus.CONFIRMED and deployed.contract_address
    token = deployed.contract_address
    code = ok(await client.get_code(token))  # differs only where `decimals` (immutable) went
    assert len(code) == len(bytes.fromhex(artifact["deployedBytecode"][2:]))
    mint = decode_erc20_transfer(deployed.logs[0])
    assert (mint.from_address, mint.to_address, mint.amount_minor) == (
        "0x" + "00" * 20, deployer, TOKEN_SUPPLY_MINOR)
    assert await _read(client, token, "decimals()", "uint8") == TOKEN_DECIMALS
    assert await _read(client, token, "symbol()", "string") == "BWD"
    assert await _read(client, token, "totalSupply()", "uint256") == TOKEN_SUPPLY_MINOR
    assert await client.get_token_balance(token, deployer) == TokenBalance(
        token, deployer, TOKEN_SUPPLY_MINOR)

    amount = 1_234_567
    data = erc20_transfer_data(recipient, amount)
    gas = ok(await client.estimate_gas(TxRequest(deployer, token, data=data)))
    before_wei = await balance_wei(client, deployer)
    receipt = await send(client, sign(key, **await eip1559_tx(client, key, to=token, data=data,
                                                              gas=gas)))

    assert receipt.status is TxStatus.CONFIRMED
    (log,) = receipt.logs
    assert log.topics[0] == ERC20_TRANSFER_TOPIC
    transfer = decode_erc20_transfer(log)
    assert (transfer.token, transfer.from_address, transfer.to_address,
            transfer.amount_minor) == (token, deployer, recipient, amount)
    assert (ok(await client.get_token_balance(token, recipient))).balance_minor == amount
    assert (ok(await client.get_token_balance(token, deployer))).balance_minor == (
        TOKEN_SUPPLY_MINOR - amount)
    assert await balance_wei(client, deployer) == before_wei - receipt.fee_wei  # no value
    logs = ok(await client.get_logs(address=token, topics=[ERC20_TRANSFER_TOPIC],
                                    from_block=0, to_block=receipt.block_number))
    assert [decode_erc20_transfer(entry) for entry in logs] == [mint, transfer]

    # More than the recipient has: the estimate says why, and a forced send fails on chain.
    too_much = erc20_transfer_data(deployer, amount + 1)
    estimate = await client.estimate_gas(TxRequest(recipient, token, data=too_much))
    assert isinstance(estimate, ExecutionReverted)
    insufficient = selector("ERC20InsufficientBalance(address,uint256,uint256)")
    assert estimate.data is not None and estimate.data.startswith("0x" + insufficient.hex())
    failed = await send(client, sign(key, **await eip1559_tx(
        client, key, to=token, data=erc20_transfer_data(recipient, TOKEN_SUPPLY_MINOR),
        gas=100_000)))
    assert failed.status is TxStatus.FAILED and failed.logs == ()
    assert (ok(await client.get_token_balance(token, recipient))).balance_minor == amount


async def _read(client: EvmJsonRpcClient, token: str, signature: str, kind: str) -> Any:
    (value,) = abi_decode([kind], ok(await client.call(token, selector(signature))))
    return value


async def test_token_balance_of_an_address_without_a_contract(
        client: EvmJsonRpcClient) -> None:
    result = await client.get_token_balance(Account.create().address, Account.create().address)
    assert isinstance(result, InvalidRequest)


async def test_refusals_are_typed_failures(client: EvmJsonRpcClient,
                                           dev_keys: list[str]) -> None:
    key, recipient = dev_keys[3], Account.create().address
    tx = await eip1559_tx(client, key, to=recipient, value=1)
    pauper = Account.create().key.to_0x_hex()
    cases: list[tuple[str, type[ChainFailure]]] = [
        (sign(pauper, **{**tx, "nonce": 0}), InsufficientFunds),
        (sign(key, **{**tx, "value": 10**9 * ETHER}), InsufficientFunds),
        (sign(key, **{**tx, "nonce": tx["nonce"] + 5}), NonceTooHigh),
        (sign(key, **{**tx, "chainId": 1}), WrongChain),
        (sign(key, chainId=1, nonce=tx["nonce"], gas=21_000, gasPrice=tx["maxFeePerGas"],
              to=recipient, value=1), WrongChain),  # legacy EIP-155 for chain 1
        (sign(key, nonce=tx["nonce"], gas=21_000, gasPrice=tx["maxFeePerGas"], to=recipient,
              value=1), WrongChain),  # no chain id: not replay-protected
        (sign(key, **{**tx, "maxFeePerGas": 1, "maxPriorityFeePerGas": 1}), FeeTooLow),
        (sign(key, **{**tx, "gas": 20_000}), InvalidTransaction),
        ("0xdeadbeef", InvalidTransaction),
        ("0x02" + "00" * 40, InvalidTransaction),
        ("0x", InvalidTransaction),
        ("not hex at all", InvalidTransaction),
    ]
    for raw, expected in cases:
        result = await client.send_raw_transaction(raw)
        assert isinstance(result, expected), (expected, result)
        assert result.message
    assert await client.get_nonce(address_of(key)) == tx["nonce"]  # nothing went through
    assert await balance_wei(client, recipient) == 0

    first = await send(client, sign(key, **tx))
    assert first.status is TxStatus.CONFIRMED
    reused = await client.send_raw_transaction(sign(key, **{**tx, "value": 2}))
    assert isinstance(reused, NonceTooLow) and "nonce too low" in reused.message


async def test_unknown_transaction_is_pending(client: EvmJsonRpcClient) -> None:
    tx_hash = "0x" + keccak(b"never sent").hex()
    assert await client.get_receipt(tx_hash) == TxReceipt(tx_hash, TxStatus.PENDING)


async def test_unreachable_node_is_network_unreachable() -> None:
    async with EvmJsonRpcClient(f"http://127.0.0.1:{free_port()}/", timeout_s=2) as client:
        address = Account.create().address
        results = [await client.chain_id(), await client.get_balance(address),
                   await client.get_token_balance(address, address),
                   await client.get_nonce(address), await client.estimate_fees(),
                   await client.estimate_gas(TxRequest(address, address)),
                   await client.send_raw_transaction("0x" + "ab" * 100),
                   await client.get_receipt("0x" + "00" * 32)]
    for result in results:
        assert isinstance(result, NetworkUnreachable), result
        assert result.retryable and result.code == "network_unreachable"


async def test_silent_node_times_out_as_network_unreachable() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with EvmJsonRpcClient(f"http://127.0.0.1:{port}/", timeout_s=0.3) as client:
            result = await client.chain_id()
    finally:
        server.close()
        await server.wait_closed()
    assert isinstance(result, NetworkUnreachable)
    assert "Timeout" in result.message


@pytest.mark.parametrize("answer", [b"<html>bad gateway</html>", b"[]", b"{}"])
async def test_garbled_answers_are_provider_errors(answer: bytes) -> None:
    import httpx

    from bankwallet.connectors.chains.base import ProviderError

    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=answer))
    async with EvmJsonRpcClient("http://node.invalid/", transport=transport) as client:
        assert isinstance(await client.chain_id(), ProviderError)
