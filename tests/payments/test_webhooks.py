"""Merchant webhooks: endpoints with a signing secret, the outbox fan-out, delivery to a local
HTTP receiver verified with the official ``stripe`` library, retries with backoff, the
delivery log and replay."""

from __future__ import annotations

import datetime as dt
import itertools

import stripe
from fastapi.testclient import TestClient

from payments.conftest import Receiver, Shop, customer, idem, intent, merchant, pay
from payments.test_api import dump


def dispatch(client: TestClient) -> None:
    """Hand every payments event still in the outbox to the payments consumer, as the
    dispatcher would (without running every other domain's backlog in the shared database;
    ``test_stripe`` has the real dispatcher do it)."""
    from sqlalchemy import select

    from bankwallet.core import outbox
    from bankwallet.payments import service, tasks

    async def run() -> None:
        async with client.app.state.db.sessionmaker() as session:
            rows = (await session.execute(select(outbox.OutboxEvent).where(
                outbox.OutboxEvent.topic == service.EVENT_TOPIC,
                outbox.OutboxEvent.dispatched_at.is_(None)))).scalars().all()
        for row in rows:
            async with client.app.state.db.unit_of_work() as session:
                await tasks.fan_out(session, outbox.Event(row.id, row.topic, row.payload, {},
                                                          row.key, row.created_at))

    client.portal.call(run)


def deliver(client: TestClient, *, at: dt.datetime | None = None) -> int:
    from bankwallet.payments import webhooks

    return client.portal.call(lambda: webhooks.deliver_due(client.app.state.db, now=at))


def endpoint(client: TestClient, shop: Shop, url: str, **body) -> dict:
    r = client.post(f"{shop.base}/webhook-endpoints", json={"url": url, **body},
                    headers=shop.owner.h)
    assert r.status_code == 201, r.text
    return r.json()


def deliveries(client: TestClient, shop: Shop) -> list[dict]:
    r = client.get(f"{shop.base}/webhook-deliveries", headers=shop.owner.h)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_events_are_signed_for_stripe_and_delivered_once(client: TestClient, shop: Shop,
                                                         receiver: Receiver) -> None:
    made = endpoint(client, shop, receiver.url,
                    enabled_events=["payment_intent.succeeded", "charge.refunded"])
    secret = made["secret"]
    assert secret.startswith("whsec_") and "secret" not in client.get(
        f"{shop.base}/webhook-endpoints", headers=shop.owner.h).json()["data"][0]
    assert secret not in dump(client, "payments_webhook_endpoint")

    payer = customer(client, funded=50_00)
    paid = intent(client, shop.owner, shop.merchant["id"], amount=12_00,
                  metadata={"order": "42"})
    assert pay(client, payer, paid["client_secret"]).status_code == 200
    r = client.post(f"{shop.base}/payment-intents/{paid['id']}/refunds",
                    json={"amount_minor": 2_00}, headers={**shop.owner.h, **idem()})
    assert r.status_code == 201
    dispatch(client)
    dispatch(client)  # a second pass finds nothing more to fan out
    assert deliver(client) == 2
    assert deliver(client) == 0

    events = []
    for body, headers in receiver.received:
        event = stripe.Webhook.construct_event(body.decode(), headers["stripe-signature"],
                                               secret)
        events.append(event)
    assert [e.type for e in events] == ["payment_intent.succeeded", "charge.refunded"] or \
        sorted(e.type for e in events) == ["charge.refunded", "payment_intent.succeeded"]
    succeeded = next(e for e in events if e.type == "payment_intent.succeeded")
    assert succeeded.id.startswith("evt_") and succeeded.object == "event"
    assert succeeded.livemode is False and succeeded.api_version
    assert succeeded.data.object.id == paid["id"] and succeeded.data.object.amount == 12_00
    assert succeeded.data.object.status == "succeeded"
    assert succeeded.data.object.metadata["order"] == "42"
    refunded = next(e for e in events if e.type == "charge.refunded")
    assert refunded.data.object.object == "charge"
    assert refunded.data.object.amount_refunded == 2_00
    # A tampered body or another secret does not verify.
    body, headers = receiver.received[0]
    for payload, key in ((body.replace(b"12", b"99"), secret), (body, "whsec_other")):
        try:
            stripe.Webhook.construct_event(payload.decode(), headers["stripe-signature"], key)
        except stripe.SignatureVerificationError:
            pass
        else:
            raise AssertionError("a bad signature verified")

    log = deliveries(client, shop)
    assert len(log) == 2 and {d["status"] for d in log} == {"succeeded"}
    assert all(len(d["log"]) == 1 and d["log"][0]["status_code"] == 200 for d in log)
    listed = client.get(f"{shop.base}/events", headers=shop.owner.h).json()["data"]
    assert {e["id"] for e in events} <= {e["id"] for e in listed}


