"""Helpers of the fx tests: customers, funding straight from the ledger, reading state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
from fastapi.testclient import TestClient
from identity.test_api import bearer, sign_up, unique_phone
from sqlalchemy import func, select

from bankwallet.core import outbox
from bankwallet.fx.models import Exchange, Quote
from bankwallet.ledger import service as ledger_service
from bankwallet.ledger.types import TransferIn
from bankwallet.wallets import service as wallets
from bankwallet.wallets.codes import Code
from bankwallet.wallets.models import DailyOutflow


@dataclass(frozen=True)
class Customer:
    token: str
    user_id: uuid.UUID
    session_id: str
    phone: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


def new_customer(client: TestClient) -> Customer:
    phone = unique_phone()
    created = sign_up(client, phone)
    return Customer(created["token"], uuid.UUID(created["user"]["id"]),
                    created["session_id"], phone)


def fund(client: TestClient, user_id: uuid.UUID, amount_minor: int,
         currency: str = "CNY") -> None:
    """Money into the customer's wallet from the bank's settlement account (a top-up)."""

    async def go() -> None:
        ledger = client.app.state.ledger
        await wallets.open_wallet(ledger, user_id, currency)
        await ledger_service.submit_one(ledger, TransferIn(
            id=uuid.uuid4(), amount=amount_minor, ledger=currency, code=Code.TOPUP,
            debit_account_id=wallets.system_account_id(wallets.SystemAccount.BANK_SETTLEMENT,
                                                       currency),
            credit_account_id=wallets.wallet_account_id(user_id, currency)))

    client.portal.call(go)


def balance(client: TestClient, user_id: uuid.UUID, currency: str) -> int:
    return client.portal.call(wallets.balance, client.app.state.ledger, user_id,
                              currency).posted_minor


def balances(client: TestClient, user_id: uuid.UUID) -> dict[str, int]:
    found = client.portal.call(wallets.balances, client.app.state.ledger, user_id)
    return {b.currency: b.posted_minor for b in found}


def position(client: TestClient, currency: str) -> int:
    """The bank's FX_POSITION in ``currency`` (credits less debits)."""
    account_id = wallets.system_account_id(wallets.SystemAccount.FX_POSITION, currency)
    found = client.portal.call(client.app.state.ledger.lookup_accounts, [account_id])
    return found[account_id].balance if account_id in found else 0


def quote(client: TestClient, customer: Customer, sell: str = "CNY", buy: str = "USD", *,
          sell_minor: int | None = None, buy_minor: int | None = None) -> httpx.Response:
    body: dict = {"sell_currency": sell, "buy_currency": buy}
    if sell_minor is not None:
        body["sell_amount_minor"] = sell_minor
    if buy_minor is not None:
        body["buy_amount_minor"] = buy_minor
    return client.post("/api/v1/fx/quotes", headers=customer.headers, json=body)


def new_quote(client: TestClient, customer: Customer, sell: str = "CNY", buy: str = "USD", *,
              sell_minor: int | None = None, buy_minor: int | None = None) -> dict:
    r = quote(client, customer, sell, buy, sell_minor=sell_minor, buy_minor=buy_minor)
    assert r.status_code == 201, r.text
    return r.json()


def exchange(client: TestClient, customer: Customer, quote_id: str,
             key: str | None = None) -> httpx.Response:
    headers = dict(customer.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post("/api/v1/fx/exchanges", headers=headers, json={"quote_id": quote_id})


def key() -> str:
    return f"fx-{uuid.uuid4().hex}"


def _scalar(client: TestClient, query):
    async def run():
        async with client.app.state.db.sessionmaker() as session:
            return (await session.execute(query)).scalar_one()

    return client.portal.call(run)


def exchanges_of(client: TestClient, user_id: uuid.UUID) -> int:
    return _scalar(client, select(func.count()).select_from(Exchange)
                   .where(Exchange.user_id == user_id))


def stored_exchange(client: TestClient, exchange_id: uuid.UUID) -> Exchange | None:
    async def run():
        async with client.app.state.db.sessionmaker() as session:
            return await session.get(Exchange, exchange_id)

    return client.portal.call(run)


def stored_quote(client: TestClient, quote_id: str) -> Quote:
    async def run():
        async with client.app.state.db.sessionmaker() as session:
            return await session.get(Quote, uuid.UUID(quote_id))

    return client.portal.call(run)


def outflow_today(client: TestClient, user_id: uuid.UUID) -> int:
    return _scalar(client, select(func.coalesce(func.sum(DailyOutflow.amount_minor), 0))
                   .where(DailyOutflow.user_id == user_id,
                          DailyOutflow.day == wallets.bank_today()))


def money_moved(client: TestClient, ref: uuid.UUID | str) -> list[dict]:
    async def run() -> list[dict]:
        async with client.app.state.db.sessionmaker() as session:
            rows = (await session.execute(
                select(outbox.OutboxEvent.payload).where(
                    outbox.OutboxEvent.topic == "money.moved",
                    outbox.OutboxEvent.key.is_not(None)))).scalars().all()
        return [p for p in rows if p.get("ref") == str(ref)]

    return client.portal.call(run)
