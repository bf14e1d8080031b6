"""Balances, the accounts behind them, and the limit counters, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from fastapi.testclient import TestClient

from bankwallet.core import outbox
from bankwallet.identity import kyc
from bankwallet.ledger import service as ledger_service
from bankwallet.ledger.types import TransferFlags, TransferIn
from bankwallet.wallets import service
from bankwallet.wallets.codes import Code
from identity.test_api import bearer, client, key_file, sign_up, unique_phone  # noqa: F401


def run(client: TestClient, coroutine_fn, *args):
    return client.portal.call(coroutine_fn, *args)


def fund(client: TestClient, user_id: uuid.UUID, amount_minor: int, *, pending: bool = False,
         currency: str = "CNY") -> uuid.UUID:
    async def go() -> uuid.UUID:
        ledger = client.app.state.ledger
        await service.open_wallet(ledger, user_id, currency)
        transfer_id = uuid.uuid4()
        await ledger_service.submit_one(ledger, TransferIn(
            id=transfer_id, amount=amount_minor, ledger=currency, code=Code.TOPUP,
            debit_account_id=service.system_account_id(service.SystemAccount.BANK_SETTLEMENT,
                                                        currency),
            credit_account_id=service.wallet_account_id(user_id, currency),
            flags=TransferFlags.PENDING if pending else 0, timeout_s=3600 if pending else 0))
        return transfer_id

    return run(client, go)


def test_a_new_customer_gets_a_wallet_and_sees_its_balances(client: TestClient) -> None:
    created = sign_up(client, unique_phone())
    user_id = uuid.UUID(created["user"]["id"])

    async def deliver() -> None:
        # The database is shared with other tests: other events may be queued before ours.
        for _ in range(100):
            if await service.balances(client.app.state.ledger, user_id):
                return
            await outbox.dispatch_once(client.app.state.db, limit=1000)

    # The user.registered consumer opens the CNY wallet.
    from bankwallet.wallets import tasks as wallet_tasks
    wallet_tasks.startup(client.app, run_workers=False)
    run(client, deliver)
    assert [b.currency for b in run(client, service.balances, client.app.state.ledger, user_id)
            ] == ["CNY"]
    fund(client, user_id, 12_345)
    fund(client, user_id, 500, pending=True)
    r = client.get("/api/v1/wallet", headers=bearer(created["token"]))
    assert r.status_code == 200, r.text
    cny = r.json()["balances"][0]
    assert cny == {"currency": "CNY", "available_minor": 12_345, "posted_minor": 12_345,
                   "incoming_minor": 500, "outgoing_minor": 0}
    r = client.post("/api/v1/wallet/balances", headers=bearer(created["token"]),
                    json={"currency": "usd"})
    assert r.status_code == 201 and r.json()["currency"] == "USD"
    assert [b["currency"] for b in client.get("/api/v1/wallet", headers=bearer(
        created["token"])).json()["balances"]] == ["CNY", "USD"]
    r = client.post("/api/v1/wallet/balances", headers=bearer(created["token"]),
                    json={"currency": "XAU"})
    assert r.status_code == 422 and r.json()["code"] == "currency_unsupported"
    assert client.get("/api/v1/wallet").status_code == 401


def test_account_ids_are_deterministic_and_distinct() -> None:
    user = uuid.uuid4()
    assert service.wallet_account_id(user, "CNY") == service.wallet_account_id(user, "CNY")
    ids = {service.wallet_account_id(user, c) for c in service.SUPPORTED_CURRENCIES}
    ids |= {service.system_account_id(k, c) for k in service.SystemAccount
            for c in service.SUPPORTED_CURRENCIES}
    assert len(ids) == len(service.SUPPORTED_CURRENCIES) * (1 + len(service.SystemAccount))


def test_the_bank_day_turns_at_midnight_in_shanghai() -> None:
    # 16:30 UTC is 00:30 the next day in Asia/Shanghai (UTC+8).
    assert service.bank_today(dt.datetime(2026, 11, 24, 16, 30, tzinfo=dt.UTC)) == \
        dt.date(2026, 11, 25)
    assert service.bank_today(dt.datetime(2026, 11, 24, 15, 30, tzinfo=dt.UTC)) == \
        dt.date(2026, 11, 24)


def test_outflows_count_against_the_daily_limit_and_can_be_released(client: TestClient) -> None:
    user_id = uuid.UUID(sign_up(client, unique_phone())["user"]["id"])
    limits = kyc.limits_for(0)
    day = dt.date(2026, 1, 2)

    async def reserve(amount: int) -> None:
        async with client.app.state.db.unit_of_work() as session:
            await service.reserve_outflow(session, user_id=user_id, amount_minor=amount,
                                          currency="CNY", day=day)

    async def release(amount: int) -> None:
        async with client.app.state.db.unit_of_work() as session:
            await service.release_outflow(session, user_id=user_id, amount_minor=amount,
                                          currency="CNY", day=day)

    with pytest.raises(kyc.LimitExceeded) as single:
        run(client, reserve, limits.single_minor + 1)
    assert single.value.extra["limit"] == "single"
    run(client, reserve, limits.single_minor)
    run(client, reserve, limits.single_minor)  # 1,000.00: the whole daily limit
    with pytest.raises(kyc.LimitExceeded) as daily:
        run(client, reserve, 1)
    assert daily.value.extra == {"limit": "daily", "limit_minor": limits.daily_minor,
                                 "remaining_minor": 0, "currency": "CNY", "tier": 0}
    run(client, release, 300)
    run(client, reserve, 300)
    with pytest.raises(kyc.LimitExceeded):
        run(client, reserve, 1)


def test_the_balance_cap_limits_money_coming_in(client: TestClient) -> None:
    user_id = uuid.UUID(sign_up(client, unique_phone())["user"]["id"])
    cap = kyc.limits_for(0).balance_minor
    fund(client, user_id, cap - 1_000)

    async def inflow(amount: int) -> None:
        async with client.app.state.db.unit_of_work() as session:
            await service.check_inflow(session, client.app.state.ledger, user_id=user_id,
                                       amount_minor=amount, currency="CNY")

    run(client, inflow, 1_000)
    with pytest.raises(kyc.LimitExceeded) as over:
        run(client, inflow, 1_001)
    assert over.value.extra["limit"] == "balance" and over.value.extra["remaining_minor"] == 1_000


def test_concurrent_outflows_never_pass_the_daily_limit(client: TestClient) -> None:
    user_id = uuid.UUID(sign_up(client, unique_phone())["user"]["id"])
    daily = kyc.limits_for(0).daily_minor
    amount = daily // 10  # ten fit, the eleventh and later must not

    async def attempt() -> bool:
        try:
            async with client.app.state.db.unit_of_work() as session:
                await service.reserve_outflow(session, user_id=user_id, amount_minor=amount,
                                              currency="CNY", day=dt.date(2026, 3, 4))
                await asyncio.sleep(0.01)  # hold the lock a moment: the others must wait
            return True
        except kyc.LimitExceeded:
            return False

    async def burst() -> list[bool]:
        return await asyncio.gather(*[attempt() for _ in range(25)])

    assert sum(run(client, burst)) == 10
