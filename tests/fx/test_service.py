"""What must never happen: half an exchange (linked legs), a crash that loses or doubles an
exchange (healing), and one quote exchanged twice under concurrency (PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence

import httpx
import pytest
from fastapi.testclient import TestClient

from bankwallet.fx import service
from bankwallet.fx.errors import ExchangeFailed
from bankwallet.identity import service as identity_service
from bankwallet.ledger.types import Outcome, TransferIn
from bankwallet.wallets.codes import Code

from .support import (
    Customer,
    balances,
    exchange,
    exchanges_of,
    fund,
    key,
    money_moved,
    new_customer,
    new_quote,
    outflow_today,
    position,
    stored_exchange,
    stored_quote,
)


class LedgerProxy:
    """The real ledger, with ``create_transfers`` changed by a test."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


class BrokenBuyLeg(LedgerProxy):
    """The buy leg credits an account that does not exist: the ledger must refuse it, and
    with it the (valid) sell leg linked to it."""

    async def create_transfers(self, transfers: Sequence[TransferIn]) -> list[Outcome]:
        return await self.inner.create_transfers([
            dataclasses.replace(t, credit_account_id=uuid.uuid4()) if t.code == Code.FX_BUY
            else t for t in transfers])


class CrashBefore(LedgerProxy):
    async def create_transfers(self, transfers: Sequence[TransferIn]) -> list[Outcome]:
        raise RuntimeError("the process died before the ledger heard of it")


class CrashAfter(LedgerProxy):
    async def create_transfers(self, transfers: Sequence[TransferIn]) -> list[Outcome]:
        await self.inner.create_transfers(transfers)
        raise RuntimeError("the process died before the outcome was recorded")


async def _execute(client: TestClient, ledger, customer: Customer, quote_id: str,
                   idempotency_key: str):
    async with client.app.state.db.unit_of_work() as session:
        auth = await identity_service.authenticate(session, customer.token)
        return await service.execute(session, ledger, auth, quote_id=uuid.UUID(quote_id),
                                     idempotency_key=idempotency_key)


def test_when_the_buy_leg_fails_the_sell_leg_does_not_apply(client: TestClient) -> None:
    mia = new_customer(client)
    fund(client, mia.user_id, 300_00)
    cny_position = position(client, "CNY")
    q = new_quote(client, mia, sell_minor=100_00)
    real = client.app.state.ledger
    client.app.state.ledger = BrokenBuyLeg(real)
    try:
        k = key()
        r = exchange(client, mia, q["id"], k)
    finally:
        client.app.state.ledger = real
    assert r.status_code == 409 and r.json()["code"] == "exchange_failed", r.text
    assert r.json()["reason"] == "credit_account_not_found"
    assert balances(client, mia.user_id) == {"CNY": 300_00, "USD": 0}
    assert position(client, "CNY") == cny_position
    row = stored_exchange(client, service.exchange_id_for(mia.user_id, k))
    assert row.status == "failed" and row.failure_reason == "credit_account_not_found"
    found = client.portal.call(real.lookup_transfers, [row.sell_transfer_id,
                                                       row.buy_transfer_id])
    assert found == {}  # neither leg exists
    assert outflow_today(client, mia.user_id) == 0  # the reserved outflow was given back
    (event,) = money_moved(client, row.id)
    assert event["status"] == "failed"
    # The failure is final for this key, and the quote is spent.
    replay = exchange(client, mia, q["id"], k)
    assert replay.status_code == 409 and replay.headers["idempotent-replayed"] == "true"
    assert exchange(client, mia, q["id"], key()).json()["code"] == "quote_used"


def test_a_ledger_refusal_after_the_intent_is_recorded_as_failed(client: TestClient) -> None:
    """The balance passed the early check, then was spent before the legs were submitted."""
    noah = new_customer(client)
    fund(client, noah.user_id, 100_00)
    q = new_quote(client, noah, sell_minor=100_00)

    class SpendFirst(LedgerProxy):
        async def create_transfers(self, transfers):
            if any(t.code == Code.FX_SELL for t in transfers):
                from bankwallet.wallets import service as wallets
                await self.inner.create_transfers([TransferIn(
                    id=uuid.uuid4(), amount=1, ledger="CNY", code=Code.P2P,
                    debit_account_id=wallets.wallet_account_id(noah.user_id, "CNY"),
                    credit_account_id=wallets.system_account_id(
                        wallets.SystemAccount.FEES, "CNY"))])
            return await self.inner.create_transfers(transfers)

    k = key()
    with pytest.raises(Exception) as refused:
        client.portal.call(_execute, client, SpendFirst(client.app.state.ledger), noah,
                           q["id"], k)
    assert refused.value.code == "insufficient_funds"
    row = stored_exchange(client, service.exchange_id_for(noah.user_id, k))
    assert row.status == "failed" and row.failure_reason == "exceeds_credits"
    assert balances(client, noah.user_id) == {"CNY": 99_99, "USD": 0}
    assert outflow_today(client, noah.user_id) == 0


