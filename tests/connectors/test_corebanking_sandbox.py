"""The sandbox bank as a real process (``bankwallet sandbox-bank``), through the connector:
verification, debits and credits with signed webhooks, idempotency, every failure mode, and a
restart with ``--state``. Conditions are awaited by polling with a deadline, never slept on."""

from __future__ import annotations

import asyncio
import inspect
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bankwallet.connectors.corebanking.base import (
    EventType,
    InstructionResult,
    InstructionStatus,
    VerificationStatus,
)
from bankwallet.connectors.corebanking.sandbox import SandboxCoreBanking
from bankwallet.core.webhooks import SIGNATURE_HEADER, verify

from .conftest import SandboxBank, new_secret

DEADLINE_S = 5.0


async def eventually(check: Callable[[], Any], what: str, timeout_s: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.05)


def new_number() -> str:
    return "4" + "".join(secrets.choice("0123456789") for _ in range(15))


def new_ref(label: str) -> str:
    return f"{label}-{secrets.token_hex(6)}"


def open_account(url: str, *, balance_minor: int = 10_000, currency: str = "EUR",
                 holder_name: str = "Ana María López") -> str:
    number = new_number()
    response = httpx.post(f"{url}/sandbox/accounts", json={
        "number": number, "holder_name": holder_name, "currency": currency,
        "balance_minor": balance_minor})
    assert response.status_code == 201, response.text
    return number


def balance(url: str, number: str) -> int:
    return httpx.get(f"{url}/sandbox/accounts/{number}").json()["balance_minor"]


@pytest.fixture
async def bank(sandbox_bank: SandboxBank) -> AsyncIterator[SandboxCoreBanking]:
    async with SandboxCoreBanking(sandbox_bank.url, sandbox_bank.secret, timeout_s=5.0) as b:
        yield b


async def settled(bank: SandboxCoreBanking, instruction_id: str,
                  status: InstructionStatus = InstructionStatus.SUCCEEDED,
                  timeout_s: float = DEADLINE_S) -> InstructionResult:
    async def check() -> InstructionResult | None:
        result = await bank.get_instruction(instruction_id)
        return result if result is not None and result.status is status else None
    return await eventually(check, f"{instruction_id} {status}", timeout_s)


async def test_verification_outcomes(sandbox_bank: SandboxBank,
                                     bank: SandboxCoreBanking) -> None:
    number = open_account(sandbox_bank.url, holder_name="Ana María López")
    spaced = " ".join(number[i:i + 4] for i in range(0, 16, 4))
    assert (await bank.verify_account(number, "Ana María López")).verified
    assert (await bank.verify_account(spaced, "  ana maría  LÓPEZ ")).verified
    mismatch = await bank.verify_account(number, "Someone Else")
    assert mismatch.status is VerificationStatus.NAME_MISMATCH
    assert (await bank.verify_account(new_number(), "Ana María López")).status is (
        VerificationStatus.NOT_FOUND)
    # An IBAN works as well as a card/account number; a bad check digit is not an account.
    iban = "GB82WEST12345698765432"
    if httpx.get(f"{sandbox_bank.url}/sandbox/accounts/{iban}").status_code == 404:
        httpx.post(f"{sandbox_bank.url}/sandbox/accounts", json={
            "number": "GB82 WEST 1234 5698 7654 32", "holder_name": "Ann Lee",
            "currency": "GBP"}).raise_for_status()
    assert (await bank.verify_account(iban, "Ann Lee")).verified
    assert (await bank.verify_account("GB83WEST12345698765432", "Ann Lee")).status is (
        VerificationStatus.NOT_FOUND)


