"""The portfolio on BTC, TRON (with TRC-20), SOL (with SPL), APT and EOS through the API and the
page, against sandbox nodes running as real processes: exact balances, the EOS accounts of the
wallet's key (or none yet), an unreachable node said as such while the rest still shows."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from bankwallet.chains.mnemonic import generate_mnemonic
from bankwallet.settings import Settings
from tests.chains.test_api import log_in_with_cookie
from tests.conftest import free_port
from tests.connectors_chains.nodes import (  # noqa: F401
    apt_fund,
    apt_node,
    btc_node,
    eos_create_account,
    eos_issue,
    eos_node,
    rpc,
    sol_node,
    tron_fund,
    tron_fund_trc20,
    tron_node,
)
from tests.connectors_chains.test_balances import USDC_SOL, USDT_TRON, eos_name
from tests.identity.test_api import (  # noqa: F401
    CLIENT_ADDRESSES,
    bearer,
    key_file,
    sign_up,
    unique_phone,
)

TOKENS = {"TRON": [{"address": USDT_TRON, "symbol": "USDT", "decimals": 6}],
          "SOL": [{"address": USDC_SOL, "symbol": "USDC", "decimals": 6}],
          "ETH": [{"address": "0xdAC17F958D2ee523a2206206994597C13D831ec7", "symbol": "USDT",
                   "decimals": 6}]}
EVM = ("ETH", "BSC", "POLYGON", "OKX")


def _wallet(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    """A wallet of a new recovery phrase: addresses no other test has funded."""
    r = client.post("/api/v1/chains/wallets", headers=headers, json={
        "kind": "mnemonic", "name": "Main", "mnemonic": generate_mnemonic().phrase,
        "pin": "246810"})
    assert r.status_code == 201, r.text
    return r.json()


def _address(wallet: dict[str, Any], chain: str) -> str:
    return next(a["address"] for a in wallet["addresses"] if a["chain"] == chain)


def _portfolio(client: TestClient, headers: dict[str, str], wallet: dict[str, Any]
               ) -> list[dict[str, Any]]:
    r = client.get(f"/api/v1/chains/wallets/{wallet['id']}/portfolio", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["chains"]


def _asset(symbol: str, decimals: int, minor: int | None, amount: str | None,
           token: str | None = None) -> dict[str, Any]:
    return {"symbol": symbol, "decimals": decimals, "token": token, "amount_minor": minor,
            "amount": amount}


def test_portfolio_lists_native_and_token_balances_on_every_node_chain(
        node_client: Any, btc_node: str, tron_node: str, sol_node: str,  # noqa: F811
        apt_node: str, eos_node: str) -> None:  # noqa: F811
    client = node_client({"BTC": btc_node, "TRON": tron_node, "SOL": sol_node,
                          "APT": apt_node, "EOS": eos_node}, chain_tokens=TOKENS)
    phone = unique_phone()
    headers = bearer(sign_up(client, phone)["token"])
    wallet = _wallet(client, headers)
    btc, tron, sol = (_address(wallet, c) for c in ("BTC", "TRON", "SOL"))
    apt, eos_key = _address(wallet, "APT"), _address(wallet, "EOS")
    rpc(btc_node, "sandbox_fund", btc, 12_345)
    tron_fund(tron_node, tron, 1_500_000)
    tron_fund_trc20(tron_node, USDT_TRON, tron, 25_000_000)
    rpc(sol_node, "requestAirdrop", sol, 2 * 10**9)
    rpc(sol_node, "sandbox_mintTo", sol, USDC_SOL, 3_000_000, 6)
    rpc(sol_node, "sandbox_mintTo", sol, USDC_SOL, 500_000, 6)
    apt_fund(apt_node, apt, 100_000_000)
    apt_fund(apt_node, apt, 5, store="fa")
    first, second = sorted([eos_name(), eos_name()])
    eos_create_account(eos_node, first, eos_key)
    eos_create_account(eos_node, second, eos_key)
    eos_issue(eos_node, second, "3.1416 EOS")

    chains = _portfolio(client, headers, wallet)
    assert [h["chain"] for h in chains] == [*EVM, "BTC", "TRON", "SOL", "APT", "EOS", "EOS"]
    assert all(h["status"] == "not_configured" for h in chains[:4])
    node = {(h["chain"], h["address"]): h for h in chains[4:]}
    assert all(h["status"] == "ok" for h in node.values())
    assert node["BTC", btc]["native"] == _asset("BTC", 8, 12_345, "0.00012345")
    assert node["BTC", btc]["tokens"] == []
    assert node["TRON", tron]["native"] == _asset("TRX", 6, 1_500_000, "1.5")
    assert node["TRON", tron]["tokens"] == [_asset("USDT", 6, 25_000_000, "25", USDT_TRON)]
    assert node["SOL", sol]["native"] == _asset("SOL", 9, 2 * 10**9, "2")
    assert node["SOL", sol]["tokens"] == [_asset("USDC", 6, 3_500_000, "3.5", USDC_SOL)]
    assert node["APT", apt]["native"] == _asset("APT", 8, 100_000_005, "1.00000005")
    assert node["EOS", first]["native"] == _asset("EOS", 4, 0, "0")
    assert node["EOS", second]["native"] == _asset("EOS", 4, 31_416, "3.1416")

    log_in_with_cookie(client, phone)
    page = client.get(f"/crypto/{wallet['id']}/portfolio", headers={"accept-language": "en"})
    assert page.status_code == 200
    for shown in ("25 USDT", "3.5 USDC", "1.00000005 APT", "3.1416 EOS", first, second):
        assert shown in page.text, shown

    # A wallet whose key no EOS account is registered for yet says so; an EOS account
    # followed watch-only is read directly.
    other = _wallet(client, headers)
    eos = next(h for h in _portfolio(client, headers, other) if h["chain"] == "EOS")
    assert eos["status"] == "no_account" and eos["address"] == _address(other, "EOS")
    assert eos["native"]["amount_minor"] is None
    page = client.get(f"/crypto/{other['id']}/portfolio", headers={"accept-language": "en"})
    assert "No EOS account is linked to this key yet." in page.text
    r = client.post("/api/v1/chains/wallets", headers=headers, json={
        "kind": "watch_only", "name": "Watched",
        "addresses": [{"chain": "EOS", "address": second}]})
    assert r.status_code == 201, r.text
    assert _portfolio(client, headers, r.json()) == [{
        "chain": "EOS", "chain_name": "EOS", "address": second, "status": "ok",
        "native": _asset("EOS", 4, 31_416, "3.1416"), "tokens": []}]


def test_an_unreachable_node_is_said_and_the_rest_still_shows(
        node_client: Any, tron_node: str, apt_node: str) -> None:  # noqa: F811
    closed = f"http://127.0.0.1:{free_port()}/"
    client = node_client({"TRON": tron_node, "SOL": closed, "APT": apt_node, "EOS": closed},
                         chain_tokens=TOKENS)
    headers = bearer(sign_up(client, unique_phone())["token"])
    wallet = _wallet(client, headers)
    tron, apt = _address(wallet, "TRON"), _address(wallet, "APT")
    tron_fund_trc20(tron_node, USDT_TRON, tron, 7)
    apt_fund(apt_node, apt, 9)
    holdings = {h["chain"]: h for h in _portfolio(client, headers, wallet)}
    assert {c: h["status"] for c, h in holdings.items()} == {
        **dict.fromkeys(EVM, "not_configured"), "TRON": "ok", "SOL": "unreachable",
        "APT": "ok", "EOS": "unreachable"}
    assert holdings["TRON"]["native"]["amount_minor"] == 0
    assert holdings["TRON"]["tokens"] == [_asset("USDT", 6, 7, "0.000007", USDT_TRON)]
    assert holdings["SOL"]["native"]["amount_minor"] is None
    assert holdings["SOL"]["tokens"] == [_asset("USDC", 6, None, None, USDC_SOL)]
    assert holdings["APT"]["native"]["amount_minor"] == 9
    assert holdings["EOS"]["native"]["amount_minor"] is None
    # "BTC": no node at all, so not listed; the EVM chains are always listed.
    assert "BTC" not in holdings


def test_without_a_node_a_chain_is_not_listed(node_client: Any) -> None:
    client = node_client({}, chain_tokens=TOKENS)
    headers = bearer(sign_up(client, unique_phone())["token"])
    wallet = _wallet(client, headers)
    holdings = _portfolio(client, headers, wallet)
    assert {h["chain"]: h["status"] for h in holdings} == dict.fromkeys(EVM, "not_configured")


def test_token_lists_of_tron_and_solana_are_checked() -> None:
    from bankwallet.chains.service import ChainConfig

    config = ChainConfig.from_settings(Settings(
        database_url="sqlite+aiosqlite://", env="test",
        chain_networks={"apt": "http://127.0.0.1:1/", "EOS": "https://eos.example/",
                        "SOL": "ftp://nope/"},
        chain_tokens={
            "tron": [{"address": "0xdAC17F958D2ee523a2206206994597C13D831ec7", "symbol": "BAD",
                      "decimals": 6}, {"address": USDT_TRON, "symbol": "USDT", "decimals": 6}],
            "SOL": [{"address": USDC_SOL, "symbol": "USDC", "decimals": 6},
                    {"address": "not base58 0OIl", "symbol": "BAD", "decimals": 6}],
            "APT": [{"address": "0x1", "symbol": "X", "decimals": 8}]}))
    assert [t.address for t in config.tokens_of("TRON")] == [USDT_TRON]
    assert [t.symbol for t in config.tokens_of("SOL")] == ["USDC"]
    assert config.tokens_of("APT") == ()
    assert config.node_urls == {"APT": "http://127.0.0.1:1/", "EOS": "https://eos.example/"}
    assert config.urls == {}  # APT and EOS are not taken for EVM networks
