"""Helpers of the transfers tests: customers, funding from the bank, balances, ledger checks."""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi.testclient import TestClient
from identity.test_api import STRONG, bearer, sign_up, unique_email, unique_phone
from sqlalchemy import func, select, text, update

from bankwallet.core import outbox
from bankwallet.ledger import service as ledger_service
from bankwallet.ledger.types import TransferIn
from bankwallet.transfers.models import MoneyRequest, Transfer
from bankwallet.wallets import service as wallets
from bankwallet.wallets.codes import Code


@dataclass(frozen=True)
class Customer:
    id: uuid.UUID
    token: str
    login: str  # as typed at sign-up
    session_id: uuid.UUID

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


@functools.cache
def _password_hash() -> str:
    from bankwallet.identity import passwords

    return passwords.hash_password(STRONG)


def customer(client: TestClient, *, email: bool = False, funded: int = 0,
             signed_up: bool = False) -> Customer:
    """A verified customer with an API session and a CNY wallet. Made directly through
    identity's internals (sign-up by HTTP costs a password hash and a code round trip each;
    ``signed_up=True`` takes that path), with the password ``STRONG``."""
    login = unique_email() if email else unique_phone()
    if signed_up:
        created = sign_up(client, login)
        who = Customer(uuid.UUID(created["user"]["id"]), created["token"], login,
                       uuid.UUID(created["session_id"]))
    else:
        who = client.portal.call(_make_customer, client.app.state.db, login)
    call(client, wallets.open_wallet, client.app.state.ledger, who.id)
    if funded:
        fund(client, who.id, funded)
    return who


async def _make_customer(db, login: str) -> Customer:
    from bankwallet.identity import service as identity

    async with db.unit_of_work() as session:
        user = identity._new_user(identity.parse_login(login), password_hash=_password_hash(),
                                  role="customer", locale="en")
        session.add(user)
        await session.flush()
        new = await identity._open_session(session, user, kind="api",
                                           info=identity.RequestInfo(), second_factor=True)
        return Customer(user.id, new.token, login, new.session.id)


def web_session(client: TestClient, who: Customer) -> None:
    """A cookie session for ``who`` without the login form's password check."""
    async def go() -> str:
        from bankwallet.identity import service as identity

        async with client.app.state.db.unit_of_work() as session:
            user = await identity.get_user(session, who.id)
            new = await identity._open_session(session, user, kind="web",
                                               info=identity.RequestInfo(), second_factor=True)
            return new.token

    client.cookies.set("bw_session", client.portal.call(go))


def call(client: TestClient, fn, *args, **kwargs) -> Any:
    async def go():
        return await fn(*args, **kwargs)

    return client.portal.call(go)


def fund(client: TestClient, user_id: uuid.UUID, amount_minor: int,
         currency: str = "CNY") -> None:
    """Money from the bank's settlement account straight into the wallet (a test top-up)."""
    async def go() -> None:
        ledger = client.app.state.ledger
        await wallets.open_wallet(ledger, user_id, currency)
        await ledger_service.submit_one(ledger, TransferIn(
            id=uuid.uuid4(), amount=amount_minor, ledger=currency, code=Code.TOPUP,
            debit_account_id=wallets.system_account_id(wallets.SystemAccount.BANK_SETTLEMENT,
                                                        currency),
            credit_account_id=wallets.wallet_account_id(user_id, currency)))

    client.portal.call(go)


def balance(client: TestClient, user_id: uuid.UUID, currency: str = "CNY") -> int:
    return call(client, wallets.balance, client.app.state.ledger, user_id, currency).posted_minor


def snapshot(client: TestClient, *users: Customer, currency: str = "CNY") -> dict:
    """Every balance field of the users' wallets: equal snapshots mean nothing moved."""
    async def go() -> dict:
        ids = [wallets.wallet_account_id(u.id, currency) for u in users]
        found = await client.app.state.ledger.lookup_accounts(ids)
        return {i: (a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending)
                for i, a in found.items()}

    return client.portal.call(go)


def send(client: TestClient, sender: Customer, to: str, amount_minor: Any, *,
         key: str | None = None, **extra: Any) -> httpx.Response:
    headers = {**sender.headers, "Idempotency-Key": key or uuid.uuid4().hex}
    if key == "":
        headers.pop("Idempotency-Key")
    return client.post("/api/v1/transfers", headers=headers,
                       json={"to": to, "amount_minor": amount_minor, **extra})


def ledger_transfer(client: TestClient, transfer_id: uuid.UUID):
    async def go():
        return (await client.app.state.ledger.lookup_transfers([transfer_id])).get(transfer_id)

    return client.portal.call(go)


def rows(client: TestClient, model, *where) -> list:
    async def go() -> list:
        async with client.app.state.db.sessionmaker() as session:
            return list((await session.execute(select(model).where(*where))).scalars())

    return client.portal.call(go)


def transfers_of(client: TestClient, payer: Customer) -> list[Transfer]:
    return rows(client, Transfer, Transfer.payer_user_id == payer.id)


def requests_of(client: TestClient, requester: Customer) -> list[MoneyRequest]:
    return rows(client, MoneyRequest, MoneyRequest.requester_user_id == requester.id)


def events(client: TestClient, topic: str, ref: str) -> list[dict]:
    async def go() -> list[dict]:
        async with client.app.state.db.sessionmaker() as session:
            found = await session.execute(select(outbox.OutboxEvent.payload).where(
                outbox.OutboxEvent.topic == topic))
            return [p for p in found.scalars() if ref in p.values()]

    return client.portal.call(go)


def sql(client: TestClient, statement: str, **params: Any) -> None:
    async def go() -> None:
        async with client.app.state.db.unit_of_work() as session:
            await session.execute(text(statement), params)

    client.portal.call(go)


def set_status(client: TestClient, user: Customer, status: str) -> None:
    from bankwallet.identity.models import User

    async def go() -> None:
        async with client.app.state.db.unit_of_work() as session:
            await session.execute(update(User).where(User.id == user.id).values(status=status))

    client.portal.call(go)


def grant_tier(client: TestClient, user: Customer, tier: int) -> None:
    from bankwallet.identity import kyc

    async def go() -> None:
        async with client.app.state.db.unit_of_work() as session:
            for step in range(1, tier + 1):
                await kyc.grant_tier(session, user.id, step, reason="test")

    client.portal.call(go)


def second_factor_at(client: TestClient, user: Customer, at: dt.datetime | None) -> None:
    """Age (or refresh) the session's proof of a second factor."""
    from bankwallet.identity.models import Session

    async def go() -> None:
        async with client.app.state.db.unit_of_work() as session:
            await session.execute(update(Session).where(Session.id == user.session_id)
                                  .values(second_factor_at=at))

    client.portal.call(go)


def outflow_today(client: TestClient, user: Customer, currency: str = "CNY") -> int:
    from bankwallet.wallets.models import DailyOutflow

    async def go() -> int:
        async with client.app.state.db.sessionmaker() as session:
            return (await session.execute(select(func.coalesce(func.sum(
                DailyOutflow.amount_minor), 0)).where(DailyOutflow.user_id == user.id,
                                                      DailyOutflow.currency == currency))
                    ).scalar_one()

    return client.portal.call(go)


def problem(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["code"] == code, body
    return body
