"""Polkadot and Kusama in the portfolio (``/api/v1/chains/wallets/{id}/portfolio`` and the
``/crypto/{id}/portfolio`` page), read from sandbox Substrate nodes running as real processes:
a balance where a node is configured, and "wrong network" or "unreachable" where the node is
another chain's or does not answer."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from bankwallet.connectors.chains.sandbox_substrate import sandbox_genesis
from tests.chains.test_api import log_in_with_cookie
from tests.chains.vectors import ABANDON_ABOUT
from tests.conftest import free_port
from tests.connectors_chains.nodes import (  # noqa: F401
    dot_node,
    ksm_node,
    substrate_fund,
)
from tests.identity.test_api import (  # noqa: F401
    CLIENT_ADDRESSES,
    bearer,
    key_file,
    sign_up,
    unique_phone,
)


def _wallet(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    r = client.post("/api/v1/chains/wallets", headers=headers, json={
        "kind": "mnemonic", "name": "Abandon", "mnemonic": ABANDON_ABOUT, "pin": "246810"})
    assert r.status_code == 201, r.text
    return r.json()


def _address(wallet: dict[str, Any], chain: str) -> str:
    return next(a["address"] for a in wallet["addresses"] if a["chain"] == chain)


def test_portfolio_shows_dot_and_ksm_where_a_node_is_configured(
        node_client: Any, dot_node: str, ksm_node: str) -> None:  # noqa: F811
    # Polkadot: a node that answers as the live relay chain; Kusama: a local network,
    # accepted because its genesis is configured with the URL.
    client = node_client({"DOT": dot_node,
                          "KSM": f"{ksm_node}#genesis={sandbox_genesis('KSM')}"})
    phone = unique_phone()
    headers = bearer(sign_up(client, phone)["token"])
    wallet = _wallet(client, headers)
    dot, ksm = _address(wallet, "DOT"), _address(wallet, "KSM")
    assert dot.startswith("1")  # SS58 format 0
    substrate_fund(dot_node, dot, 12_500_000_000)  # 1.25 DOT
    substrate_fund(ksm_node, ksm, 3_000_000_000_007)  # 3.000000000007 KSM

    r = client.get(f"/api/v1/chains/wallets/{wallet['id']}/portfolio", headers=headers)
    assert r.status_code == 200, r.text
    holdings = {h["chain"]: h for h in r.json()["chains"]}
    assert holdings["DOT"]["status"] == "ok" and holdings["DOT"]["address"] == dot
    assert holdings["DOT"]["native"]["symbol"] == "DOT"
    assert holdings["DOT"]["native"]["decimals"] == 10
    assert holdings["DOT"]["native"]["amount_minor"] == 12_500_000_000
    assert holdings["KSM"]["status"] == "ok"
    assert holdings["KSM"]["native"]["decimals"] == 12
    assert holdings["KSM"]["native"]["amount_minor"] == 3_000_000_000_007
    assert holdings["ETH"]["status"] == "not_configured"

    log_in_with_cookie(client, phone)
    page = client.get(f"/crypto/{wallet['id']}/portfolio", headers={"accept-language": "en"})
    assert page.status_code == 200
    assert "1.25 DOT" in page.text and "3.000000000007 KSM" in page.text


def test_portfolio_says_when_a_substrate_node_is_wrong_or_unreachable(
        node_client: Any, ksm_node: str) -> None:  # noqa: F811
    # The Kusama sandbox configured as Polkadot, and without its genesis as Kusama: neither
    # is the chain asked for. Nothing listens where the other Kusama node should be.
    client = node_client({"DOT": ksm_node, "KSM": ksm_node})
    phone = unique_phone()
    headers = bearer(sign_up(client, phone)["token"])
    wallet = _wallet(client, headers)
    substrate_fund(ksm_node, _address(wallet, "KSM"), 10**12)
    holdings = {h["chain"]: h for h in client.get(
        f"/api/v1/chains/wallets/{wallet['id']}/portfolio", headers=headers).json()["chains"]}
    assert holdings["DOT"]["status"] == "wrong_network"
    assert holdings["KSM"]["status"] == "wrong_network"
    assert holdings["KSM"]["native"]["amount_minor"] is None

    down = node_client({"KSM": f"http://127.0.0.1:{free_port()}/"})
    down_phone = unique_phone()
    down_headers = bearer(sign_up(down, down_phone)["token"])
    down_wallet = _wallet(down, down_headers)
    r = down.get(f"/api/v1/chains/wallets/{down_wallet['id']}/portfolio", headers=down_headers)
    assert r.status_code == 200, r.text
    holdings = {h["chain"]: h for h in r.json()["chains"]}
    assert holdings["KSM"]["status"] == "unreachable"
    assert holdings["KSM"]["native"]["amount_minor"] is None
    assert "DOT" not in holdings  # no Polkadot node configured: not listed

    log_in_with_cookie(down, down_phone)
    page = down.get(f"/crypto/{down_wallet['id']}/portfolio",
                    headers={"accept-language": "en"}).text
    assert "The network cannot be reached right now." in page
    log_in_with_cookie(client, phone)
    page = client.get(f"/crypto/{wallet['id']}/portfolio", headers={"accept-language": "en"}).text
    assert "The network reached is not this chain; balances are not shown." in page
