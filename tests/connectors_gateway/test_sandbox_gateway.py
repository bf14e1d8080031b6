"""The sandbox card gateway as a real process (``bankwallet sandbox-gateway``), through the
``CardGateway`` connector: every Stripe test card, 3-D Secure completed and failed (the
challenge page driven with form posts), partial capture, partial and over-refund, void,
idempotency, signed webhooks, failure modes and a restart with ``--state``. Conditions are
awaited by polling with a deadline, never slept on."""

from __future__ import annotations

import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bankwallet.connectors.gateway.base import (
    CardGateway,
    EventType,
    Funding,
    PaymentResult,
    PaymentStatus,
    RefundStatus,
    luhn_check_digit,
)
from bankwallet.connectors.gateway.sandbox import SandboxCardGateway
from bankwallet.core.webhooks import (
    SIGNATURE_HEADER,
    WebhookSignatureInvalid,
    WebhookTimestampOutsideTolerance,
    sign,
    verify,
)

from .conftest import FUTURE_YEAR, SandboxGateway, eventually, new_secret

# number -> (status, reason) of an authorisation with it (Stripe's test cards).
OUTCOMES = {
    "4242424242424242": (PaymentStatus.AUTHORIZED, None),
    "5555555555554444": (PaymentStatus.AUTHORIZED, None),
    "378282246310005": (PaymentStatus.AUTHORIZED, None),
    "6200000000000005": (PaymentStatus.AUTHORIZED, None),
    "4000000000000002": (PaymentStatus.DECLINED, "generic_decline"),
    "4000000000009995": (PaymentStatus.DECLINED, "insufficient_funds"),
    "4000000000000069": (PaymentStatus.DECLINED, "expired_card"),
    "4000000000000127": (PaymentStatus.DECLINED, "incorrect_cvc"),
    "4000000000000119": (PaymentStatus.FAILED, "processing_error"),
    "4000002500003155": (PaymentStatus.REQUIRES_ACTION, None),
}
EVENT_OF = {PaymentStatus.AUTHORIZED: EventType.AUTHORIZED,
            PaymentStatus.DECLINED: EventType.DECLINED, PaymentStatus.FAILED: EventType.FAILED}
RETURN_URL = "https://wallet.example/me/cards/abc/return?from=3ds"


def cvc_for(number: str) -> str:
    return "7391" if number.startswith(("34", "37")) else "739"


def key(label: str = "k") -> str:
    return f"{label}-{secrets.token_hex(8)}"


@pytest.fixture
async def gateway(sandbox_gateway: SandboxGateway) -> AsyncIterator[SandboxCardGateway]:
    async with SandboxCardGateway(sandbox_gateway.url, sandbox_gateway.secret,
                                  timeout_s=5.0) as g:
        yield g


async def token_for(gateway: CardGateway, number: str) -> str:
    token = await gateway.tokenize(number=number, exp_month=12, exp_year=FUTURE_YEAR,
                                   cvc=cvc_for(number), holder_name="Li Lei")
    assert token.ok, token
    return token.token or ""


async def authorized(gateway: CardGateway, amount_minor: int = 1000,
                     number: str = "4242424242424242") -> PaymentResult:
    result = await gateway.authorize(key("auth"), token=await token_for(gateway, number),
                                     amount_minor=amount_minor, currency="CNY",
                                     reference=key("ref"))
    assert result.status is PaymentStatus.AUTHORIZED, result
    return result


def test_the_connector_is_a_card_gateway(sandbox_gateway: SandboxGateway) -> None:
    assert isinstance(SandboxCardGateway(sandbox_gateway.url, sandbox_gateway.secret),
                      CardGateway)


async def test_tokenize_keeps_only_masked_facts(gateway: SandboxCardGateway) -> None:
    token = await gateway.tokenize(number="4000 0566 5566 5556", exp_month=3,
                                   exp_year=FUTURE_YEAR, cvc="123", holder_name="Li Lei")
    assert token.ok and token.token and token.token.startswith("tok_")
    assert (token.brand, token.funding, token.last4) == ("visa", Funding.DEBIT, "5556")
    assert "4000056655665556" not in repr(token)