async def test_a_debit_settles_and_is_reported_by_a_signed_webhook(
        sandbox_bank: SandboxBank, bank: SandboxCoreBanking) -> None:
    number = open_account(sandbox_bank.url, balance_minor=10_000)
    ref = new_ref("topup")
    started = datetime.now(UTC) - timedelta(seconds=1)
    result = await bank.debit(new_ref("key"), number, 2_500, "EUR", ref)
    assert result.status is InstructionStatus.PENDING and result.instruction_id
    assert httpx.get(f"{sandbox_bank.url}/sandbox/accounts/{number}").json()[
        "available_minor"] == 7_500  # held at once

    [delivery] = await eventually(lambda: sandbox_bank.receiver.about(result.instruction_id),
                                  "the debit.succeeded webhook")
    verify(sandbox_bank.secret, delivery.body, delivery.headers[SIGNATURE_HEADER.lower()])
    event = bank.parse_webhook(delivery.body, delivery.headers)
    assert event.type is EventType.DEBIT_SUCCEEDED
    assert (event.instruction_id, event.reference, event.amount_minor, event.currency) == (
        result.instruction_id, ref, 2_500, "EUR")
    assert delivery.headers["bankwallet-event-id"] == event.id

    assert (await bank.get_instruction(result.instruction_id)).status is (
        InstructionStatus.SUCCEEDED)
    assert (await bank.find_by_reference(ref)).instruction_id == result.instruction_id
    assert balance(sandbox_bank.url, number) == 7_500
    page = await bank.statement(started, account_number=number)
    assert page.ok and [(e.kind, e.amount_minor, e.reference) for e in page.entries] == [
        ("debit", -2_500, ref)]


async def test_a_credit_settles(sandbox_bank: SandboxBank, bank: SandboxCoreBanking) -> None:
    number = open_account(sandbox_bank.url, balance_minor=0)
    result = await bank.credit(new_ref("key"), number, 1_234, "EUR", new_ref("withdrawal"))
    assert result.status is InstructionStatus.PENDING
    [delivery] = await eventually(lambda: sandbox_bank.receiver.about(result.instruction_id),
                                  "the credit.succeeded webhook")
    assert bank.parse_webhook(delivery.body, delivery.headers).type is (
        EventType.CREDIT_SUCCEEDED)
    assert balance(sandbox_bank.url, number) == 1_234


async def test_idempotency(sandbox_bank: SandboxBank, bank: SandboxCoreBanking) -> None:
    number = open_account(sandbox_bank.url, balance_minor=10_000)
    key, ref = new_ref("key"), new_ref("topup")
    first = await bank.debit(key, number, 1_000, "EUR", ref)
    again = await bank.debit(key, number, 1_000, "EUR", ref)
    assert again.instruction_id == first.instruction_id
    other = await bank.debit(key, number, 1_001, "EUR", ref)
    assert other.status is InstructionStatus.FAILED and other.reason == "idempotency_key_reused"
    # The same key on the other endpoint is another request too.
    raw = httpx.post(f"{sandbox_bank.url}/v1/credits", headers={"Idempotency-Key": key},
                     json={"account_number": number, "amount_minor": 1_000,
                           "currency": "EUR", "reference": ref})
    assert raw.status_code == 409 and raw.json()["code"] == "idempotency_key_reused"
    await settled(bank, first.instruction_id)
    assert balance(sandbox_bank.url, number) == 9_000  # moved once
    replay = httpx.post(f"{sandbox_bank.url}/v1/debits", headers={"Idempotency-Key": key},
                        json={"account_number": number, "amount_minor": 1_000,
                              "currency": "EUR", "reference": ref})
    assert replay.status_code == 202 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == first.instruction_id