@pytest.mark.parametrize("crash", [CrashBefore, CrashAfter])
def test_a_crash_between_intent_and_outcome_is_healed_exactly_once(client: TestClient,
                                                                   crash) -> None:
    olga = new_customer(client)
    fund(client, olga.user_id, 300_00)
    q = new_quote(client, olga, sell_minor=100_00)
    k = key()
    with pytest.raises(RuntimeError):
        client.portal.call(_execute, client, crash(client.app.state.ledger), olga, q["id"], k)
    exchange_id = service.exchange_id_for(olga.user_id, k)
    assert stored_exchange(client, exchange_id).status == "pending"
    assert stored_quote(client, q["id"]).used_at is not None
    db, ledger = client.app.state.db, client.app.state.ledger
    # Too young to heal: the request that made it may still be finishing.
    client.portal.call(lambda: service.heal_pending(db, ledger))
    assert stored_exchange(client, exchange_id).status == "pending"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=service.PENDING_GRACE_S + 1)
    assert client.portal.call(lambda: service.heal_pending(db, ledger, now=later)) >= 1
    assert stored_exchange(client, exchange_id).status == "posted"
    assert balances(client, olga.user_id) == {"CNY": 200_00, "USD": 14_01}
    client.portal.call(lambda: service.heal_pending(db, ledger, now=later))
    assert balances(client, olga.user_id) == {"CNY": 200_00, "USD": 14_01}
    assert [e["status"] for e in money_moved(client, exchange_id)] == ["posted"]
    # The customer's retry with the same key answers the healed exchange.
    done = client.portal.call(_execute, client, ledger, olga, q["id"], k)
    assert done.id == exchange_id and done.status == "posted"
    assert outflow_today(client, olga.user_id) == 100_00


def test_a_retry_with_the_same_key_finishes_a_crashed_exchange(client: TestClient) -> None:
    pia = new_customer(client)
    fund(client, pia.user_id, 300_00)
    q = new_quote(client, pia, sell_minor=100_00)
    k = key()
    with pytest.raises(RuntimeError):
        client.portal.call(_execute, client, CrashAfter(client.app.state.ledger), pia,
                           q["id"], k)
    r = exchange(client, pia, q["id"], k)  # the API's claim was released by the crash
    assert r.status_code == 201 and r.json()["status"] == "posted"
    assert balances(client, pia.user_id) == {"CNY": 200_00, "USD": 14_01}
    assert exchanges_of(client, pia.user_id) == 1


def test_a_failed_exchange_healed_late_is_failed_once(client: TestClient) -> None:
    quinn = new_customer(client)
    fund(client, quinn.user_id, 300_00)
    q = new_quote(client, quinn, sell_minor=100_00)
    k = key()
    with pytest.raises(RuntimeError):
        client.portal.call(_execute, client, CrashBefore(client.app.state.ledger), quinn,
                           q["id"], k)
    exchange_id = service.exchange_id_for(quinn.user_id, k)
    db = client.app.state.db
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=service.PENDING_GRACE_S + 1)
    broken = BrokenBuyLeg(client.app.state.ledger)
    client.portal.call(lambda: service.heal_pending(db, broken, now=later))
    row = stored_exchange(client, exchange_id)
    assert row.status == "failed" and outflow_today(client, quinn.user_id) == 0
    with pytest.raises(ExchangeFailed):
        client.portal.call(_execute, client, client.app.state.ledger, quinn, q["id"], k)
    assert balances(client, quinn.user_id) == {"CNY": 300_00, "USD": 0}


# -- concurrency (PostgreSQL) ----------------------------------------------------------------


async def _burst(client: TestClient, customer: Customer, quote_id: str, keys: list[str]
                 ) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=client.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
        return await asyncio.gather(*[
            ac.post("/api/v1/fx/exchanges", json={"quote_id": quote_id},
                    headers={**customer.headers, "Idempotency-Key": k}) for k in keys])


@pytest.mark.postgres
def test_one_quote_executed_concurrently_exchanges_once(pg_client: TestClient) -> None:
    client = pg_client
    rose = new_customer(client)
    fund(client, rose.user_id, 300_00)
    q = new_quote(client, rose, sell_minor=100_00)
    answers = client.portal.call(_burst, client, rose, q["id"], [key() for _ in range(10)])
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(201) == 1, [r.text for r in answers]
    assert all(r.json()["code"] == "quote_used" for r in answers if r.status_code != 201)
    assert balances(client, rose.user_id) == {"CNY": 200_00, "USD": 14_01}
    assert exchanges_of(client, rose.user_id) == 1
    assert outflow_today(client, rose.user_id) == 100_00


@pytest.mark.postgres
def test_concurrent_duplicates_of_one_key_exchange_once(pg_client: TestClient) -> None:
    client = pg_client
    sam = new_customer(client)
    fund(client, sam.user_id, 300_00)
    q = new_quote(client, sam, sell_minor=100_00)
    k = key()
    answers = client.portal.call(_burst, client, sam, q["id"], [k] * 10)
    assert {r.status_code for r in answers} <= {201, 409}
    created = {r.json()["id"] for r in answers if r.status_code == 201}
    assert len(created) == 1
    assert all(r.json()["code"] == "idempotency_request_in_progress"
               for r in answers if r.status_code == 409)
    assert balances(client, sam.user_id) == {"CNY": 200_00, "USD": 14_01}


@pytest.mark.postgres
def test_concurrent_exchanges_of_one_customer_never_overdraw(pg_client: TestClient) -> None:
    """Five quotes of 100 CNY each against 300 CNY: three go through, the rest are refused,
    and no balance goes negative (the ledger's flags decide, the early check only helps)."""
    client = pg_client
    tess = new_customer(client)
    fund(client, tess.user_id, 300_00)
    quotes = [new_quote(client, tess, sell_minor=100_00)["id"] for _ in range(5)]

    async def all_at_once() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            return await asyncio.gather(*[
                ac.post("/api/v1/fx/exchanges", json={"quote_id": qid},
                        headers={**tess.headers, "Idempotency-Key": key()}) for qid in quotes])

    answers = client.portal.call(all_at_once)
    assert sorted(r.status_code for r in answers) == [201, 201, 201, 422, 422], \
        [r.text for r in answers]
    assert all(r.json()["code"] == "insufficient_funds" for r in answers
               if r.status_code == 422)
    assert balances(client, tess.user_id) == {"CNY": 0, "USD": 3 * 14_01}
    assert outflow_today(client, tess.user_id) == 300_00