@pytest.mark.parametrize(("number", "exp_year", "cvc", "error"), [
    ("4242424242424241", FUTURE_YEAR, "123", "invalid_number"),       # Luhn
    ("6011111111111117", FUTURE_YEAR, "123", "unsupported_brand"),    # Discover
    ("4242424242424242", 2001, "123", "invalid_expiry"),
    ("378282246310005", FUTURE_YEAR, "123", "invalid_cvc"),           # Amex wants 4 digits
    ("4242424242424242", FUTURE_YEAR, "12a", "invalid_cvc"),
])
async def test_tokenize_refuses_bad_cards(gateway: SandboxCardGateway, number: str,
                                          exp_year: int, cvc: str, error: str) -> None:
    token = await gateway.tokenize(number=number, exp_month=1, exp_year=exp_year, cvc=cvc,
                                   holder_name="Li Lei")
    assert not token.ok and token.error == error and not token.retryable


@pytest.mark.parametrize("number", sorted(OUTCOMES))
async def test_every_test_card(gateway: SandboxCardGateway, sandbox_gateway: SandboxGateway,
                               number: str) -> None:
    status, reason = OUTCOMES[number]
    reference = key("ref")
    result = await gateway.authorize(key(), token=await token_for(gateway, number),
                                     amount_minor=1234, currency="CNY", reference=reference,
                                     return_url=RETURN_URL)
    assert (result.status, result.reason) == (status, reason), result
    assert result.payment_id and result.amount_minor == 1234 and result.currency == "CNY"
    assert result.reference == reference
    if status is PaymentStatus.REQUIRES_ACTION:
        assert result.next_action_url == f"{sandbox_gateway.url}/3ds/{result.payment_id}"
        return
    assert result.next_action_url is None
    (delivery,) = await eventually(lambda: sandbox_gateway.receiver.about(result.payment_id),
                                   f"the webhook of {number}")
    event = gateway.parse_webhook(delivery.body, delivery.headers)
    assert event.known_type is EVENT_OF[status] and event.status is status
    assert (event.payment_id, event.reason, event.amount_minor) == (
        result.payment_id, reason, 1234)


async def test_any_unionpay_number_that_passes_luhn_is_approved(
        gateway: SandboxCardGateway) -> None:
    for length in (16, 17, 18, 19):
        body = "62" + "".join(secrets.choice("0123456789") for _ in range(length - 3))
        number = body + luhn_check_digit(body)
        token = await gateway.tokenize(number=number, exp_month=6, exp_year=FUTURE_YEAR,
                                       cvc="123", holder_name="王芳")
        assert token.ok and token.brand == "unionpay", (length, token)
        result = await gateway.authorize(key(), token=token.token or "", amount_minor=500,
                                         currency="CNY", reference=key("ref"))
        assert result.status is PaymentStatus.AUTHORIZED


async def challenge(gateway: SandboxCardGateway, amount_minor: int = 2500) -> PaymentResult:
    result = await gateway.authorize(key(), token=await token_for(gateway, "4000002500003155"),
                                     amount_minor=amount_minor, currency="CNY",
                                     reference=key("ref"), return_url=RETURN_URL)
    assert result.status is PaymentStatus.REQUIRES_ACTION and result.next_action_url
    return result


def answer_challenge(url: str, choice: str) -> httpx.Response:
    page = httpx.get(url)
    assert page.status_code == 200
    assert ">Complete</button>" in page.text and ">Fail</button>" in page.text
    # The page's form posts to itself and then sends the customer to the return URL.
    assert "form-action 'self' https://wallet.example" in page.headers["content-security-policy"]
    return httpx.post(url, data={"result": choice}, follow_redirects=False)