async def test_bad_requests_are_refused_as_problems(sandbox_bank: SandboxBank) -> None:
    number = open_account(sandbox_bank.url)
    body = {"account_number": number, "amount_minor": 1, "currency": "EUR", "reference": "r"}
    no_key = httpx.post(f"{sandbox_bank.url}/v1/debits", json=body)
    assert no_key.status_code == 400 and no_key.json()["code"] == "idempotency_key_missing"
    for bad in ({**body, "amount_minor": 0}, {**body, "amount_minor": "1"},
                {**body, "currency": "XXQ"}, {**body, "failure_mode": "meteor"},
                {**body, "account_number": "123"}, {**body, "extra": 1}):
        response = httpx.post(f"{sandbox_bank.url}/v1/debits", json=bad,
                              headers={"Idempotency-Key": new_ref("key")})
        assert response.status_code == 422, bad
    huge = httpx.post(f"{sandbox_bank.url}/v1/debits", headers={"Idempotency-Key": "k"},
                      json={**body, "reference": "x" * 20_000})
    assert huge.status_code == 413
    dup = httpx.post(f"{sandbox_bank.url}/sandbox/accounts", json={
        "number": number, "holder_name": "X", "currency": "EUR"})
    assert dup.status_code == 409


async def test_decline(sandbox_bank: SandboxBank, bank: SandboxCoreBanking) -> None:
    number = open_account(sandbox_bank.url, balance_minor=10_000)
    result = await bank.debit(new_ref("key"), number, 100, "EUR", new_ref("topup"),
                              failure_mode="decline")
    assert result.status is InstructionStatus.FAILED and result.reason == "declined"
    [delivery] = await eventually(lambda: sandbox_bank.receiver.about(result.instruction_id),
                                  "the debit.failed webhook")
    event = bank.parse_webhook(delivery.body, delivery.headers)
    assert event.type is EventType.DEBIT_FAILED and event.reason == "declined"
    assert httpx.get(f"{sandbox_bank.url}/sandbox/accounts/{number}").json()[
        "available_minor"] == 10_000


async def test_insufficient_funds_asked_for_and_real(sandbox_bank: SandboxBank,
                                                     bank: SandboxCoreBanking) -> None:
    number = open_account(sandbox_bank.url, balance_minor=1_000)
    asked = await bank.credit(new_ref("key"), number, 1, "EUR", new_ref("w"),
                              failure_mode="insufficient_funds")
    assert (asked.status, asked.reason) == (InstructionStatus.FAILED, "insufficient_funds")
    real = await bank.debit(new_ref("key"), number, 1_001, "EUR", new_ref("topup"))
    assert (real.status, real.reason) == (InstructionStatus.FAILED, "insufficient_funds")
    # Holds count: two debits of 600 against 1 000 cannot both be accepted.
    first = await bank.debit(new_ref("key"), number, 600, "EUR", new_ref("topup"))
    second = await bank.debit(new_ref("key"), number, 600, "EUR", new_ref("topup"))
    assert first.status is InstructionStatus.PENDING
    assert (second.status, second.reason) == (InstructionStatus.FAILED, "insufficient_funds")
    currency = await bank.debit(new_ref("key"), number, 1, "USD", new_ref("topup"))
    assert (currency.status, currency.reason) == (InstructionStatus.FAILED, "currency_mismatch")
    unknown = await bank.debit(new_ref("key"), new_number(), 1, "EUR", new_ref("topup"))
    assert (unknown.status, unknown.reason) == (InstructionStatus.FAILED, "account_not_found")
    await settled(bank, first.instruction_id)
    assert balance(sandbox_bank.url, number) == 400


async def test_timeout_is_unknown_then_polling_finds_it_applied(
        sandbox_bank: SandboxBank) -> None:
    number = open_account(sandbox_bank.url, balance_minor=5_000)
    key, ref = new_ref("key"), new_ref("topup")
    async with SandboxCoreBanking(sandbox_bank.url, sandbox_bank.secret, timeout_s=0.3,
                                  sandbox_delay_s=1.5) as impatient:
        began = time.monotonic()
        result = await impatient.debit(key, number, 700, "EUR", ref, failure_mode="timeout")
        assert time.monotonic() - began < 1.2
        assert result.status is InstructionStatus.UNKNOWN and result.retryable
        assert result.instruction_id is None

        found = await eventually(lambda: impatient.find_by_reference(ref),
                                 "the bank to show the instruction")
        found = await settled(impatient, found.instruction_id)
        # Re-sending with the same key is safe: the stored answer comes back at once.
        retried = await impatient.debit(key, number, 700, "EUR", ref, failure_mode="timeout")
        assert retried.instruction_id == found.instruction_id
    assert balance(sandbox_bank.url, number) == 4_300


