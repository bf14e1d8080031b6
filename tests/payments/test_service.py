"""Settlement (with and without a core bank), healing after a crash, the fee rules, and
concurrent duplicates on PostgreSQL."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import uuid
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

from bankwallet.connectors.corebanking.base import InstructionResult, InstructionStatus
from bankwallet.payments import service
from payments.conftest import (
    Shop,
    customer,
    fees_balance,
    idem,
    intent,
    merchant,
    merchant_balance,
    pay,
    wallet_balance,
)


def test_fees_round_half_up_with_a_minimum() -> None:
    assert service.fee_for(1) == 1 and service.fee_for(83) == 1  # 0.498 → min 1
    assert service.fee_for(84) == 1 and service.fee_for(250) == 2  # 1.5 → 2
    assert service.fee_for(100_00) == 60 and service.fee_for(123_45) == 74
    assert service.fee_refunded_after(fee_minor=60, captured_minor=100_00,
                                      refunded_minor=100_00) == 60
    # Refunded piecewise, the fee comes back whole and never more.
    total, given = 0, 0
    for part in (1, 333, 3_333, 6_333):
        total += part
        after = service.fee_refunded_after(fee_minor=60, captured_minor=100_00,
                                           refunded_minor=total)
        assert after >= given
        given = after
    assert given == 60


def test_the_state_machine_table_is_what_the_docs_say() -> None:
    S = service.Status
    assert service.TRANSITIONS["cancel"] == {S.REQUIRES_PAYMENT_METHOD,
                                             S.REQUIRES_CONFIRMATION, S.REQUIRES_ACTION,
                                             S.REQUIRES_CAPTURE}
    for final in (S.SUCCEEDED, S.CANCELED, S.PROCESSING):
        assert all(final not in starts for action, starts in service.TRANSITIONS.items()
                   if action != "refund")


# -- settlement ------------------------------------------------------------------------------


@dataclass
class FakeBank:
    """A core bank that answers credits as told (``answers``, then SUCCEEDED)."""

    answers: list[InstructionStatus] = field(default_factory=list)
    credits: list[tuple[str, str, int, str, str]] = field(default_factory=list)
    known: dict[str, InstructionResult] = field(default_factory=dict)

    async def credit(self, idempotency_key: str, account_number: str, amount_minor: int,
                     currency: str, reference: str,
                     failure_mode: str | None = None) -> InstructionResult:
        self.credits.append((idempotency_key, account_number, amount_minor, currency, reference))
        status = self.answers.pop(0) if self.answers else InstructionStatus.SUCCEEDED
        result = InstructionResult(status=status, reference=reference,
                                   instruction_id=f"ins_{len(self.credits)}",
                                   reason="account_closed"
                                   if status is InstructionStatus.FAILED else None)
        if status is not InstructionStatus.UNKNOWN:
            self.known[reference] = result
        return result

    async def find_by_reference(self, reference: str) -> InstructionResult | None:
        return self.known.get(reference)


def _paid_shop(client: TestClient, shop: Shop, amount: int) -> None:
    payer = customer(client, funded=amount)
    made = intent(client, shop.owner, shop.merchant["id"], amount=amount)
    assert pay(client, payer, made["client_secret"]).status_code == 200


def settle(client: TestClient, shop: Shop, **body):
    return client.post(f"{shop.base}/settlements", json={"currency": "CNY", **body},
                       headers={**shop.owner.h, **idem()})


def run_bank(client: TestClient, bank: FakeBank, *, later_s: int = 0) -> int:
    from bankwallet.payments import tasks

    at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=later_s)
    return client.portal.call(lambda: tasks.process_settlements(
        client.app.state.db, client.app.state.ledger, bank, now=at))


def drain(client: TestClient) -> None:
    """Let a bank settle what other tests left queued, so counts below are this test's."""
    run_bank(client, FakeBank(), later_s=service.HEAL_AFTER_S + 1)