async def test_3ds_challenge_completed(gateway: SandboxCardGateway,
                                       sandbox_gateway: SandboxGateway) -> None:
    started = await challenge(gateway)
    assert await gateway.get_payment(started.payment_id or "") == started
    back = answer_challenge(started.next_action_url or "", "complete")
    assert back.status_code == 303
    location = urlsplit(back.headers["location"])
    assert (location.scheme, location.netloc, location.path) == (
        "https", "wallet.example", "/me/cards/abc/return")
    assert parse_qs(location.query) == {"from": ["3ds"], "payment_id": [started.payment_id]}
    now = await gateway.get_payment(started.payment_id or "")
    assert now is not None and now.status is PaymentStatus.AUTHORIZED
    (delivery,) = await eventually(lambda: sandbox_gateway.receiver.about(started.payment_id),
                                   "the authorised webhook")
    assert gateway.parse_webhook(delivery.body, delivery.headers).known_type is (
        EventType.AUTHORIZED)
    # The page now says it is over, and answering again changes nothing.
    assert "Challenge finished" in httpx.get(started.next_action_url or "").text
    again_answer = httpx.post(started.next_action_url or "", data={"result": "fail"},
                              follow_redirects=False)
    assert again_answer.status_code == 303
    again = await gateway.get_payment(started.payment_id or "")
    assert again is not None and again.status is PaymentStatus.AUTHORIZED
    captured = await gateway.capture(key(), started.payment_id or "")
    assert captured.status is PaymentStatus.CAPTURED and captured.amount_captured_minor == 2500


async def test_3ds_challenge_failed(gateway: SandboxCardGateway,
                                    sandbox_gateway: SandboxGateway) -> None:
    started = await challenge(gateway)
    assert answer_challenge(started.next_action_url or "", "fail").status_code == 303
    now = await gateway.get_payment(started.payment_id or "")
    assert now is not None
    assert (now.status, now.reason) == (PaymentStatus.DECLINED, "authentication_failed")
    (delivery,) = await eventually(lambda: sandbox_gateway.receiver.about(started.payment_id),
                                   "the declined webhook")
    event = gateway.parse_webhook(delivery.body, delivery.headers)
    assert event.known_type is EventType.DECLINED and event.reason == "authentication_failed"
    refused = await gateway.capture(key(), started.payment_id or "")
    assert refused.error == "payment_state_conflict" and refused.status is PaymentStatus.DECLINED


async def test_a_bad_challenge_answer_is_refused(gateway: SandboxCardGateway) -> None:
    started = await challenge(gateway)
    r = httpx.post(started.next_action_url or "", data={"result": "maybe"})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert httpx.get(f"{started.next_action_url}-nope").status_code == 404


async def test_partial_capture_releases_the_rest(gateway: SandboxCardGateway,
                                                 sandbox_gateway: SandboxGateway) -> None:
    held = await authorized(gateway, 1000)
    too_much = await gateway.capture(key(), held.payment_id or "", 1001)
    assert too_much.error == "capture_exceeds_authorized"
    assert too_much.status is PaymentStatus.AUTHORIZED and too_much.amount_captured_minor == 0
    captured = await gateway.capture(key(), held.payment_id or "", 600)
    assert captured.error is None and captured.status is PaymentStatus.CAPTURED
    assert (captured.amount_minor, captured.amount_captured_minor) == (1000, 600)
    twice = await gateway.capture(key(), held.payment_id or "", 100)
    assert twice.error == "payment_state_conflict" and twice.amount_captured_minor == 600
    types = await eventually(
        lambda: [d.json["type"] for d in sandbox_gateway.receiver.about(held.payment_id)]
        if len(sandbox_gateway.receiver.about(held.payment_id)) == 2 else None,
        "authorised then captured webhooks")
    assert types == ["payment.authorized", "payment.captured"]