async def test_duplicate_webhook(sandbox_bank: SandboxBank, bank: SandboxCoreBanking) -> None:
    number = open_account(sandbox_bank.url)
    result = await bank.debit(new_ref("key"), number, 100, "EUR", new_ref("topup"),
                              failure_mode="duplicate_webhook")
    deliveries = await eventually(
        lambda: (d := sandbox_bank.receiver.about(result.instruction_id)) and len(d) >= 2 and d,
        "two deliveries")
    events = [bank.parse_webhook(d.body, d.headers) for d in deliveries]
    assert len(events) == 2 and events[0].id == events[1].id
    assert events[0].type is EventType.DEBIT_SUCCEEDED
    assert balance(sandbox_bank.url, number) == 9_900  # the money moved once


async def test_webhook_never_sent(sandbox_bank: SandboxBank, bank: SandboxCoreBanking) -> None:
    number = open_account(sandbox_bank.url)
    ref = new_ref("topup")
    silent = await bank.debit(new_ref("key"), number, 300, "EUR", ref,
                              failure_mode="webhook_never_sent")
    await settled(bank, silent.instruction_id)
    page = await bank.statement(account_number=number)
    assert [(e.instruction_id, e.amount_minor) for e in page.entries] == [
        (silent.instruction_id, -300)]
    # A later, ordinary instruction is delivered: by then the silent one would have been.
    loud = await bank.debit(new_ref("key"), number, 1, "EUR", new_ref("topup"))
    await eventually(lambda: sandbox_bank.receiver.about(loud.instruction_id), "a webhook")
    assert sandbox_bank.receiver.attempts(silent.instruction_id) == []
    events = httpx.get(f"{sandbox_bank.url}/sandbox/events",
                       params={"instruction_id": silent.instruction_id}).json()["events"]
    assert [e["state"] for e in events] == ["suppressed"]


async def test_late_settlement(sandbox_bank: SandboxBank) -> None:
    number = open_account(sandbox_bank.url)
    async with SandboxCoreBanking(sandbox_bank.url, sandbox_bank.secret,
                                  sandbox_delay_s=1.0) as bank:
        began = time.monotonic()
        result = await bank.debit(new_ref("key"), number, 100, "EUR", new_ref("topup"),
                                  failure_mode="late_settlement")
        assert result.status is InstructionStatus.PENDING
        # Well past the ordinary settlement delay it is still pending.
        await asyncio.sleep(0.5)
        assert (await bank.get_instruction(result.instruction_id)).status is (
            InstructionStatus.PENDING)
        await eventually(lambda: sandbox_bank.receiver.about(result.instruction_id),
                         "the late webhook")
        assert time.monotonic() - began >= 1.0
        assert (await bank.get_instruction(result.instruction_id)).status is (
            InstructionStatus.SUCCEEDED)


async def test_reversal_after_success(sandbox_bank: SandboxBank) -> None:
    number = open_account(sandbox_bank.url, balance_minor=10_000)
    async with SandboxCoreBanking(sandbox_bank.url, sandbox_bank.secret,
                                  sandbox_delay_s=0.5) as bank:
        result = await bank.debit(new_ref("key"), number, 4_000, "EUR", new_ref("topup"),
                                  failure_mode="reversal_after_success")
        deliveries = await eventually(
            lambda: (d := sandbox_bank.receiver.about(result.instruction_id)) and len(d) >= 2
            and d, "the success and the reversal")
        types = [bank.parse_webhook(d.body, d.headers).type for d in deliveries]
        assert types == [EventType.DEBIT_SUCCEEDED, EventType.DEBIT_REVERSED]
        reversed_ = await bank.get_instruction(result.instruction_id)
        assert reversed_.status is InstructionStatus.REVERSED
        assert reversed_.reason == "sandbox_reversal"
        assert balance(sandbox_bank.url, number) == 10_000
        page = await bank.statement(account_number=number)
        assert [(e.kind, e.amount_minor) for e in page.entries] == [
            ("debit", -4_000), ("debit_reversal", 4_000)]


