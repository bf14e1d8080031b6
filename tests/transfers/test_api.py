"""Sending money between customers through the JSON API, on SQLite and PostgreSQL: every way
of naming the recipient, every refusal (and that a refusal moves nothing), idempotency,
step-up, another customer's ids, crashes healed."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from fastapi.testclient import TestClient

from bankwallet.core.db import utcnow
from bankwallet.ledger import service as ledger_service
from bankwallet.transfers import service
from bankwallet.transfers.models import Transfer
from bankwallet.wallets.codes import Code

from .support import (
    balance,
    customer,
    events,
    fund,
    grant_tier,
    ledger_transfer,
    outflow_today,
    problem,
    rows,
    second_factor_at,
    send,
    set_status,
    snapshot,
    transfers_of,
)


def test_send_by_phone_moves_money_and_tells_both_sides(client: TestClient) -> None:
    alice, bob = customer(client, funded=100_00), customer(client)
    r = send(client, alice, bob.login, 12_34, note="  dinner\n on friday ")
    assert r.status_code == 201, r.text
    sent = r.json()
    assert sent["status"] == "posted" and sent["direction"] == "sent" and sent["kind"] == "p2p"
    assert sent["amount_minor"] == 12_34 and sent["currency"] == "CNY"
    assert sent["note"] == "dinner on friday"
    assert "****" in sent["counterparty"] and bob.login[-4:] in sent["counterparty"]
    assert balance(client, alice.id) == 100_00 - 12_34 and balance(client, bob.id) == 12_34

    # The ledger transfer carries what history and statements read.
    moved = ledger_transfer(client, uuid.UUID(sent["ledger_transfer_id"]))
    assert moved.code == Code.P2P and moved.amount == 12_34
    assert moved.user_data == {"kind": "p2p", "ref": sent["id"], "from": moved.user_data["from"],
                               "to": sent["counterparty"], "note": "dinner on friday"}
    assert alice.login[-4:] in moved.user_data["from"] and "****" in moved.user_data["from"]
    # So does the money.moved event, published with the outcome.
    (event,) = events(client, "money.moved", sent["id"])
    assert event["status"] == "posted" and event["amount_minor"] == 12_34
    assert event["payer_user_id"] == str(alice.id) and event["payee_user_id"] == str(bob.id)

    # Bob sees it as received, with the sender masked; both lists hold it.
    got = client.get(f"/api/v1/transfers/{sent['id']}", headers=bob.headers).json()
    assert got["direction"] == "received" and got["counterparty"] == moved.user_data["from"]
    assert [t["id"] for t in client.get("/api/v1/transfers?direction=received",
                                        headers=bob.headers).json()["items"]] == [sent["id"]]
    assert [t["id"] for t in client.get("/api/v1/transfers?direction=sent",
                                        headers=alice.headers).json()["items"]] == [sent["id"]]
    assert client.get("/api/v1/transfers?direction=sent",
                      headers=bob.headers).json()["items"] == []


def test_send_by_email_wallet_id_and_contact_card(client: TestClient) -> None:
    alice = customer(client, funded=100_00)
    carol = customer(client, email=True)
    assert send(client, alice, carol.login.upper(), 1_00).status_code == 201
    assert send(client, alice, str(carol.id), 2_00).status_code == 201
    card = client.get("/api/v1/contact-card", headers=carol.headers).json()
    assert card["wallet_id"] == str(carol.id)
    assert card["payload"].startswith(f"bankwallet:pay?to={carol.id}&v=1&sig=")
    assert card["svg"].startswith("<svg") and "style=" not in card["svg"]
    assert send(client, alice, card["payload"], 3_00).status_code == 201
    assert balance(client, carol.id) == 6_00


def test_a_forged_or_altered_contact_card_is_refused(client: TestClient) -> None:
    alice, bob, mallory = (customer(client, funded=10_00), customer(client), customer(client))
    card = client.get("/api/v1/contact-card", headers=bob.headers).json()["payload"]
    before = snapshot(client, alice, bob, mallory)
    forged = [card.replace(str(bob.id), str(mallory.id)),  # Bob's signature, Mallory's wallet
              card[:-2] + ("AA" if not card.endswith("AA") else "BB"),
              card.replace("&v=1", "&v=2"),
              card + "&amount=1",
              f"bankwallet:pay?to={mallory.id}&v=1"]
    for payload in forged:
        problem(send(client, alice, payload, 1_00), 422, "contact_card_invalid")
    assert snapshot(client, alice, bob, mallory) == before
    assert transfers_of(client, alice) == []


@pytest.mark.parametrize("case", [
    "unknown", "garbage", "self", "closed", "locked", "zero", "negative", "fraction", "string",
    "currency_unknown", "currency_unsupported", "note_too_long", "extra_field",
    "over_single_limit", "missing_key"])
def test_bad_input_is_refused_and_moves_nothing(client: TestClient, case: str) -> None:
    alice, bob = customer(client, funded=600_00), customer(client)
    before = snapshot(client, alice, bob)
    to, amount, extra, key = bob.login, 1_00, {}, None
    expected = {"unknown": (404, "recipient_not_found"), "garbage": (422, "invalid_recipient"),
                "self": (422, "self_transfer"), "closed": (404, "recipient_not_found"),
                "locked": (404, "recipient_not_found"), "zero": (422, "invalid_input"),
                "negative": (422, "invalid_input"), "fraction": (422, "invalid_input"),
                "string": (422, "invalid_input"), "currency_unknown": (422, "unknown_currency"),
                "currency_unsupported": (422, "currency_unsupported"),
                "note_too_long": (422, "invalid_input"), "extra_field": (422, "invalid_input"),
                "over_single_limit": (422, "limit_exceeded"),
                "missing_key": (400, "idempotency_key_missing")}[case]
    if case == "unknown":
        to = "+86 139 0000 0000"  # tests sign up 138 numbers only
    elif case == "garbage":
        to = "not a phone"
    elif case == "self":
        to = alice.login
    elif case in ("closed", "locked"):
        set_status(client, bob, case)
    elif case == "zero":
        amount = 0
    elif case == "negative":
        amount = -5
    elif case == "fraction":
        amount = 12.5
    elif case == "string":
        amount = "100"
    elif case == "currency_unknown":
        extra = {"currency": "XYZ"}
    elif case == "currency_unsupported":
        extra = {"currency": "JPY"}
    elif case == "note_too_long":
        extra = {"note": "x" * 141}
    elif case == "extra_field":
        extra = {"fee_minor": 0}
    elif case == "over_single_limit":
        amount = 500_01
    elif case == "missing_key":
        key = ""
    body = problem(send(client, alice, to, amount, key=key, **extra), *expected)
    if case == "over_single_limit":
        assert body["limit"] == "single" and body["remaining_minor"] == 500_00
    assert snapshot(client, alice, bob) == before
    assert transfers_of(client, alice) == []
    assert outflow_today(client, alice) == 0


def test_insufficient_funds_is_recorded_replayed_and_releases_the_limit(
        client: TestClient) -> None:
    alice, bob = customer(client, funded=50_00), customer(client)
    before = snapshot(client, alice, bob)
    r = send(client, alice, bob.login, 60_00, key="short-of-money")
    body = problem(r, 422, "insufficient_funds")
    assert snapshot(client, alice, bob) == before
    (row,) = transfers_of(client, alice)
    assert row.status == "failed" and row.failure_code == "insufficient_funds"
    assert ledger_transfer(client, row.ledger_transfer_id) is None
    assert outflow_today(client, alice) == 0  # the reserved outflow was given back
    (event,) = events(client, "money.moved", str(row.id))
    assert event["status"] == "failed"
    # The decision is replayed for the same key, even once the money is there.
    fund(client, alice.id, 50_00)
    again = send(client, alice, bob.login, 60_00, key="short-of-money")
    assert again.status_code == 422 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == body
    assert send(client, alice, bob.login, 60_00).status_code == 201


def test_daily_limit_names_what_is_left(client: TestClient) -> None:
    alice, bob, carol = customer(client, funded=1_500_00), customer(client), customer(client)
    assert send(client, alice, bob.login, 450_00).status_code == 201
    assert send(client, alice, carol.login, 450_00).status_code == 201
    before = snapshot(client, alice, bob, carol)
    body = problem(send(client, alice, bob.login, 200_00), 422, "limit_exceeded")
    assert body["limit"] == "daily" and body["remaining_minor"] == 100_00
    assert body["currency"] == "CNY" and body["tier"] == 0
    assert snapshot(client, alice, bob, carol) == before
    assert outflow_today(client, alice) == 900_00


def test_the_recipients_balance_cap_is_kept_without_naming_their_figures(
        client: TestClient) -> None:
    alice, bob = customer(client, funded=600_00), customer(client)
    fund(client, bob.id, 1_900_00)  # tier 0 holds at most 2,000.00
    before = snapshot(client, alice, bob)
    body = problem(send(client, alice, bob.login, 200_00), 422, "recipient_limit_exceeded")
    assert "remaining_minor" not in body and "limit_minor" not in body
    assert snapshot(client, alice, bob) == before
    assert outflow_today(client, alice) == 0


def test_above_the_threshold_a_fresh_second_factor_is_needed(client: TestClient) -> None:
    alice, bob = customer(client), customer(client)
    grant_tier(client, alice, 1)
    grant_tier(client, bob, 1)
    fund(client, alice.id, 4_000_00)
    second_factor_at(client, alice, dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    before = snapshot(client, alice, bob)
    r = send(client, alice, bob.login, 2_500_00, key="big-one")
    body = problem(r, 403, "step_up_required")
    assert body["step_up_url"] == "/api/v1/auth/step-up"
    assert snapshot(client, alice, bob) == before and outflow_today(client, alice) == 0
    # Below the threshold no step-up is asked.
    assert send(client, alice, bob.login, 1_000_00).status_code == 201
    # After stepping up, the same key runs (the step-up answer was not stored).
    second_factor_at(client, alice, utcnow())
    r = send(client, alice, bob.login, 2_500_00, key="big-one")
    assert r.status_code == 201, r.text
    assert "idempotent-replayed" not in r.headers
    assert balance(client, bob.id) == 3_500_00


def test_same_key_replays_and_another_body_conflicts(client: TestClient) -> None:
    alice, bob = customer(client, funded=100_00), customer(client)
    first = send(client, alice, bob.login, 10_00, key="k-1")
    assert first.status_code == 201
    again = send(client, alice, bob.login, 10_00, key="k-1")
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    problem(send(client, alice, bob.login, 11_00, key="k-1"), 409, "idempotency_key_reused")
    # Keys are per customer: Bob may use the same key for his own transfer.
    fund(client, bob.id, 5_00)
    assert send(client, bob, alice.login, 5_00, key="k-1").status_code == 201
    assert balance(client, alice.id) == 95_00 and balance(client, bob.id) == 10_00
    assert len(transfers_of(client, alice)) == 1


def test_another_customers_transfer_is_not_found(client: TestClient) -> None:
    alice, bob, eve = customer(client, funded=10_00), customer(client), customer(client)
    sent = send(client, alice, bob.login, 1_00).json()
    problem(client.get(f"/api/v1/transfers/{sent['id']}", headers=eve.headers), 404,
            "transfer_not_found")
    problem(client.get(f"/api/v1/transfers/{uuid.uuid4()}", headers=alice.headers), 404,
            "transfer_not_found")
    assert client.get("/api/v1/transfers", headers=eve.headers).json()["items"] == []
    # The payee does not see a transfer that failed on the payer's side.
    failed = send(client, alice, bob.login, 50_00)
    assert failed.status_code == 422
    (row,) = [t for t in transfers_of(client, alice) if t.status == "failed"]
    problem(client.get(f"/api/v1/transfers/{row.id}", headers=bob.headers), 404,
            "transfer_not_found")
    assert client.get(f"/api/v1/transfers/{row.id}", headers=alice.headers).status_code == 200
    assert client.get("/api/v1/transfers/not-a-uuid", headers=alice.headers).status_code == 422
    assert client.get("/api/v1/transfers").status_code == 401


def test_lists_page_with_a_cursor(client: TestClient) -> None:
    alice, bob = customer(client, funded=100_00), customer(client)
    ids = [send(client, alice, bob.login, n).json()["id"] for n in (1, 2, 3, 4, 5)]
    seen, cursor = [], None
    while True:
        query = f"/api/v1/transfers?limit=2{f'&cursor={cursor}' if cursor else ''}"
        page = client.get(query, headers=alice.headers).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    problem(client.get("/api/v1/transfers?cursor=bm9wZQ", headers=alice.headers), 422,
            "invalid_cursor")
    assert client.get("/api/v1/transfers?limit=1000", headers=alice.headers).status_code == 422


def test_a_crash_before_the_outcome_is_healed_once(client: TestClient,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob = customer(client, funded=100_00), customer(client)
    real_submit = ledger_service.submit

    async def crash(*args, **kwargs):
        raise ConnectionError("the ledger's database went away")

    # 1. The request dies after the intent was committed; a retry with the key finishes it.
    monkeypatch.setattr(ledger_service, "submit", crash)
    with pytest.raises(ConnectionError):
        send(client, alice, bob.login, 7_00, key="crash-1")
    (row,) = transfers_of(client, alice)
    assert row.status == "pending" and balance(client, bob.id) == 0
    monkeypatch.setattr(ledger_service, "submit", real_submit)
    retried = send(client, alice, bob.login, 7_00, key="crash-1")
    assert retried.status_code == 201 and retried.json()["id"] == str(row.id)
    assert "idempotent-replayed" not in retried.headers  # the key was released by the crash
    assert balance(client, bob.id) == 7_00

    # 2. Nobody retries: the healing job settles it, exactly once.
    monkeypatch.setattr(ledger_service, "submit", crash)
    with pytest.raises(ConnectionError):
        send(client, alice, bob.login, 8_00, key="crash-2")
    monkeypatch.setattr(ledger_service, "submit", real_submit)
    (stuck,) = [t for t in transfers_of(client, alice) if t.status == "pending"]
    db, ledger = client.app.state.db, client.app.state.ledger

    def heal(now: dt.datetime) -> int:
        async def go() -> int:
            return await service.heal_once(db, ledger, now=now)

        return client.portal.call(go)

    heal(utcnow())  # younger than a minute: it may still be in its request, so left alone
    assert rows(client, Transfer, Transfer.id == stuck.id)[0].status == "pending"
    later = utcnow() + dt.timedelta(minutes=2)
    assert heal(later) >= 1
    assert rows(client, Transfer, Transfer.id == stuck.id)[0].status == "posted"
    heal(later)  # nothing left to do for it
    assert balance(client, bob.id) == 15_00 and balance(client, alice.id) == 85_00
    assert outflow_today(client, alice) == 15_00
    # The retry after healing answers the healed outcome, moving nothing more.
    r = send(client, alice, bob.login, 8_00, key="crash-2")
    assert r.status_code == 201 and r.json()["id"] == str(stuck.id)
    assert balance(client, bob.id) == 15_00
    assert len(events(client, "money.moved", str(stuck.id))) == 1
    assert len(events(client, "money.moved", str(row.id))) == 1


def test_a_transfer_row_holds_no_contact_in_the_clear(client: TestClient) -> None:
    alice, bob = customer(client, funded=10_00), customer(client, email=True)
    send(client, alice, bob.login, 1_00)
    (row,) = rows(client, Transfer, Transfer.payer_user_id == alice.id)
    values = " ".join(str(v) for v in vars(row).values())
    assert bob.login not in values and alice.login.replace(" ", "") not in values


def test_the_first_money_in_a_currency_opens_the_payees_wallet(client: TestClient) -> None:
    """The transfer is tried first; a payee who never held the currency gets the wallet opened
    and the same transfer again, exactly once."""
    alice, bob = customer(client), customer(client)
    fund(client, alice.id, 50_00, "USD")
    assert balance(client, bob.id, "USD") == 0  # no USD wallet yet
    r = send(client, alice, bob.login, 12_50, currency="USD")
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "posted"
    assert balance(client, alice.id, "USD") == 50_00 - 12_50
    assert balance(client, bob.id, "USD") == 12_50
    moved = ledger_transfer(client, uuid.UUID(r.json()["ledger_transfer_id"]))
    assert moved is not None and moved.amount == 12_50
