"""Payment intents paid with a saved card, against the real sandbox gateway process: every
test card's outcome, 3-D Secure there and back, manual capture (partial), a capture after a
void, refunds through the gateway, the gateway's webhooks (duplicates included), healing, who
may use which card, and that no card number reaches a log line or a merchant."""

from __future__ import annotations

import asyncio
import re
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cards.conftest import answer_challenge, card_body
from connectors_gateway.conftest import (  # noqa: F401 (fixtures)
    SandboxGateway,
    eventually,
    sandbox_gateway,
    webhook_receiver,
)
from fastapi.testclient import TestClient
from identity.test_api import CLIENT_ADDRESSES, key_file  # noqa: F401 (fixtures)

from bankwallet.core.logging import QUIET_LOGGERS
from bankwallet.app import create_app
from bankwallet.settings import Settings

from .conftest import (
    Customer,
    Shop,
    balance_of,
    customer,
    fees_balance,
    idem,
    intent,
    merchant,
    merchant_balance,
)

WEBHOOKS = "/api/v1/cards/gateway/webhooks"
APPROVED = ["4242424242424242", "5555555555554444", "378282246310005"]
# What the issuer answers a saved card that turns bad: (status, code, decline_code).
DECLINES = {
    "4000000000000002": (402, "card_declined", "generic_decline"),
    "4000000000009995": (402, "card_declined", "insufficient_funds"),
    "4000000000000069": (402, "expired_card", "expired_card"),
    "4000000000000127": (402, "incorrect_cvc", "incorrect_cvc"),
    "4000000000000119": (402, "processing_error", "processing_error"),
}
THREE_DS = "4000002500003155"
AMOUNT = 100_00


@contextlib.contextmanager
def _gateway_app(database_url: str, gateway: SandboxGateway) -> Iterator[TestClient]:
    from bankwallet.core import crypto
    from bankwallet.settings import get_settings

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BANKWALLET_ENV", "test")
        patch.setenv("BANKWALLET_IP_MAX_FAILURES", "1000000")
        get_settings.cache_clear()
        crypto.reset_keyring()
        app = create_app(Settings(database_url=database_url, env="test",
                                  gateway_url=gateway.url, gateway_secret=gateway.secret),
                         run_workers=False)
        with TestClient(app, client=(next(CLIENT_ADDRESSES), 50000)) as test_client:
            yield test_client
        crypto.reset_keyring()
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def client(db_url: str, key_file: Path,  # noqa: F811
           sandbox_gateway: SandboxGateway) -> Iterator[TestClient]:  # noqa: F811
    """The app on both databases, its card gateway the sandbox gateway process."""
    with _gateway_app(db_url, sandbox_gateway) as test_client:
        yield test_client


@pytest.fixture
def shop(client: TestClient) -> Shop:
    owner = customer(client)
    return Shop(owner, merchant(client, owner))


# -- helpers -----------------------------------------------------------------------------------


def add_card(client: TestClient, payer: Customer, number: str) -> dict:
    """A card added through the cards API (a 3-D Secure one completes its challenge)."""
    r = client.post("/api/v1/cards", json=card_body(number), headers=payer.h)
    assert r.status_code in (201, 202), r.text
    card = r.json()
    if card["status"] == "requires_action":
        answer_challenge(card["next_action"]["url"], "complete")
        card = client.get(f"/api/v1/cards/{card['id']}", headers=payer.h).json()
    assert card["status"] == "active", card
    return card


def saved_card(client: TestClient, gateway: SandboxGateway, payer: Customer,
               number: str) -> str:
    """A card saved while it was good (tokenised at the gateway, kept active): the issuer
    now answers its payments as the test card says."""
    from bankwallet.cards.models import Card

    body = card_body(number)
    token = httpx.post(f"{gateway.url}/v1/tokens", json=body).json()
    card_id = uuid.uuid4()

    async def run() -> None:
        now = dt.datetime.now(dt.UTC)
        async with client.app.state.db.unit_of_work() as session:
            session.add(Card(id=card_id, user_id=uuid.UUID(payer.user_id), status="active",
                             brand=token["brand"], funding=token["funding"],
                             last4=token["last4"], exp_month=body["exp_month"],
                             exp_year=body["exp_year"], pan_enc=None, pan_index=None,
                             holder_name_enc=None, gateway_token=token["id"],
                             verification_payment_id=None, challenge_url=None,
                             failure_reason=None, created_at=now, updated_at=now,
                             verified_at=now, removed_at=None))

    client.portal.call(run)
    return str(card_id)


