"""Quotes and exchanges through the JSON API, on SQLite and PostgreSQL: the legs in the
ledger, the event, idempotency, expiry, single use, authorisation, limits and bad input."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from bankwallet.fx import service
from bankwallet.identity import kyc
from bankwallet.ledger.types import TransferFlags
from bankwallet.wallets import service as wallets
from bankwallet.wallets.codes import Code

from .support import (
    Customer,
    balance,
    balances,
    exchange,
    exchanges_of,
    fund,
    key,
    money_moved,
    new_customer,
    new_quote,
    outflow_today,
    position,
    quote,
    stored_quote,
)


def test_sell_cny_for_usd_moves_both_legs_through_the_fx_position(client: TestClient) -> None:
    alice = new_customer(client)
    fund(client, alice.user_id, 300_00)
    usd_position, cny_position = position(client, "USD"), position(client, "CNY")
    q = new_quote(client, alice, "CNY", "USD", sell_minor=100_00)
    assert (q["sell_amount_minor"], q["buy_amount_minor"]) == (100_00, 14_01)
    assert q["rate"] == "0.1401408450" and q["mid_rate"] == "0.1408450704"
    assert q["spread_bps"] == 50 and q["used"] is False
    expires = dt.datetime.fromisoformat(q["expires_at"])
    assert expires - dt.datetime.fromisoformat(q["created_at"]) == dt.timedelta(seconds=30)

    r = exchange(client, alice, q["id"], key())
    assert r.status_code == 201, r.text
    done = r.json()
    assert done["status"] == "posted" and done["quote_id"] == q["id"]
    assert (done["sell_amount_minor"], done["buy_amount_minor"]) == (100_00, 14_01)
    assert balances(client, alice.user_id) == {"CNY": 200_00, "USD": 14_01}
    # The bank now holds the CNY and owes the USD.
    assert position(client, "CNY") - cny_position == 100_00
    assert position(client, "USD") - usd_position == -14_01
    assert outflow_today(client, alice.user_id) == 100_00

    # The two legs, linked, with deterministic ids and the history's user_data.
    exchange_id = uuid.UUID(done["id"])
    row = client.portal.call(_exchange_row, client, exchange_id)
    legs = client.portal.call(client.app.state.ledger.lookup_transfers,
                              [row.sell_transfer_id, row.buy_transfer_id])
    sell, buy = legs[row.sell_transfer_id], legs[row.buy_transfer_id]
    assert sell.code == Code.FX_SELL and sell.flags & TransferFlags.LINKED
    assert sell.debit_account_id == wallets.wallet_account_id(alice.user_id, "CNY")
    assert sell.credit_account_id == wallets.system_account_id(
        wallets.SystemAccount.FX_POSITION, "CNY")
    assert buy.code == Code.FX_BUY and not buy.flags & TransferFlags.LINKED
    assert buy.debit_account_id == wallets.system_account_id(
        wallets.SystemAccount.FX_POSITION, "USD")
    assert buy.credit_account_id == wallets.wallet_account_id(alice.user_id, "USD")
    assert sell.user_data == buy.user_data == {
        "kind": "exchange", "ref": str(exchange_id), "from": "CNY balance",
        "to": "USD balance", "rate": "0.1401408450"}

    (event,) = money_moved(client, exchange_id)
    assert event["kind"] == "exchange" and event["status"] == "posted"
    assert (event["amount_minor"], event["currency"]) == (100_00, "CNY")
    assert (event["buy_amount_minor"], event["buy_currency"]) == (14_01, "USD")
    assert event["payer_user_id"] == event["payee_user_id"] == str(alice.user_id)
    assert event["ledger_transfer_id"] == str(row.sell_transfer_id)

    assert client.get(f"/api/v1/fx/exchanges/{done['id']}", headers=alice.headers).json() == done
    listed = client.get("/api/v1/fx/exchanges", headers=alice.headers).json()
    assert [e["id"] for e in listed["items"]] == [done["id"]] and listed["next_before"] is None
    assert client.get(f"/api/v1/fx/quotes/{q['id']}", headers=alice.headers).json()["used"]


async def _exchange_row(client: TestClient, exchange_id: uuid.UUID):
    from bankwallet.fx.models import Exchange

    async with client.app.state.db.sessionmaker() as session:
        return await session.get(Exchange, exchange_id)


def test_buy_an_exact_foreign_amount_and_sell_it_back(client: TestClient) -> None:
    bob = new_customer(client)
    fund(client, bob.user_id, 1_000_00)
    q = new_quote(client, bob, "CNY", "EUR", buy_minor=50_00)
    # 50 EUR at 8.25 / 0.995 = 414.5728... CNY, rounded up.
    assert (q["sell_amount_minor"], q["buy_amount_minor"]) == (414_58, 50_00)
    assert exchange(client, bob, q["id"], key()).status_code == 201
    back = new_quote(client, bob, "EUR", "CNY", sell_minor=50_00)
    assert back["buy_amount_minor"] == 410_43  # 50 × 8.25 × 0.995 = 410.4375, rounded down
    assert exchange(client, bob, back["id"], key()).status_code == 201
    assert balances(client, bob.user_id) == {"CNY": 1_000_00 - 414_58 + 410_43, "EUR": 0}
    # The sell of EUR counted against the CNY daily limit at its CNY value (412.50).
    assert outflow_today(client, bob.user_id) == 414_58 + 412_50


def test_a_foreign_to_foreign_exchange(client: TestClient) -> None:
    carol = new_customer(client)
    fund(client, carol.user_id, 100_00, "USD")
    q = new_quote(client, carol, "USD", "HKD", sell_minor=10_00)
    assert q["buy_amount_minor"] == 77_41  # 10 × 7.1 / 0.9126 × 0.995 = 77.4107...
    assert exchange(client, carol, q["id"], key()).status_code == 201
    assert balances(client, carol.user_id) == {"USD": 90_00, "HKD": 77_41}
    assert outflow_today(client, carol.user_id) == 71_00


def test_the_same_key_replays_and_a_second_use_is_refused(client: TestClient) -> None:
    dave = new_customer(client)
    fund(client, dave.user_id, 300_00)
    q = new_quote(client, dave, sell_minor=100_00)
    k = key()
    first = exchange(client, dave, q["id"], k)
    assert first.status_code == 201
    again = exchange(client, dave, q["id"], k)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    other_key = exchange(client, dave, q["id"], key())
    assert other_key.status_code == 409 and other_key.json()["code"] == "quote_used"
    # The same key for another quote is another request: refused, not a second exchange.
    q2 = new_quote(client, dave, sell_minor=10_00)
    reused = exchange(client, dave, q2["id"], k)
    assert reused.status_code == 409 and reused.json()["code"] == "idempotency_key_reused"
    assert balances(client, dave.user_id) == {"CNY": 200_00, "USD": 14_01}
    assert exchanges_of(client, dave.user_id) == 1


def test_an_expired_quote_is_refused_and_moves_nothing(client: TestClient,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    erin = new_customer(client)
    fund(client, erin.user_id, 300_00)
    q = new_quote(client, erin, sell_minor=100_00)
    expires = dt.datetime.fromisoformat(q["expires_at"])
    monkeypatch.setattr(service, "clock", lambda: expires)  # valid until, not at, expiry
    r = exchange(client, erin, q["id"], key())
    assert r.status_code == 409 and r.json()["code"] == "quote_expired"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert balances(client, erin.user_id) == {"CNY": 300_00}
    assert exchanges_of(client, erin.user_id) == 0 and outflow_today(client, erin.user_id) == 0
    assert stored_quote(client, q["id"]).used_at is None
    monkeypatch.setattr(service, "clock", lambda: expires - dt.timedelta(milliseconds=1))
    assert exchange(client, erin, q["id"], key()).status_code == 201


def test_insufficient_funds_moves_nothing_and_leaves_the_quote_usable(client: TestClient
                                                                     ) -> None:
    frank = new_customer(client)
    fund(client, frank.user_id, 50_00)
    q = new_quote(client, frank, sell_minor=100_00)
    k = key()
    r = exchange(client, frank, q["id"], k)
    assert r.status_code == 422 and r.json()["code"] == "insufficient_funds"
    assert r.json()["currency"] == "CNY"
    assert balances(client, frank.user_id) == {"CNY": 50_00}
    assert exchanges_of(client, frank.user_id) == 0 and outflow_today(client, frank.user_id) == 0
    replay = exchange(client, frank, q["id"], k)  # the decision is replayed, not re-made
    assert replay.status_code == 422 and replay.headers["idempotent-replayed"] == "true"
    fund(client, frank.user_id, 50_00)
    assert exchange(client, frank, q["id"], key()).status_code == 201  # topped up in time


def test_another_users_quote_and_exchange_do_not_exist_for_them(client: TestClient) -> None:
    owner, other = new_customer(client), new_customer(client)
    fund(client, owner.user_id, 300_00)
    fund(client, other.user_id, 300_00)
    q = new_quote(client, owner, sell_minor=100_00)
    assert client.get(f"/api/v1/fx/quotes/{q['id']}", headers=other.headers).status_code == 404
    stolen = exchange(client, other, q["id"], key())
    assert stolen.status_code == 404 and stolen.json()["code"] == "quote_not_found"
    assert balances(client, other.user_id) == {"CNY": 300_00}
    assert balances(client, owner.user_id) == {"CNY": 300_00}
    assert stored_quote(client, q["id"]).used_at is None
    done = exchange(client, owner, q["id"], key()).json()
    r = client.get(f"/api/v1/fx/exchanges/{done['id']}", headers=other.headers)
    assert r.status_code == 404 and r.json()["code"] == "exchange_not_found"
    assert client.get("/api/v1/fx/exchanges", headers=other.headers).json()["items"] == []
    assert client.get("/api/v1/fx/exchanges", params={"before": done["id"]},
                      headers=other.headers).json()["items"] == []
    for path in (f"/api/v1/fx/quotes/{q['id']}", f"/api/v1/fx/exchanges/{done['id']}",
                 "/api/v1/fx/exchanges"):
        assert client.get(path).status_code == 401
    assert client.post("/api/v1/fx/quotes", json={}).status_code == 401
    assert client.post("/api/v1/fx/exchanges", json={"quote_id": q["id"]},
                       headers={"Idempotency-Key": key()}).status_code == 401


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"sell_currency": "CNY", "buy_currency": "XAU", "sell_amount_minor": 100}, 422,
     "currency_unsupported"),
    ({"sell_currency": "ZZZ", "buy_currency": "USD", "sell_amount_minor": 100}, 422,
     "unknown_currency"),
    ({"sell_currency": "USD", "buy_currency": "usd", "sell_amount_minor": 100}, 422,
     "same_currency"),
    ({"sell_currency": "HKD", "buy_currency": "USD", "sell_amount_minor": 7}, 422,
     "amount_too_small"),
    ({"sell_currency": "CNY", "buy_currency": "USD"}, 422, "amount_required"),
    ({"sell_currency": "CNY", "buy_currency": "USD", "sell_amount_minor": 100,
      "buy_amount_minor": 100}, 422, "amount_required"),
    ({"sell_currency": "CNY", "buy_currency": "USD", "sell_amount_minor": 0}, 422,
     "invalid_input"),
    ({"sell_currency": "CNY", "buy_currency": "USD", "sell_amount_minor": -5}, 422,
     "invalid_input"),
    ({"sell_currency": "CNY", "buy_currency": "USD", "sell_amount_minor": 1.5}, 422,
     "invalid_input"),
    ({"sell_currency": "CNY", "buy_currency": "USD", "sell_amount_minor": "100"}, 422,
     "invalid_input"),
    ({"sell_currency": "CNY", "buy_currency": "USD", "sell_amount_minor": 10**16}, 422,
     "invalid_input"),
    ({"sell_currency": "CNY", "buy_currency": "USD", "sell_amount_minor": 100, "x": 1}, 422,
     "invalid_input"),
    ({"sell_currency": "CNYY", "buy_currency": "USD", "sell_amount_minor": 100}, 422,
     "invalid_input"),
])
def test_bad_quotes_are_4xx_problems(client: TestClient, body: dict, status: int,
                                     code: str) -> None:
    grace = new_customer(client)
    r = client.post("/api/v1/fx/quotes", headers=grace.headers, json=body)
    assert r.status_code == status and r.json()["code"] == code, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def test_the_smallest_amount_that_buys_a_cent_is_quoted(client: TestClient) -> None:
    # 8 HKD cents × 0.9126 / 7.1 × 0.995 = 0.0102 USD: one cent. 7 would buy 0.9 of one.
    assert new_quote(client, new_customer(client), "HKD", "USD",
                     sell_minor=8)["buy_amount_minor"] == 1


@pytest.mark.parametrize(("headers", "body", "status", "code"), [
    ({}, None, 400, "idempotency_key_missing"),
    ({"Idempotency-Key": "two words"}, None, 400, "idempotency_key_invalid"),
    ({"Idempotency-Key": "k-bad-id"}, {"quote_id": "not-a-uuid"}, 422, "invalid_input"),
    ({"Idempotency-Key": "k-extra"}, {"quote_id": None, "amount_minor": 5}, 422,
     "invalid_input"),
    ({"Idempotency-Key": "k-unknown"}, {"quote_id": str(uuid.uuid4())}, 404,
     "quote_not_found"),
])
def test_bad_exchanges_are_4xx_problems_and_move_nothing(client: TestClient, headers: dict,
                                                         body: dict | None, status: int,
                                                         code: str) -> None:
    henry = new_customer(client)
    fund(client, henry.user_id, 300_00)
    q = new_quote(client, henry, sell_minor=100_00)
    r = client.post("/api/v1/fx/exchanges", headers={**henry.headers, **headers},
                    json=body if body is not None else {"quote_id": q["id"]})
    assert r.status_code == status and r.json()["code"] == code, r.text
    assert balances(client, henry.user_id) == {"CNY": 300_00}
    assert exchanges_of(client, henry.user_id) == 0
    assert stored_quote(client, q["id"]).used_at is None


def test_limits_count_the_cny_value_of_a_foreign_sell(client: TestClient) -> None:
    ivy = new_customer(client)
    single = kyc.limits_for(0).single_minor  # 500.00 CNY
    fund(client, ivy.user_id, 1_000_00, "USD")
    q = new_quote(client, ivy, "USD", "CNY", sell_minor=80_00)  # worth 568.00 CNY
    r = exchange(client, ivy, q["id"], key())
    assert r.status_code == 422 and r.json()["code"] == "limit_exceeded"
    assert r.json()["limit"] == "single" and r.json()["limit_minor"] == single
    assert balances(client, ivy.user_id) == {"USD": 1_000_00}
    assert exchanges_of(client, ivy.user_id) == 0 and outflow_today(client, ivy.user_id) == 0
    assert stored_quote(client, q["id"]).used_at is None


def test_the_balance_cap_holds_for_cny_coming_in(client: TestClient) -> None:
    jack = new_customer(client)
    cap = kyc.limits_for(0).balance_minor  # 2,000.00 CNY
    fund(client, jack.user_id, cap - 100_00)
    fund(client, jack.user_id, 50_00, "USD")
    q = new_quote(client, jack, "USD", "CNY", sell_minor=50_00)  # about 353 CNY
    r = exchange(client, jack, q["id"], key())
    assert r.status_code == 422 and r.json()["code"] == "limit_exceeded"
    assert r.json()["limit"] == "balance"
    assert balances(client, jack.user_id) == {"CNY": cap - 100_00, "USD": 50_00}
    assert outflow_today(client, jack.user_id) == 0


def test_a_large_exchange_needs_a_recent_second_factor(client: TestClient) -> None:
    from identity.test_mfa import make_stale

    kate = new_customer(client)
    client.portal.call(_grant_tier_1, client, kate.user_id)
    fund(client, kate.user_id, 5_000_00)
    q = new_quote(client, kate, sell_minor=3_000_00)  # above the step-up threshold
    make_stale(client, kate.session_id)
    r = exchange(client, kate, q["id"], key())
    assert r.status_code == 403 and r.json()["code"] == "step_up_required"
    assert balances(client, kate.user_id) == {"CNY": 5_000_00}
    assert stored_quote(client, q["id"]).used_at is None
    client.portal.call(_fresh_second_factor, client, kate)
    assert exchange(client, kate, q["id"], key()).status_code == 201
    assert balance(client, kate.user_id, "CNY") == 2_000_00


async def _grant_tier_1(client: TestClient, user_id: uuid.UUID) -> None:
    async with client.app.state.db.unit_of_work() as session:
        await kyc.grant_tier(session, user_id, 1, reason="test")


async def _fresh_second_factor(client: TestClient, customer: Customer) -> None:
    from bankwallet.identity.models import Session

    async with client.app.state.db.unit_of_work() as session:
        await session.execute(update(Session).where(Session.id == uuid.UUID(customer.session_id))
                              .values(second_factor_at=dt.datetime.now(dt.UTC)))


def test_exchanges_are_listed_newest_first_page_by_page(client: TestClient) -> None:
    liam = new_customer(client)
    fund(client, liam.user_id, 300_00)
    made = [exchange(client, liam, new_quote(client, liam, sell_minor=10_00)["id"],
                     key()).json()["id"] for _ in range(3)]
    first = client.get("/api/v1/fx/exchanges", params={"limit": 2}, headers=liam.headers).json()
    assert [e["id"] for e in first["items"]] == made[::-1][:2]
    rest = client.get("/api/v1/fx/exchanges", params={"limit": 2, "before": first["next_before"]},
                      headers=liam.headers).json()
    assert [e["id"] for e in rest["items"]] == made[:1] and rest["next_before"] is None
    assert client.get("/api/v1/fx/exchanges", params={"limit": 0},
                      headers=liam.headers).status_code == 422
    assert client.get("/api/v1/fx/exchanges", params={"limit": 101},
                      headers=liam.headers).status_code == 422


def test_quoting_needs_rates(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from .test_rates import DownSource

    monkeypatch.setattr(service, "_rates", DownSource())
    r = quote(client, new_customer(client), sell_minor=100)
    assert r.status_code == 503 and r.json()["code"] == "rates_unavailable"
