"""The Stripe-compatible API, driven by the official ``stripe`` library against the app
served by a real ``bankwallet serve`` process (stripe-python needs a real HTTP URL), on
PostgreSQL. Set-up (customers, the merchant, its keys) goes through our own API in this
process, on the same database."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import servers
import stripe
from conftest import free_port
from fastapi.testclient import TestClient

from payments.conftest import (
    Receiver,
    Shop,
    api_key,
    customer,
    merchant,
    pay,
    wallet_balance,
)

SERVER_START_TIMEOUT_S = 30.0
WEBHOOK_TIMEOUT_S = 15.0


@pytest.fixture(scope="module")
def server(pg_url: str, key_file: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[str]:
    from bankwallet.core import crypto

    crypto.reset_keyring()
    crypto.get_keyring()  # the key file exists before the server reads it
    workdir = tmp_path_factory.mktemp("stripe-server")
    port = free_port()
    env = {**os.environ, "BANKWALLET_DATABASE_URL": pg_url, "BANKWALLET_ENV": "test",
           "BANKWALLET_KEY_FILE": str(key_file), "BANKWALLET_LOG_JSON": "false"}
    with servers.running(servers.serve_argv(port), url=f"http://127.0.0.1:{port}", env=env,
                         cwd=workdir, log_path=workdir / "server.log",
                         timeout_s=SERVER_START_TIMEOUT_S) as url:
        yield url


@pytest.fixture
def stripe_shop(server: str, pg_client: TestClient,
                monkeypatch: pytest.MonkeyPatch) -> tuple[Shop, str]:
    """A merchant and its secret key, with stripe-python pointed at our server."""
    monkeypatch.setattr(stripe, "api_base", f"{server}/stripe")
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    monkeypatch.setattr(stripe, "enable_telemetry", False)
    owner = customer(pg_client)
    shop = Shop(owner, merchant(pg_client, owner))
    return shop, api_key(pg_client, owner, shop.merchant["id"])


def test_payment_intents_with_the_stripe_library(pg_client: TestClient,
                                                 stripe_shop: tuple[Shop, str]) -> None:
    _, key = stripe_shop
    first_key = str(uuid.uuid4())
    created = stripe.PaymentIntent.create(
        amount=2000, currency="cny", metadata={"order": "A-1"}, description="Tea",
        payment_method_types=["bankwallet_balance"], api_key=key, idempotency_key=first_key)
    assert created.id.startswith("pi_") and created.object == "payment_intent"
    assert created.status == "requires_payment_method" and created.amount == 2000
    assert created.currency == "cny" and created.livemode is False
    assert created.metadata["order"] == "A-1" and created.client_secret.startswith(created.id)
    again = stripe.PaymentIntent.create(
        amount=2000, currency="cny", metadata={"order": "A-1"}, description="Tea",
        payment_method_types=["bankwallet_balance"], api_key=key, idempotency_key=first_key)
    assert again.id == created.id
    with pytest.raises(stripe.IdempotencyError):
        stripe.PaymentIntent.create(amount=2001, currency="cny", api_key=key,
                                    idempotency_key=first_key)

    confirmed = stripe.PaymentIntent.confirm(created.id, payment_method="bankwallet_balance",
                                             return_url="https://shop.example.com/done",
                                             api_key=key)
    assert confirmed.status == "requires_action"
    assert confirmed.next_action.type == "redirect_to_url"
    assert confirmed.next_action.redirect_to_url.url == f"/pay/{created.client_secret}"
    assert confirmed.next_action.redirect_to_url.return_url == "https://shop.example.com/done"

    payer = customer(pg_client, funded=50_00)
    assert pay(pg_client, payer, created.client_secret).status_code == 200
    paid = stripe.PaymentIntent.retrieve(created.id, api_key=key)
    assert paid.status == "succeeded" and paid.amount_received == 2000
    assert paid.latest_charge.startswith("ch_")
    expanded = stripe.PaymentIntent.retrieve(created.id, expand=["latest_charge"], api_key=key)
    assert expanded.latest_charge.object == "charge" and expanded.latest_charge.captured
    assert expanded.latest_charge.application_fee_amount == 12

    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.PaymentIntent.cancel(created.id, api_key=key)
    assert caught.value.http_status == 400
    assert caught.value.code == "payment_intent_unexpected_state"

    refund = stripe.Refund.create(payment_intent=created.id, amount=500, api_key=key)
    assert refund.id.startswith("re_") and refund.status == "succeeded"
    assert refund.amount == 500 and refund.payment_intent == created.id
    assert stripe.Refund.retrieve(refund.id, api_key=key).amount == 500
    by_charge = stripe.Refund.create(charge=paid.latest_charge, amount=100, api_key=key)
    assert by_charge.status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.Refund.create(payment_intent=created.id, amount=1401, api_key=key)
    assert caught.value.code == "amount_too_large" and caught.value.param == "amount"
    assert wallet_balance(pg_client, payer.user_id) == 50_00 - 2000 + 600

    events = stripe.Event.list(limit=100, api_key=key)
    types = [e.type for e in events.data]
    assert types.count("charge.refunded") == 2 and "payment_intent.succeeded" in types
    assert types[-1] == "payment_intent.created"
    one = stripe.Event.retrieve(events.data[0].id, api_key=key)
    assert one.id == events.data[0].id and one.data.object.object == "charge"


def test_manual_capture_cancel_and_list(pg_client: TestClient,
                                        stripe_shop: tuple[Shop, str]) -> None:
    _, key = stripe_shop
    payer = customer(pg_client, funded=100_00)
    held = stripe.PaymentIntent.create(amount=3000, currency="cny", capture_method="manual",
                                       api_key=key)
    assert pay(pg_client, payer, held.client_secret).json()["status"] == "requires_capture"
    seen = stripe.PaymentIntent.retrieve(held.id, api_key=key)
    assert seen.status == "requires_capture" and seen.amount_capturable == 3000
    captured = stripe.PaymentIntent.capture(held.id, amount_to_capture=1500, api_key=key)
    assert captured.status == "succeeded" and captured.amount_received == 1500
    assert wallet_balance(pg_client, payer.user_id) == 100_00 - 1500

    dropped = stripe.PaymentIntent.create(amount=100, currency="cny", api_key=key)
    canceled = stripe.PaymentIntent.cancel(dropped.id, cancellation_reason="duplicate",
                                           api_key=key)
    assert canceled.status == "canceled" and canceled.cancellation_reason == "duplicate"
    assert canceled.canceled_at

    page = stripe.PaymentIntent.list(limit=1, api_key=key)
    assert page.object == "list" and page.has_more and page.data[0].id == dropped.id
    everything = [i.id for i in stripe.PaymentIntent.list(limit=1, api_key=key)
                  .auto_paging_iter()]
    assert everything == [dropped.id, held.id]
    after = stripe.PaymentIntent.list(limit=5, starting_after=dropped.id, api_key=key)
    assert [i.id for i in after.data] == [held.id] and not after.has_more


def test_stripe_errors_keep_their_shape(pg_client: TestClient,
                                        stripe_shop: tuple[Shop, str]) -> None:
    shop, key = stripe_shop
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.PaymentIntent.retrieve("pi_" + "0" * 32, api_key=key)
    assert caught.value.http_status == 404 and caught.value.code == "resource_missing"
    with pytest.raises(stripe.AuthenticationError) as denied:
        stripe.PaymentIntent.list(api_key="sk_test_" + "x" * 32)
    assert denied.value.http_status == 401
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.PaymentIntent.create(currency="cny", api_key=key)
    assert caught.value.code == "parameter_missing" and caught.value.param == "amount"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.PaymentIntent.create(amount=100, currency="cny", colour="blue", api_key=key)
    assert caught.value.code == "parameter_unknown" and caught.value.param == "colour"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.PaymentIntent.create(amount=0, currency="cny", api_key=key)
    assert caught.value.param == "amount"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.PaymentIntent.create(amount=100, currency="zzz", api_key=key)
    assert caught.value.param == "currency"
    # Confirming with a card: the customer picks one of their saved cards in the wallet.
    by_card = stripe.PaymentIntent.create(amount=100, currency="cny", confirm=True,
                                          payment_method_types=["card"],
                                          payment_method="pm_card_visa", api_key=key)
    assert by_card.status == "requires_action" and by_card.payment_method == "card"
    assert by_card.next_action.redirect_to_url.url.startswith("/pay/pi_")

    reader = api_key(pg_client, shop.owner, shop.merchant["id"], scopes=["payments:read"])
    with pytest.raises(stripe.PermissionError):
        stripe.PaymentIntent.create(amount=100, currency="cny", api_key=reader)
    stranger = customer(pg_client)
    theirs = merchant(pg_client, stranger)
    their_key = api_key(pg_client, stranger, theirs["id"])
    mine = stripe.PaymentIntent.create(amount=100, currency="cny", api_key=key)
    for call in (lambda: stripe.PaymentIntent.retrieve(mine.id, api_key=their_key),
                 lambda: stripe.PaymentIntent.cancel(mine.id, api_key=their_key),
                 lambda: stripe.Refund.create(payment_intent=mine.id, api_key=their_key)):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            call()
        assert caught.value.http_status == 404
    assert stripe.PaymentIntent.retrieve(mine.id, api_key=key).status == \
        "requires_payment_method"


def test_raw_form_encoding_and_missing_idempotency_key(server: str,
                                                       stripe_shop: tuple[Shop, str]) -> None:
    _, key = stripe_shop
    auth = {"Authorization": f"Bearer {key}"}
    r = httpx.post(f"{server}/stripe/v1/payment_intents", headers=auth,
                   content="amount=700&currency=cny&metadata[order]=B-2&metadata[note]=x%20y"
                           "&payment_method_types[]=bankwallet_balance&expand[]=latest_charge",
                   timeout=10)
    assert r.status_code == 200, r.text
    made = r.json()
    assert made["metadata"] == {"order": "B-2", "note": "x y"}
    assert made["payment_method_types"] == ["bankwallet_balance"]
    r = httpx.post(f"{server}/stripe/v1/payment_intents/{made['id']}/cancel", headers=auth,
                   timeout=10)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "idempotency_key_missing"
    basic = httpx.get(f"{server}/stripe/v1/payment_intents/{made['id']}", auth=(key, ""),
                      timeout=10)
    assert basic.status_code == 200 and basic.json()["id"] == made["id"]
    r = httpx.get(f"{server}/stripe/v1/charges", headers=auth, timeout=10)
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"


def test_webhooks_from_the_server_verify_with_construct_event(
        pg_client: TestClient, stripe_shop: tuple[Shop, str], receiver: Receiver) -> None:
    shop, key = stripe_shop
    r = pg_client.post(f"{shop.base}/webhook-endpoints",
                       json={"url": receiver.url, "enabled_events": ["payment_intent.succeeded"]},
                       headers=shop.owner.h)
    secret = r.json()["secret"]
    made = stripe.PaymentIntent.create(amount=800, currency="cny", api_key=key)
    payer = customer(pg_client, funded=10_00)
    assert pay(pg_client, payer, made.client_secret).status_code == 200
    deadline = time.monotonic() + WEBHOOK_TIMEOUT_S
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.1)
    assert receiver.received, "the server delivered no webhook"
    body, headers = receiver.received[0]
    event = stripe.Webhook.construct_event(body.decode(), headers["stripe-signature"], secret)
    assert event.type == "payment_intent.succeeded" and event.data.object.id == made.id
    assert stripe.Event.retrieve(event.id, api_key=key).type == "payment_intent.succeeded"