def test_settlement_holds_then_the_bank_confirms(client: TestClient, shop: Shop) -> None:
    _paid_shop(client, shop, 100_00)
    r = settle(client, shop, amount_minor=40_00)
    assert r.status_code == 201, r.text
    queued = r.json()
    assert queued["status"] == "queued" and queued["bank_account"] == "····0128"
    balances = client.get(f"{shop.base}/balances", headers=shop.owner.h).json()
    assert balances == [{"currency": "CNY", "available_minor": 100_00 - 60 - 40_00,
                         "posted_minor": 100_00 - 60, "settling_minor": 40_00}]
    r = settle(client, shop, amount_minor=60_00)  # more than is left
    assert r.status_code == 409 and r.json()["code"] == "merchant_balance_insufficient"

    bank = FakeBank()
    assert run_bank(client, bank) >= 1  # (and any other test's queued settlements)
    ((_, number, amount, currency, reference),) = [
        c for c in bank.credits if c[0] == f"settlement:{queued['id']}"]
    assert number == "6222021234567890128" and amount == 40_00 and currency == "CNY"
    assert queued["id"] in reference
    assert merchant_balance(client, shop.merchant["id"]) == 100_00 - 60 - 40_00
    listed = client.get(f"{shop.base}/settlements", headers=shop.owner.h).json()["data"]
    assert listed[0]["status"] == "succeeded"
    assert run_bank(client, bank) == 0  # nothing more to send


def test_a_refused_settlement_gives_the_money_back(client: TestClient, shop: Shop) -> None:
    _paid_shop(client, shop, 10_00)
    drain(client)
    r = settle(client, shop)  # everything available
    assert r.status_code == 201 and r.json()["amount_minor"] == 10_00 - 6
    bank = FakeBank(answers=[InstructionStatus.FAILED])
    assert run_bank(client, bank) == 1
    (row,) = client.get(f"{shop.base}/settlements", headers=shop.owner.h).json()["data"]
    assert row["status"] == "failed" and row["failure_code"] == "account_closed"
    balances = client.get(f"{shop.base}/balances", headers=shop.owner.h).json()
    assert balances[0]["available_minor"] == 10_00 - 6 and balances[0]["settling_minor"] == 0
    r = settle(client, shop, amount_minor=0)
    assert r.status_code == 422


def test_an_unanswered_settlement_is_asked_about_again(client: TestClient, shop: Shop) -> None:
    _paid_shop(client, shop, 10_00)
    drain(client)
    assert settle(client, shop).status_code == 201
    bank = FakeBank(answers=[InstructionStatus.UNKNOWN])
    assert run_bank(client, bank) == 0
    (row,) = client.get(f"{shop.base}/settlements", headers=shop.owner.h).json()["data"]
    assert row["status"] == "submitted"
    assert run_bank(client, bank) == 0  # too soon to ask again
    assert run_bank(client, bank, later_s=service.HEAL_AFTER_S + 1) == 1
    assert len(bank.credits) == 2 and bank.credits[0][0] == bank.credits[1][0]  # same key
    (row,) = client.get(f"{shop.base}/settlements", headers=shop.owner.h).json()["data"]
    assert row["status"] == "succeeded"
    assert merchant_balance(client, shop.merchant["id"]) == 0


def test_nothing_to_settle(client: TestClient, shop: Shop) -> None:
    r = settle(client, shop)
    assert r.status_code == 409 and r.json()["code"] == "settlement_nothing_to_settle"
    r = settle(client, shop, currency="XYZ")
    assert r.status_code == 422


# -- healing ---------------------------------------------------------------------------------