async def test_partial_refunds_never_above_what_was_captured(
        gateway: SandboxCardGateway, sandbox_gateway: SandboxGateway) -> None:
    held = await authorized(gateway, 1000)
    not_yet = await gateway.refund(key(), held.payment_id or "", 100)
    assert (not_yet.status, not_yet.reason) == (RefundStatus.FAILED, "payment_state_conflict")
    await gateway.capture(key(), held.payment_id or "", 800)
    first = await gateway.refund(key(), held.payment_id or "", 300)
    assert first.status is RefundStatus.SUCCEEDED and first.refund_id and first.amount_minor == 300
    assert first.payment is not None and first.payment.amount_refunded_minor == 300
    assert first.payment.status is PaymentStatus.CAPTURED
    over = await gateway.refund(key(), held.payment_id or "", 501)
    assert (over.status, over.reason) == (RefundStatus.FAILED, "refund_exceeds_captured")
    assert over.payment is not None and over.payment.amount_refunded_minor == 300
    rest = await gateway.refund(key(), held.payment_id or "")  # all that is left: 500
    assert rest.status is RefundStatus.SUCCEEDED and rest.amount_minor == 500
    assert rest.payment is not None and rest.payment.status is PaymentStatus.REFUNDED
    nothing_left = await gateway.refund(key(), held.payment_id or "", 1)
    assert nothing_left.reason == "refund_exceeds_captured"
    payment = await gateway.get_payment(held.payment_id or "")
    assert payment is not None and payment.amount_refunded_minor == 800
    refunds = await eventually(
        lambda: [d for d in sandbox_gateway.receiver.about(held.payment_id)
                 if d.json["type"] == "payment.refunded"] or None, "refund webhooks")
    await eventually(lambda: len(sandbox_gateway.receiver.about(held.payment_id)) == 4,
                     "four webhooks")
    events = [gateway.parse_webhook(d.body, d.headers)
              for d in sandbox_gateway.receiver.about(held.payment_id)]
    assert [(e.refund_id, e.refund_amount_minor) for e in events[2:]] == [
        (first.refund_id, 300), (rest.refund_id, 500)]
    assert refunds


async def test_void_releases_an_authorisation_only(gateway: SandboxCardGateway) -> None:
    held = await authorized(gateway, 1000)
    voided = await gateway.void(key(), held.payment_id or "")
    assert voided.status is PaymentStatus.VOIDED and voided.error is None
    assert (await gateway.capture(key(), held.payment_id or "")).error == (
        "payment_state_conflict")
    captured = await authorized(gateway, 500)
    await gateway.capture(key(), captured.payment_id or "")
    refused = await gateway.void(key(), captured.payment_id or "")
    assert refused.error == "payment_state_conflict" and refused.status is PaymentStatus.CAPTURED


async def test_zero_amount_verification_can_be_voided_not_captured(
        gateway: SandboxCardGateway) -> None:
    held = await authorized(gateway, 0)
    assert (await gateway.capture(key(), held.payment_id or "")).error == (
        "payment_state_conflict")
    assert (await gateway.void(key(), held.payment_id or "")).status is PaymentStatus.VOIDED


async def test_an_unknown_payment_or_token(gateway: SandboxCardGateway) -> None:
    assert await gateway.get_payment("pay_nope") is None
    missing = await gateway.capture(key(), "pay_nope")
    assert missing.error == "payment_not_found"
    result = await gateway.authorize(key(), token="tok_nope", amount_minor=1, currency="CNY",
                                     reference="r")
    assert result.status is PaymentStatus.FAILED and result.error == "token_not_found"
    refund = await gateway.refund(key(), "pay_nope")
    assert (refund.status, refund.reason) == (RefundStatus.FAILED, "payment_not_found")


