"""The card vault through the JSON API, on SQLite and PostgreSQL, against the real sandbox
gateway process: add (step-up), list masked, duplicate, remove, another user's card, bad
input, declines, 3-D Secure (completed, failed, by webhook), concurrency."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bankwallet.cards.models import Card

from .conftest import (
    CARDS,
    FUTURE_YEAR,
    WEBHOOKS,
    SandboxGateway,
    add,
    answer_challenge,
    bearer,
    card_body,
    eventually,
    make_stale,
    new_user,
    random_visa,
    verification_of,
)


def cards_of(client: TestClient, token: str) -> list[dict]:
    r = client.get(CARDS, headers=bearer(token))
    assert r.status_code == 200, r.text
    return r.json()["items"]


def count_rows(client: TestClient, user_id: str) -> int:
    import uuid

    async def run() -> int:
        async with client.app.state.db.sessionmaker() as session:
            return (await session.execute(select(func.count()).select_from(Card).where(
                Card.user_id == uuid.UUID(user_id)))).scalar_one()

    return client.portal.call(run)


def test_add_list_masked_and_remove(client: TestClient,
                                    sandbox_gateway: SandboxGateway) -> None:
    user = new_user(client)
    r = add(client, user["token"], "4242 4242 4242 4242")
    assert r.status_code == 201, r.text
    card = r.json()
    assert card["status"] == "active" and card["brand"] == "visa" and card["last4"] == "4242"
    assert card["masked_number"] == "•••• 4242" and card["funding"] == "credit"
    assert card["holder_name"] == "Li Lei" and card["exp_year"] == FUTURE_YEAR
    assert card["next_action"] is None and not card["expired"]
    assert "4242424242424242" not in r.text and "739" not in r.text.replace(card["id"], "")
    listed = cards_of(client, user["token"])
    assert [c["id"] for c in listed] == [card["id"]]
    assert "4242424242424242" not in str(listed)
    # The gateway checked the card with a zero-amount authorisation, with the code, then
    # released it.
    verification = verification_of(sandbox_gateway, card["id"])
    assert (verification["amount_minor"], verification["status"],
            verification["cvc_check"]) == (0, "voided", "pass")

    assert client.get(f"{CARDS}/{card['id']}", headers=bearer(user["token"])).json() == card
    assert client.delete(f"{CARDS}/{card['id']}", headers=bearer(user["token"])
                         ).status_code == 204
    assert cards_of(client, user["token"]) == []
    for method in ("GET", "DELETE"):
        gone = client.request(method, f"{CARDS}/{card['id']}", headers=bearer(user["token"]))
        assert gone.status_code == 404 and gone.json()["code"] == "card_not_found"
    # Removed cards can be added again.
    assert add(client, user["token"], "4242424242424242").status_code == 201


@pytest.mark.parametrize(("number", "brand", "funding"), [
    ("5555555555554444", "mastercard", "credit"), ("378282246310005", "amex", "credit"),
    ("6200000000000005", "unionpay", "debit"), ("4000056655665556", "visa", "debit")])
def test_every_brand(client: TestClient, number: str, brand: str, funding: str) -> None:
    user = new_user(client)
    r = add(client, user["token"], number)
    assert r.status_code == 201, r.text
    assert (r.json()["brand"], r.json()["funding"], r.json()["last4"]) == (
        brand, funding, number[-4:])


def test_adding_needs_a_fresh_second_factor(client: TestClient) -> None:
    user = new_user(client)
    make_stale(client, user["user"]["id"])
    r = add(client, user["token"])
    assert r.status_code == 403 and r.json()["code"] == "step_up_required"
    assert r.headers["content-type"] == "application/problem+json"
    assert "sms" in r.json()["methods"]
    assert cards_of(client, user["token"]) == [] and count_rows(client, user["user"]["id"]) == 0


def test_the_same_card_twice_is_refused(client: TestClient) -> None:
    user, other = new_user(client), new_user(client)
    assert add(client, user["token"], "5555555555554444").status_code == 201
    again = add(client, user["token"], "5555 5555 5555 4444", exp_month=1)
    assert again.status_code == 409 and again.json()["code"] == "card_already_added"
    assert len(cards_of(client, user["token"])) == 1
    # Another customer may hold the same card.
    assert add(client, other["token"], "5555555555554444").status_code == 201


def test_another_users_card_is_not_found(client: TestClient) -> None:
    owner, intruder = new_user(client), new_user(client)
    card = add(client, owner["token"]).json()
    for method in ("GET", "DELETE"):
        r = client.request(method, f"{CARDS}/{card['id']}", headers=bearer(intruder["token"]))
        assert r.status_code == 404 and r.json()["code"] == "card_not_found"
    assert cards_of(client, intruder["token"]) == []
    assert [c["id"] for c in cards_of(client, owner["token"])] == [card["id"]]
    unknown = client.get(f"{CARDS}/018f0000-0000-7000-8000-000000000000",
                         headers=bearer(owner["token"]))
    assert unknown.status_code == 404


def test_cards_need_a_session(client: TestClient) -> None:
    assert client.get(CARDS).status_code == 401
    assert client.post(CARDS, json=card_body()).status_code == 401
    assert client.delete(f"{CARDS}/018f0000-0000-7000-8000-000000000000").status_code == 401


BAD_INPUT = [
    ({"number": "4242424242424241"}, "invalid_card_number"),
    ({"number": "4242 4242 4242"}, "invalid_card_number"),
    ({"number": "6011111111111117"}, "card_brand_unsupported"),
    ({"exp_month": 13}, "invalid_expiry"),
    ({"exp_month": 0}, "invalid_expiry"),
    ({"exp_year": 2020}, "card_expired"),
    ({"exp_year": 3000}, "invalid_expiry"),
    ({"exp_year": 10**12}, "invalid_expiry"),
    ({"cvc": "12"}, "invalid_cvc"),
    ({"cvc": "7391"}, "invalid_cvc"),
    ({"holder_name": "   "}, "invalid_holder_name"),
    ({"holder_name": "x" * 129}, "invalid_input"),
    ({"number": "4" * 33}, "invalid_input"),
    ({"cvc": "123456789"}, "invalid_input"),
    ({"exp_month": "twelve"}, "invalid_input"),
    ({"exp_year": 2030.5}, "invalid_input"),
    ({"extra": "field"}, "invalid_input"),
]


def test_bad_input_is_refused_and_nothing_is_kept(client: TestClient) -> None:
    user = new_user(client)
    for changes, code in BAD_INPUT:
        body = card_body(**changes)
        r = client.post(CARDS, json=body, headers=bearer(user["token"]))
        assert (r.status_code, r.json()["code"]) == (422, code), (changes, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert str(body["number"]) not in r.text and f'"{body["cvc"]}"' not in r.text
    assert count_rows(client, user["user"]["id"]) == 0


def test_a_body_that_is_not_json_is_refused(client: TestClient) -> None:
    user = new_user(client)
    r = client.post(CARDS, content=b"number=4242424242424242",
                    headers={**bearer(user["token"]), "content-type": "application/json"})
    assert r.status_code == 422 and "4242424242424242" not in r.text
    missing = client.post(CARDS, json={"number": "4242424242424242"},
                          headers=bearer(user["token"]))
    assert missing.status_code == 422


@pytest.mark.parametrize(("number", "status", "code", "decline_code"), [
    ("4000000000000002", 402, "card_declined", "generic_decline"),
    ("4000000000009995", 402, "card_declined", "insufficient_funds"),
    ("4000000000000069", 402, "card_declined", "expired_card"),
    ("4000000000000127", 402, "card_declined", "incorrect_cvc"),
    ("4000000000000119", 503, "card_gateway_unavailable", None)])
def test_declined_cards_are_not_kept(client: TestClient, number: str, status: int, code: str,
                                     decline_code: str | None) -> None:
    user = new_user(client)
    r = add(client, user["token"], number)
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert r.json().get("decline_code") == decline_code
    assert number not in r.text
    assert cards_of(client, user["token"]) == []
    # What stays is the attempt, wiped: no number, no index, no name, no token.
    import uuid

    async def stored() -> list[Card]:
        async with client.app.state.db.sessionmaker() as session:
            return list(await session.scalars(select(Card).where(
                Card.user_id == uuid.UUID(user["user"]["id"]))))

    (row,) = client.portal.call(stored)
    assert row.status == "failed" and row.last4 == number[-4:]
    assert (row.pan_enc, row.pan_index, row.holder_name_enc, row.gateway_token) == (
        None, None, None, None)
    # The same card can be tried again.
    assert add(client, user["token"], number).json()["code"] == code


def test_3ds_challenge_completed_then_the_customer_returns(
        client: TestClient, sandbox_gateway: SandboxGateway) -> None:
    user = new_user(client)
    r = add(client, user["token"], "4000002500003155")
    assert r.status_code == 202, r.text
    card = r.json()
    assert card["status"] == "requires_action" and card["next_action"]["type"] == "redirect"
    url = card["next_action"]["url"]
    assert url.startswith(f"{sandbox_gateway.url}/3ds/")
    assert cards_of(client, user["token"])[0]["status"] == "requires_action"
    back = urlsplit(answer_challenge(url, "complete"))
    assert back.path == f"/me/cards/{card['id']}/return"
    assert parse_qs(back.query)["payment_id"] == [verification_of(sandbox_gateway,
                                                                  card["id"])["id"]]
    # The API client reads the card: it is checked with the gateway and becomes active.
    read = client.get(f"{CARDS}/{card['id']}", headers=bearer(user["token"]))
    assert read.status_code == 200 and read.json()["status"] == "active"
    assert read.json()["next_action"] is None
    assert verification_of(sandbox_gateway, card["id"])["status"] == "voided"


def test_3ds_challenge_failed(client: TestClient, sandbox_gateway: SandboxGateway) -> None:
    user = new_user(client)
    card = add(client, user["token"], "4000002500003155").json()
    answer_challenge(card["next_action"]["url"], "fail")
    read = client.get(f"{CARDS}/{card['id']}", headers=bearer(user["token"]))
    assert read.status_code == 200 and read.json()["status"] == "failed"
    assert client.get(f"{CARDS}/{card['id']}", headers=bearer(user["token"])).status_code == 404
    assert cards_of(client, user["token"]) == []


def test_3ds_settled_by_the_signed_webhook(client: TestClient,
                                           sandbox_gateway: SandboxGateway) -> None:
    user = new_user(client)
    card = add(client, user["token"], "4000002500003155").json()
    payment_id = verification_of(sandbox_gateway, card["id"])["id"]
    answer_challenge(card["next_action"]["url"], "complete")
    (delivery,) = asyncio.run(eventually(
        lambda: [d for d in sandbox_gateway.receiver.about(payment_id)
                 if d.json["type"] == "payment.authorized"], "the authorised webhook"))
    headers = {k: v for k, v in delivery.headers.items() if k.startswith("bankwallet-")}
    tampered = client.post(WEBHOOKS, content=delivery.body.replace(b"authorized", b"captured"),
                           headers={**headers, "content-type": "application/json"})
    assert tampered.status_code == 400 and tampered.json()["code"] == "webhook_signature_invalid"
    unsigned = client.post(WEBHOOKS, content=delivery.body)
    assert unsigned.status_code == 400
    assert cards_of(client, user["token"])[0]["status"] == "requires_action"

    r = client.post(WEBHOOKS, content=delivery.body, headers=headers)
    assert r.status_code == 200 and r.json() == {"received": True, "duplicate": False}
    assert cards_of(client, user["token"])[0]["status"] == "active"
    again = client.post(WEBHOOKS, content=delivery.body, headers=headers)
    assert again.json() == {"received": True, "duplicate": True}
    # The webhook voided the verification.
    assert verification_of(sandbox_gateway, card["id"])["status"] == "voided"


def test_webhooks_about_other_payments_are_acknowledged(
        client: TestClient, sandbox_gateway: SandboxGateway) -> None:
    from bankwallet.core.webhooks import SIGNATURE_HEADER, sign

    body = (b'{"id":"evt_other","type":"payment.captured","created_at":"2026-01-01T00:00:00+00:00",'
            b'"payment":{"id":"pay_other","status":"captured","amount_minor":5,"currency":"CNY",'
            b'"reference":"elsewhere","created_at":"2026-01-01T00:00:00+00:00",'
            b'"updated_at":"2026-01-01T00:00:00+00:00"}}')
    r = client.post(WEBHOOKS, content=body,
                    headers={SIGNATURE_HEADER: sign(sandbox_gateway.secret, body)})
    assert r.status_code == 200 and r.json()["duplicate"] is False
    junk = b'{"id": 1}'
    r = client.post(WEBHOOKS, content=junk,
                    headers={SIGNATURE_HEADER: sign(sandbox_gateway.secret, junk)})
    assert r.status_code == 400 and r.json()["code"] == "webhook_payload_invalid"


def test_removing_a_card_mid_challenge_voids_it(client: TestClient,
                                                sandbox_gateway: SandboxGateway) -> None:
    user = new_user(client)
    card = add(client, user["token"], "4000002500003155").json()
    assert client.delete(f"{CARDS}/{card['id']}", headers=bearer(user["token"])
                         ).status_code == 204
    assert verification_of(sandbox_gateway, card["id"])["status"] == "voided"


def test_a_wallet_holds_at_most_ten_cards(client: TestClient) -> None:
    user = new_user(client)
    for _ in range(10):
        assert add(client, user["token"], random_visa()).status_code == 201
    r = add(client, user["token"], random_visa())
    assert r.status_code == 409 and r.json()["code"] == "too_many_cards"


def test_without_a_gateway_cards_are_not_connected(unconnected_client: TestClient) -> None:
    user = new_user(unconnected_client)
    r = add(unconnected_client, user["token"])
    assert r.status_code == 503 and r.json()["code"] == "card_payments_not_connected"
    assert cards_of(unconnected_client, user["token"]) == []
    hook = unconnected_client.post(WEBHOOKS, content=b"{}")
    assert hook.status_code == 503


def test_concurrent_adds_of_one_card_keep_one(pg_client: TestClient) -> None:
    client = pg_client
    user = new_user(client)
    body = card_body(random_visa())

    async def race() -> list[int]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            answers = await asyncio.gather(*[
                c.post(CARDS, json=body, headers=bearer(user["token"])) for _ in range(4)])
        return sorted(a.status_code for a in answers)

    codes = client.portal.call(race)
    assert codes.count(201) == 1 and codes.count(409) == 3, codes
    assert len(cards_of(client, user["token"])) == 1


def test_many_declines_in_a_day_stop_further_cards(client: TestClient) -> None:
    """Card testing: a stolen-number tryer gets ten declines, then nothing more today."""
    from bankwallet.cards.service import FAILED_ADDS_PER_DAY

    user = new_user(client)
    for _ in range(FAILED_ADDS_PER_DAY):
        assert add(client, user["token"], "4000000000000002").status_code == 402
    blocked = add(client, user["token"], "4242424242424242")
    assert blocked.status_code == 429 and blocked.json()["code"] == "too_many_card_attempts"
    assert blocked.headers["retry-after"] == "3600"
    assert cards_of(client, user["token"]) == []


def test_the_customer_and_the_webhook_settle_a_challenge_once(
        pg_client: TestClient, sandbox_gateway: SandboxGateway) -> None:
    """Back from 3-D Secure and the webhook at the same moment: one card.added, one audit."""
    from bankwallet.core.outbox import OutboxEvent

    client = pg_client
    user = new_user(client)
    card = add(client, user["token"], "4000002500003155").json()
    payment_id = verification_of(sandbox_gateway, card["id"])["id"]
    answer_challenge(card["next_action"]["url"], "complete")
    (delivery,) = asyncio.run(eventually(
        lambda: sandbox_gateway.receiver.about(payment_id), "the authorised webhook"))
    headers = {k: v for k, v in delivery.headers.items() if k.startswith("bankwallet-")}

    async def race() -> list[int]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            answers = await asyncio.gather(
                *[c.get(f"{CARDS}/{card['id']}", headers=bearer(user["token"]))
                  for _ in range(3)],
                *[c.post(WEBHOOKS, content=delivery.body, headers=headers) for _ in range(2)])
        return [a.status_code for a in answers]

    assert client.portal.call(race) == [200] * 5
    assert cards_of(client, user["token"])[0]["status"] == "active"

    async def added_events() -> int:
        async with client.app.state.db.sessionmaker() as session:
            return (await session.execute(select(func.count()).select_from(OutboxEvent).where(
                OutboxEvent.topic == "card.added",
                OutboxEvent.payload["card_id"].as_string() == card["id"]))).scalar_one()

    assert client.portal.call(added_events) == 1
