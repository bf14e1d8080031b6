"""The self-custody crypto wallet through its JSON API, on SQLite and PostgreSQL, against the
real sandbox chain process (``bankwallet sandbox-chain``) configured as the ETH network."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text, update

from bankwallet.core.logging import QUIET_LOGGERS
from bankwallet.chains.derive import derive_account
from bankwallet.chains.mnemonic import parse_mnemonic
from bankwallet.settings import Settings
from tests.chains.conftest import app_clients
from tests.chains.vectors import ABANDON_ABOUT, TEAM_ENGINE
from tests.conftest import free_port, skip_or_fail
from tests.identity.test_api import (  # noqa: F401
    CLIENT_ADDRESSES,
    bearer,
    key_file,
    sign_up,
    unique_phone,
)
from tests.identity.test_mfa import count_audit, make_stale

SANDBOX_CHAIN_ID = 1337
DEV_ACCOUNTS = 4
CHAIN_START_TIMEOUT_S = 30.0
WAIT_TIMEOUT_S = 15.0
PIN = "246810"
OTHER_PIN = "135790"
TOKEN_DECIMALS = 6
TOKEN_SUPPLY_MINOR = 1_000_000 * 10**TOKEN_DECIMALS
ETHER = 10**18
# ABANDON_ABOUT's first Ethereum account (m/44'/60'/0'/0/0), as every BIP44 wallet derives it.
ABANDON_ETH = "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"


# -- the sandbox chain -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sandbox:
    url: str
    dev_keys: list[str]
    token: str  # a BankwalletToken (BWD, 6 decimals) deployed by dev_keys[1]


_running: list[Sandbox] = []


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One sandbox chain process for the session, with one ERC-20 deployed on it (shared by
    the modules that import this fixture: the first one starts it)."""
    if _running:
        yield _running[0]
        return
    try:
        from bankwallet.connectors.chains.sandbox_chain import dev_private_keys
    except ImportError:
        skip_or_fail("eth-tester is not installed (pip install -e '.[dev]')")
    workdir = tmp_path_factory.mktemp("chains-sandbox")
    port = free_port()
    log_path = workdir / "chain.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bankwallet", "sandbox-chain", "--host", "127.0.0.1",
             "--port", str(port), "--chain-id", str(SANDBOX_CHAIN_ID), "--accounts",
             str(DEV_ACCOUNTS), "--balance-eth", "1000"],
            cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_healthy(url, process, log_path)
        keys = dev_private_keys(DEV_ACCOUNTS)
        _running.append(Sandbox(url, keys, deploy_token(url, keys[1])))
        yield _running[0]
    finally:
        _running.clear()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + CHAIN_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the sandbox chain exited:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the sandbox chain did not start:\n{log_path.read_text()}")


def rpc(url: str, method: str, *params: Any) -> Any:
    answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                   "params": list(params)}, timeout=10).json()
    assert "error" not in answer, answer
    return answer["result"]


