"""Paths that open ledger accounts while the request's session may already have written (a
login's or an API key's last-seen time). On SQLite the ledger store writes on a connection of
its own and the database has a single writer: a request that held the write lock made the
ledger wait out the busy timeout (30 s) and answered 500 "database is locked". Runs on SQLite
and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import time
import uuid

from fastapi.testclient import TestClient
from identity.test_web import log_in_with_cookie
from sqlalchemy import update

from payments.conftest import Customer, Shop, api_key, customer, merchant

QUICK_S = 10.0  # far below SQLite's 30 s busy timeout


def age_logins(client: TestClient, person: Customer) -> None:
    """The person's login sessions were last seen a minute ago, so the next request touches
    them (``identity.service.authenticate`` writes at most every 30 s)."""
    from bankwallet.identity.models import Session

    async def run() -> None:
        async with client.app.state.db.unit_of_work() as session:
            await session.execute(
                update(Session).where(Session.user_id == uuid.UUID(person.user_id))
                .values(last_seen_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60)))

    client.portal.call(run)


def age_api_keys(client: TestClient, merchant_id: str) -> None:
    from bankwallet.payments import service
    from bankwallet.payments.models import ApiKey

    async def run() -> None:
        async with client.app.state.db.unit_of_work() as session:
            await session.execute(
                update(ApiKey).where(ApiKey.merchant_id == uuid.UUID(merchant_id))
                .values(last_used_at=dt.datetime.now(dt.UTC) - dt.timedelta(
                    seconds=service.API_KEY_TOUCH_EVERY_S + 5)))

    client.portal.call(run)


def timed(call):
    started = time.monotonic()
    result = call()
    assert time.monotonic() - started < QUICK_S, "the request waited for a database lock"
    return result


def test_stripe_create_without_idempotency_key_on_a_fresh_merchant(client: TestClient) -> None:
    owner = customer(client)
    shop = Shop(owner, merchant(client, owner))
    key = api_key(client, owner, shop.merchant["id"])  # never used: the first call touches it
    auth = {"Authorization": f"Bearer {key}"}
    r = timed(lambda: client.post("/stripe/v1/payment_intents", headers=auth,
                                  content="amount=700&currency=cny&metadata[order]=C-1"))
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["status"] == "requires_payment_method" and first["amount"] == 700
    assert first["metadata"] == {"order": "C-1"}

    age_api_keys(client, shop.merchant["id"])  # the key's last use is touched again
    r = timed(lambda: client.post(
        "/stripe/v1/payment_intents", headers=auth,
        content="amount=900&currency=cny&payment_method_types[]=bankwallet_balance"
                "&payment_method=bankwallet_balance&confirm=true"))
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["status"] == "requires_action"  # confirmed: the customer pays in the wallet
    r = timed(lambda: client.post(  # a currency the merchant has no account in yet
        "/stripe/v1/payment_intents", headers=auth, content="amount=300&currency=usd"))
    assert r.status_code == 200, r.text
    third = r.json()
    assert third["currency"] == "usd"
    listed = client.get("/stripe/v1/payment_intents", headers=auth)
    assert listed.status_code == 200
    assert {i["id"] for i in listed.json()["data"]} == {first["id"], second["id"], third["id"]}

    from bankwallet.payments.models import ApiKey

    async def last_used() -> dt.datetime | None:
        async with client.app.state.db.unit_of_work() as session:
            return (await session.execute(
                ApiKey.__table__.select().where(
                    ApiKey.merchant_id == uuid.UUID(shop.merchant["id"])))).one().last_used_at

    used = client.portal.call(last_used)
    assert used is not None
    used = used if used.tzinfo else used.replace(tzinfo=dt.UTC)
    assert dt.datetime.now(dt.UTC) - used < dt.timedelta(seconds=30)  # the touch was kept


def test_stripe_create_for_a_merchant_made_by_the_cli(client: TestClient, db_url: str) -> None:
    """As reported: ``bankwallet merchants create`` then a create call without a key."""
    from bankwallet.payments import cli

    owner = customer(client)
    made = client.portal.call(lambda: cli._create(
        db_url, login_text=owner.login, name="Corner Shop", mcc="5411", city="Suzhou",
        country="CN", bank_account=cli.SANDBOX_SETTLEMENT_ACCOUNT))
    auth = {"Authorization": f"Bearer {made['secret_key']}"}
    r = timed(lambda: client.post("/stripe/v1/payment_intents", headers=auth,
                                  content="amount=1250&currency=cny"))
    assert r.status_code == 200, r.text
    assert r.json()["amount"] == 1250


def test_api_create_paths_with_a_login_last_seen_a_minute_ago(client: TestClient) -> None:
    owner = customer(client)
    age_logins(client, owner)
    body = {"name": "Lotus Noodle Bar", "mcc": "5812", "city": "Shanghai", "country": "CN",
            "bank_account": "6222 0212 3456 7890 128"}
    r = timed(lambda: client.post("/api/v1/merchants", json=body, headers=owner.h))
    assert r.status_code == 201, r.text
    merchant_id = r.json()["id"]

    age_logins(client, owner)
    r = timed(lambda: client.post(f"/api/v1/merchants/{merchant_id}/payment-intents",
                                  json={"amount_minor": 45_00, "currency": "CNY"},
                                  headers=owner.h))
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "requires_payment_method"


def test_dashboard_create_paths_with_a_login_last_seen_a_minute_ago(client: TestClient) -> None:
    owner = customer(client)
    csrf = log_in_with_cookie(client, owner.login)
    try:
        age_logins(client, owner)
        r = timed(lambda: client.post(
            "/merchant", data={"csrf_token": csrf, "name": "Tea House", "mcc": "5812",
                               "city": "Hangzhou", "country": "CN",
                               "bank_account": "DE89 3704 0044 0532 0130 00"},
            follow_redirects=False))
        assert r.status_code == 303, r.text
        merchant_id = r.headers["location"].rsplit("/", 1)[1]

        age_logins(client, owner)
        r = timed(lambda: client.post(
            f"/merchant/{merchant_id}/payments",
            data={"csrf_token": csrf, "idempotency_key": str(uuid.uuid4()), "amount": "12.50",
                  "currency": "CNY"}, follow_redirects=False))
        assert r.status_code == 303, r.text
        assert f"/merchant/{merchant_id}/payments/pi_" in r.headers["location"]
    finally:
        client.cookies.clear()