async def test_idempotency_same_key_same_payment_other_body_conflict(
        gateway: SandboxCardGateway, sandbox_gateway: SandboxGateway) -> None:
    token = await token_for(gateway, "4242424242424242")
    same_key, reference = key(), key("ref")
    first = await gateway.authorize(same_key, token=token, amount_minor=700, currency="CNY",
                                    reference=reference)
    again = await gateway.authorize(same_key, token=token, amount_minor=700, currency="CNY",
                                    reference=reference)
    assert again == first and first.status is PaymentStatus.AUTHORIZED
    other = await gateway.authorize(same_key, token=token, amount_minor=701, currency="CNY",
                                    reference=reference)
    assert other.error == "idempotency_key_reused"
    raw = httpx.post(f"{sandbox_gateway.url}/v1/payments", headers={"Idempotency-Key": same_key},
                     json={"token": token, "amount_minor": 701, "currency": "CNY",
                           "reference": reference})
    assert raw.status_code == 409 and raw.json()["code"] == "idempotency_key_reused"
    replayed = httpx.post(f"{sandbox_gateway.url}/v1/payments",
                          headers={"Idempotency-Key": same_key},
                          json={"token": token, "amount_minor": 700, "currency": "CNY",
                                "reference": reference})
    assert replayed.status_code == 201 and replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json()["id"] == first.payment_id
    # One payment, one webhook, however often it was asked for.
    await eventually(lambda: sandbox_gateway.receiver.about(first.payment_id), "the webhook")
    listed = httpx.get(f"{sandbox_gateway.url}/v1/payments", params={"reference": reference})
    assert [p["id"] for p in listed.json()["payments"]] == [first.payment_id]
    # Captures and refunds are idempotent too.
    capture_key = key()
    once = await gateway.capture(capture_key, first.payment_id or "", 300)
    assert await gateway.capture(capture_key, first.payment_id or "", 300) == once
    assert (await gateway.capture(capture_key, first.payment_id or "", 200)).error == (
        "idempotency_key_reused")
    refund_key = key()
    refund = await gateway.refund(refund_key, first.payment_id or "", 100)
    assert (await gateway.refund(refund_key, first.payment_id or "", 100)) == refund
    payment = await gateway.get_payment(first.payment_id or "")
    assert payment is not None and payment.amount_refunded_minor == 100


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/payments", {"token": "t", "amount_minor": 1, "currency": "CNY", "reference": "r"}),
    ("/v1/payments/pay_x/capture", None), ("/v1/payments/pay_x/void", None),
    ("/v1/payments/pay_x/refunds", None)])
def test_money_requests_need_an_idempotency_key(sandbox_gateway: SandboxGateway, path: str,
                                                body: dict | None) -> None:
    r = httpx.post(f"{sandbox_gateway.url}{path}", json=body)
    assert r.status_code == 400 and r.json()["code"] == "idempotency_key_missing"


@pytest.mark.parametrize("body", [
    {"token": "t", "amount_minor": -1, "currency": "CNY", "reference": "r"},
    {"token": "t", "amount_minor": 1, "currency": "XXQ", "reference": "r"},
    {"token": "t", "amount_minor": "1", "currency": "CNY", "reference": "r"},
    {"token": "t", "amount_minor": 1, "currency": "CNY", "reference": "r",
     "return_url": "javascript:alert(1)"},
    {"token": "t", "amount_minor": 1, "currency": "CNY", "reference": "r", "extra": 1}])
def test_bad_authorisations_are_422(sandbox_gateway: SandboxGateway, body: dict) -> None:
    r = httpx.post(f"{sandbox_gateway.url}/v1/payments", json=body,
                   headers={"Idempotency-Key": key()})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"


async def test_webhooks_are_signed_with_the_shared_secret(
        gateway: SandboxCardGateway, sandbox_gateway: SandboxGateway) -> None:
    held = await authorized(gateway)
    (delivery,) = await eventually(lambda: sandbox_gateway.receiver.about(held.payment_id),
                                   "the webhook")
    header = delivery.headers[SIGNATURE_HEADER.lower()]
    verify(sandbox_gateway.secret, delivery.body, header)
    assert delivery.headers["bankwallet-event-id"] == delivery.json["id"]
    with pytest.raises(WebhookSignatureInvalid):
        gateway.parse_webhook(delivery.body.replace(b"1000", b"9000"), delivery.headers)
    with pytest.raises(WebhookSignatureInvalid):
        SandboxCardGateway(sandbox_gateway.url, new_secret()).parse_webhook(
            delivery.body, delivery.headers)
    stale = {SIGNATURE_HEADER: sign(sandbox_gateway.secret, delivery.body,
                                    timestamp=int(time.time()) - 3600)}
    with pytest.raises(WebhookTimestampOutsideTolerance):
        gateway.parse_webhook(delivery.body, stale)
    # During a rotation the receiver holds both secrets.
    rotating = SandboxCardGateway(sandbox_gateway.url, [new_secret(), sandbox_gateway.secret])
    assert rotating.parse_webhook(delivery.body, delivery.headers).payment_id == held.payment_id


