"""The crypto wallet's service: amounts, configuration, the sealed secret, PIN guessing under
concurrency, and healing a transaction that was signed but never sent; SQLite and PostgreSQL,
against the real sandbox chain."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import httpx
import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from bankwallet.chains import service, tasks, vault
from bankwallet.chains.errors import AmountInvalid, MnemonicInvalidWord, WalletPinWrong
from bankwallet.chains.models import SEALED_CONTEXT, ChainTransaction, Wallet
from bankwallet.core.crypto import get_keyring
from bankwallet.settings import Settings
from tests.chains.test_api import (  # noqa: F401
    ETHER,
    PIN,
    SANDBOX_CHAIN_ID,
    Sandbox,
    address_of,
    balance_on_chain,
    chain_settings,
    client,
    customer,
    import_wallet,
    key_file,
    make_client,
    new_wallet,
    sandbox,
    send_from,
)
from tests.chains.vectors import TEAM_ENGINE
from tests.identity.test_mfa import count_audit


@pytest.mark.parametrize("text, decimals, minor", [
    ("1", 18, 10**18), ("0.5", 18, 5 * 10**17), ("123.45", 6, 123_450_000),
    ("0.000000000000000001", 18, 1), ("1,000", 2, 100_000), (" 7 ", 0, 7),
])
def test_amounts_parse_without_floats(text: str, decimals: int, minor: int) -> None:
    assert service.parse_amount(text, decimals) == minor
    assert service.parse_amount(service.format_amount(minor, decimals), decimals) == minor


@pytest.mark.parametrize("text", ["", "0", "0.0", "-1", "1e18", "1.5.2", "abc", "0.1234567",
                                  "1" * 79, "NaN", "١"])
def test_bad_amounts_are_refused(text: str) -> None:
    with pytest.raises(AmountInvalid):
        service.parse_amount(text, 6)


def test_a_mistyped_phrase_error_names_positions_not_words() -> None:
    with pytest.raises(MnemonicInvalidWord) as caught:
        service.parse_phrase(TEAM_ENGINE.replace("letter", "lettre").replace("song", "sogn"))
    assert caught.value.extra == {"positions": [4, 6]}
    assert "lettre" not in str(caught.value.to_problem()) and "letter" not in caught.value.detail


def test_configuration_keeps_only_evm_networks_and_well_formed_tokens() -> None:
    config = service.ChainConfig.from_settings(Settings(
        chain_networks={"eth": "http://127.0.0.1:1/", "BTC": "http://x/", "DOGE": "http://x/",
                        "BSC": "ftp://nope"},
        chain_network_ids={"ETH": 1337, "SOL": 5},
        chain_tokens={"ETH": [
            {"address": "0x9858effd232b4033e47d90003d41ec34ecaeda94", "symbol": "USDT",
             "decimals": 6},
            {"address": "0x9858EfFD232B4033E47d90003D41EC34EcaEda95", "symbol": "BAD",
             "decimals": 6},
            {"address": "0x9858effd232b4033e47d90003d41ec34ecaeda94", "symbol": "",
             "decimals": 6},
            {"symbol": "NOADDR", "decimals": 6}]},
        chain_pin_max_failures=3, chain_pin_lockout_s=60))
    assert config.urls == {"ETH": "http://127.0.0.1:1/"}
    # BTC, TRON and SOL nodes relay transactions signed offline; DOGE is no chain here.
    assert config.node_urls == {"BTC": "http://x/"} and config.relay_configured("BTC")
    assert not config.relay_configured("SOL")
    assert config.expected_chain_id("ETH") == 1337 and config.expected_chain_id("BSC") == 56
    assert [t.symbol for t in config.tokens_of("ETH")] == ["USDT"]
    assert config.tokens_of("ETH")[0].address == "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"
    assert config.pin == service.PinPolicy(3, 60)
    with pytest.raises(service.TokenUnknown):
        config.token("ETH", "0x0000000000000000000000000000000000000001")


def test_secrets_do_not_show_in_reprs() -> None:
    secret = service.UnlockedSecret(uuid.uuid4(), private_key=b"\x11" * 32)
    shown = service.Revealed(("zoo",) * 12, "en", None)
    assert "11" * 8 not in repr(secret) and "zoo" not in repr(shown) and "zoo" not in str(shown)


def _wallet_row(client: TestClient, wallet_id: str) -> Wallet:
    async def read() -> Wallet:
        async with client.app.state.db.sessionmaker() as session:
            return await session.get(Wallet, uuid.UUID(wallet_id))

    return client.portal.call(read)


def test_the_stored_secret_needs_both_the_banks_keys_and_the_pin(client: TestClient) -> None:
    _, headers, _ = customer(client)
    first = import_wallet(client, headers, kind="mnemonic", mnemonic=TEAM_ENGINE)
    second = new_wallet(client, headers)
    row = _wallet_row(client, first["id"])
    assert row.sealed_enc is not None and b"BWV" not in row.sealed_enc  # bank-encrypted
    sealed = get_keyring().decrypt(row.sealed_enc, context=SEALED_CONTEXT)
    assert sealed.startswith(b"BWV") and b"team" not in sealed  # PIN-sealed underneath
    assert b'"entropy"' in vault.open_secret(sealed, PIN)  # the PIN opens it...
    with pytest.raises(WalletPinWrong):
        vault.open_secret(sealed, "000000")  # ...no other

    # A blob copied onto another wallet opens with the PIN but is refused: it names its wallet.
    async def swap() -> None:
        async with client.app.state.db.unit_of_work() as session:
            await session.execute(update(Wallet).where(Wallet.id == uuid.UUID(second["id"]))
                                  .values(sealed_enc=row.sealed_enc))

    client.portal.call(swap)
    r = client.post(f"/api/v1/chains/wallets/{second['id']}/sign-message", headers=headers,
                    json={"pin": PIN, "message": "x"})
    assert r.status_code == 422 and r.json()["code"] == "sealed_secret_invalid"


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_concurrent_pin_guesses_cannot_pass_the_limit(client: TestClient) -> None:
    _, headers, _ = customer(client)
    wallet = import_wallet(client, headers, kind="mnemonic", mnemonic=TEAM_ENGINE)
    path = f"/api/v1/chains/wallets/{wallet['id']}/sign-message"

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            return await asyncio.gather(*[
                ac.post(path, json={"pin": f"{n:06d}", "message": "x"}, headers=headers)
                for n in range(12)])

    statuses = sorted(r.status_code for r in client.portal.call(burst))
    assert statuses == [403] * 5 + [429] * 7  # five PINs tried, whatever the timing
    assert count_audit(client, "chains.pin.failed", wallet["id"]) == 5


def test_a_signed_transaction_that_never_left_is_sent_by_the_job(
        client: TestClient, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """The crash between recording and broadcasting: the job sends the same bytes, once."""
    _, headers, _ = customer(client)
    wallet = new_wallet(client, headers)
    mine, recipient = address_of(wallet, "ETH"), Account.create().address
    send_from(sandbox.url, sandbox.dev_keys[0], to=mine, value=ETHER // 10)

    async def crash(*args: Any, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr(service, "broadcast", crash)
    r = client.post(f"/api/v1/chains/wallets/{wallet['id']}/send", json={
        "chain": "ETH", "to": recipient, "amount_minor": 12345, "pin": PIN},
        headers={**headers, "Idempotency-Key": "crash-1"})
    assert r.status_code == 201 and r.json()["status"] == "signed"
    monkeypatch.undo()
    tx_id = uuid.UUID(r.json()["id"])
    config = client.app.state.chains_config

    async def job_pass(age_s: int = 0) -> str:
        async with client.app.state.db.unit_of_work() as session:
            row = await session.get(ChainTransaction, tx_id)
            row.created_at -= dt.timedelta(seconds=age_s)
        await tasks.track_once(client.app.state.db, config)
        async with client.app.state.db.sessionmaker() as session:
            return (await session.get(ChainTransaction, tx_id)).status

    assert client.portal.call(job_pass) == "signed"  # a request may still be sending it
    assert client.portal.call(job_pass, 60) == "confirmed"  # sent, mined, receipt read
    assert balance_on_chain(sandbox, recipient) == 12345

    async def events() -> list[str]:
        from bankwallet.core.outbox import OutboxEvent

        async with client.app.state.db.sessionmaker() as session:
            rows = (await session.execute(select(OutboxEvent).where(
                OutboxEvent.topic.like("chains.transaction.%")))).scalars().all()
        return sorted(e.topic for e in rows if e.payload["transaction_id"] == str(tx_id))

    assert client.portal.call(events) == ["chains.transaction.broadcast",
                                          "chains.transaction.confirmed"]
    assert client.portal.call(job_pass) == "confirmed"  # nothing more happens


def test_a_refused_broadcast_is_recorded_as_failed(client: TestClient, sandbox: Sandbox,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Another app spends the same key's nonce first: the network refuses ours, for good."""
    from bankwallet.connectors.chains.evm import EvmJsonRpcClient

    _, headers, _ = customer(client)
    key = Account.create()
    wallet = import_wallet(client, headers, kind="private_key", private_key=key.key.hex())
    send_from(sandbox.url, sandbox.dev_keys[0], to=key.address, value=ETHER // 10)
    send_from(sandbox.url, key.key.hex(), to=Account.create().address, value=1)  # nonce 0

    async def stale_nonce(self: Any, address: str) -> int:
        return 0

    monkeypatch.setattr(EvmJsonRpcClient, "get_nonce", stale_nonce)
    r = client.post(f"/api/v1/chains/wallets/{wallet['id']}/send", json={
        "chain": "ETH", "to": Account.create().address, "amount_minor": 5, "pin": PIN},
        headers={**headers, "Idempotency-Key": "stale"})
    assert r.status_code == 422 and r.json()["code"] == "chain_transaction_rejected"
    assert r.json()["reason"] == "nonce_too_low"
    monkeypatch.undo()

    async def recorded() -> list[tuple[str, str | None]]:
        async with client.app.state.db.sessionmaker() as session:
            return [(t.status, t.failure_code) for t in (await session.execute(
                select(ChainTransaction).where(ChainTransaction.wallet_id
                                               == uuid.UUID(wallet["id"])))).scalars()]

    assert client.portal.call(recorded) == [("failed", "nonce_too_low")]
    again = client.post(f"/api/v1/chains/wallets/{wallet['id']}/send", json={
        "chain": "ETH", "to": Account.create().address, "amount_minor": 5, "pin": PIN},
        headers={**headers, "Idempotency-Key": "stale"})
    assert again.status_code == 409  # another body under the same key
    listed = client.get(f"/api/v1/chains/wallets/{wallet['id']}/transactions", headers=headers)
    assert [t["status"] for t in listed.json()["transactions"]] == ["failed"]


def test_the_tracking_job_starts_only_with_a_network(sandbox: Sandbox, db_url: str) -> None:
    class App:
        class state:  # mimics FastAPI's app.state
            settings = chain_settings(db_url, sandbox)
            db = None

    jobs = tasks.startup(App, run_workers=True)  # type: ignore[arg-type]
    assert len(jobs) == 1
    jobs[0].close()
    assert tasks.startup(App, run_workers=False) == []  # type: ignore[arg-type]
    App.state.settings = Settings(database_url=db_url)
    assert tasks.startup(App, run_workers=True) == []  # type: ignore[arg-type]


def test_wallet_count_is_bounded(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "MAX_WALLETS_PER_USER", 2)
    _, headers, _ = customer(client)
    for n in range(2):
        import_wallet(client, headers, kind="watch_only",
                      addresses=[{"chain": "ETH", "address": Account.create().address}])
    r = client.post("/api/v1/chains/wallets", headers=headers, json={
        "kind": "watch_only", "name": "third",
        "addresses": [{"chain": "ETH", "address": Account.create().address}]})
    assert r.status_code == 409 and r.json()["code"] == "wallet_limit_reached"
    assert len(client.get("/api/v1/chains/wallets", headers=headers).json()["wallets"]) == 2


def test_a_wallet_sealed_more_cheaply_is_sealed_again_at_the_next_right_pin(
        make_client: Any) -> None:
    cheap = make_client()  # the tests' cheap Argon2
    _, headers, _ = customer(cheap)
    wallet = import_wallet(cheap, headers, kind="mnemonic", mnemonic=TEAM_ENGINE)
    before = get_keyring().decrypt(_wallet_row(cheap, wallet["id"]).sealed_enc,
                                   context=SEALED_CONTEXT)
    costly = make_client(chain_pin_kdf_memory_kib=2048, chain_pin_kdf_time_cost=2)
    path = f"/api/v1/chains/wallets/{wallet['id']}/sign-message"
    assert costly.post(path, json={"pin": "999999", "message": "x"},
                       headers=headers).status_code == 403
    assert _wallet_row(costly, wallet["id"]).sealed_enc is not None
    assert get_keyring().decrypt(_wallet_row(costly, wallet["id"]).sealed_enc,
                                 context=SEALED_CONTEXT) == before  # a wrong PIN changes nothing
    assert costly.post(path, json={"pin": PIN, "message": "x"}, headers=headers).status_code == 200
    after = get_keyring().decrypt(_wallet_row(costly, wallet["id"]).sealed_enc,
                                  context=SEALED_CONTEXT)
    assert after != before and not vault.needs_reseal(after, vault.KdfCost(2, 2048, 4))
    assert vault.needs_reseal(before, vault.KdfCost(2, 2048, 4))
    assert cheap.post(path, json={"pin": PIN, "message": "x"}, headers=headers).status_code == 200