def test_failed_deliveries_retry_with_backoff_then_give_up(client: TestClient, shop: Shop,
                                                           receiver: Receiver) -> None:
    from bankwallet.payments import webhooks

    endpoint(client, shop, receiver.url, enabled_events=["payment_intent.canceled"])
    receiver.statuses = [500] * 50
    made = intent(client, shop.owner, shop.merchant["id"])
    r = client.post(f"{shop.base}/payment-intents/{made['id']}/cancel", json={},
                    headers={**shop.owner.h, **idem()})
    assert r.status_code == 200
    dispatch(client)
    now = dt.datetime.now(dt.UTC)
    assert deliver(client, at=now) == 1
    assert deliver(client, at=now + dt.timedelta(seconds=1)) == 0  # not due yet
    waits = []
    clock = now
    for _ in range(webhooks.MAX_ATTEMPTS + 2):
        (row,) = deliveries(client, shop)
        if row["status"] != "pending":
            break
        due = dt.datetime.fromisoformat(row["next_attempt_at"])
        waits.append((due - clock).total_seconds())
        clock = due
        assert deliver(client, at=due) == 1
    (row,) = deliveries(client, shop)
    assert row["status"] == "failed" and row["attempts"] == webhooks.MAX_ATTEMPTS
    assert [a["status_code"] for a in row["log"]] == [500] * webhooks.MAX_ATTEMPTS
    assert all(a["latency_ms"] >= 0 and a["error"] == "HTTP 500" for a in row["log"])
    # Each wait is about twice the one before (with up to 25 % jitter), from the base.
    assert webhooks.RETRY_BASE_S <= waits[0] <= webhooks.RETRY_BASE_S * 1.25 + 1
    for before, after in itertools.pairwise(waits):
        assert after > before
    assert len(receiver.received) == webhooks.MAX_ATTEMPTS
    assert deliver(client, at=clock + dt.timedelta(days=1)) == 0  # bounded: no more

    # Replay from the log: the receiver is fixed now.
    receiver.statuses = []
    r = client.post(f"{shop.base}/webhook-deliveries/{row['id']}/replay", headers=shop.owner.h)
    assert r.status_code == 200 and r.json()["status"] == "pending"
    assert deliver(client) == 1
    (row,) = deliveries(client, shop)
    assert row["status"] == "succeeded" and row["log"][-1]["status_code"] == 200
    bodies = receiver.bodies()
    assert len({b["id"] for b in bodies}) == 1  # the same event every time


def test_unreachable_receivers_are_logged(client: TestClient, shop: Shop) -> None:
    from conftest import free_port

    endpoint(client, shop, f"http://127.0.0.1:{free_port()}/gone")
    intent(client, shop.owner, shop.merchant["id"])  # payment_intent.created, to every "*"
    dispatch(client)
    assert deliver(client) == 1
    (row,) = deliveries(client, shop)
    assert row["status"] == "pending" and row["last_status_code"] is None
    assert row["log"][0]["error"].startswith("ConnectError")


def test_disabled_endpoints_get_nothing(client: TestClient, shop: Shop,
                                        receiver: Receiver) -> None:
    made = endpoint(client, shop, receiver.url)
    r = client.post(f"{shop.base}/webhook-endpoints/{made['id']}/disable", headers=shop.owner.h)
    assert r.status_code == 200 and r.json()["status"] == "disabled"
    intent(client, shop.owner, shop.merchant["id"])
    dispatch(client)
    assert deliver(client) == 0 and receiver.received == []


def test_endpoint_input_and_ownership(client: TestClient, shop: Shop, receiver: Receiver) -> None:
    for body, code in (({"url": "ftp://example.com/x"}, "invalid_webhook_url"),
                       ({"url": "not a url"}, "invalid_webhook_url"),
                       ({"url": receiver.url, "enabled_events": ["payment.teleported"]},
                        "invalid_event_types")):
        r = client.post(f"{shop.base}/webhook-endpoints", json=body, headers=shop.owner.h)
        assert r.status_code == 422 and r.json()["code"] == code, r.text
    made = endpoint(client, shop, receiver.url)
    intent(client, shop.owner, shop.merchant["id"])
    dispatch(client)
    (row,) = deliveries(client, shop)
    stranger = customer(client)
    r = client.post(f"{shop.base}/webhook-deliveries/{row['id']}/replay", headers=stranger.h)
    assert r.status_code == 404
    other = Shop(stranger, merchant(client, stranger))
    r = client.post(f"{other.base}/webhook-deliveries/{row['id']}/replay", headers=stranger.h)
    assert r.status_code == 404
    r = client.post(f"{other.base}/webhook-endpoints/{made['id']}/disable", headers=stranger.h)
    assert r.status_code == 404


def test_production_refuses_private_webhook_urls(monkeypatch) -> None:
    import pytest

    from bankwallet.payments import webhooks
    from bankwallet.payments.errors import InvalidWebhookUrl
    from bankwallet.settings import Settings

    monkeypatch.setattr(webhooks, "get_settings", lambda: Settings(env="prod"))
    for url in ("http://shop.example.com/h", "https://127.0.0.1/h", "https://10.1.2.3/h",
                "https://localhost/h", "https://[::1]/h"):
        with pytest.raises(InvalidWebhookUrl):
            webhooks.check_url(url)
    assert webhooks.check_url("https://shop.example.com/h") == "https://shop.example.com/h"
