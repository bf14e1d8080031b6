"""Money movements made the way the money-moving domains make them: ledger transfers between
the customers' wallets and the bank's system accounts, with the ``user_data`` history reads
(docs/money-movement.md), at times the tests choose."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

from bankwallet.core.db import utcnow
from bankwallet.ledger import service as ledger_service
from bankwallet.ledger import store as ledger_store
from bankwallet.ledger.types import TransferFlags, TransferIn
from bankwallet.wallets import service as wallets
from bankwallet.wallets.codes import KIND_OF_CODE, Code
from identity.test_api import bearer, client, key_file, sign_up, unique_phone  # noqa: F401

BANK = wallets.SystemAccount.BANK_SETTLEMENT
FX = wallets.SystemAccount.FX_POSITION


@dataclass
class Clock:
    """The ledger's clock, set by a test (None: the real one)."""

    now: dt.datetime | None = None

    def __call__(self) -> dt.datetime:
        return self.now or utcnow()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    fake = Clock()
    monkeypatch.setattr(ledger_store, "utcnow", fake)
    yield fake


@dataclass
class Customer:
    id: uuid.UUID
    token: str
    login: str
    headers: dict[str, str] = field(default_factory=dict)


def customer(client: TestClient, login: str | None = None) -> Customer:
    login = login or unique_phone()
    created = sign_up(client, login)
    return Customer(uuid.UUID(created["user"]["id"]), created["token"], login,
                    bearer(created["token"]))


def run(client: TestClient, fn, *args, **kwargs):
    async def call():
        return await fn(*args, **kwargs)

    return client.portal.call(call)


class Mover:
    """Submits transfers as the funding, transfers and fx domains will."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.ledger = client.app.state.ledger

    def open(self, user: Customer, currency: str = "CNY") -> None:
        run(self.client, wallets.open_wallet, self.ledger, user.id, currency)

    def submit(self, *transfers: TransferIn) -> None:
        outcomes = run(self.client, ledger_service.submit, self.ledger, list(transfers))
        assert all(o.ok for o in outcomes), [o.result for o in outcomes]

    @staticmethod
    def data(code: Code, ref: str, *, frm: str, to: str, note: str = "") -> dict:
        return {"kind": KIND_OF_CODE[code], "ref": ref, "from": frm, "to": to, "note": note}

    def topup(self, user: Customer, amount: int, *, currency: str = "CNY",
              note: str = "") -> uuid.UUID:
        return self.topups(user, [(amount, note)], currency=currency)[0]

    def topups(self, user: Customer, amounts: list[tuple[int, str]], *,
               currency: str = "CNY") -> list[uuid.UUID]:
        """Several top-ups in one ledger call (in this order)."""
        ids = [uuid.uuid4() for _ in amounts]
        self.submit(*(TransferIn(
            id=tid, debit_account_id=wallets.system_account_id(BANK, currency),
            credit_account_id=wallets.wallet_account_id(user.id, currency), amount=amount,
            ledger=currency, code=Code.TOPUP,
            user_data=self.data(Code.TOPUP, str(tid), frm="Bank account ····1234",
                                to="Me", note=note)) for tid, (amount, note) in zip(
                                    ids, amounts, strict=True)))
        return ids

    def withdrawal_hold(self, user: Customer, amount: int, *, timeout_s: int = 0) -> uuid.UUID:
        tid = uuid.uuid4()
        self.submit(TransferIn(
            id=tid, debit_account_id=wallets.wallet_account_id(user.id, "CNY"),
            credit_account_id=wallets.system_account_id(BANK, "CNY"), amount=amount,
            ledger="CNY", code=Code.WITHDRAWAL, flags=TransferFlags.PENDING,
            timeout_s=timeout_s,
            user_data=self.data(Code.WITHDRAWAL, str(tid), frm="Me",
                                to="Bank account ····5678")))
        return tid

    def post(self, hold_id: uuid.UUID, amount: int | None = None) -> uuid.UUID:
        tid = uuid.uuid4()
        self.submit(TransferIn(id=tid, pending_id=hold_id, amount=amount,
                               flags=TransferFlags.POST_PENDING))
        return tid

    def void(self, hold_id: uuid.UUID) -> uuid.UUID:
        tid = uuid.uuid4()
        self.submit(TransferIn(id=tid, pending_id=hold_id, flags=TransferFlags.VOID_PENDING))
        return tid

    def p2p(self, payer: Customer, payee: Customer, amount: int, *, note: str = "",
            payer_name: str = "138****0001", payee_name: str = "139****0002") -> uuid.UUID:
        tid = uuid.uuid4()
        self.submit(TransferIn(
            id=tid, debit_account_id=wallets.wallet_account_id(payer.id, "CNY"),
            credit_account_id=wallets.wallet_account_id(payee.id, "CNY"), amount=amount,
            ledger="CNY", code=Code.P2P,
            user_data=self.data(Code.P2P, str(tid), frm=payer_name, to=payee_name,
                                note=note)))
        return tid

    def exchange(self, user: Customer, sell_cny: int, buy_usd: int) -> tuple[uuid.UUID,
                                                                            uuid.UUID]:
        sell, buy = uuid.uuid4(), uuid.uuid4()
        ref = str(uuid.uuid4())
        self.submit(
            TransferIn(id=sell, debit_account_id=wallets.wallet_account_id(user.id, "CNY"),
                       credit_account_id=wallets.system_account_id(FX, "CNY"), amount=sell_cny,
                       ledger="CNY", code=Code.FX_SELL, flags=TransferFlags.LINKED,
                       user_data=self.data(Code.FX_SELL, ref, frm="CNY", to="USD")),
            TransferIn(id=buy, debit_account_id=wallets.system_account_id(FX, "USD"),
                       credit_account_id=wallets.wallet_account_id(user.id, "USD"),
                       amount=buy_usd, ledger="USD", code=Code.FX_BUY,
                       user_data=self.data(Code.FX_BUY, ref, frm="CNY", to="USD")))
        return sell, buy


@pytest.fixture
def mover(client: TestClient) -> Mover:
    return Mover(client)


def at(text: str) -> dt.datetime:
    """An instant written in UTC: ``at("2025-01-31 16:30")``."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
