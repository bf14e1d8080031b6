"""The sandbox chain's JSON-RPC server as a wallet or a tool sees it over HTTP."""

from __future__ import annotations

from typing import Any

import httpx
from eth_account import Account

from bankwallet.connectors.chains.sandbox_chain import (
    DEV_MNEMONIC,
    MAX_BATCH_REQUESTS,
    MAX_REQUEST_BYTES,
    dev_private_keys,
)

from .conftest import CHAIN_ID, DEV_ACCOUNTS, ChainProcess, rpc

ETHER = 10**18


async def post(url: str, content: bytes | str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.post(url, content=content,
                               headers={"content-type": "application/json"})


def call(method: str, *params: Any, request_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}


def test_startup_prints_the_funded_dev_accounts(chain_process: ChainProcess) -> None:
    printed = chain_process.log_path.read_text()
    addresses = [Account.from_key(k).address for k in dev_private_keys(DEV_ACCOUNTS)]
    assert addresses[0] == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # as Hardhat, Anvil
    for address in addresses:
        assert address in printed
    assert "TEST ONLY" in printed and DEV_MNEMONIC in printed


async def test_identity_methods(chain_url: str) -> None:
    assert (await rpc(chain_url, "eth_chainId"))["result"] == hex(CHAIN_ID)
    assert (await rpc(chain_url, "net_version"))["result"] == str(CHAIN_ID)
    accounts = (await rpc(chain_url, "sandbox_accounts"))["result"]
    assert len(accounts) == DEV_ACCOUNTS
    block = (await rpc(chain_url, "eth_getBlockByNumber", "latest", False))["result"]
    assert int(block["baseFeePerGas"], 16) > 0 and block["number"].startswith("0x")
    assert (await rpc(chain_url, "eth_getBlockByNumber", "0xffffff", False))["result"] is None


async def test_batch_answers_each_request_by_id(chain_url: str) -> None:
    batch = [call("eth_chainId", request_id=1), call("nope_nothing", request_id=2),
             call("eth_getBalance", "0x1234", request_id=3),
             {"jsonrpc": "2.0", "method": "eth_chainId"}]  # a notification: no answer
    answers = {a["id"]: a for a in (await post(chain_url, _json(batch))).json()}
    assert set(answers) == {1, 2, 3}
    assert answers[1]["result"] == hex(CHAIN_ID)
    assert answers[2]["error"]["code"] == -32601
    assert answers[3]["error"]["code"] == -32602


async def test_malformed_requests_get_standard_errors(chain_url: str) -> None:
    assert (await post(chain_url, "{not json")).json()["error"]["code"] == -32700
    assert (await post(chain_url, "[]")).json()["error"]["code"] == -32600
    assert (await post(chain_url, '{"id": 1, "method": "eth_chainId"}')).json()[
        "error"]["code"] == -32600  # no "jsonrpc": "2.0"
    too_many = [call("eth_chainId", request_id=i) for i in range(MAX_BATCH_REQUESTS + 1)]
    assert (await post(chain_url, _json(too_many))).json()["error"]["code"] == -32600
    response = await post(chain_url, b" " * (MAX_REQUEST_BYTES + 1))
    assert response.status_code == 413 and response.json()["error"]["code"] == -32600
    params_object = {"jsonrpc": "2.0", "id": 9, "method": "eth_getBalance", "params": {}}
    assert (await post(chain_url, _json(params_object))).json()["error"]["code"] == -32602


async def test_faucet_and_mining(chain_url: str) -> None:
    address = Account.create().address
    head = int((await rpc(chain_url, "eth_blockNumber"))["result"], 16)
    funded = await rpc(chain_url, "sandbox_fund", address, hex(5 * ETHER))
    receipt = (await rpc(chain_url, "eth_getTransactionReceipt", funded["result"]))["result"]
    assert receipt["status"] == "0x1" and int(receipt["blockNumber"], 16) == head + 1
    assert (await rpc(chain_url, "eth_getBalance", address, "latest"))["result"] == hex(
        5 * ETHER)
    assert (await rpc(chain_url, "evm_mine", "0x3"))["result"] == "0x0"
    assert int((await rpc(chain_url, "eth_blockNumber"))["result"], 16) == head + 4
    too_much = await rpc(chain_url, "sandbox_fund", address, hex(10**30))
    assert too_much["error"]["code"] == -32602


async def test_fee_history_shape(chain_url: str) -> None:
    await rpc(chain_url, "sandbox_fund", Account.create().address, hex(ETHER))
    history = (await rpc(chain_url, "eth_feeHistory", "0x3", "latest", [10, 90]))["result"]
    assert len(history["baseFeePerGas"]) == len(history["gasUsedRatio"]) + 1 == 4
    assert all(len(rewards) == 2 for rewards in history["reward"])
    assert int(history["reward"][-2][0], 16) >= 0
    bad = await rpc(chain_url, "eth_feeHistory", "0x3", "latest", [90, 10])
    assert bad["error"]["code"] == -32602


async def test_get_logs_filters_and_bounds(chain_url: str) -> None:
    latest = int((await rpc(chain_url, "eth_blockNumber"))["result"], 16)
    everything = await rpc(chain_url, "eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest"})
    assert isinstance(everything["result"], list)
    nobody = await rpc(chain_url, "eth_getLogs", {"fromBlock": "0x0",
                                                  "address": Account.create().address})
    assert nobody["result"] == []
    reversed_range = await rpc(chain_url, "eth_getLogs", {"fromBlock": hex(latest),
                                                          "toBlock": "0x0"})
    assert reversed_range["error"]["code"] == -32602
    future = await rpc(chain_url, "eth_getLogs", {"fromBlock": hex(latest + 100)})
    assert "error" in future


async def test_call_reverts_and_plain_transfers(chain_url: str) -> None:
    # A call to an account without code returns nothing, from anyone, funded or not.
    answer = await rpc(chain_url, "eth_call", {"to": Account.create().address, "data": "0x"},
                       "latest")
    assert answer["result"] == "0x"
    estimate = await rpc(chain_url, "eth_estimateGas", {"from": Account.create().address,
                                                        "to": Account.create().address,
                                                        "value": hex(ETHER)})
    assert "insufficient funds" in estimate["error"]["message"]


def _json(value: Any) -> str:
    import json

    return json.dumps(value)