async def test_failure_mode_by_header(sandbox_bank: SandboxBank) -> None:
    number = open_account(sandbox_bank.url)
    body = {"account_number": number, "amount_minor": 1, "currency": "EUR", "reference": "h"}
    declined = httpx.post(f"{sandbox_bank.url}/v1/debits", json=body, headers={
        "Idempotency-Key": new_ref("key"), "X-Sandbox-Failure": "decline"})
    assert declined.status_code == 402
    assert (declined.json()["status"], declined.json()["reason"]) == ("failed", "declined")
    clash = httpx.post(f"{sandbox_bank.url}/v1/debits", json={**body, "failure_mode": "timeout"},
                       headers={"Idempotency-Key": new_ref("key"),
                                "X-Sandbox-Failure": "decline"})
    assert clash.status_code == 422


async def test_webhooks_are_retried_until_the_receiver_answers(
        sandbox_bank: SandboxBank, bank: SandboxCoreBanking) -> None:
    number = open_account(sandbox_bank.url)
    ref = new_ref("topup")
    sandbox_bank.receiver.fail(ref, times=2)
    result = await bank.debit(new_ref("key"), number, 100, "EUR", ref)
    [delivered] = await eventually(lambda: sandbox_bank.receiver.about(result.instruction_id),
                                   "a delivery after two refusals")
    attempts = sandbox_bank.receiver.attempts(result.instruction_id)
    assert [a.headers["x-receiver-status"] for a in attempts] == ["503", "503", "200"]
    assert len({a.json["id"] for a in attempts}) == 1
    bank.parse_webhook(delivered.body, delivered.headers)  # re-signed, still valid


async def test_state_survives_a_restart(start_sandbox: Any, tmp_path: Any,
                                        webhook_receiver: Any) -> None:
    secret, state = new_secret(), tmp_path / "sandbox-bank.sqlite3"
    first = start_sandbox(secret=secret, state=state)
    number = open_account(first.url, balance_minor=10_000)
    key, ref, late_ref = new_ref("key"), new_ref("topup"), new_ref("topup")
    async with SandboxCoreBanking(first.url, secret, sandbox_delay_s=1.0) as bank:
        done = await bank.debit(key, number, 1_000, "EUR", ref)
        await settled(bank, done.instruction_id)
        late = await bank.debit(new_ref("key"), number, 2_000, "EUR", late_ref,
                                failure_mode="late_settlement")
        assert late.status is InstructionStatus.PENDING
    first.stop()

    second = start_sandbox(secret=secret, state=state)
    async with SandboxCoreBanking(second.url, secret) as bank:
        assert balance(second.url, number) == 9_000
        assert (await bank.verify_account(number, "Ana María López")).verified
        again = await bank.debit(key, number, 1_000, "EUR", ref)  # the key is remembered
        assert again.instruction_id == done.instruction_id
        # The instruction left pending settles after the restart, and its webhook is sent.
        await settled(bank, late.instruction_id)
        await eventually(lambda: webhook_receiver.about(late.instruction_id), "late webhook")
        assert balance(second.url, number) == 7_000
        page = await bank.statement(account_number=number)
        assert [e.amount_minor for e in page.entries] == [-1_000, -2_000]


def test_the_command_refuses_to_start_without_a_secret(tmp_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BANKWALLET_SANDBOX_BANK_SECRET"}
    completed = subprocess.run(
        [sys.executable, "-m", "bankwallet", "sandbox-bank", "--port", "1", "--secret", "short"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert completed.returncode == 2 and "secret" in completed.stderr
