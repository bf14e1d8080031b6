"""Token balances on TRON (TRC-20) and Solana (SPL), and APT and EOS balances, read by the
clients from sandbox nodes running as real processes; a closed port is "unreachable"."""

from __future__ import annotations

import os
import random
import string

import httpx

from bankwallet.chains.derive import derive_keys
from bankwallet.chains.mnemonic import parse_mnemonic
from bankwallet.connectors.chains.aptos import AptosRestClient
from bankwallet.connectors.chains.base import (
    InvalidRequest,
    NativeBalance,
    NetworkUnreachable,
    ProviderError,
    TokenBalance,
)
from bankwallet.connectors.chains.eos import EosChainClient, map_error, parse_asset
from bankwallet.connectors.chains.solana import SolanaRpcClient
from bankwallet.connectors.chains.tron import TronHttpClient
from tests.chains.vectors import ABANDON_ABOUT
from tests.conftest import free_port
from tests.connectors_chains.nodes import (  # noqa: F401
    apt_fund,
    apt_node,
    eos_create_account,
    eos_history_node,
    eos_issue,
    eos_node,
    rpc,
    sol_node,
    tron_fund_trc20,
    tron_node,
)

ABANDON = parse_mnemonic(ABANDON_ABOUT)
USDT_TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
USDC_SOL = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"


def tron_address() -> str:
    from bip_utils import Base58Encoder

    return Base58Encoder.CheckEncode(b"\x41" + os.urandom(20))


def sol_address() -> str:
    from bip_utils import Base58Encoder

    return Base58Encoder.Encode(os.urandom(32))


def eos_name() -> str:
    return "".join(random.choice(string.ascii_lowercase + "12345") for _ in range(12))


def closed() -> str:
    return f"http://127.0.0.1:{free_port()}/"


# -- TRON: TRC-20 ----------------------------------------------------------------------------


async def test_trc20_balance_through_a_constant_call(tron_node: str) -> None:
    holder, nobody, other_contract = tron_address(), tron_address(), tron_address()
    tron_fund_trc20(tron_node, USDT_TRON, holder, 12_345_678)
    tron_fund_trc20(tron_node, USDT_TRON, holder, 2)
    async with TronHttpClient(tron_node, timeout_s=5) as client:
        assert await client.get_token_balance(USDT_TRON, holder) == TokenBalance(
            USDT_TRON, holder, 12_345_680)
        assert await client.get_token_balance(USDT_TRON, nobody) == TokenBalance(
            USDT_TRON, nobody, 0)
        missing = await client.get_token_balance(other_contract, holder)
        assert isinstance(missing, InvalidRequest)
        assert "Smart contract is not exist." in missing.message  # decoded from hex
        assert isinstance(await client.get_token_balance(USDT_TRON, "0xabc"), InvalidRequest)
        broken = holder[:-1] + ("1" if holder[-1] != "1" else "2")  # the checksum fails
        assert isinstance(await client.get_token_balance(USDT_TRON, broken), InvalidRequest)
        assert (await client.get_balance(holder)).balance_minor == 0  # TRX is apart


def test_the_tron_sandbox_runs_balance_of_only() -> None:
    from bankwallet.connectors.chains.sandbox_nodes import TronNode, _tron_address

    node, holder = TronNode(), tron_address()
    node.fund_trc20({"contract": USDT_TRON, "address": holder, "amount": 5})
    call = {"owner_address": holder, "contract_address": USDT_TRON, "visible": True,
            "function_selector": "balanceOf(address)",
            "parameter": _tron_address(holder, True)[1:].rjust(32, b"\0").hex()}
    assert node.trigger_constant_contract(call)["constant_result"] == [
        (5).to_bytes(32, "big").hex()]
    reverted = node.trigger_constant_contract({**call, "function_selector": "mint(uint256)"})
    assert reverted["constant_result"] == [""]
    assert reverted["transaction"]["ret"] == [{"ret": "FAILED"}]
    assert node.trigger_constant_contract({**call, "owner_address": "T123"})["result"][
        "code"] == "OTHER_ERROR"
    assert "Error" in node.trigger_constant_contract({**call, "parameter": "zz"})


# -- Solana: SPL -----------------------------------------------------------------------------


