"""Relaying transactions signed offline through the API and the page: ``/api/v1/chains/nodes``
and ``/crypto/broadcast``, against sandbox Bitcoin, TRON and Solana nodes (real processes)."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from bankwallet.chains import solana_signing, tron_signing
from bankwallet.chains.btc_psbt import Payment, Utxo, build_psbt, sign_psbt
from bankwallet.chains.derive import derive_keys
from bankwallet.chains.mnemonic import parse_mnemonic
from tests.chains.vectors import ABANDON_ABOUT
from tests.conftest import free_port
from tests.connectors_chains.nodes import (  # noqa: F401
    btc_node,
    rpc,
    sol_node,
    tron_fund,
    tron_node,
)
from tests.identity.test_api import (  # noqa: F401
    CLIENT_ADDRESSES,
    bearer,
    key_file,
    sign_up,
    unique_phone,
)
from tests.identity.test_mfa import count_audit

ABANDON = parse_mnemonic(ABANDON_ABOUT)
PAY_TO = "bc1qhkfq3zahaqkkzx5mjnamwjsfpq2jk7z00ppggv"


def _customer(client: TestClient) -> dict[str, str]:
    return bearer(sign_up(client, unique_phone())["token"])


def _signed_btc(node: str, path: str) -> tuple[str, str]:
    address = derive_keys("BTC", ABANDON, path=path)[0].address
    coin = rpc(node, "sandbox_fund", address, 90_000)
    draft = build_psbt(ABANDON, utxos=[Utxo(coin["txid"], 0, 90_000, path)],
                       payments=[Payment(PAY_TO, 30_000)], fee_sat=1_000)
    signed = sign_psbt(draft.psbt, ABANDON)
    return signed.raw, signed.txid


def test_relay_btc_tron_sol_through_the_api(node_client: Any, btc_node: str,
                                            tron_node: str, sol_node: str) -> None:
    client = node_client({"BTC": btc_node, "TRON": tron_node, "SOL": sol_node,
                          "ETH": f"http://127.0.0.1:{free_port()}/"})
    headers = _customer(client)
    nodes = client.get("/api/v1/chains/nodes", headers=headers).json()["nodes"]
    assert nodes == [{"chain": c, "configured": True} for c in ("BTC", "TRON", "SOL")]

    raw, txid = _signed_btc(btc_node, "m/84'/0'/0'/0/7")
    r = client.post("/api/v1/chains/nodes/btc/broadcast", json={"signed": raw},
                    headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["txid"] == txid and r.json()["status"] == "pending"
    assert count_audit(client, "chains.transaction.relayed", txid) == 1
    rpc(btc_node, "generatetoaddress", 1, PAY_TO)
    status = client.get(f"/api/v1/chains/nodes/BTC/transactions/{txid}", headers=headers)
    assert status.json()["status"] == "confirmed" and status.json()["confirmations"] == 1
    again = client.post("/api/v1/chains/nodes/BTC/broadcast", json={"signed": raw},
                        headers=headers)
    assert again.json()["already_known"] is True and again.json()["txid"] == txid

    block = rpc_tron_block(client, tron_node)
    tron = tron_signing.sign_transfer(
        {"to": "THTR75o8xXAgCTQqpiot2AFRAjvW1tSbVV", "amount_sun": 1_000_000, **block},
        bytes.fromhex("11" * 32))
    tron_fund(tron_node, tron.sender, 3_000_000)
    r = client.post("/api/v1/chains/nodes/TRON/broadcast", json={"signed": tron.raw_hex},
                    headers=headers)
    assert r.status_code == 200 and r.json() == {
        "chain": "TRON", "txid": tron.txid, "status": "confirmed", "already_known": False,
        "block_number": r.json()["block_number"], "confirmations": 1}

    blockhash = rpc(sol_node, "getLatestBlockhash")["value"]["blockhash"]
    sol = solana_signing.sign_transfer({"to": "EN2sCsJ1WDV8UFqsiTXHcUPUxQ4juE71eCknHYYMifkd",
                                        "lamports": 10, "recent_blockhash": blockhash},
                                       bytes.fromhex("22" * 32))
    rpc(sol_node, "requestAirdrop", sol.sender, 10**7)
    r = client.post("/api/v1/chains/nodes/SOL/broadcast",
                    json={"signed": sol.transaction_base64}, headers=headers)
    assert r.status_code == 200 and r.json()["txid"] == sol.signature


def rpc_tron_block(client: TestClient, tron_node: str) -> dict[str, Any]:
    import httpx

    block = httpx.post(f"{tron_node}wallet/getnowblock", json={}).json()
    raw = block["block_header"]["raw_data"]
    return {"ref_block_bytes": f"{raw['number'] & 0xFFFF:04x}",
            "ref_block_hash": block["blockID"][16:32], "timestamp_ms": raw["timestamp"],
            "expiration_ms": raw["timestamp"] + 60_000}


def test_refusals_are_problems(node_client: Any, btc_node: str, sol_node: str) -> None:
    client = node_client({"BTC": btc_node, "SOL": sol_node,
                          "TRON": f"http://127.0.0.1:{free_port()}/"})
    headers = _customer(client)
    raw, _ = _signed_btc(btc_node, "m/84'/0'/0'/0/8")
    tampered = raw.replace("3075", "3175", 1)  # 30,000 sat → 30,001: not what was signed
    assert tampered != raw
    r = client.post("/api/v1/chains/nodes/BTC/broadcast", json={"signed": tampered},
                    headers=headers)
    assert r.status_code == 422 and r.headers["content-type"].startswith(
        "application/problem+json")
    assert r.json()["code"] == "chain_transaction_invalid"
    assert "mandatory-script-verify-flag-failed" in r.json()["node_message"]
    unknown = client.post("/api/v1/chains/nodes/BTC/broadcast", headers=headers,
                          json={"signed": _signed_btc_unknown_coin()})
    assert unknown.json()["code"] == "chain_inputs_missing_or_spent"
    stale = solana_signing.sign_transfer({"to": "EN2sCsJ1WDV8UFqsiTXHcUPUxQ4juE71eCknHYYMifkd",
                                          "lamports": 10, "recent_blockhash": "1" * 32},
                                         bytes.fromhex("33" * 32))
    r = client.post("/api/v1/chains/nodes/SOL/broadcast",
                    json={"signed": stale.transaction_base64}, headers=headers)
    assert r.json()["code"] == "chain_transaction_expired"
    down = client.post("/api/v1/chains/nodes/TRON/broadcast", json={"signed": "0a020801"},
                       headers=headers)
    assert down.status_code == 503 and down.json()["code"] == "chain_network_unreachable"
    evm = client.post("/api/v1/chains/nodes/ETH/broadcast", json={"signed": "00"},
                      headers=headers)
    assert evm.status_code == 422 and evm.json()["code"] == "chain_not_relayed"
    unsigned = build_psbt(ABANDON, utxos=[Utxo("ab" * 32, 0, 90_000, "m/84'/0'/0'/0/0")],
                          payments=[Payment(PAY_TO, 30_000)], fee_sat=1_000).psbt
    r = client.post("/api/v1/chains/nodes/BTC/broadcast", json={"signed": unsigned},
                    headers=headers)
    assert r.json()["code"] == "psbt_invalid"
    anonymous = client.post("/api/v1/chains/nodes/BTC/broadcast", json={"signed": raw})
    assert anonymous.status_code == 401


def _signed_btc_unknown_coin() -> str:
    path = "m/84'/0'/0'/0/9"
    draft = build_psbt(ABANDON, utxos=[Utxo("ef" * 32, 1, 90_000, path)],
                       payments=[Payment(PAY_TO, 30_000)], fee_sat=1_000)
    return sign_psbt(draft.psbt, ABANDON).raw


def test_no_node_configured_is_said_not_failed(node_client: Any) -> None:
    client = node_client({})
    headers = _customer(client)
    nodes = client.get("/api/v1/chains/nodes", headers=headers).json()["nodes"]
    assert all(not n["configured"] for n in nodes)
    r = client.post("/api/v1/chains/nodes/SOL/broadcast", json={"signed": "AQID"},
                    headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "chain_network_not_configured"
    assert "No Solana node is configured" in r.json()["detail"]
    r = client.get("/api/v1/chains/nodes/BTC/transactions/" + "ab" * 32, headers=headers)
    assert r.status_code == 409
    page = client.get("/crypto/broadcast", headers=headers)
    assert page.status_code == 200
    assert len(re.findall(r"data-node-missing", page.text)) == 3


def test_the_broadcast_page_relays_and_explains_refusals(node_client: Any,
                                                         sol_node: str) -> None:
    from tests.identity.test_api import STRONG

    client = node_client({"SOL": sol_node})
    phone = unique_phone()
    sign_up(client, phone)
    r = client.post("/login", data={"login": phone, "password": STRONG,
                                    "next": "/crypto/broadcast"}, follow_redirects=False)
    assert r.status_code == 303
    page = client.get("/crypto/broadcast", headers={"accept-language": "en"})
    assert page.status_code == 200 and page.text.count("data-node-missing") == 2
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text).group(1)
    blockhash = rpc(sol_node, "getLatestBlockhash")["value"]["blockhash"]
    sol = solana_signing.sign_transfer({"to": "EN2sCsJ1WDV8UFqsiTXHcUPUxQ4juE71eCknHYYMifkd",
                                        "lamports": 10, "recent_blockhash": blockhash},
                                       bytes.fromhex("44" * 32))
    rpc(sol_node, "requestAirdrop", sol.sender, 10**7)
    done = client.post("/crypto/broadcast", data={"chain": "SOL", "csrf_token": csrf,
                                                  "signed": sol.transaction_base64},
                       headers={"accept-language": "en"})
    assert done.status_code == 200 and 'data-relayed="confirmed"' in done.text
    assert sol.signature[:8] in done.text
    stale = solana_signing.sign_transfer({"to": "EN2sCsJ1WDV8UFqsiTXHcUPUxQ4juE71eCknHYYMifkd",
                                          "lamports": 10, "recent_blockhash": "1" * 32},
                                         bytes.fromhex("44" * 32))
    refused = client.post("/crypto/broadcast", data={"chain": "SOL", "csrf_token": csrf,
                                                     "signed": stale.transaction_base64},
                          headers={"accept-language": "zh-CN"})
    assert refused.status_code == 422 and 'role="alert"' in refused.text
    missing = client.post("/crypto/broadcast", data={"chain": "BTC", "csrf_token": csrf,
                                                     "signed": "00"},
                          headers={"accept-language": "en"})
    assert missing.status_code == 409
    assert "This network is not available at your bank yet." in missing.text


def test_portfolio_shows_btc_tron_sol_where_a_node_is_configured(
        node_client: Any, btc_node: str, tron_node: str) -> None:
    client = node_client({"BTC": btc_node, "TRON": tron_node,
                          "SOL": f"http://127.0.0.1:{free_port()}/"})
    headers = _customer(client)
    r = client.post("/api/v1/chains/wallets", headers=headers, json={
        "kind": "mnemonic", "name": "Abandon", "mnemonic": ABANDON_ABOUT, "pin": "246810"})
    assert r.status_code == 201, r.text
    wallet = r.json()
    btc = next(a["address"] for a in wallet["addresses"] if a["chain"] == "BTC")
    tron = next(a["address"] for a in wallet["addresses"] if a["chain"] == "TRON")
    rpc(btc_node, "sandbox_fund", btc, 12_345)
    tron_fund(tron_node, tron, 777)
    r = client.get(f"/api/v1/chains/wallets/{wallet['id']}/portfolio", headers=headers)
    assert r.status_code == 200, r.text
    holdings = {h["chain"]: h for h in r.json()["chains"]}
    assert holdings["BTC"]["status"] == "ok"
    assert holdings["BTC"]["native"]["amount_minor"] >= 12_345
    assert holdings["TRON"]["status"] == "ok"
    assert holdings["TRON"]["native"]["amount_minor"] >= 777
    assert holdings["SOL"]["status"] == "unreachable"
    assert holdings["SOL"]["native"]["amount_minor"] is None
    assert holdings["ETH"]["status"] == "not_configured"  # EVM chains are always listed
    assert "APT" not in holdings  # no Aptos node configured here: not listed