async def test_a_failing_receiver_gets_the_webhook_again(
        gateway: SandboxCardGateway, sandbox_gateway: SandboxGateway) -> None:
    held = await authorized(gateway, 10)
    sandbox_gateway.receiver.fail(held.payment_id or "", 2)  # before the capture's event exists
    await gateway.capture(key(), held.payment_id or "")
    await eventually(lambda: len(sandbox_gateway.receiver.about(held.payment_id)) == 2,
                     "both webhooks, the second after two refusals")
    attempts = sandbox_gateway.receiver.attempts(held.payment_id)
    assert len(attempts) == 4 and len({d.json["id"] for d in attempts}) == 2
    assert [d.json["type"] for d in sandbox_gateway.receiver.about(held.payment_id)] == [
        "payment.authorized", "payment.captured"]


async def test_duplicate_webhook_and_webhook_never_sent(
        gateway: SandboxCardGateway, sandbox_gateway: SandboxGateway) -> None:
    token = await token_for(gateway, "4242424242424242")
    twice = await gateway.authorize(key(), token=token, amount_minor=10, currency="CNY",
                                    reference=key("ref"), failure_mode="duplicate_webhook")
    deliveries = await eventually(
        lambda: sandbox_gateway.receiver.about(twice.payment_id)
        if len(sandbox_gateway.receiver.about(twice.payment_id)) == 2 else None,
        "two deliveries")
    assert deliveries[0].json["id"] == deliveries[1].json["id"]
    never = await gateway.authorize(key(), token=token, amount_minor=10, currency="CNY",
                                    reference=key("ref"), failure_mode="webhook_never_sent")
    events = httpx.get(f"{sandbox_gateway.url}/sandbox/events",
                       params={"payment_id": never.payment_id}).json()["events"]
    assert [e["state"] for e in events] == ["suppressed"]
    assert sandbox_gateway.receiver.attempts(never.payment_id) == []


async def test_a_timeout_is_unknown_and_the_same_key_finds_the_payment(
        sandbox_gateway: SandboxGateway) -> None:
    async with SandboxCardGateway(sandbox_gateway.url, sandbox_gateway.secret, timeout_s=0.3,
                                  sandbox_delay_s=1.0) as slow:
        token = await token_for(slow, "4242424242424242")
        same_key = key()
        late = await slow.authorize(same_key, token=token, amount_minor=10, currency="CNY",
                                    reference=key("ref"), failure_mode="timeout")
        assert late.status is PaymentStatus.UNKNOWN and late.retryable
    async with SandboxCardGateway(sandbox_gateway.url, sandbox_gateway.secret) as g:
        again = await g.authorize(same_key, token=token, amount_minor=10, currency="CNY",
                                  reference=late.reference or "", failure_mode="timeout")
        assert again.status is PaymentStatus.AUTHORIZED  # applied the first time; replayed


async def test_no_gateway_is_failed_and_retryable() -> None:
    async with SandboxCardGateway(f"http://127.0.0.1:{_closed_port()}", new_secret(),
                                  timeout_s=1.0) as nowhere:
        token = await nowhere.tokenize(number="4242424242424242", exp_month=1,
                                       exp_year=FUTURE_YEAR, cvc="123", holder_name="A")
        assert (token.ok, token.error, token.retryable) == (False, "gateway_unreachable", True)
        result = await nowhere.authorize(key(), token="tok", amount_minor=1, currency="CNY",
                                         reference="r")
        assert result.status is PaymentStatus.FAILED and result.retryable
        payment = await nowhere.get_payment("pay_x")
        assert payment is not None and payment.status is PaymentStatus.UNKNOWN


def _closed_port() -> int:
    from conftest import free_port

    return free_port()  # nothing listens there once the probe socket is closed