async def test_spl_balance_sums_the_owners_token_accounts(sol_node: str) -> None:
    owner, nobody, other_mint = sol_address(), sol_address(), sol_address()
    rpc(sol_node, "sandbox_mintTo", owner, USDC_SOL, 1_500_000, 6)
    rpc(sol_node, "sandbox_mintTo", owner, USDC_SOL, 250_000, 6)  # a second token account
    rpc(sol_node, "sandbox_mintTo", nobody, other_mint, 9, 0)
    async with SolanaRpcClient(sol_node, timeout_s=5) as client:
        assert await client.get_token_balance(USDC_SOL, owner) == TokenBalance(
            USDC_SOL, owner, 1_750_000)
        assert await client.get_token_balance(other_mint, owner) == TokenBalance(
            other_mint, owner, 0)
        unknown = await client.get_token_balance(sol_address(), owner)
        assert isinstance(unknown, InvalidRequest) and "could not find mint" in unknown.message
        assert isinstance(await client.get_token_balance(USDC_SOL, "0OIl"), InvalidRequest)


def test_the_solana_sandbox_lists_token_accounts(sol_node: str) -> None:
    owner = sol_address()
    rpc(sol_node, "sandbox_mintTo", owner, USDC_SOL, 1_500_000, 6)
    rpc(sol_node, "sandbox_mintTo", owner, USDC_SOL, 250_000, 6)
    answer = httpx.post(sol_node, json={"jsonrpc": "2.0", "id": 1,
                                        "method": "getTokenAccountsByOwner",
                                        "params": [owner, {"mint": USDC_SOL}]}).json()
    assert answer["error"]["code"] == -32602  # no jsonParsed: this sandbox refuses it
    found = rpc(sol_node, "getTokenAccountsByOwner", owner, {
        "programId": "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"}, {"encoding": "jsonParsed"})
    amounts = sorted(a["account"]["data"]["parsed"]["info"]["tokenAmount"]["uiAmountString"]
                     for a in found["value"])
    assert amounts == ["0.25", "1.5"]


# -- Aptos -----------------------------------------------------------------------------------


async def test_apt_balance_adds_the_coin_store_and_the_fungible_store(apt_node: str) -> None:
    address = derive_keys("APT", ABANDON, index=3)[0].address
    fa_only = "0x" + os.urandom(32).hex()
    apt_fund(apt_node, address, 150_000_000)
    apt_fund(apt_node, address, 25_000_000, store="fa")
    apt_fund(apt_node, fa_only, 7, store="fa")
    async with AptosRestClient(apt_node, timeout_s=5) as client:
        assert await client.get_balance(address) == NativeBalance(address, 175_000_000)
        assert await client.get_balance(fa_only) == NativeBalance(fa_only, 7)
        fresh = "0x" + os.urandom(32).hex()
        assert await client.get_balance(fresh) == NativeBalance(fresh, 0)  # 404: nothing
        assert await client.get_balance("0x1") == NativeBalance("0x" + "0" * 63 + "1", 0)
        assert isinstance(await client.get_balance("1234"), InvalidRequest)
        assert isinstance(await client.get_balance("0x" + "g" * 64), InvalidRequest)
        info = await client.ledger_info()
        assert info["chain_id"] == 4 and info["node_role"] == "full_node"


def test_the_aptos_sandbox_answers_as_a_fullnode(apt_node: str) -> None:
    address = "0x" + os.urandom(32).hex()
    store = "0x1::coin::CoinStore%3C0x1::aptos_coin::AptosCoin%3E"
    missing = httpx.get(f"{apt_node}v1/accounts/{address}/resource/{store}")
    assert missing.status_code == 404 and missing.json()["error_code"] == "resource_not_found"
    bad = httpx.get(f"{apt_node}v1/accounts/0xzz/resource/{store}")
    assert bad.status_code == 400 and bad.json()["error_code"] == "invalid_input"
    apt_fund(apt_node, address, 42)
    apt_fund(apt_node, address, 8, store="fa")
    found = httpx.get(f"{apt_node}v1/accounts/{address}/resource/{store}").json()
    assert found["data"]["coin"]["value"] == "42"
    view = httpx.post(f"{apt_node}v1/view", json={
        "function": "0x1::coin::balance", "type_arguments": ["0x1::aptos_coin::AptosCoin"],
        "arguments": [address]})
    assert view.json() == ["50"]
    unknown = httpx.post(f"{apt_node}v1/view", json={
        "function": "0x1::nothing::here", "type_arguments": [], "arguments": []})
    assert unknown.status_code == 400