def test_a_crash_after_the_intent_is_healed_with_one_ledger_effect(
        client: TestClient, shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    from bankwallet.ledger import service as ledger_service
    from bankwallet.payments import tasks

    payer = customer(client, funded=30_00)
    made = intent(client, shop.owner, shop.merchant["id"], amount=30_00)
    fees_before = fees_balance(client)
    real_submit = ledger_service.submit

    async def crash(ledger, transfers):  # the process dies after committing the charge
        raise RuntimeError("power cut")

    monkeypatch.setattr(ledger_service, "submit", crash)
    key = str(uuid.uuid4())
    with pytest.raises(RuntimeError):
        pay(client, payer, made["client_secret"], key)
    monkeypatch.setattr(ledger_service, "submit", real_submit)
    assert wallet_balance(client, payer.user_id) == 30_00
    seen = client.get(f"{shop.base}/payment-intents/{made['id']}", headers=shop.owner.h).json()
    assert seen["status"] == "processing"

    def heal(later_s: int) -> int:
        at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=later_s)
        return client.portal.call(lambda: tasks.heal_once(client.app.state.db,
                                                          client.app.state.ledger, now=at))

    assert heal(0) == 0  # not stale yet: the request may still be running
    assert heal(service.HEAL_AFTER_S + 1) >= 1
    assert heal(service.HEAL_AFTER_S + 1) == 0
    assert wallet_balance(client, payer.user_id) == 0
    assert merchant_balance(client, shop.merchant["id"]) == 30_00 - 18
    assert fees_balance(client) - fees_before == 18
    seen = client.get(f"{shop.base}/payment-intents/{made['id']}", headers=shop.owner.h).json()
    assert seen["status"] == "succeeded"
    # The customer's retry with the same key finds the finished payment.
    r = pay(client, payer, made["client_secret"], key)
    assert r.status_code == 200 and r.json()["status"] == "succeeded"
    assert wallet_balance(client, payer.user_id) == 0


# -- concurrency (PostgreSQL) ------------------------------------------------------------------


@pytest.fixture
def pg_shop(pg_client: TestClient) -> Shop:
    owner = customer(pg_client)
    return Shop(owner, merchant(pg_client, owner))


def _at_once(calls) -> list:
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return [f.result() for f in [pool.submit(c) for c in calls]]


def test_two_customers_paying_one_intent_at_once_pay_once(pg_client: TestClient,
                                                          pg_shop: Shop) -> None:
    client, shop = pg_client, pg_shop
    payers = [customer(client, funded=20_00) for _ in range(4)]
    made = intent(client, shop.owner, shop.merchant["id"], amount=20_00)
    results = _at_once([lambda p=p: pay(client, p, made["client_secret"]) for p in payers])
    assert sorted(r.status_code for r in results).count(200) == 1, [r.text for r in results]
    assert all(r.status_code in (200, 404, 409) for r in results)
    assert sum(wallet_balance(client, p.user_id) for p in payers) == 3 * 20_00
    assert merchant_balance(client, shop.merchant["id"]) == 20_00 - 12


def test_concurrent_refunds_never_exceed_the_payment(pg_client: TestClient,
                                                     pg_shop: Shop) -> None:
    client, shop = pg_client, pg_shop
    payer = customer(client, funded=100_00)
    made = intent(client, shop.owner, shop.merchant["id"], amount=100_00)
    assert pay(client, payer, made["client_secret"]).status_code == 200
    url = f"{shop.base}/payment-intents/{made['id']}/refunds"
    results = _at_once([lambda: client.post(url, json={"amount_minor": 40_00},
                                            headers={**shop.owner.h, **idem()})
                        for _ in range(4)])
    assert sorted(r.status_code for r in results) == [201, 201, 409, 409], \
        [r.text for r in results]
    assert wallet_balance(client, payer.user_id) == 80_00


def test_the_same_payment_twice_at_once_moves_money_once(pg_client: TestClient,
                                                         pg_shop: Shop) -> None:
    client, shop = pg_client, pg_shop
    payer = customer(client, funded=50_00)
    made = intent(client, shop.owner, shop.merchant["id"], amount=10_00)
    key = str(uuid.uuid4())
    results = _at_once([lambda: pay(client, payer, made["client_secret"], key)
                        for _ in range(4)])
    assert {r.status_code for r in results} <= {200, 409}
    assert any(r.status_code == 200 for r in results)
    assert wallet_balance(client, payer.user_id) == 40_00