async def test_unknown_statuses_are_pending() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={
            "id": "pay_1", "status": "partially_authorized_maybe", "amount_minor": 5,
            "currency": "CNY", "reference": "r", "created_at": "2026-01-01T00:00:00+00:00",
            "updated_at": "2026-01-01T00:00:00+00:00"})

    async with SandboxCardGateway("http://gateway.test", new_secret(),
                                  transport=httpx.MockTransport(answer)) as odd:
        result = await odd.get_payment("pay_1")
        assert result is not None and result.status is PaymentStatus.PENDING
        captured = await odd.capture(key(), "pay_1")
        assert captured.status is PaymentStatus.PENDING and captured.error is None


async def test_garbage_and_5xx_answers_are_unknown() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/void"):
            return httpx.Response(503, text="down")
        return httpx.Response(200, content=b"<html>not json</html>")

    async with SandboxCardGateway("http://gateway.test", new_secret(),
                                  transport=httpx.MockTransport(answer)) as broken:
        assert (await broken.void(key(), "pay_1")).status is PaymentStatus.UNKNOWN
        captured = await broken.capture(key(), "pay_1")
        assert captured.status is PaymentStatus.UNKNOWN and captured.retryable
        token = await broken.tokenize(number="4242424242424242", exp_month=1,
                                      exp_year=FUTURE_YEAR, cvc="123", holder_name="A")
        assert token.error == "http_200" and not token.ok


async def test_state_survives_a_restart_and_keeps_no_card_number_or_code(
        start_gateway, tmp_path: Path) -> None:
    secret, state = new_secret(), tmp_path / "gateway.db"
    number, cvc = "5555555555554444", "864"
    first = start_gateway(secret=secret, state=state)
    async with SandboxCardGateway(first.url, secret) as g:
        token = await g.tokenize(number=number, exp_month=9, exp_year=FUTURE_YEAR, cvc=cvc,
                                 holder_name="Han Meimei")
        held = await g.authorize(key(), token=token.token or "", amount_minor=900,
                                 currency="CNY", reference=key("ref"))
        second_token = await g.tokenize(number=number, exp_month=9, exp_year=FUTURE_YEAR,
                                        cvc=cvc, holder_name="Han Meimei")
    first.stop()
    assert held.status is PaymentStatus.AUTHORIZED
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("gateway.db*"))
    assert number.encode() not in raw and b"Han Meimei" not in raw
    with sqlite3.connect(state) as db:
        columns = {row[1] for table in ("sandbox_card_token", "sandbox_payment")
                   for row in db.execute(f"PRAGMA table_info({table})")}
    assert not columns & {"number", "pan", "cvc", "cvv", "holder_name"}
    restarted = start_gateway(secret=secret, state=state)
    async with SandboxCardGateway(restarted.url, secret) as g:
        kept = await g.get_payment(held.payment_id or "")
        assert kept is not None and kept.status is PaymentStatus.AUTHORIZED
        assert (await g.capture(key(), held.payment_id or "", 400)).amount_captured_minor == 400
        # The second token's code was only in memory: its first authorisation cannot check it.
        later = httpx.post(f"{restarted.url}/v1/payments", headers={"Idempotency-Key": key()},
                           json={"token": second_token.token, "amount_minor": 1,
                                 "currency": "CNY", "reference": "r"})
        assert later.json()["cvc_check"] == "unavailable"
    first_log = first.log_path.read_text() + restarted.log_path.read_text()
    assert number not in first_log


def test_the_log_never_holds_a_card_number(sandbox_gateway: SandboxGateway) -> None:
    httpx.post(f"{sandbox_gateway.url}/v1/tokens", json={
        "number": "4000000000000002", "exp_month": 1, "exp_year": FUTURE_YEAR, "cvc": "123"})
    httpx.post(f"{sandbox_gateway.url}/v1/tokens", json={
        "number": "4242424242424241", "exp_month": 1, "exp_year": FUTURE_YEAR, "cvc": "123"})
    text = sandbox_gateway.log_path.read_text()
    for number in [*OUTCOMES, "4242424242424241"]:
        assert number not in text


def test_the_command_needs_a_long_secret(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "bankwallet", "sandbox-gateway", "--port",
                             "1", "--secret", "short"], check=False, capture_output=True,
                            text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and "at least" in result.stderr