# -- EOS -------------------------------------------------------------------------------------


async def test_eos_accounts_of_a_key_and_their_balances(eos_node: str) -> None:
    key = derive_keys("EOS", ABANDON, index=4)[0].address
    assert key.startswith("EOS")
    first, second, stranger = sorted([eos_name(), eos_name()]) + [eos_name()]
    async with EosChainClient(eos_node, timeout_s=5) as client:
        assert await client.key_accounts(key) == []  # no account is registered for it yet
        eos_create_account(eos_node, first, key)
        eos_create_account(eos_node, second, key)
        eos_issue(eos_node, first, "1.2345 EOS")
        eos_issue(eos_node, first, "10.0000 EOS")
        assert await client.key_accounts(key) == [first, second]
        assert await client.get_balance(first) == NativeBalance(first, 112_345)
        assert await client.get_balance(second) == NativeBalance(second, 0)  # no row: []
        assert await client.get_balance(stranger) == NativeBalance(stranger, 0)
        assert isinstance(await client.get_balance(key), InvalidRequest)  # a key, no name
        assert isinstance(await client.get_balance("Not.A.Name"), InvalidRequest)
        assert isinstance(await client.key_accounts("EOSnot-a-key"), InvalidRequest)
        info = await client.chain_info()
        assert len(info["chain_id"]) == 64 and info["head_block_num"] >= 3


async def test_an_older_eos_node_answers_through_the_history_plugin(
        eos_history_node: str) -> None:
    key = derive_keys("EOS", ABANDON, index=5)[0].address
    name = eos_name()
    eos_create_account(eos_history_node, name, key)
    async with httpx.AsyncClient() as http:
        refused = await http.post(f"{eos_history_node}v1/chain/get_accounts_by_authorizers",
                                  json={"keys": [key]})
    assert refused.status_code == 404
    async with EosChainClient(eos_history_node, timeout_s=5) as client:
        assert await client.key_accounts(key) == [name]


def test_the_eos_sandbox_answers_fc_exceptions(eos_node: str) -> None:
    bad = httpx.post(f"{eos_node}v1/chain/get_currency_balance",
                     json={"code": "eosio.token", "account": "UPPER", "symbol": "EOS"})
    assert bad.status_code == 500
    assert bad.json()["error"]["name"] == "name_type_exception"
    failure = map_error("get_currency_balance", bad.status_code, bad.json())
    assert isinstance(failure, InvalidRequest) and "name_type_exception" in failure.message
    other = httpx.post(f"{eos_node}v1/chain/get_currency_balance",
                       json={"code": "notatoken", "account": "alice", "symbol": "EOS"})
    assert isinstance(map_error("x", other.status_code, other.json()), ProviderError)
    key = httpx.post(f"{eos_node}v1/history/get_key_accounts", json={"public_key": "EOS1"})
    assert key.json()["error"]["name"] == "public_key_type_exception"
    assert parse_asset("1.2345 EOS") == 12345 and parse_asset("0.0001 EOS") == 1
    assert parse_asset("1.23 EOS") is None and parse_asset("1.0000 TLOS") is None


# -- no node ---------------------------------------------------------------------------------


async def test_a_closed_port_is_unreachable() -> None:
    key = derive_keys("EOS", ABANDON)[0].address
    async with TronHttpClient(closed(), timeout_s=2) as tron:
        assert isinstance(await tron.get_token_balance(USDT_TRON, tron_address()),
                          NetworkUnreachable)
    async with SolanaRpcClient(closed(), timeout_s=2) as sol:
        assert isinstance(await sol.get_token_balance(USDC_SOL, sol_address()),
                          NetworkUnreachable)
    async with AptosRestClient(closed(), timeout_s=2) as apt:
        assert isinstance(await apt.get_balance("0x1"), NetworkUnreachable)
        assert isinstance(await apt.ledger_info(), NetworkUnreachable)
    async with EosChainClient(closed(), timeout_s=2) as eos:
        assert isinstance(await eos.get_balance("alice"), NetworkUnreachable)
        assert isinstance(await eos.key_accounts(key), NetworkUnreachable)
        assert isinstance(await eos.chain_info(), NetworkUnreachable)