def pay_card(client: TestClient, payer: Customer, handle: str, card_id: str,
             key: str | None = None) -> httpx.Response:
    return client.post(f"/api/v1/payment-intents/{handle}/pay", json={"card_id": card_id},
                       headers={**payer.h, **idem(key)})


def merchant_intent(client: TestClient, shop: Shop, pi: str) -> dict:
    r = client.get(f"{shop.base}/payment-intents/{pi}", headers=shop.owner.h)
    assert r.status_code == 200, r.text
    return r.json()


def gateway_payment(gateway: SandboxGateway, pi: str) -> dict:
    """The gateway's payment of an intent (its reference is the intent's id)."""
    found = httpx.get(f"{gateway.url}/v1/payments", params={"reference": pi}).json()
    return found["payments"][-1]


def clearing(client: TestClient) -> int:
    from bankwallet.wallets import service as wallets_service

    return balance_of(client, wallets_service.system_account_id(
        wallets_service.SystemAccount.GATEWAY_CLEARING, "CNY"))


def fee(amount: int) -> int:
    from bankwallet.payments.service import fee_for

    return fee_for(amount)


def deliveries(gateway: SandboxGateway, payment_id: str, event_type: str) -> list:
    return asyncio.run(eventually(
        lambda: [d for d in gateway.receiver.about(payment_id) if d.json["type"] == event_type],
        f"the {event_type} webhook"))


def signed(delivery) -> dict[str, str]:
    return {k: v for k, v in delivery.headers.items() if k.startswith("bankwallet-")}


def events_of(client: TestClient, shop: Shop, type_: str) -> list[dict]:
    r = client.get(f"{shop.base}/events", params={"type": type_, "limit": 100},
                   headers=shop.owner.h)
    assert r.status_code == 200, r.text
    return r.json()["data"]


# -- every test card ---------------------------------------------------------------------------


def test_approved_cards_pay_and_the_money_arrives_from_gateway_clearing(
        client: TestClient, shop: Shop, sandbox_gateway: SandboxGateway) -> None:
    payer = customer(client)
    for number in APPROVED:
        card = add_card(client, payer, number)
        made = intent(client, shop.owner, shop.merchant["id"], AMOUNT,
                      payment_method_types=["bankwallet_balance", "card"])
        before = (merchant_balance(client, shop.merchant["id"]), clearing(client),
                  fees_balance(client))
        r = pay_card(client, payer, made["client_secret"], card["id"])
        assert r.status_code == 200, r.text
        paid = r.json()
        assert paid["status"] == "succeeded" and paid["payment_method"] == "card"
        assert paid["card"] == {"brand": card["brand"], "last4": number[-4:]}
        assert (merchant_balance(client, shop.merchant["id"]), clearing(client),
                fees_balance(client)) == (before[0] + AMOUNT - fee(AMOUNT),
                                          before[1] - AMOUNT, before[2] + fee(AMOUNT))
        seen = merchant_intent(client, shop, made["id"])
        assert seen["status"] == "succeeded" and seen["amount_received_minor"] == AMOUNT
        assert seen["fee_minor"] == fee(AMOUNT)
        payment = gateway_payment(sandbox_gateway, made["id"])
        assert payment["status"] == "captured" and payment["amount_captured_minor"] == AMOUNT
    # The wallet balance was never touched.
    from .conftest import wallet_balance

    assert wallet_balance(client, payer.user_id) == 0


