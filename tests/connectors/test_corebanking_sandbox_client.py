"""The sandbox connector's mapping of answers (and missing answers) onto results, against a
mocked transport: every outcome is a result, never an exception (CONVENTIONS §5)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import orjson
import pytest

from bankwallet.connectors.corebanking.base import (
    CoreBanking,
    EventType,
    InstructionKind,
    InstructionStatus,
    VerificationStatus,
    WebhookPayloadInvalid,
)
from bankwallet.connectors.corebanking.sandbox import SandboxCoreBanking
from bankwallet.core.webhooks import WebhookSignatureInvalid, sign

SECRET = "whsec_unit_0123456789abcdef"
ACCOUNT = "4000123412341234"


def _instruction(status: str, **extra: object) -> dict[str, object]:
    return {"id": "ins_1", "kind": "debit", "status": status, "reason": None,
            "reference": "ref-1", "amount_minor": 500, "currency": "EUR",
            "account_last4": "1234", "created_at": "2025-01-01T00:00:00+00:00",
            "updated_at": "2025-01-01T00:00:01+00:00", **extra}


def _bank(handler: Callable[[httpx.Request], httpx.Response]) -> SandboxCoreBanking:
    return SandboxCoreBanking("http://bank.test", SECRET, timeout_s=1.0,
                              transport=httpx.MockTransport(handler))


def _raises(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc
    return handler


async def _debit(bank: SandboxCoreBanking):
    return await bank.debit("key-1", ACCOUNT, 500, "EUR", "ref-1")


async def test_it_implements_the_protocol() -> None:
    async with _bank(lambda r: httpx.Response(200)) as bank:
        assert isinstance(bank, CoreBanking)


async def test_a_debit_sends_the_key_and_the_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json=_instruction("pending"))

    async with _bank(handler) as bank:
        result = await bank.debit("key-1", ACCOUNT, 500, "EUR", "ref-1", failure_mode="timeout")
    assert result.status is InstructionStatus.PENDING and result.instruction_id == "ins_1"
    assert result.kind is InstructionKind.DEBIT
    assert seen[0].url.path == "/v1/debits" and seen[0].headers["Idempotency-Key"] == "key-1"
    assert orjson.loads(seen[0].content) == {"account_number": ACCOUNT, "amount_minor": 500,
                                             "currency": "EUR", "reference": "ref-1",
                                             "failure_mode": "timeout"}


async def test_a_decline_is_a_failed_result() -> None:
    body = _instruction("failed", reason="declined")
    async with _bank(lambda r: httpx.Response(402, json=body)) as bank:
        result = await _debit(bank)
    assert result.status is InstructionStatus.FAILED and result.reason == "declined"
    assert not result.retryable


async def test_a_status_we_do_not_know_is_pending() -> None:
    async with _bank(lambda r: httpx.Response(202, json=_instruction("processing"))) as bank:
        assert (await _debit(bank)).status is InstructionStatus.PENDING


@pytest.mark.parametrize("handler", [
    _raises(httpx.ReadTimeout("slow")),
    _raises(httpx.RemoteProtocolError("cut")),
    lambda r: httpx.Response(500, json={"code": "internal_error"}),
    lambda r: httpx.Response(503, text="<html>down</html>"),
    lambda r: httpx.Response(202, text="not json"),
])
async def test_no_clear_answer_is_unknown_and_retryable(handler) -> None:
    async with _bank(handler) as bank:
        result = await _debit(bank)
    assert result.status is InstructionStatus.UNKNOWN and result.retryable


@pytest.mark.parametrize("exc", [httpx.ConnectError("refused"), httpx.ConnectTimeout("syn")])
async def test_a_bank_never_reached_is_failed_and_retryable(exc: Exception) -> None:
    async with _bank(_raises(exc)) as bank:
        result = await _debit(bank)
    assert result.status is InstructionStatus.FAILED and result.retryable
    assert result.reason == "bank_unreachable"


async def test_a_refused_request_is_failed_with_the_problem_code() -> None:
    problem = {"status": 409, "code": "idempotency_key_reused"}
    async with _bank(lambda r: httpx.Response(409, json=problem)) as bank:
        result = await _debit(bank)
    assert result.status is InstructionStatus.FAILED
    assert result.reason == "idempotency_key_reused" and not result.retryable


async def test_lookups() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/instructions/ins_missing":
            return httpx.Response(404, json={"code": "instruction_not_found"})
        if request.url.path == "/v1/instructions":
            ref = request.url.params["reference"]
            items = {"none": [], "two": [_instruction("succeeded", id="ins_a"),
                                         _instruction("failed", id="ins_b")]}[ref]
            return httpx.Response(200, json={"instructions": items})
        return httpx.Response(200, json=_instruction("succeeded"))

    async with _bank(handler) as bank:
        assert (await bank.get_instruction("ins_1")).status is InstructionStatus.SUCCEEDED
        assert await bank.get_instruction("ins_missing") is None
        assert await bank.find_by_reference("none") is None
        # The instruction that moved money is the one to reconcile against.
        assert (await bank.find_by_reference("two")).instruction_id == "ins_a"
    async with _bank(_raises(httpx.ConnectError("refused"))) as bank:
        assert (await bank.get_instruction("ins_1")).status is InstructionStatus.UNKNOWN
        assert (await bank.find_by_reference("x")).status is InstructionStatus.UNKNOWN
        assert not (await bank.statement()).ok
        assert (await bank.verify_account(ACCOUNT, "A")).status is VerificationStatus.UNKNOWN


def _event(**extra: object) -> bytes:
    return orjson.dumps({"id": "evt_1", "type": "credit.reversed", "instruction_id": "ins_1",
                         "reference": "ref-1", "amount_minor": 500, "currency": "EUR",
                         "reason": "sandbox_reversal",
                         "created_at": "2025-01-01T00:00:00+00:00", **extra})


async def test_parse_webhook() -> None:
    async with _bank(lambda r: httpx.Response(200)) as bank:
        body = _event()
        event = bank.parse_webhook(body, {"bankwallet-signature": sign(SECRET, body)})
        assert event.type is EventType.CREDIT_REVERSED and event.id == "evt_1"
        assert event.kind is InstructionKind.CREDIT
        assert event.status is InstructionStatus.REVERSED and event.reason == "sandbox_reversal"
        with pytest.raises(WebhookSignatureInvalid):
            bank.parse_webhook(body, {})
        with pytest.raises(WebhookSignatureInvalid):
            bank.parse_webhook(body, {"Bankwallet-Signature": sign("whsec_other_000000000", body)})
        for bad in (b"[]", b"{", _event(type="debit.exploded"), _event(amount_minor="5"),
                    _event(created_at="yesterday")):
            with pytest.raises(WebhookPayloadInvalid):
                bank.parse_webhook(bad, {"Bankwallet-Signature": sign(SECRET, bad)})
