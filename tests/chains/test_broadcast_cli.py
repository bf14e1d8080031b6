"""``bankwallet chains psbt | sign-tx | broadcast | tx-status``: sign offline, then broadcast
through sandbox Bitcoin, TRON and Solana nodes running as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bankwallet.chains.derive import derive_keys
from bankwallet.chains.mnemonic import parse_mnemonic
from bankwallet.cli import app
from bankwallet.settings import get_settings
from tests.chains.vectors import ABANDON_ABOUT
from tests.conftest import free_port
from tests.connectors_chains.nodes import (  # noqa: F401
    btc_node,
    rpc,
    sol_node,
    tron_fund,
    tron_node,
)

runner = CliRunner()
PAY_TO = "bc1qhkfq3zahaqkkzx5mjnamwjsfpq2jk7z00ppggv"
TRON_KEY = "2d8f68944bdbfbc0769542fba8fc2d2a3de67393334471624364c7006da2aa54"
TRON_TO = "THTR75o8xXAgCTQqpiot2AFRAjvW1tSbVV"
SOL_KEY = "07" * 32
SOL_TO = "EN2sCsJ1WDV8UFqsiTXHcUPUxQ4juE71eCknHYYMifkd"


@pytest.fixture(autouse=True)
def no_configured_networks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("BANKWALLET_CHAIN_NETWORKS", raising=False)
    monkeypatch.chdir(Path(__file__).parent)  # no .env of a developer's
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def run(args: list[str], stdin: str = ""):
    return runner.invoke(app, ["chains", *args], input=stdin)


def _btc_payment(tmp_path: Path, node: str, path: str, fee_sat: int = 1_000) -> Path:
    address = derive_keys("BTC", parse_mnemonic(ABANDON_ABOUT), path=path)[0].address
    coin = rpc(node, "sandbox_fund", address, 200_000)
    tx_file = tmp_path / "payment.json"
    tx_file.write_text(json.dumps({
        "utxos": [{"txid": coin["txid"], "vout": coin["vout"], "amount_sat": 200_000,
                   "path": path}],
        "payments": [{"address": PAY_TO, "amount_sat": 120_000}], "fee_sat": fee_sat}))
    return tx_file


def test_btc_psbt_then_broadcast_then_confirmed(tmp_path: Path, btc_node: str) -> None:
    signed = run(["psbt", "--tx", str(_btc_payment(tmp_path, btc_node, "m/84'/0'/0'/0/5"))],
                 ABANDON_ABOUT)
    assert signed.exit_code == 0, signed.output
    assert "abandon" not in signed.output
    payment = json.loads(signed.output)
    assert payment["fee_sat"] == 1_000 and payment["psbt"]
    # The signed PSBT itself can be handed over: it is finalized on the way.
    sent = run(["broadcast", "--chain", "BTC", "--node", btc_node], payment["raw"])
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.output) == {"txid": payment["txid"], "status": "pending",
                                       "already_known": False}
    rpc(btc_node, "generatetoaddress", 1, PAY_TO)
    status = run(["tx-status", "--chain", "btc", "--txid", payment["txid"], "--node", btc_node])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["status"] == "confirmed"
    assert json.loads(status.output)["confirmations"] == 1


def test_btc_refusals_have_problem_codes(tmp_path: Path, btc_node: str) -> None:
    tx_file = _btc_payment(tmp_path, btc_node, "m/84'/0'/0'/0/6", fee_sat=200)
    payment = json.loads(run(["psbt", "--tx", str(tx_file)], ABANDON_ABOUT).output)
    low = run(["broadcast", "--chain", "BTC", "--node", btc_node], payment["raw"])
    assert low.exit_code == 2
    assert "chain_fee_too_low" in low.output and "mempool min fee not met" in low.output
    tampered = payment["raw"].replace("c0d401", "c1d401", 1)  # 120,000 sat → 120,001
    assert tampered != payment["raw"]
    bad = run(["broadcast", "--chain", "BTC", "--node", btc_node], tampered)
    assert bad.exit_code == 2 and "chain_transaction_invalid" in bad.output
    assert "mandatory-script-verify-flag-failed" in bad.output


def test_tron_sign_then_broadcast(tmp_path: Path, tron_node: str) -> None:
    # Online: the reference block; offline: sign; online again: broadcast.
    block = run(["recent-block", "--chain", "TRON", "--node", tron_node])
    assert block.exit_code == 0, block.output
    tx_file = tmp_path / "tron.json"
    tx_file.write_text(json.dumps({"to": TRON_TO, "amount_sun": 2_000_000,
                                   **json.loads(block.output)}))
    signed = json.loads(run(["sign-tx", "--chain", "TRON", "--tx", str(tx_file)],
                            TRON_KEY).output)
    short = run(["broadcast", "--chain", "TRON", "--node", tron_node], signed["raw_hex"])
    assert short.exit_code == 2 and "chain_insufficient_funds" in short.output
    tron_fund(tron_node, signed["from"], 5_000_000)
    sent = run(["broadcast", "--chain", "TRON", "--node", tron_node], signed["raw_hex"])
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.output) == {"txid": signed["txid"], "status": "confirmed",
                                       "already_known": False}


def test_sol_sign_then_broadcast(tmp_path: Path, sol_node: str) -> None:
    recent = run(["recent-block", "--chain", "SOL", "--node", sol_node])
    assert recent.exit_code == 0, recent.output
    tx_file = tmp_path / "sol.json"
    tx_file.write_text(json.dumps({"to": SOL_TO, "lamports": 123_456,
                                   **json.loads(recent.output)}))
    signed = json.loads(run(["sign-tx", "--chain", "SOL", "--tx", str(tx_file)],
                            SOL_KEY).output)
    rpc(sol_node, "requestAirdrop", signed["from"], 10**9)
    sent = run(["broadcast", "--chain", "SOL", "--node", sol_node],
               signed["transaction_base64"])
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.output)["txid"] == signed["signature"]
    assert json.loads(sent.output)["status"] == "confirmed"
    tx_file.write_text(json.dumps({"to": SOL_TO, "lamports": 1, "recent_blockhash":
                                   "11111111111111111111111111111111"}))
    stale = json.loads(run(["sign-tx", "--chain", "SOL", "--tx", str(tx_file)],
                           SOL_KEY).output)
    refused = run(["broadcast", "--chain", "SOL", "--node", sol_node],
                  stale["transaction_base64"])
    assert refused.exit_code == 2 and "chain_transaction_expired" in refused.output
    assert "Blockhash not found" in refused.output


def test_no_node_configured_and_unreachable_node() -> None:
    missing = run(["broadcast", "--chain", "SOL"], "AQID")
    assert missing.exit_code == 2
    assert "chain_network_not_configured" in missing.output and "no SOL node" in missing.output
    down = run(["broadcast", "--chain", "TRON", "--node", f"http://127.0.0.1:{free_port()}"],
               "0a020801")
    assert down.exit_code == 2 and "chain_network_unreachable" in down.output
    other = run(["broadcast", "--chain", "ETH", "--node", "http://127.0.0.1:1"], "00")
    assert other.exit_code == 2 and "chain_not_relayed" in other.output
    no_block = run(["recent-block", "--chain", "BTC", "--node", "http://127.0.0.1:1"])
    assert no_block.exit_code == 2 and "chain_not_relayed" in no_block.output
    down = run(["recent-block", "--chain", "SOL", "--node", f"http://127.0.0.1:{free_port()}"])
    assert down.exit_code == 2 and "chain_network_unreachable" in down.output


def test_broadcast_as_a_process_with_the_configured_node(tmp_path: Path,
                                                         sol_node: str) -> None:
    """The real command line, its node taken from BANKWALLET_CHAIN_NETWORKS."""
    blockhash = rpc(sol_node, "getLatestBlockhash")["value"]["blockhash"]
    tx_file = tmp_path / "sol.json"
    tx_file.write_text(json.dumps({"to": SOL_TO, "lamports": 5, "recent_blockhash": blockhash}))
    signed = json.loads(run(["sign-tx", "--chain", "SOL", "--tx", str(tx_file)],
                            "08" * 32).output)
    rpc(sol_node, "requestAirdrop", signed["from"], 10**8)
    env = {**os.environ, "BANKWALLET_CHAIN_NETWORKS": json.dumps({"SOL": sol_node})}
    done = subprocess.run([sys.executable, "-m", "bankwallet", "chains", "broadcast",
                           "--chain", "SOL"], input=signed["transaction_base64"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["txid"] == signed["signature"]