@pytest.mark.parametrize("number", list(DECLINES))
def test_declines_keep_the_intent_payable_and_move_nothing(
        client: TestClient, shop: Shop, sandbox_gateway: SandboxGateway, number: str) -> None:
    status, code, decline_code = DECLINES[number]
    payer = customer(client)
    card_id = saved_card(client, sandbox_gateway, payer, number)
    made = intent(client, shop.owner, shop.merchant["id"], AMOUNT,
                  payment_method_types=["card"])
    before = (merchant_balance(client, shop.merchant["id"]), clearing(client))
    key = str(uuid.uuid4())
    r = pay_card(client, payer, made["client_secret"], card_id, key)
    assert r.status_code == status, r.text
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert problem["code"] == code and problem["decline_code"] == decline_code
    assert number not in r.text
    seen = merchant_intent(client, shop, made["id"])
    assert seen["status"] == "requires_payment_method"
    assert seen["last_payment_error"]["code"] == code
    assert seen["last_payment_error"]["decline_code"] == decline_code
    assert seen["last_payment_error"]["type"] == "card_error"
    assert (merchant_balance(client, shop.merchant["id"]), clearing(client)) == before
    # The same request again answers the same (the idempotency record replays it).
    again = pay_card(client, payer, made["client_secret"], card_id, key)
    assert again.status_code == status and again.json()["code"] == code
    assert len(events_of(client, shop, "payment_intent.payment_failed")) >= 1
    # Paying again with a good card works.
    good = add_card(client, payer, "4242424242424242")
    r = pay_card(client, payer, made["client_secret"], good["id"])
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text


# -- 3-D Secure ----------------------------------------------------------------------------------


