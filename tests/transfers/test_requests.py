"""Requests for money and split bills through the JSON API, on SQLite and PostgreSQL: who may
pay, decline and cancel, a request paid once, shares that add up, another customer's ids."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from fastapi.testclient import TestClient

from bankwallet.wallets.codes import Code

from .support import (
    Customer,
    balance,
    customer,
    events,
    fund,
    ledger_transfer,
    problem,
    requests_of,
    snapshot,
    transfers_of,
)


def ask(client: TestClient, requester: Customer, payer: str, amount_minor: int,
        **extra) -> httpx.Response:
    return client.post("/api/v1/requests", headers=requester.headers,
                       json={"payer": payer, "amount_minor": amount_minor, **extra})


def pay(client: TestClient, payer: Customer, request_id: str, key: str | None = None):
    return client.post(f"/api/v1/requests/{request_id}/pay",
                       headers={**payer.headers, "Idempotency-Key": key or uuid.uuid4().hex})


def test_a_request_is_asked_seen_and_paid(client: TestClient) -> None:
    alice, bob = customer(client), customer(client, funded=50_00)
    r = ask(client, alice, bob.login, 25_50, note="concert ticket")
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["status"] == "open" and made["role"] == "requester"
    assert made["amount_minor"] == 25_50 and made["note"] == "concert ticket"
    assert "****" in made["payer"] and "****" in made["requester"]
    (created,) = events(client, "request.created", made["id"])
    assert created["payer_user_id"] == str(bob.id)

    incoming = client.get("/api/v1/requests?box=incoming", headers=bob.headers).json()["items"]
    assert [(i["id"], i["role"]) for i in incoming] == [(made["id"], "payer")]
    outgoing = client.get("/api/v1/requests?box=outgoing", headers=alice.headers).json()
    assert [i["id"] for i in outgoing["items"]] == [made["id"]]
    assert client.get("/api/v1/requests?box=incoming",
                      headers=alice.headers).json()["items"] == []

    paid = pay(client, bob, made["id"], key="pay-1")
    assert paid.status_code == 201, paid.text
    transfer = paid.json()
    assert transfer["kind"] == "request_payment" and transfer["request_id"] == made["id"]
    assert transfer["status"] == "posted" and transfer["note"] == "concert ticket"
    moved = ledger_transfer(client, uuid.UUID(transfer["ledger_transfer_id"]))
    assert moved.code == Code.REQUEST_PAYMENT and moved.user_data["kind"] == "p2p"
    assert balance(client, alice.id) == 25_50 and balance(client, bob.id) == 24_50
    seen = client.get(f"/api/v1/requests/{made['id']}", headers=alice.headers).json()
    assert seen["status"] == "paid" and seen["transfer_id"] == transfer["id"]
    assert seen["decided_at"] is not None

    # Paid once: again with the same key replays, with another key it is not open.
    again = pay(client, bob, made["id"], key="pay-1")
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    problem(pay(client, bob, made["id"]), 409, "request_not_open")
    problem(client.post(f"/api/v1/requests/{made['id']}/cancel", headers=alice.headers), 409,
            "request_not_open")
    assert balance(client, alice.id) == 25_50


def test_only_the_payer_pays_or_declines_and_only_the_requester_cancels(
        client: TestClient) -> None:
    alice, bob, eve = customer(client, funded=10_00), customer(client, funded=10_00), \
        customer(client, funded=10_00)
    made = ask(client, alice, bob.login, 5_00).json()
    before = snapshot(client, alice, bob, eve)
    problem(pay(client, alice, made["id"]), 403, "not_the_payer")
    problem(client.post(f"/api/v1/requests/{made['id']}/decline", headers=alice.headers), 403,
            "not_the_payer")
    problem(client.post(f"/api/v1/requests/{made['id']}/cancel", headers=bob.headers), 403,
            "not_the_requester")
    # A stranger finds nothing at all.
    for method, path in (("get", ""), ("post", "/pay"), ("post", "/decline"),
                         ("post", "/cancel")):
        headers = {**eve.headers, "Idempotency-Key": uuid.uuid4().hex}
        r = getattr(client, method)(f"/api/v1/requests/{made['id']}{path}", headers=headers)
        problem(r, 404, "request_not_found")
    problem(pay(client, bob, str(uuid.uuid4())), 404, "request_not_found")
    r = client.post(f"/api/v1/requests/{made['id']}/pay", headers=bob.headers)
    problem(r, 400, "idempotency_key_missing")
    assert snapshot(client, alice, bob, eve) == before
    assert transfers_of(client, bob) == [] and transfers_of(client, alice) == []
    assert requests_of(client, alice)[0].status == "open"

    declined = client.post(f"/api/v1/requests/{made['id']}/decline", headers=bob.headers)
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    assert len(events(client, "request.declined", made["id"])) == 1
    problem(pay(client, bob, made["id"]), 409, "request_not_open")

    other = ask(client, alice, bob.login, 1_00).json()
    cancelled = client.post(f"/api/v1/requests/{other['id']}/cancel", headers=alice.headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    problem(client.post(f"/api/v1/requests/{other['id']}/decline", headers=bob.headers), 409,
            "request_not_open")
    problem(pay(client, bob, other["id"]), 409, "request_not_open")
    assert snapshot(client, alice, bob, eve) == before


@pytest.mark.parametrize("body, status, code", [
    ({"payer": "nobody@example.com", "amount_minor": 100}, 404, "recipient_not_found"),
    ({"payer": "??", "amount_minor": 100}, 422, "invalid_recipient"),
    ({"payer": "SELF", "amount_minor": 100}, 422, "self_transfer"),
    ({"payer": "BOB", "amount_minor": 0}, 422, "invalid_input"),
    ({"payer": "BOB", "amount_minor": 1.5}, 422, "invalid_input"),
    ({"payer": "BOB", "amount_minor": 100, "currency": "BTC"}, 422, "unknown_currency"),
    ({"payer": "BOB", "amount_minor": 100, "note": "n" * 200}, 422, "invalid_input"),
])
def test_bad_requests_are_refused(client: TestClient, body: dict, status: int,
                                  code: str) -> None:
    alice, bob = customer(client), customer(client)
    body = {**body, "payer": {"SELF": alice.login, "BOB": bob.login}.get(body["payer"],
                                                                          body["payer"])}
    problem(client.post("/api/v1/requests", headers=alice.headers, json=body), status, code)
    assert requests_of(client, alice) == []


def test_a_failed_payment_leaves_the_request_open(client: TestClient) -> None:
    alice, bob = customer(client), customer(client, funded=3_00)
    made = ask(client, alice, bob.login, 5_00).json()
    problem(pay(client, bob, made["id"], key="too-early"), 422, "insufficient_funds")
    assert client.get(f"/api/v1/requests/{made['id']}",
                      headers=bob.headers).json()["status"] == "open"
    fund(client, bob.id, 2_00)
    # The same key replays its refusal; a new one pays.
    assert pay(client, bob, made["id"], key="too-early").status_code == 422
    assert pay(client, bob, made["id"]).status_code == 201
    assert balance(client, alice.id) == 5_00 and balance(client, bob.id) == 0


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_concurrent_pays_with_different_keys_pay_once(client: TestClient) -> None:
    alice, bob = customer(client), customer(client, funded=100_00)
    made = ask(client, alice, bob.login, 40_00).json()

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            return await asyncio.gather(*[
                ac.post(f"/api/v1/requests/{made['id']}/pay",
                        headers={**bob.headers, "Idempotency-Key": f"race-{n}"})
                for n in range(6)])

    answers = client.portal.call(burst)
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201] + [409] * 5, [r.text for r in answers]
    assert {r.json()["code"] for r in answers if r.status_code == 409} == {"request_not_open"}
    assert balance(client, alice.id) == 40_00 and balance(client, bob.id) == 60_00
    assert [t.status for t in transfers_of(client, bob)] == ["posted"]


def test_a_split_bill_shares_equally_with_the_remainder_first(client: TestClient) -> None:
    alice, bob, carol = customer(client), customer(client), customer(client, email=True)
    r = client.post("/api/v1/splits", headers=alice.headers,
                    json={"total_minor": 100_00, "note": "hotpot",
                          "participants": [bob.login, carol.login]})
    assert r.status_code == 201, r.text
    split = r.json()
    assert split["mode"] == "equal" and split["my_share_minor"] == 33_34
    assert [q["amount_minor"] for q in split["requests"]] == [33_33, 33_33]
    assert all(q["note"] == "hotpot" and q["split_id"] == split["id"] for q in split["requests"])
    assert client.get(f"/api/v1/splits/{split['id']}", headers=alice.headers).json() == split
    listed = client.get("/api/v1/splits", headers=alice.headers).json()["items"]
    assert [s["id"] for s in listed] == [split["id"]]
    # Each participant sees their own request, and pays it like any other.
    (mine,) = client.get("/api/v1/requests?box=incoming", headers=carol.headers).json()["items"]
    assert mine["split_id"] == split["id"] and mine["amount_minor"] == 33_33
    fund(client, carol.id, 40_00)
    assert pay(client, carol, mine["id"]).status_code == 201
    statuses = [q["status"] for q in client.get(f"/api/v1/splits/{split['id']}",
                                                headers=alice.headers).json()["requests"]]
    assert statuses == ["open", "paid"]
    # Without me: 1.00 among three people is 0.34, 0.33, 0.33.
    r = client.post("/api/v1/splits", headers=alice.headers,
                    json={"total_minor": 1_00, "include_me": False,
                          "participants": [bob.login, carol.login, str(customer(client).id)]})
    assert [q["amount_minor"] for q in r.json()["requests"]] == [34, 33, 33]
    assert r.json()["my_share_minor"] == 0
    # Others see nothing of it.
    for who in (bob, carol):
        problem(client.get(f"/api/v1/splits/{split['id']}", headers=who.headers), 404,
                "split_not_found")


def test_a_split_bill_with_explicit_shares(client: TestClient) -> None:
    alice, bob, carol = customer(client), customer(client), customer(client)
    r = client.post("/api/v1/splits", headers=alice.headers, json={
        "total_minor": 90_00, "my_share_minor": 30_00,
        "shares": [{"payer": bob.login, "amount_minor": 45_00},
                   {"payer": carol.login, "amount_minor": 15_00}]})
    assert r.status_code == 201, r.text
    assert r.json()["mode"] == "explicit"
    assert [q["amount_minor"] for q in r.json()["requests"]] == [45_00, 15_00]


@pytest.mark.parametrize("case, status, code", [
    ("mismatch", 422, "split_shares_mismatch"), ("duplicate", 422, "duplicate_participant"),
    ("self", 422, "self_transfer"), ("unknown", 404, "recipient_not_found"),
    ("too_small", 422, "split_too_small"), ("both_ways", 422, "invalid_input"),
    ("nobody", 422, "invalid_input"), ("too_many", 422, "invalid_input"),
    ("zero_share", 422, "invalid_input")])
def test_bad_split_bills_create_nothing(client: TestClient, case: str, status: int,
                                        code: str) -> None:
    alice, bob, carol = customer(client), customer(client), customer(client)
    body = {"mismatch": {"total_minor": 100, "shares": [{"payer": bob.login, "amount_minor": 60},
                                                        {"payer": carol.login,
                                                         "amount_minor": 30}]},
            "duplicate": {"total_minor": 100, "participants": [bob.login, str(bob.id)]},
            "self": {"total_minor": 100, "participants": [bob.login, alice.login]},
            "unknown": {"total_minor": 100, "participants": [bob.login, "ghost@example.com"]},
            "too_small": {"total_minor": 2, "participants": [bob.login, carol.login]},
            "both_ways": {"total_minor": 100, "participants": [bob.login],
                          "shares": [{"payer": bob.login, "amount_minor": 100}]},
            "nobody": {"total_minor": 100, "participants": []},
            "too_many": {"total_minor": 100_00, "participants": [bob.login] * 21},
            "zero_share": {"total_minor": 100, "shares": [{"payer": bob.login,
                                                          "amount_minor": 0}]}}[case]
    r = client.post("/api/v1/splits", headers=alice.headers, json=body)
    found = problem(r, status, code)
    if case in ("duplicate", "self", "unknown"):
        assert found["participant"] == 1
    assert requests_of(client, alice) == []
    assert client.get("/api/v1/splits", headers=alice.headers).json()["items"] == []


def test_a_create_with_a_key_is_made_once(client: TestClient) -> None:
    alice, bob = customer(client), customer(client)
    headers = {**alice.headers, "Idempotency-Key": "ask-once"}
    body = {"payer": bob.login, "amount_minor": 8_00}
    first = client.post("/api/v1/requests", headers=headers, json=body)
    again = client.post("/api/v1/requests", headers=headers, json=body)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert len(requests_of(client, alice)) == 1