def send_from(url: str, key: str, *, to: str, value: int = 0, data: bytes = b"",
              gas: int = 21_000) -> dict[str, Any]:
    """Sign with eth-account as an outside wallet would, send, return the mined receipt."""
    sender = Account.from_key(key)
    base_fee = int(rpc(url, "eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
    tx = {"type": 2, "chainId": SANDBOX_CHAIN_ID, "to": to, "value": value,
          "data": "0x" + data.hex(), "gas": gas,
          "nonce": int(rpc(url, "eth_getTransactionCount", sender.address, "pending"), 16),
          "maxPriorityFeePerGas": 10**9, "maxFeePerGas": 2 * base_fee + 10**9}
    if to is None:
        del tx["to"]
    signed = sender.sign_transaction(tx)
    tx_hash = rpc(url, "eth_sendRawTransaction", signed.raw_transaction.to_0x_hex())
    receipt = rpc(url, "eth_getTransactionReceipt", tx_hash)
    assert receipt is not None and receipt["status"] == "0x1", receipt
    return receipt


def deploy_token(url: str, key: str) -> str:
    from bankwallet.connectors.chains.contracts import load_artifact

    artifact = load_artifact("BankwalletToken")
    data = bytes.fromhex(artifact["bytecode"][2:]) + abi_encode(
        ["string", "string", "uint8", "uint256"],
        ["Bankwallet Dollar", "BWD", TOKEN_DECIMALS, TOKEN_SUPPLY_MINOR])
    receipt = send_from(url, key, to=None, data=data, gas=3_000_000)
    return _checksum(receipt["contractAddress"])


def _checksum(address: str) -> str:
    from eth_utils import to_checksum_address

    return to_checksum_address(address)


def transfer_tokens(sandbox: Sandbox, to: str, amount_minor: int) -> None:
    from bankwallet.connectors.chains.evm import erc20_transfer_data

    send_from(sandbox.url, sandbox.dev_keys[1], to=sandbox.token,
              data=erc20_transfer_data(to, amount_minor), gas=100_000)


def balance_on_chain(sandbox: Sandbox, address: str) -> int:
    return int(rpc(sandbox.url, "eth_getBalance", address, "latest"), 16)


def token_balance_on_chain(sandbox: Sandbox, address: str) -> int:
    from bankwallet.connectors.chains.evm import erc20_balance_of_data

    result = rpc(sandbox.url, "eth_call", {"to": sandbox.token,
                                           "data": "0x" + erc20_balance_of_data(address).hex()},
                 "latest")
    return int(result, 16)


# -- the app -----------------------------------------------------------------------------------


def chain_settings(db_url: str, sandbox: Sandbox, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url, "env": "test",
        "chain_networks": {"ETH": sandbox.url},
        "chain_network_ids": {"ETH": SANDBOX_CHAIN_ID},
        "chain_tokens": {"ETH": [{"address": sandbox.token, "symbol": "BWD",
                                  "decimals": TOKEN_DECIMALS}]},
        "chain_rpc_timeout_s": 5.0,
        # Cheap Argon2 for tests (production: 64 MiB, 3 passes); what it protects is the same.
        "chain_pin_kdf_memory_kib": 256, "chain_pin_kdf_time_cost": 1,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_client(db_url: str, key_file: Path, sandbox: Sandbox,  # noqa: F811
                monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with app_clients(monkeypatch) as start:
        yield lambda **overrides: start(chain_settings(db_url, sandbox, **overrides))


@pytest.fixture
def client(make_client: Any) -> TestClient:
    return make_client()


def customer(client: TestClient) -> tuple[str, dict[str, str], str]:
    """A new customer (fresh second factor after sign-up): token, headers, session id."""
    created = sign_up(client, unique_phone())
    return created["user"]["id"], bearer(created["token"]), created["session_id"]


def new_wallet(client: TestClient, headers: dict[str, str], **extra: Any) -> dict[str, Any]:
    body = {"kind": "new", "name": "Main", "pin": PIN, **extra}
    r = client.post("/api/v1/chains/wallets", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def import_wallet(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    payload = {"name": "Imported", **({} if body["kind"] == "watch_only" else {"pin": PIN}),
               **body}
    r = client.post("/api/v1/chains/wallets", json=payload, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def address_of(wallet: dict[str, Any], chain: str) -> str:
    return next(a["address"] for a in wallet["addresses"] if a["chain"] == chain)


def wallets_count(client: TestClient, headers: dict[str, str]) -> int:
    return len(client.get("/api/v1/chains/wallets", headers=headers).json()["wallets"])


def wait_confirmed(client: TestClient, headers: dict[str, str], wallet_id: str,
                   tx_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while True:
        r = client.get(f"/api/v1/chains/wallets/{wallet_id}/transactions/{tx_id}",
                       headers=headers)
        assert r.status_code == 200, r.text
        if r.json()["status"] in ("confirmed", "failed") or time.monotonic() > deadline:
            return r.json()
        time.sleep(0.05)


def send(client: TestClient, headers: dict[str, str], wallet_id: str, *, key: str | None = None,
         **body: Any) -> httpx.Response:
    extra = {"Idempotency-Key": key or uuid.uuid4().hex}
    payload = {"chain": "ETH", "pin": PIN, **body}
    return client.post(f"/api/v1/chains/wallets/{wallet_id}/send", json=payload,
                       headers={**headers, **extra})


# -- creating and importing --------------------------------------------------------------------


def test_a_new_wallet_shows_its_words_once_and_has_an_address_on_each_chain(
        client: TestClient) -> None:
    _, headers, _ = customer(client)
    created = new_wallet(client, headers, word_count=24, language="zh-CN")
    assert len(created["mnemonic"]) == 24
    assert created["kind"] == "mnemonic" and created["origin"] == "created"
    assert created["backed_up"] is False and created["language"] == "zh-CN"
    chains = [a["chain"] for a in created["addresses"]]
    assert chains == ["BTC", "ETH", "BSC", "POLYGON", "OKX", "TRON", "SOL", "APT", "DOT",
                      "KSM", "EOS"]
    mnemonic = parse_mnemonic("".join(created["mnemonic"]))
    for entry in created["addresses"]:
        assert entry["address"] == derive_account(entry["chain"], mnemonic).address
    assert address_of(created, "ETH") == address_of(created, "BSC")  # one EVM account

    # Shown once: never again without asking (step-up and PIN).
    listed = client.get("/api/v1/chains/wallets", headers=headers).json()["wallets"]
    assert [w["id"] for w in listed] == [created["id"]] and "mnemonic" not in listed[0]
    got = client.get(f"/api/v1/chains/wallets/{created['id']}", headers=headers).json()
    assert "mnemonic" not in got and got["addresses"] == created["addresses"]
    receive = client.get(f"/api/v1/chains/wallets/{created['id']}/addresses",
                         headers=headers).json()["addresses"]
    by_chain = {a["chain"]: a for a in receive}
    assert by_chain["ETH"]["uri"] == f"ethereum:{address_of(created, 'ETH')}@1"
    assert by_chain["BTC"]["uri"] == f"bitcoin:{address_of(created, 'BTC')}"
    assert by_chain["EOS"]["uri"] is None  # a public key: an account name receives on EOS


def test_creating_needs_a_fresh_second_factor_and_a_pin(client: TestClient) -> None:
    _, headers, session_id = customer(client)
    r = client.post("/api/v1/chains/wallets", json={"kind": "new", "name": "x", "pin": "123"},
                    headers=headers)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    make_stale(client, session_id)
    r = client.post("/api/v1/chains/wallets", json={"kind": "new", "name": "x", "pin": PIN},
                    headers=headers)
    assert r.status_code == 403 and r.json()["code"] == "step_up_required"
    assert wallets_count(client, headers) == 0


def test_import_a_phrase_a_private_key_and_watch_only_addresses(client: TestClient) -> None:
    _, headers, _ = customer(client)
    phrase = import_wallet(client, headers, kind="mnemonic", mnemonic=ABANDON_ABOUT.upper())
    assert address_of(phrase, "ETH") == ABANDON_ETH
    assert phrase["mnemonic"] is None and phrase["backed_up"] is True
    assert phrase["origin"] == "imported"
    # The same phrase twice is one wallet; with a passphrase it is another one.
    r = client.post("/api/v1/chains/wallets", json={"kind": "mnemonic", "name": "again",
                                                    "pin": PIN, "mnemonic": ABANDON_ABOUT},
                    headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "wallet_exists"
    with_passphrase = import_wallet(client, headers, kind="mnemonic", mnemonic=ABANDON_ABOUT,
                                    passphrase="TREZOR")
    assert with_passphrase["has_passphrase"] is True
    assert address_of(with_passphrase, "ETH") != ABANDON_ETH

    key = Account.create()
    imported = import_wallet(client, headers, kind="private_key", chain="BSC",
                             private_key=key.key.hex())
    assert [a["chain"] for a in imported["addresses"]] == ["ETH", "BSC", "POLYGON", "OKX"]
    assert {a["address"] for a in imported["addresses"]} == {key.address}

    watched = import_wallet(client, headers, kind="watch_only", addresses=[
        {"chain": "ETH", "address": ABANDON_ETH.lower()},
        {"chain": "BTC", "address": "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"}])
    assert watched["kind"] == "watch_only"
    assert address_of(watched, "ETH") == ABANDON_ETH  # checksummed
    assert wallets_count(client, headers) == 4
    wid = watched["id"]
    for path, body in ((f"/api/v1/chains/wallets/{wid}/reveal", {"pin": PIN}),
                       (f"/api/v1/chains/wallets/{wid}/backup-checks", None),
                       (f"/api/v1/chains/wallets/{wid}/sign-message",
                        {"pin": PIN, "message": "hi"})):
        r = client.post(path, json=body, headers=headers)
        assert r.status_code == 409 and r.json()["code"] == "wallet_watch_only", path
    r = send(client, headers, wid, to=ABANDON_ETH, amount_minor=1)
    assert r.status_code == 409 and r.json()["code"] == "wallet_watch_only"


@pytest.mark.parametrize("body, status, code", [
    ({"kind": "mnemonic", "mnemonic": ABANDON_ABOUT.replace("about", "abuot")}, 422,
     "mnemonic_invalid_word"),
    ({"kind": "mnemonic", "mnemonic": ABANDON_ABOUT.replace("about", "abandon")}, 422,
     "mnemonic_bad_checksum"),
    ({"kind": "mnemonic", "mnemonic": "abandon " * 11}, 422, "mnemonic_bad_length"),
    ({"kind": "mnemonic", "mnemonic": TEAM_ENGINE, "pin": "12345"}, 422, "invalid_input"),
    ({"kind": "private_key", "private_key": "0x1234"}, 422, "private_key_invalid"),
    ({"kind": "private_key", "private_key": "00" * 32}, 422, "private_key_invalid"),
    ({"kind": "private_key", "chain": "DOGE", "private_key": "11" * 32}, 422, "chain_unknown"),
    ({"kind": "watch_only", "addresses": [
        {"chain": "ETH", "address": "0x9858EfFD232B4033E47d90003D41EC34EcaEda95"}]}, 422,
     "address_invalid"),
    ({"kind": "watch_only", "addresses": []}, 422, "invalid_input"),
    ({"kind": "safe", "mnemonic": TEAM_ENGINE}, 422, "invalid_input"),
    ({"kind": "mnemonic", "mnemonic": TEAM_ENGINE, "name": "  "}, 422, "wallet_name_invalid"),
])
def test_bad_input_is_refused_and_nothing_is_created(client: TestClient, body: dict[str, Any],
                                                     status: int, code: str) -> None:
    _, headers, _ = customer(client)
    payload = {"name": "x", "pin": PIN, **body}
    if body["kind"] == "watch_only":
        payload.pop("pin")
    r = client.post("/api/v1/chains/wallets", json=payload, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code
    assert "abuot" not in r.text and "00" * 32 not in r.text  # never echoes the secret
    assert wallets_count(client, headers) == 0


def test_a_mistyped_word_is_reported_by_position_only(client: TestClient) -> None:
    _, headers, _ = customer(client)
    r = client.post("/api/v1/chains/wallets", headers=headers, json={
        "kind": "mnemonic", "name": "x", "pin": PIN,
        "mnemonic": TEAM_ENGINE.replace("hero", "herro")})
    assert r.status_code == 422 and r.json()["positions"] == [5]
    assert "herro" not in r.text and "hero" not in r.text


# -- the PIN, the backup, showing the words ----------------------------------------------------


def test_wrong_pins_are_counted_and_lock_out(client: TestClient) -> None:
    from bankwallet.chains.models import PinGuard

    user_id, headers, _ = customer(client)
    wallet = import_wallet(client, headers, kind="mnemonic", mnemonic=TEAM_ENGINE)
    path = f"/api/v1/chains/wallets/{wallet['id']}/sign-message"
    for left in (4, 3, 2, 1, 0):
        r = client.post(path, json={"pin": OTHER_PIN, "message": "hi"}, headers=headers)
        assert r.status_code == 403 and r.json()["code"] == "wallet_pin_wrong"
        assert r.json()["attempts_left"] == left
    for pin in (OTHER_PIN, PIN):  # locked out: even the right PIN waits
        r = client.post(path, json={"pin": pin, "message": "hi"}, headers=headers)
        assert r.status_code == 429 and r.json()["code"] == "wallet_pin_locked"
        assert 0 < int(r.headers["retry-after"]) <= 900 + 1
    assert count_audit(client, "chains.pin.failed", wallet["id"]) == 5

    async def unlock_later() -> None:  # the lock-out passes
        async with client.app.state.db.unit_of_work() as session:
            await session.execute(update(PinGuard).where(PinGuard.user_id == uuid.UUID(user_id))
                                  .values(locked_until=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))

    client.portal.call(unlock_later)
    r = client.post(path, json={"pin": OTHER_PIN, "message": "hi"}, headers=headers)
    assert r.status_code == 403  # one more try, then locked again for twice as long
    r = client.post(path, json={"pin": PIN, "message": "hi"}, headers=headers)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 900
    client.portal.call(unlock_later)
    assert client.post(path, json={"pin": PIN, "message": "hi"},
                       headers=headers).status_code == 200
    # A right PIN clears the count: five more tries before the next lock-out.
    for left in (4, 3):
        assert client.post(path, json={"pin": OTHER_PIN, "message": "hi"},
                           headers=headers).json()["attempts_left"] == left


def test_backup_check_asks_three_words_at_server_chosen_positions(client: TestClient) -> None:
    _, headers, _ = customer(client)
    wallet = new_wallet(client, headers)
    words, base = wallet["mnemonic"], f"/api/v1/chains/wallets/{wallet['id']}/backup-checks"
    r = client.post(base, headers=headers)
    assert r.status_code == 201, r.text
    check = r.json()
    positions = check["positions"]
    assert len(set(positions)) == 3 and positions == sorted(positions)
    assert all(1 <= p <= 12 for p in positions) and check["attempts_left"] == 3
    right = [words[p - 1] for p in positions]
    wrong = right[:2] + ["zoo" if right[2] != "zoo" else "abandon"]

    r = client.post(f"{base}/{check['id']}", json={"pin": PIN, "words": wrong}, headers=headers)
    assert r.status_code == 422 and r.json()["code"] == "backup_words_wrong"
    # (as a word: short BIP-39 words such as "all" are inside "wallets" of the problem's URL)
    assert r.json()["attempts_left"] == 2 and not re.search(rf"\b{right[2]}\b", r.text)
    r = client.post(f"{base}/{check['id']}", json={"pin": OTHER_PIN, "words": right},
                    headers=headers)
    assert r.status_code == 403  # the PIN is needed: the server cannot read the words
    assert client.get(f"/api/v1/chains/wallets/{wallet['id']}",
                      headers=headers).json()["backed_up"] is False
    r = client.post(f"{base}/{check['id']}",
                    json={"pin": PIN, "words": [f" {w.upper()} " for w in right]},
                    headers=headers)
    assert r.status_code == 200 and r.json() == {"backed_up": True}
    assert client.get(f"/api/v1/chains/wallets/{wallet['id']}",
                      headers=headers).json()["backed_up"] is True
    r = client.post(f"{base}/{check['id']}", json={"pin": PIN, "words": right}, headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "backup_check_expired"


def test_three_wrong_answers_end_a_backup_check(client: TestClient) -> None:
    _, headers, _ = customer(client)
    wallet = new_wallet(client, headers)
    base = f"/api/v1/chains/wallets/{wallet['id']}/backup-checks"
    check = client.post(base, headers=headers).json()
    for left in (2, 1, 0):
        r = client.post(f"{base}/{check['id']}", json={"pin": PIN, "words": ["zoo"] * 3},
                        headers=headers)
        assert r.json()["attempts_left"] == left
    right = [wallet["mnemonic"][p - 1] for p in check["positions"]]
    r = client.post(f"{base}/{check['id']}", json={"pin": PIN, "words": right}, headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "backup_check_expired"
    r = client.post(f"{base}/{check['id']}", json={"pin": PIN, "words": ["a", "b"]},
                    headers=headers)
    assert r.status_code == 422


def test_showing_the_phrase_needs_a_fresh_second_factor_and_the_pin(client: TestClient) -> None:
    from bankwallet.chains.models import PinGuard

    user_id, headers, session_id = customer(client)
    wallet = new_wallet(client, headers)
    path = f"/api/v1/chains/wallets/{wallet['id']}/reveal"
    r = client.post(path, json={"pin": PIN}, headers=headers)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert r.json()["mnemonic"] == wallet["mnemonic"] and r.json()["language"] == "en"
    assert client.post(path, json={"pin": OTHER_PIN}, headers=headers).status_code == 403
    assert count_audit(client, "chains.wallet.revealed", wallet["id"]) == 1

    make_stale(client, session_id)
    r = client.post(path, json={"pin": PIN}, headers=headers)
    assert r.status_code == 403 and r.json()["code"] == "step_up_required"
    assert "mnemonic" not in r.json()

    async def failures() -> int:  # the refused step-up spent no PIN attempt
        async with client.app.state.db.sessionmaker() as session:
            return (await session.get(PinGuard, uuid.UUID(user_id))).failures

    assert client.portal.call(failures) == 1

    key = Account.create()
    imported = import_wallet(client, headers, kind="private_key", private_key=key.key.hex())
    make_stale(client, session_id)
    assert client.post(f"/api/v1/chains/wallets/{imported['id']}/reveal", json={"pin": PIN},
                       headers=headers).status_code == 403


# -- other customers' things -------------------------------------------------------------------


def test_another_customers_wallet_is_not_found_everywhere(client: TestClient) -> None:
    _, alice, _ = customer(client)
    _, bob, _ = customer(client)
    wallet = new_wallet(client, alice)
    wid = wallet["id"]
    check = client.post(f"/api/v1/chains/wallets/{wid}/backup-checks", headers=alice).json()
    entry = client.post("/api/v1/chains/address-book", headers=alice, json={
        "chain": "ETH", "address": ABANDON_ETH, "label": "Savings"}).json()
    calls = [
        ("GET", f"/api/v1/chains/wallets/{wid}", None),
        ("GET", f"/api/v1/chains/wallets/{wid}/addresses", None),
        ("GET", f"/api/v1/chains/wallets/{wid}/portfolio", None),
        ("GET", f"/api/v1/chains/wallets/{wid}/transactions", None),
        ("GET", f"/api/v1/chains/wallets/{wid}/transactions/{uuid.uuid4()}", None),
        ("POST", f"/api/v1/chains/wallets/{wid}/reveal", {"pin": PIN}),
        ("POST", f"/api/v1/chains/wallets/{wid}/backup-checks", None),
        ("POST", f"/api/v1/chains/wallets/{wid}/backup-checks/{check['id']}",
         {"pin": PIN, "words": ["a", "b", "c"]}),
        ("POST", f"/api/v1/chains/wallets/{wid}/send/preview",
         {"chain": "ETH", "to": ABANDON_ETH, "amount_minor": 1}),
        ("POST", f"/api/v1/chains/wallets/{wid}/send",
         {"chain": "ETH", "to": ABANDON_ETH, "amount_minor": 1, "pin": PIN}),
        ("POST", f"/api/v1/chains/wallets/{wid}/sign-message", {"pin": PIN, "message": "x"}),
        ("POST", f"/api/v1/chains/wallets/{wid}/sign-typed-data/preview",
         {"typed_data": TYPED_DATA}),
        ("POST", f"/api/v1/chains/wallets/{wid}/sign-typed-data",
         {"pin": PIN, "typed_data": TYPED_DATA}),
        ("DELETE", f"/api/v1/chains/address-book/{entry['id']}", None),
    ]
    for method, path, body in calls:
        r = client.request(method, path, json=body,
                           headers={**bob, "Idempotency-Key": uuid.uuid4().hex})
        assert r.status_code == 404, (method, path, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    # Nothing of Alice's shows up for Bob, and nothing of hers changed.
    assert client.get("/api/v1/chains/address-book", headers=bob).json() == {"own": [],
                                                                             "saved": []}
    assert len(client.get("/api/v1/chains/address-book", headers=alice).json()["saved"]) == 1
    for method, path, body in calls[:6]:
        assert client.request(method, path, json=body).status_code == 401


# -- the address book --------------------------------------------------------------------------


def test_address_book_checks_each_chains_checksum(client: TestClient) -> None:
    _, headers, _ = customer(client)
    wallet = new_wallet(client, headers)
    add = "/api/v1/chains/address-book"
    r = client.post(add, headers=headers, json={"chain": "eth", "label": "Exchange",
                                                "address": ABANDON_ETH.lower()})
    assert r.status_code == 201 and r.json()["address"] == ABANDON_ETH
    assert r.json()["chain"] == "ETH"
    r = client.post(add, headers=headers, json={"chain": "ETH", "label": "Again",
                                                "address": ABANDON_ETH})
    assert r.status_code == 409 and r.json()["code"] == "address_book_entry_exists"
    abandon = parse_mnemonic(ABANDON_ABOUT)
    btc, tron, ksm = (derive_account(c, abandon).address for c in ("BTC", "TRON", "KSM"))
    bad = [("ETH", ABANDON_ETH[:-1] + "5", "checksum"),
           ("BTC", btc[:-1] + ("q" if btc[-1] != "q" else "p"), "checksum"),
           ("TRON", tron[:-1] + ("A" if tron[-1] != "A" else "B"), "checksum"),
           ("SOL", "0OIl", "charset"),
           ("DOT", ksm, "network")]
    for chain, address, reason in bad:
        r = client.post(add, headers=headers, json={"chain": chain, "label": "x",
                                                    "address": address})
        assert r.status_code == 422, (chain, r.text)
        assert r.json()["code"] == "address_invalid" and r.json()["reason"] == reason
    book = client.get(add, headers=headers).json()
    assert [e["label"] for e in book["saved"]] == ["Exchange"]
    assert len(book["own"]) == 11 and book["own"][0]["wallet_name"] == "Main"
    assert {o["address"] for o in book["own"]} >= {address_of(wallet, "ETH")}
    entry_id = book["saved"][0]["id"]
    assert client.delete(f"{add}/{entry_id}", headers=headers).status_code == 204
    assert client.delete(f"{add}/{entry_id}", headers=headers).status_code == 404
    assert client.get(add, headers=headers).json()["saved"] == []


# -- on the chain: receive, portfolio, send ----------------------------------------------------


def test_receive_then_send_ether_and_tokens_on_the_sandbox_chain(client: TestClient,
                                                                  sandbox: Sandbox) -> None:
    _, headers, _ = customer(client)
    wallet = new_wallet(client, headers)
    wid, mine = wallet["id"], address_of(wallet, "ETH")

    portfolio = client.get(f"/api/v1/chains/wallets/{wid}/portfolio", headers=headers).json()
    eth = next(h for h in portfolio["chains"] if h["chain"] == "ETH")
    assert eth["status"] == "ok" and eth["native"]["amount_minor"] == 0
    assert {h["chain"]: h["status"] for h in portfolio["chains"]} == {
        "ETH": "ok", "BSC": "not_configured", "POLYGON": "not_configured",
        "OKX": "not_configured"}

    # Someone pays the customer's address from an outside wallet.
    send_from(sandbox.url, sandbox.dev_keys[0], to=mine, value=2 * ETHER)
    transfer_tokens(sandbox, mine, 500 * 10**TOKEN_DECIMALS)
    portfolio = client.get(f"/api/v1/chains/wallets/{wid}/portfolio", headers=headers).json()
    eth = next(h for h in portfolio["chains"] if h["chain"] == "ETH")
    assert eth["native"] == {"symbol": "ETH", "decimals": 18, "token": None,
                             "amount_minor": 2 * ETHER, "amount": "2"}
    assert eth["tokens"] == [{"symbol": "BWD", "decimals": 6, "token": sandbox.token,
                              "amount_minor": 500 * 10**6, "amount": "500"}]

    recipient = Account.create().address
    r = client.post(f"/api/v1/chains/wallets/{wid}/send/preview", headers=headers,
                    json={"chain": "ETH", "to": recipient.lower(), "amount_minor": ETHER // 4})
    assert r.status_code == 200, r.text
    preview = r.json()
    assert preview["to"] == recipient and preview["from_address"] == mine
    assert preview["amount"] == "0.25" and preview["gas_limit"] == 21_000
    assert preview["max_fee_wei"] == 21_000 * preview["max_fee_per_gas_wei"] > 0
    assert preview["chain_id"] == SANDBOX_CHAIN_ID and preview["nonce"] == 0

    key = uuid.uuid4().hex
    r = send(client, headers, wid, key=key, to=recipient, amount_minor=ETHER // 4,
             max_fee_wei=preview["max_fee_wei"])
    assert r.status_code == 201, r.text
    sent = r.json()
    assert sent["status"] in ("pending", "confirmed") and sent["nonce"] == 0
    done = wait_confirmed(client, headers, wid, sent["id"])
    assert done["status"] == "confirmed" and done["block_number"] > 0 and done["fee_wei"] > 0
    assert balance_on_chain(sandbox, recipient) == ETHER // 4
    assert balance_on_chain(sandbox, mine) == 2 * ETHER - ETHER // 4 - done["fee_wei"]

    # The same key again: the same transaction, not a second one.
    again = send(client, headers, wid, key=key, to=recipient, amount_minor=ETHER // 4,
                 max_fee_wei=preview["max_fee_wei"])
    assert again.status_code == 201 and again.json()["id"] == sent["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = send(client, headers, wid, key=key, to=recipient, amount_minor=ETHER // 5)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    assert balance_on_chain(sandbox, recipient) == ETHER // 4

    # Tokens: the transfer goes to the contract, the recipient is in its call data.
    r = send(client, headers, wid, to=recipient, amount_minor=123_450_000,
             token=sandbox.token.lower())
    assert r.status_code == 201, r.text
    token_tx = wait_confirmed(client, headers, wid, r.json()["id"])
    assert token_tx["status"] == "confirmed" and token_tx["symbol"] == "BWD"
    assert token_tx["to"] == recipient and token_tx["amount"] == "123.45"
    assert token_tx["nonce"] == 1
    assert token_balance_on_chain(sandbox, recipient) == 123_450_000
    assert token_balance_on_chain(sandbox, mine) == 500 * 10**6 - 123_450_000

    listed = client.get(f"/api/v1/chains/wallets/{wid}/transactions", headers=headers).json()
    assert [t["id"] for t in listed["transactions"]] == [token_tx["id"], sent["id"]]


def test_send_refuses_clearly_and_sends_nothing(client: TestClient, sandbox: Sandbox) -> None:
    from bankwallet.chains.models import ChainTransaction

    _, headers, _ = customer(client)
    wallet = new_wallet(client, headers)
    wid, mine = wallet["id"], address_of(wallet, "ETH")
    send_from(sandbox.url, sandbox.dev_keys[0], to=mine, value=ETHER // 100)
    to = Account.create().address
    cases = [
        ({"to": to, "amount_minor": ETHER}, 422, "chain_insufficient_funds"),
        ({"to": to, "amount_minor": ETHER // 100}, 422, "chain_insufficient_gas"),
        ({"to": to, "amount_minor": 1, "token": sandbox.token}, 422,
         "chain_insufficient_token_balance"),
        ({"to": to, "amount_minor": 1, "token": Account.create().address}, 422,
         "chain_token_unknown"),
        ({"to": to[:-1] + ("a" if to[-1] != "a" else "b"), "amount_minor": 1}, 422,
         "address_invalid"),
        ({"to": to, "amount_minor": 0}, 422, "invalid_input"),
        ({"to": to, "amount_minor": 1, "chain": "BTC"}, 422, "chain_not_evm"),
        ({"to": to, "amount_minor": 1, "chain": "BSC"}, 409, "chain_network_not_configured"),
        ({"to": to, "amount_minor": 1, "max_fee_wei": 1}, 409, "chain_fee_above_preview"),
        ({"to": to, "amount_minor": 1, "pin": OTHER_PIN}, 403, "wallet_pin_wrong"),
    ]
    for body, status, code in cases:
        r = send(client, headers, wid, **body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["code"] == code, (body, r.text)
    r = client.post(f"/api/v1/chains/wallets/{wid}/send", headers=headers,
                    json={"chain": "ETH", "to": to, "amount_minor": 1, "pin": PIN})
    assert r.status_code == 400 and r.json()["code"] == "idempotency_key_missing"
    bad_checksum = to[:2] + to[2:].swapcase()
    if bad_checksum != to and bad_checksum.lower() != bad_checksum:
        r = send(client, headers, wid, to=bad_checksum, amount_minor=1)
        assert r.json()["reason"] == "checksum"

    async def count() -> int:
        async with client.app.state.db.sessionmaker() as session:
            return (await session.execute(select(func.count()).select_from(ChainTransaction)
                                          .where(ChainTransaction.wallet_id == uuid.UUID(wid))
                                          )).scalar_one()

    assert client.portal.call(count) == 0
    assert balance_on_chain(sandbox, to) == 0 and balance_on_chain(sandbox, mine) == ETHER // 100


def test_portfolio_says_which_networks_are_missing_unreachable_or_wrong(
        make_client: Any, sandbox: Sandbox) -> None:
    closed = f"http://127.0.0.1:{free_port()}/"
    client = make_client(chain_networks={"ETH": sandbox.url, "BSC": closed,
                                         "POLYGON": sandbox.url},
                         chain_network_ids={"ETH": SANDBOX_CHAIN_ID})
    _, headers, _ = customer(client)
    wallet = new_wallet(client, headers)
    r = client.get(f"/api/v1/chains/wallets/{wallet['id']}/portfolio", headers=headers)
    assert r.status_code == 200, r.text
    assert {h["chain"]: h["status"] for h in r.json()["chains"]} == {
        "ETH": "ok", "BSC": "unreachable", "POLYGON": "wrong_network", "OKX": "not_configured"}
    assert all(h["native"]["amount_minor"] is None for h in r.json()["chains"][1:])
    r = send(client, headers, wallet["id"], chain="BSC", to=ABANDON_ETH, amount_minor=1)
    assert r.status_code == 503 and r.json()["code"] == "chain_network_unreachable"
    r = send(client, headers, wallet["id"], chain="POLYGON", to=ABANDON_ETH, amount_minor=1)
    assert r.status_code == 409 and r.json()["code"] == "chain_wrong_network"


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_concurrent_sends_from_one_wallet_get_consecutive_nonces(client: TestClient,
                                                                 sandbox: Sandbox) -> None:
    _, headers, _ = customer(client)
    wallet = new_wallet(client, headers)
    wid, mine = wallet["id"], address_of(wallet, "ETH")
    send_from(sandbox.url, sandbox.dev_keys[2], to=mine, value=ETHER)
    recipients = [Account.create().address for _ in range(3)]

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            return await asyncio.gather(*[
                ac.post(f"/api/v1/chains/wallets/{wid}/send",
                        json={"chain": "ETH", "to": to, "amount_minor": 1000, "pin": PIN},
                        headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
                for to in recipients])

    answers = client.portal.call(burst)
    assert [a.status_code for a in answers] == [201] * 3, [a.text for a in answers]
    assert sorted(a.json()["nonce"] for a in answers) == [0, 1, 2]
    for answer in answers:
        assert wait_confirmed(client, headers, wid, answer.json()["id"])["status"] == "confirmed"
    assert [balance_on_chain(sandbox, to) for to in recipients] == [1000] * 3


# -- signing -----------------------------------------------------------------------------------

TYPED_DATA = {
    "types": {
        "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId",
                                                              "type": "uint256"},
                         {"name": "verifyingContract", "type": "address"}],
        "Permit": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                   {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                   {"name": "deadline", "type": "uint256"}],
    },
    "primaryType": "Permit",
    "domain": {"name": "Bankwallet Dollar", "chainId": 1,
               "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},
    "message": {"owner": ABANDON_ETH, "spender": "0x1111111111111111111111111111111111111111",
                "value": str(2**256 - 1), "nonce": 0, "deadline": 1_900_000_000},
}


def test_sign_a_message_and_typed_data_with_a_preview(client: TestClient) -> None:
    _, headers, _ = customer(client)
    wallet = import_wallet(client, headers, kind="mnemonic", mnemonic=ABANDON_ABOUT)
    base = f"/api/v1/chains/wallets/{wallet['id']}"
    r = client.post(f"{base}/sign-message", headers=headers,
                    json={"pin": PIN, "message": "Log in to example.org: nonce 42"})
    assert r.status_code == 200, r.text
    assert r.json()["address"] == ABANDON_ETH
    assert Account.recover_message(encode_defunct(text="Log in to example.org: nonce 42"),
                                   signature=r.json()["signature"]) == ABANDON_ETH
    r = client.post(f"{base}/sign-message", headers=headers,
                    json={"pin": PIN, "message": "0xdeadbeef", "encoding": "hex"})
    assert Account.recover_message(encode_defunct(primitive=bytes.fromhex("deadbeef")),
                                   signature=r.json()["signature"]) == ABANDON_ETH
    r = client.post(f"{base}/sign-message", headers=headers,
                    json={"pin": PIN, "message": "0xnothex", "encoding": "hex"})
    assert r.status_code == 422

    r = client.post(f"{base}/sign-typed-data/preview", headers=headers,
                    json={"typed_data": TYPED_DATA})
    assert r.status_code == 200, r.text
    preview = r.json()
    assert preview["primary_type"] == "Permit"
    assert set(preview["warnings"]) == {"token_allowance", "unlimited_amount"}
    assert {"path": "spender", "type": "address",
            "value": "0x1111111111111111111111111111111111111111"} in preview["fields"]
    r = client.post(f"{base}/sign-typed-data", headers=headers,
                    json={"pin": PIN, "typed_data": TYPED_DATA})
    assert r.status_code == 200, r.text
    assert Account.recover_message(encode_typed_data(full_message=TYPED_DATA),
                                   signature=r.json()["signature"]) == ABANDON_ETH
    broken = {**TYPED_DATA, "primaryType": "Nope"}
    for path, body in ((f"{base}/sign-typed-data/preview", {"typed_data": broken}),
                       (f"{base}/sign-typed-data", {"typed_data": broken, "pin": OTHER_PIN})):
        r = client.post(path, headers=headers, json=body)
        assert r.status_code == 422 and r.json()["code"] == "typed_data_invalid"
    # The broken request never reached the PIN: no attempt was counted.
    r = client.post(f"{base}/sign-message", headers=headers,
                    json={"pin": OTHER_PIN, "message": "x"})
    assert r.json()["attempts_left"] == 4


# -- what must never be stored or logged -------------------------------------------------------


def database_dump(client: TestClient) -> str:
    async def run() -> str:
        parts = []
        async with client.app.state.db.engine.connect() as conn:
            for table in ("chains_wallet", "chains_address", "chains_backup_check",
                          "chains_pin_guard", "chains_address_book_entry", "chains_transaction",
                          "core_outbox_event", "core_audit_event", "core_idempotency_key"):
                for row in await conn.execute(text(f"SELECT * FROM {table}")):
                    parts.append(repr(tuple(row)))
                    parts.extend(bytes(v).hex() for v in row if isinstance(v, bytes | memoryview))
        return "\n".join(parts)

    return client.portal.call(run)


def test_no_phrase_key_or_pin_in_the_database_or_the_logs(client: TestClient, sandbox: Sandbox,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    caplog.set_level(logging.DEBUG)
    for quiet in QUIET_LOGGERS:  # the HTTP client's loggers, if turned up
        caplog.set_level(logging.DEBUG, logger=quiet)
    _, headers, _ = customer(client)
    created = new_wallet(client, headers, passphrase="correct horse battery")
    words = created["mnemonic"]
    mnemonic = parse_mnemonic(" ".join(words))
    key = Account.create()
    imported = import_wallet(client, headers, kind="private_key", private_key=key.key.hex())
    wid = created["id"]
    assert client.post(f"/api/v1/chains/wallets/{wid}/reveal", json={"pin": PIN},
                       headers=headers).status_code == 200
    client.post(f"/api/v1/chains/wallets/{wid}/reveal", json={"pin": OTHER_PIN}, headers=headers)
    check = client.post(f"/api/v1/chains/wallets/{wid}/backup-checks", headers=headers).json()
    client.post(f"/api/v1/chains/wallets/{wid}/backup-checks/{check['id']}", headers=headers,
                json={"pin": PIN, "words": [words[p - 1] for p in check["positions"]]})
    client.post(f"/api/v1/chains/wallets/{imported['id']}/sign-message", headers=headers,
                json={"pin": PIN, "message": "hello"})
    send_from(sandbox.url, sandbox.dev_keys[3], to=key.address, value=ETHER // 10)
    r = send(client, headers, imported["id"], to=address_of(created, "ETH"), amount_minor=1000)
    assert r.status_code == 201, r.text
    client.post("/api/v1/chains/wallets", headers=headers, json={
        "kind": "mnemonic", "name": "typo", "pin": PIN,
        "mnemonic": " ".join(words[:-1] + ["zzzzqq"])})

    from bankwallet.chains.derive import derive_keys

    _, eth_keys = derive_keys("ETH", mnemonic, passphrase="correct horse battery")
    secrets_ = [" ".join(words), mnemonic.entropy().hex(), mnemonic.seed("correct horse battery")
                .hex(), eth_keys.private_key.hex(), key.key.hex(), "correct horse battery",
                PIN, OTHER_PIN, "zzzzqq"]
    # Single words are everyday English ("check", "execute"); two of them in the phrase's
    # order, in any separator (space, JSON list, repr), are the phrase leaking.
    pairs = [rf"\b{a}\W{{1,4}}{b}\b" for a, b in zip(words, words[1:])]
    dump = database_dump(client)
    logs = caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    for haystack, where in ((dump, "database"), (logs, "logs")):
        lowered = haystack.lower()
        for index, secret in enumerate(secrets_):
            if secret.isdigit():
                # A PIN is six digits: inside a hex string (an address, a hash) it turns up
                # by chance. Written as a value, it stands between non-hex characters.
                found = re.search(rf"(?<![0-9a-f]){secret}(?![0-9a-f])", lowered)
                assert not found, f"secret #{index} is in the {where}"
                continue
            assert secret.lower() not in lowered, f"secret #{index} is in the {where}"
        for pair in pairs:
            found = re.search(pair, lowered)
            assert not found, (f"two phrase words are in the {where}: "
                               f"{lowered[max(0, found.start() - 200):found.end() + 200]}")
    assert "chains_wallet" in dump or created["id"] in dump  # the dump is not empty


# -- the pages ---------------------------------------------------------------------------------


def log_in_with_cookie(client: TestClient, login: str) -> str:
    from tests.identity.test_api import STRONG

    r = client.post("/login", data={"login": login, "password": STRONG, "next": "/crypto"},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    page = client.get("/me/security")
    assert page.status_code == 200
    return re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text).group(1)


def test_pages_are_the_customers_own_and_need_a_session(make_client: Any) -> None:
    client = make_client()
    phone = unique_phone()
    created = sign_up(client, phone)
    wallet = new_wallet(client, bearer(created["token"]))
    wid = wallet["id"]
    pages = ["/crypto", "/crypto/new", "/crypto/import", "/crypto/address-book",
             f"/crypto/{wid}", f"/crypto/{wid}/receive", f"/crypto/{wid}/portfolio",
             f"/crypto/{wid}/send", f"/crypto/{wid}/sign", f"/crypto/{wid}/reveal",
             f"/crypto/{wid}/backup"]
    for path in pages:
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path

    log_in_with_cookie(client, phone)
    english = {"accept-language": "en"}
    for path in pages:
        r = client.get(path, headers=english)
        assert r.status_code == 200, (path, r.text[:300])
        assert "style=" not in r.text and "<script>" not in r.text  # the CSP allows neither
    assert "Main" in client.get("/crypto", headers=english).text
    receive = client.get(f"/crypto/{wid}/receive", headers=english).text
    assert address_of(wallet, "ETH") in receive and receive.count("<svg") >= 11
    assert "Not backed up" in client.get("/crypto", headers=english).text
    balances = client.get(f"/crypto/{wid}/portfolio", headers=english).text
    assert "0 ETH" in balances and "not available at your bank yet" in balances

    other = make_client()
    other_phone = unique_phone()
    sign_up(other, other_phone)
    log_in_with_cookie(other, other_phone)
    for path in pages[4:]:
        assert other.get(path).status_code == 404, path


def test_creating_on_the_web_asks_for_the_second_factor_again(make_client: Any) -> None:
    client = make_client()
    phone = unique_phone()
    user_id = uuid.UUID(sign_up(client, phone)["user"]["id"])
    csrf = log_in_with_cookie(client, phone)  # a password login: no fresh second factor
    form = {"csrf_token": csrf, "name": "Web", "pin": PIN, "pin_again": PIN,
            "word_count": "12", "language": "en"}
    r = client.post("/crypto/new", data={**form, "pin_again": OTHER_PIN},
                    headers={"accept-language": "en"})
    assert r.status_code == 422 and "The two PINs are not the same." in r.text
    r = client.post("/crypto/new", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/me/step-up?next=%2Fcrypto%2Fnew"
    assert client.get("/crypto", headers={"accept-language": "en"}).text.count(
        'href="/crypto/0') == 0

    async def second_factor_now() -> None:  # as if the step-up page had been passed
        from bankwallet.core.db import utcnow
        from bankwallet.identity.models import Session

        async with client.app.state.db.unit_of_work() as session:
            await session.execute(update(Session).where(Session.user_id == user_id,
                                                        Session.kind == "web")
                                  .values(second_factor_at=utcnow()))

    client.portal.call(second_factor_now)
    r = client.post("/crypto/new", data={**form, "word_count": "24"},
                    headers={"accept-language": "en"})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    words = re.findall(r"<li>([a-z]+)</li>", r.text)
    assert len(words) == 24 and "I have written them down" in r.text
    parse_mnemonic(" ".join(words))


def test_backup_and_send_on_the_web(client: TestClient, sandbox: Sandbox) -> None:
    phone = unique_phone()
    created = sign_up(client, phone)
    wallet = new_wallet(client, bearer(created["token"]))
    wid, words = wallet["id"], wallet["mnemonic"]
    csrf = log_in_with_cookie(client, phone)
    english = {"accept-language": "en"}

    page = client.post(f"/crypto/{wid}/backup", data={"csrf_token": csrf}, headers=english)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    positions = [int(p) for p in re.findall(r'for="backup-word-(\d+)"', page.text)]
    check_id = re.search(rf'/crypto/{wid}/backup/([0-9a-f-]+)"', page.text).group(1)
    assert len(positions) == 3
    r = client.post(f"/crypto/{wid}/backup/{check_id}", headers=english,
                    data={"csrf_token": csrf, "pin": PIN, "word": ["zoo", "zoo", "zoo"]})
    assert r.status_code == 422 and "do not match your recovery phrase" in r.text
    r = client.post(f"/crypto/{wid}/backup/{check_id}", follow_redirects=False,
                    data={"csrf_token": csrf, "pin": PIN,
                          "word": [words[p - 1] for p in positions]})
    assert r.status_code == 303 and r.headers["location"] == f"/crypto/{wid}?backed_up=1"
    assert "Your backup is checked." in client.get(r.headers["location"], headers=english).text

    send_from(sandbox.url, sandbox.dev_keys[0], to=address_of(wallet, "ETH"), value=ETHER)
    recipient = Account.create().address
    r = client.post(f"/crypto/{wid}/send/preview", headers=english,
                    data={"csrf_token": csrf, "asset": "ETH:", "to": recipient, "amount": "0.1"})
    assert r.status_code == 200, r.text
    assert "0.1 ETH" in r.text and recipient in r.text
    fields = dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', r.text))
    r = client.post(f"/crypto/{wid}/send", data={**fields, "pin": PIN}, follow_redirects=False)
    assert r.status_code == 303, r.text
    tx_page = r.headers["location"]
    again = client.post(f"/crypto/{wid}/send", data={**fields, "pin": PIN},
                        follow_redirects=False)
    assert again.headers["location"] == tx_page  # a double submit sends once
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while "Confirmed" not in (status := client.get(f"{tx_page}/status", headers=english).text):
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    assert balance_on_chain(sandbox, recipient) == ETHER // 10
    r = client.post(f"/crypto/{wid}/send/preview", headers=english,
                    data={"csrf_token": csrf, "asset": "ETH:", "to": recipient.lower()[:-1],
                          "amount": "0.1"})
    assert r.status_code == 422 and "not a valid address" in r.text


def test_import_sign_reveal_and_address_book_on_the_web(make_client: Any) -> None:
    import json

    client = make_client()
    phone = unique_phone()
    user_id = uuid.UUID(sign_up(client, phone)["user"]["id"])
    csrf = log_in_with_cookie(client, phone)
    english = {"accept-language": "en"}
    form = {"csrf_token": csrf, "kind": "mnemonic", "name": "Old phone", "pin": PIN,
            "pin_again": PIN}
    r = client.post("/crypto/import", headers=english,
                    data={**form, "secret": ABANDON_ABOUT.replace("about", "abuot")})
    assert r.status_code == 422 and "at position: 12" in r.text and "abuot" not in r.text
    r = client.post("/crypto/import", data={**form, "secret": ABANDON_ABOUT},
                    follow_redirects=False)
    assert r.status_code == 303
    wid = r.headers["location"].rsplit("/", 1)[1]
    r = client.post("/crypto/import", headers=english, data={
        "csrf_token": csrf, "kind": "watch_only", "name": "Watched",
        "addresses": f"ETH {ABANDON_ETH}\nBTC: bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu\n"},
        follow_redirects=False)
    assert r.status_code == 303
    r = client.post("/crypto/import", headers=english, data={
        "csrf_token": csrf, "kind": "watch_only", "name": "Bad", "addresses": "ETH"})
    assert r.status_code == 422 and "one chain and one address per line" in r.text

    # A message: previewed as text, then signed with the PIN.
    r = client.post(f"/crypto/{wid}/sign/preview", headers=english,
                    data={"csrf_token": csrf, "kind": "message", "payload": "I am me <b>"})
    assert r.status_code == 200 and "I am me &lt;b&gt;" in r.text and ABANDON_ETH[:8] in r.text
    r = client.post(f"/crypto/{wid}/sign", headers=english, data={
        "csrf_token": csrf, "kind": "message", "payload": "I am me <b>", "pin": OTHER_PIN})
    assert r.status_code == 403 and "Wrong wallet PIN." in r.text and "Tries left" in r.text
    r = client.post(f"/crypto/{wid}/sign", headers=english, data={
        "csrf_token": csrf, "kind": "message", "payload": "I am me <b>", "pin": PIN})
    assert r.status_code == 200, r.text
    signature = re.sub(r"<wbr>", "", re.search(r"<code data-signature>(.*?)</code>",
                                               r.text).group(1))
    assert Account.recover_message(encode_defunct(text="I am me <b>"),
                                   signature=signature) == ABANDON_ETH

    # Typed data: the preview names what it gives away.
    typed = json.dumps(TYPED_DATA)
    r = client.post(f"/crypto/{wid}/sign/preview", headers=english,
                    data={"csrf_token": csrf, "kind": "typed_data", "payload": typed})
    assert r.status_code == 200 and "This lets someone else spend your tokens." in r.text
    assert "The amount has no limit." in r.text
    r = client.post(f"/crypto/{wid}/sign", headers=english, data={
        "csrf_token": csrf, "kind": "typed_data", "payload": typed, "pin": PIN})
    assert r.status_code == 200 and "data-signature" in r.text
    r = client.post(f"/crypto/{wid}/sign/preview", headers=english,
                    data={"csrf_token": csrf, "kind": "typed_data", "payload": "{not json"})
    assert r.status_code == 422 and "not valid typed data" in r.text

    # Showing the phrase: a password login is not a fresh second factor.
    r = client.post(f"/crypto/{wid}/reveal", data={"csrf_token": csrf, "pin": PIN},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/me/step-up?next=")

    async def second_factor_now() -> None:
        from bankwallet.core.db import utcnow
        from bankwallet.identity.models import Session

        async with client.app.state.db.unit_of_work() as session:
            await session.execute(update(Session).where(Session.user_id == user_id)
                                  .values(second_factor_at=utcnow()))

    client.portal.call(second_factor_now)
    r = client.post(f"/crypto/{wid}/reveal", headers=english,
                    data={"csrf_token": csrf, "pin": PIN})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert re.findall(r"<li>([a-z]+)</li>", r.text) == ABANDON_ABOUT.split()

    # The address book: a wrong checksum is refused with a reason, a right one saved.
    book = {"csrf_token": csrf, "chain": "ETH", "label": "Friend"}
    r = client.post("/crypto/address-book", headers=english,
                    data={**book, "address": ABANDON_ETH[:-1] + "5"})
    assert r.status_code == 422 and "checksum does not match" in r.text
    r = client.post("/crypto/address-book", data={**book, "address": ABANDON_ETH},
                    follow_redirects=False)
    assert r.status_code == 303
    page = client.get("/crypto/address-book", headers=english).text
    entry_id = re.search(r'/crypto/address-book/([0-9a-f-]+)/remove', page).group(1)
    assert "Friend" in page and client.get(f"/crypto/{wid}/send", headers=english).status_code == 200
    r = client.post(f"/crypto/address-book/{entry_id}/remove", data={"csrf_token": csrf},
                    follow_redirects=False)
    assert r.status_code == 303
    assert "No saved address yet." in client.get("/crypto/address-book", headers=english).text