def challenged_payment(client: TestClient, shop: Shop, payer: Any,
                       **intent_options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """An intent of ``AMOUNT`` paid with a new 3-D Secure card of ``payer``: (the intent as
    made, the answer waiting for the challenge)."""
    card = add_card(client, payer, THREE_DS)
    made = intent(client, shop.owner, shop.merchant["id"], AMOUNT, **intent_options)
    return made, pay_card(client, payer, made["client_secret"], card["id"]).json()


def test_3ds_challenge_then_back_to_the_wallet_and_paid(
        client: TestClient, shop: Shop, sandbox_gateway: SandboxGateway) -> None:
    payer = customer(client)
    card = add_card(client, payer, THREE_DS)  # its verification needed a challenge too
    made = intent(client, shop.owner, shop.merchant["id"], AMOUNT,
                  payment_method_types=["card"], return_url="https://shop.example/done")
    handle = made["client_secret"]
    r = pay_card(client, payer, handle, card["id"])
    assert r.status_code == 200, r.text
    waiting = r.json()
    assert waiting["status"] == "requires_action"
    url = waiting["next_action_url"]
    assert url.startswith(f"{sandbox_gateway.url}/3ds/")
    # The merchant's Stripe-shaped event names the challenge page and the way back.
    (event,) = [e for e in events_of(client, shop, "payment_intent.requires_action")
                if e["data"]["object"]["id"] == made["id"]]
    assert event["data"]["object"]["next_action"]["redirect_to_url"]["url"] == url
    assert merchant_balance(client, shop.merchant["id"]) == 0

    back = urlsplit(answer_challenge(url, "complete"))
    assert back.path == f"/pay/{handle}/card-return"
    assert parse_qs(back.query)["payment_id"] == [gateway_payment(sandbox_gateway,
                                                                  made["id"])["id"]]
    seen = client.get(f"/api/v1/payment-intents/{handle}", headers=payer.h)
    assert seen.status_code == 200 and seen.json()["status"] == "succeeded", seen.text
    assert seen.json()["next_action_url"] is None
    assert merchant_balance(client, shop.merchant["id"]) == AMOUNT - fee(AMOUNT)
    assert gateway_payment(sandbox_gateway, made["id"])["status"] == "captured"


def test_3ds_challenge_failed_leaves_the_intent_payable(
        client: TestClient, shop: Shop, sandbox_gateway: SandboxGateway) -> None:
    payer = customer(client)
    made, waiting = challenged_payment(client, shop, payer, payment_method_types=["card"])
    answer_challenge(waiting["next_action_url"], "fail")
    seen = client.get(f"/api/v1/payment-intents/{made['client_secret']}", headers=payer.h)
    assert seen.json()["status"] == "requires_payment_method"
    assert seen.json()["last_payment_error"]["decline_code"] == "authentication_failed"
    assert merchant_balance(client, shop.merchant["id"]) == 0


# -- manual capture, void, capture after a void ---------------------------------------------------


def test_manual_capture_authorises_then_captures_part(
        client: TestClient, shop: Shop, sandbox_gateway: SandboxGateway) -> None:
    payer = customer(client)
    card = add_card(client, payer, "4242424242424242")
    made = intent(client, shop.owner, shop.merchant["id"], AMOUNT, capture_method="manual",
                  payment_method_types=["card"])
    r = pay_card(client, payer, made["client_secret"], card["id"])
    assert r.status_code == 200 and r.json()["status"] == "requires_capture", r.text
    assert gateway_payment(sandbox_gateway, made["id"])["status"] == "authorized"
    assert merchant_balance(client, shop.merchant["id"]) == 0  # held, not posted
    seen = merchant_intent(client, shop, made["id"])
    assert seen["amount_capturable_minor"] == AMOUNT

    part = 60_00
    r = client.post(f"{shop.base}/payment-intents/{made['id']}/capture",
                    json={"amount_to_capture_minor": part}, headers={**shop.owner.h, **idem()})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    assert r.json()["amount_received_minor"] == part and r.json()["fee_minor"] == fee(part)
    payment = gateway_payment(sandbox_gateway, made["id"])
    assert payment["status"] == "captured" and payment["amount_captured_minor"] == part
    assert merchant_balance(client, shop.merchant["id"]) == part - fee(part)


def test_cancel_voids_and_a_capture_after_the_void_is_refused(
        client: TestClient, shop: Shop, sandbox_gateway: SandboxGateway) -> None:
    payer = customer(client)
    card = add_card(client, payer, "5555555555554444")
    made = intent(client, shop.owner, shop.merchant["id"], AMOUNT, capture_method="manual",
                  payment_method_types=["card"])
    assert pay_card(client, payer, made["client_secret"], card["id"]).status_code == 200
    r = client.post(f"{shop.base}/payment-intents/{made['id']}/cancel", json={},
                    headers={**shop.owner.h, **idem()})
    assert r.status_code == 200 and r.json()["status"] == "canceled", r.text
    assert gateway_payment(sandbox_gateway, made["id"])["status"] == "voided"
    before = (merchant_balance(client, shop.merchant["id"]), clearing(client))

    r = client.post(f"{shop.base}/payment-intents/{made['id']}/capture", json={},
                    headers={**shop.owner.h, **idem()})
    assert r.status_code == 409 and r.json()["code"] == "payment_intent_unexpected_state"
    assert merchant_intent(client, shop, made["id"])["status"] == "canceled"
    assert gateway_payment(sandbox_gateway, made["id"])["status"] == "voided"
    assert (merchant_balance(client, shop.merchant["id"]), clearing(client)) == before


def test_a_capture_the_gateway_refuses_after_its_own_void_changes_nothing(
        client: TestClient, shop: Shop, sandbox_gateway: SandboxGateway) -> None:
    payer = customer(client)
    card = add_card(client, payer, "4242424242424242")
    made = intent(client, shop.owner, shop.merchant["id"], AMOUNT, capture_method="manual",
                  payment_method_types=["card"])
    assert pay_card(client, payer, made["client_secret"], card["id"]).status_code == 200
    payment_id = gateway_payment(sandbox_gateway, made["id"])["id"]
    # Voided at the gateway (its own back office); its webhook has not reached us yet.
    voided = httpx.post(f"{sandbox_gateway.url}/v1/payments/{payment_id}/void",
                        headers={"Idempotency-Key": f"back-office-{payment_id}"})
    assert voided.status_code == 200 and voided.json()["status"] == "voided"
    before = (merchant_balance(client, shop.merchant["id"]), clearing(client),
              fees_balance(client))

    r = client.post(f"{shop.base}/payment-intents/{made['id']}/capture", json={},
                    headers={**shop.owner.h, **idem()})
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "card_capture_refused"
    assert r.json()["gateway_status"] == "voided"
    seen = merchant_intent(client, shop, made["id"])
    assert seen["status"] == "requires_capture" and seen["amount_received_minor"] == 0
    assert (merchant_balance(client, shop.merchant["id"]), clearing(client),
            fees_balance(client)) == before
    # The gateway's webhook about the void then cancels the intent.
    (delivery,) = deliveries(sandbox_gateway, payment_id, "payment.voided")
    assert client.post(WEBHOOKS, content=delivery.body,
                       headers=signed(delivery)).json()["duplicate"] is False
    assert merchant_intent(client, shop, made["id"])["status"] == "canceled"


# -- refunds -----------------------------------------------------------------------------------


def test_partial_then_full_refund_back_to_the_card(
        client: TestClient, shop: Shop, sandbox_gateway: SandboxGateway) -> None:
    payer = customer(client)
    card = add_card(client, payer, "4242424242424242")
    made = intent(client, shop.owner, shop.merchant["id"], AMOUNT,
                  payment_method_types=["card"])
    assert pay_card(client, payer, made["client_secret"], card["id"]).json()["status"] == \
        "succeeded"
    start = (merchant_balance(client, shop.merchant["id"]), clearing(client),
             fees_balance(client))
    refunds = f"{shop.base}/payment-intents/{made['id']}/refunds"

    r = client.post(refunds, json={"amount_minor": 30_00}, headers={**shop.owner.h, **idem()})
    assert r.status_code == 201 and r.json()["status"] == "succeeded", r.text
    fee_back = r.json()["fee_refund_minor"]
    assert fee_back == 18  # 0.6 % of 100.00 is 60; 30 % of it goes back
    payment = gateway_payment(sandbox_gateway, made["id"])
    assert payment["amount_refunded_minor"] == 30_00 and payment["status"] == "captured"
    assert (merchant_balance(client, shop.merchant["id"]), clearing(client),
            fees_balance(client)) == (start[0] - 30_00 + fee_back, start[1] + 30_00,
                                      start[2] - fee_back)

    r = client.post(refunds, json={}, headers={**shop.owner.h, **idem()})
    assert r.status_code == 201 and r.json()["amount_minor"] == 70_00, r.text
    assert gateway_payment(sandbox_gateway, made["id"])["status"] == "refunded"
    # Everything went back: the merchant is where it was before the payment, fee included.
    assert merchant_balance(client, shop.merchant["id"]) == start[0] - (AMOUNT - fee(AMOUNT))
    assert clearing(client) == start[1] + AMOUNT
    seen = merchant_intent(client, shop, made["id"])
    assert seen["amount_refunded_minor"] == AMOUNT and seen["fee_refunded_minor"] == fee(AMOUNT)
    r = client.post(refunds, json={"amount_minor": 1}, headers={**shop.owner.h, **idem()})
    assert r.status_code == 409 and r.json()["code"] == "refund_exceeds_captured"


# -- webhooks and healing ------------------------------------------------------------------------


def test_duplicate_webhooks_settle_a_challenge_once(
        client: TestClient, shop: Shop, sandbox_gateway: SandboxGateway) -> None:
    payer = customer(client)
    made, waiting = challenged_payment(client, shop, payer, payment_method_types=["card"])
    payment_id = gateway_payment(sandbox_gateway, made["id"])["id"]
    answer_challenge(waiting["next_action_url"], "complete")  # the customer never comes back
    (delivery,) = deliveries(sandbox_gateway, payment_id, "payment.authorized")

    first = client.post(WEBHOOKS, content=delivery.body, headers=signed(delivery))
    assert first.status_code == 200 and first.json()["duplicate"] is False, first.text
    for _ in range(2):
        again = client.post(WEBHOOKS, content=delivery.body, headers=signed(delivery))
        assert again.status_code == 200 and again.json()["duplicate"] is True
    assert merchant_intent(client, shop, made["id"])["status"] == "succeeded"
    assert merchant_balance(client, shop.merchant["id"]) == AMOUNT - fee(AMOUNT)
    succeeded = [e for e in events_of(client, shop, "payment_intent.succeeded")
                 if e["data"]["object"]["id"] == made["id"]]
    assert len(succeeded) == 1
    # The customer comes back after all: nothing moves twice.
    assert client.get(f"/api/v1/payment-intents/{made['client_secret']}",
                      headers=payer.h).json()["status"] == "succeeded"
    assert merchant_balance(client, shop.merchant["id"]) == AMOUNT - fee(AMOUNT)


def test_healing_settles_a_challenge_no_webhook_or_customer_reported(
        client: TestClient, shop: Shop, sandbox_gateway: SandboxGateway) -> None:
    from bankwallet.payments import tasks

    payer = customer(client)
    made, waiting = challenged_payment(client, shop, payer, capture_method="manual",
                                       payment_method_types=["card"])
    answer_challenge(waiting["next_action_url"], "complete")
    assert merchant_intent(client, shop, made["id"])["status"] == "requires_action"

    app = client.app
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    healed = client.portal.call(lambda: tasks.heal_once(app.state.db, app.state.ledger,
                                                        now=later,
                                                        gateway=app.state.card_gateway))
    assert healed >= 1
    seen = merchant_intent(client, shop, made["id"])
    assert seen["status"] == "requires_capture" and seen["amount_capturable_minor"] == AMOUNT


# -- who may use which card; what the merchant and the logs see ---------------------------------


def test_another_customers_card_cannot_pay(client: TestClient, shop: Shop) -> None:
    alice, bob = customer(client), customer(client)
    card = add_card(client, alice, "4242424242424242")
    made = intent(client, shop.owner, shop.merchant["id"], AMOUNT,
                  payment_method_types=["card"])
    r = pay_card(client, bob, made["client_secret"], card["id"])
    assert r.status_code == 404 and r.json()["code"] == "card_not_found", r.text
    assert merchant_intent(client, shop, made["id"])["status"] == "requires_payment_method"
    assert merchant_balance(client, shop.merchant["id"]) == 0
    # Bad input changes nothing either.
    r = client.post(f"/api/v1/payment-intents/{made['client_secret']}/pay",
                    json={"card_id": "not-a-card"}, headers={**bob.h, **idem()})
    assert r.status_code == 422
    # An intent that does not take cards is refused before the gateway is asked.
    wallet_only = intent(client, shop.owner, shop.merchant["id"], AMOUNT)
    r = pay_card(client, alice, wallet_only["client_secret"], card["id"])
    assert r.status_code == 422 and r.json()["code"] == "invalid_payment_method"


def test_the_merchant_sees_brand_and_last4_never_the_number_nor_the_logs(
        client: TestClient, shop: Shop, sandbox_gateway: SandboxGateway,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for quiet in QUIET_LOGGERS:  # the HTTP client's loggers, if turned up
        caplog.set_level(logging.DEBUG, logger=quiet)
    payer = customer(client)
    numbers = ["4242424242424242", "378282246310005"]
    cards = [add_card(client, payer, n) for n in numbers]
    declined = saved_card(client, sandbox_gateway, payer, "4000000000009995")
    key = api_key_for(client, shop)
    seen: list[str] = []
    for card in [*cards, {"id": declined}]:
        made = intent(client, shop.owner, shop.merchant["id"], AMOUNT,
                      payment_method_types=["card"])
        r = pay_card(client, payer, made["client_secret"], card["id"])
        seen.append(r.text)
        seen.append(client.get(f"{shop.base}/payment-intents/{made['id']}",
                               headers=shop.owner.h).text)
        stripe = client.get(f"/stripe/v1/payment_intents/{made['id']}",
                            params={"expand[]": "latest_charge"},
                            headers={"Authorization": f"Bearer {key}"})
        assert stripe.status_code == 200, stripe.text
        seen.append(stripe.text)
    seen.append(client.get(f"{shop.base}/events", params={"limit": 100},
                           headers=shop.owner.h).text)
    charge = stripe.json()["latest_charge"]
    assert charge["payment_method_details"] == {"type": "card", "card": {
        "brand": "visa", "last4": "9995"}}
    logged = "\n".join(r.getMessage() + " " + str(r.__dict__) for r in caplog.records)
    logged += sandbox_gateway.log_path.read_text()
    for number in [*numbers, "4000000000009995"]:
        assert all(number not in text for text in seen), number
        assert number not in logged, number
    assert "payment declined" in logged or "card payment declined" in logged


def api_key_for(client: TestClient, shop: Shop) -> str:
    from .conftest import api_key

    return api_key(client, shop.owner, shop.merchant["id"])


@pytest.fixture(scope="module")
def pg_client(pg_url: str, key_file: Path,  # noqa: F811
              sandbox_gateway: SandboxGateway) -> Iterator[TestClient]:  # noqa: F811
    with _gateway_app(pg_url, sandbox_gateway) as test_client:
        yield test_client


def test_concurrent_payments_of_one_intent_charge_the_card_once(
        pg_client: TestClient, sandbox_gateway: SandboxGateway) -> None:
    client = pg_client
    owner = customer(client)
    shop = Shop(owner, merchant(client, owner))
    payer = customer(client)
    card = add_card(client, payer, "4242424242424242")
    made = intent(client, shop.owner, shop.merchant["id"], AMOUNT,
                  payment_method_types=["card"])
    same_key = str(uuid.uuid4())

    async def race() -> list[int]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            answers = await asyncio.gather(*[
                c.post(f"/api/v1/payment-intents/{made['client_secret']}/pay",
                       json={"card_id": card["id"]},
                       headers={**payer.h, **idem(same_key if i % 2 else None)})
                for i in range(4)])
        return sorted(a.status_code for a in answers)

    codes = client.portal.call(race)
    assert codes.count(200) >= 1 and set(codes) <= {200, 409}, codes
    found = httpx.get(f"{sandbox_gateway.url}/v1/payments",
                      params={"reference": made["id"]}).json()["payments"]
    assert [p["status"] for p in found] == ["captured"]
    assert merchant_balance(client, shop.merchant["id"]) == AMOUNT - fee(AMOUNT)
    assert merchant_intent(client, shop, made["id"])["amount_received_minor"] == AMOUNT


# -- the pay page --------------------------------------------------------------------------------


def test_the_pay_page_offers_the_balance_and_cards_and_pays_by_card(
        client: TestClient, shop: Shop, sandbox_gateway: SandboxGateway) -> None:
    from identity.test_web import log_in_with_cookie

    from .test_web import EN, form_value

    payer = customer(client)
    good = add_card(client, payer, "5555555555554444")
    challenged = add_card(client, payer, THREE_DS)
    poor = saved_card(client, sandbox_gateway, payer, "4000000000009995")
    made = intent(client, shop.owner, shop.merchant["id"], 20_00,
                  payment_method_types=["bankwallet_balance", "card"])
    handle = made["client_secret"]
    client.cookies.clear()
    csrf = log_in_with_cookie(client, payer.login)
    try:
        page = client.get(f"/pay/{handle}", headers=EN)
        assert page.status_code == 200
        assert 'value="wallet"' in page.text and f'value="card:{good["id"]}"' in page.text
        assert f'value="card:{challenged["id"]}"' in page.text and "4444" in page.text

        def submit(method: str):
            page = client.get(f"/pay/{handle}", headers=EN)
            return client.post(f"/pay/{handle}", data={
                "csrf_token": csrf, "idempotency_key": form_value(page.text, "idempotency_key"),
                "method": method}, headers=EN, follow_redirects=False)

        declined = submit(f"card:{poor}")
        assert declined.status_code == 402 and "insufficient funds" in declined.text
        assert 'data-decline-code="insufficient_funds"' in declined.text

        # 3-D Secure: a link to the bank's page, then back through card-return.
        r = submit(f"card:{challenged['id']}")
        assert r.status_code == 303 and r.headers["location"] == f"/pay/{handle}"
        page = client.get(r.headers["location"], headers=EN)
        link = re.search(r'href="([^"]+/3ds/[^"]+)" id="card-challenge"', page.text)
        assert link, page.text
        back = urlsplit(answer_challenge(link.group(1), "complete"))
        r = client.get(f"{back.path}?{back.query}", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].endswith("?done=1"), r.text
        done = client.get(r.headers["location"], headers=EN)
        assert "Paid. Thank you!" in done.text and "3155" in done.text
        assert merchant_balance(client, shop.merchant["id"]) == 20_00 - fee(20_00)
    finally:
        client.cookies.clear()


def test_a_challenge_left_open_is_voided_when_paid_another_way_or_canceled(
        client: TestClient, shop: Shop, sandbox_gateway: SandboxGateway) -> None:
    payer = customer(client, funded=AMOUNT)
    card = add_card(client, payer, THREE_DS)
    made = intent(client, shop.owner, shop.merchant["id"], AMOUNT,
                  payment_method_types=["bankwallet_balance", "card"])
    waiting = pay_card(client, payer, made["client_secret"], card["id"]).json()
    assert waiting["status"] == "requires_action"
    r = client.post(f"/api/v1/payment-intents/{made['client_secret']}/pay",
                    headers={**payer.h, **idem()})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    assert gateway_payment(sandbox_gateway, made["id"])["status"] == "voided"
    # The challenge page now says it is over; completing it changes nothing.
    answer = httpx.post(waiting["next_action_url"], data={"result": "complete"})
    assert answer.status_code in (200, 303)
    assert merchant_balance(client, shop.merchant["id"]) == AMOUNT - fee(AMOUNT)

    other = intent(client, shop.owner, shop.merchant["id"], AMOUNT,
                   payment_method_types=["card"])
    assert pay_card(client, payer, other["client_secret"], card["id"]).json()["status"] == \
        "requires_action"
    r = client.post(f"{shop.base}/payment-intents/{other['id']}/cancel", json={},
                    headers={**shop.owner.h, **idem()})
    assert r.status_code == 200 and r.json()["status"] == "canceled", r.text
    assert gateway_payment(sandbox_gateway, other["id"])["status"] == "voided"


def test_a_capture_whose_answer_was_lost_is_finished_by_the_captured_webhook(
        client: TestClient, shop: Shop, sandbox_gateway: SandboxGateway,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bankwallet.connectors.gateway.base import PaymentResult, PaymentStatus

    gateway = client.app.state.card_gateway
    real_capture = gateway.capture

    async def answer_lost(key: str, payment_id: str, amount_minor: int | None = None):
        await real_capture(key, payment_id, amount_minor)  # applied at the gateway...
        return PaymentResult(PaymentStatus.UNKNOWN, payment_id, reason="timeout")  # ...unheard

    payer = customer(client)
    card = add_card(client, payer, "4242424242424242")
    made = intent(client, shop.owner, shop.merchant["id"], AMOUNT,
                  payment_method_types=["card"])
    monkeypatch.setattr(gateway, "capture", answer_lost)
    r = pay_card(client, payer, made["client_secret"], card["id"])
    assert r.status_code == 200 and r.json()["status"] == "processing", r.text
    monkeypatch.setattr(gateway, "capture", real_capture)
    assert merchant_balance(client, shop.merchant["id"]) == 0
    payment_id = gateway_payment(sandbox_gateway, made["id"])["id"]
    (delivery,) = deliveries(sandbox_gateway, payment_id, "payment.captured")
    for duplicate in (False, True):
        r = client.post(WEBHOOKS, content=delivery.body, headers=signed(delivery))
        assert r.status_code == 200 and r.json()["duplicate"] is duplicate
    assert merchant_intent(client, shop, made["id"])["status"] == "succeeded"
    assert merchant_balance(client, shop.merchant["id"]) == AMOUNT - fee(AMOUNT)
