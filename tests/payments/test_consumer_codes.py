"""Consumer-presented payment codes (付款码): the customer shows a one-time code, the merchant
charges it once. Runs on SQLite and PostgreSQL; the concurrent double charge on PostgreSQL."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import uuid

import pytest
from fastapi.testclient import TestClient
from payments.conftest import (
    Customer,
    Shop,
    api_key,
    customer,
    fees_balance,
    idem,
    merchant,
    merchant_balance,
    wallet_balance,
)

from bankwallet.connectors.gateway.base import luhn_valid
from bankwallet.payments import consumer_codes

CODES = "/api/v1/consumer-codes"


def issue(client: TestClient, person: Customer) -> dict:
    r = client.post(CODES, headers=person.h)
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    return r.json()


def charge(client: TestClient, shop: Shop, code: str, amount: int, key: str | None = None,
           **extra):
    return client.post(f"{shop.base}/consumer-code-charges",
                       json={"code": code, "amount_minor": amount, **extra},
                       headers={**shop.owner.h, **idem(key)})


def seen(client: TestClient, person: Customer, code_id: str) -> dict:
    r = client.get(f"{CODES}/{code_id}", headers=person.h)
    assert r.status_code == 200, r.text
    return r.json()


def grant_tier(client: TestClient, person: Customer, tier: int) -> None:
    from bankwallet.identity import kyc

    async def run() -> None:
        async with client.app.state.db.unit_of_work() as session:
            await kyc.grant_tier(session, uuid.UUID(person.user_id), tier, reason="test")

    client.portal.call(run)


# -- the number (pure) -----------------------------------------------------------------------


def test_a_code_is_18_digits_with_the_prefix_and_a_luhn_digit() -> None:
    codes = {consumer_codes.new_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert len(code) == 18 and code.isdigit() and code.startswith("81") and luhn_valid(code)
        assert consumer_codes.parse_code(consumer_codes.grouped(code)) == code
    code = next(iter(codes))
    typo = code[:5] + str((int(code[5]) + 1) % 10) + code[6:]
    for bad in (typo, code[:-1], code + "0", "91" + code[2:], "", "81abc", "８" * 18):
        with pytest.raises(consumer_codes.ConsumerCodeInvalid):
            consumer_codes.parse_code(bad)


# -- issuing ---------------------------------------------------------------------------------


def test_issuing_shows_the_code_once_and_stores_only_its_index(client: TestClient) -> None:
    person = customer(client, funded=10_00)
    made = issue(client, person)
    assert made["code"].startswith("81") and len(made["code"]) == 18
    assert made["code_display"].replace(" ", "") == made["code"]
    assert made["ttl_s"] == 60 and made["currency"] == "CNY"
    view = seen(client, person, made["id"])
    assert view["status"] == "active" and view["payment"] is None
    assert made["code"] not in str(view) and view["last4"] == made["code"][-4:]

    async def stored() -> list:
        from sqlalchemy import text

        async with client.app.state.db.engine.connect() as conn:
            rows = await conn.execute(text("SELECT * FROM payments_consumer_code"))
            return [tuple(str(v) for v in row) for row in rows]

    assert not any(made["code"] in value for row in client.portal.call(stored) for value in row)


def test_a_new_code_revokes_the_old_one(client: TestClient, shop: Shop) -> None:
    person = customer(client, funded=10_00)
    old = issue(client, person)
    new = issue(client, person)
    assert seen(client, person, old["id"])["status"] == "revoked"
    assert seen(client, person, new["id"])["status"] == "active"
    r = charge(client, shop, old["code"], 1_00)
    assert r.status_code == 409 and r.json()["code"] == "consumer_code_expired"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert wallet_balance(client, person.user_id) == 10_00


def test_a_customer_sees_only_their_own_codes(client: TestClient) -> None:
    person, other = customer(client), customer(client)
    made = issue(client, person)
    r = client.get(f"{CODES}/{made['id']}", headers=other.h)
    assert r.status_code == 404 and r.json()["code"] == "consumer_code_not_found"
    assert client.post(CODES).status_code == 401
    assert client.get(f"{CODES}/{made['id']}").status_code == 401


# -- charging --------------------------------------------------------------------------------


def test_a_code_is_charged_once(client: TestClient, shop: Shop) -> None:
    person = customer(client, funded=100_00)
    made = issue(client, person)
    fees_before = fees_balance(client)
    r = charge(client, shop, made["code_display"], 30_00, description="2 noodles")
    assert r.status_code == 200, r.text
    paid = r.json()
    assert paid["status"] == "succeeded" and paid["amount_minor"] == 30_00
    assert paid["metadata"] == {"source": "consumer_code", "code_last4": made["code"][-4:]}
    assert paid["fee_minor"] == 18  # 0.6 %
    assert wallet_balance(client, person.user_id) == 70_00
    assert merchant_balance(client, shop.merchant["id"]) == 30_00 - 18
    assert fees_balance(client) - fees_before == 18
    view = seen(client, person, made["id"])
    assert view["status"] == "used" and view["payment"]["id"] == paid["id"]
    assert view["payment"]["status"] == "succeeded"
    assert view["payment"]["merchant_name"] == shop.merchant["name"]

    again = charge(client, shop, made["code"], 30_00)
    assert again.status_code == 409 and again.json()["code"] == "consumer_code_used"
    assert wallet_balance(client, person.user_id) == 70_00
    # The merchant's events (and so its webhooks) fire as for any payment.
    events = client.get(f"{shop.base}/events", headers=shop.owner.h).json()["data"]
    types = [e["type"] for e in events if e["data"]["object"]["id"] == paid["id"]]
    assert "payment_intent.created" in types and "payment_intent.succeeded" in types


def test_the_same_key_charges_once_and_replays(client: TestClient, shop: Shop) -> None:
    person = customer(client, funded=50_00)
    made = issue(client, person)
    key = str(uuid.uuid4())
    first = charge(client, shop, made["code"], 10_00, key=key)
    second = charge(client, shop, made["code"], 10_00, key=key)
    assert first.status_code == second.status_code == 200
    assert second.headers.get("idempotent-replayed") == "true"
    assert second.json()["id"] == first.json()["id"]
    assert wallet_balance(client, person.user_id) == 40_00
    other = charge(client, shop, made["code"], 20_00, key=key)  # the key, another request
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    r = client.post(f"{shop.base}/consumer-code-charges",
                    json={"code": made["code"], "amount_minor": 1_00}, headers=shop.owner.h)
    assert r.status_code == 400 and r.json()["code"] == "idempotency_key_missing"


def test_an_expired_code_moves_nothing(client: TestClient, shop: Shop,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    person = customer(client, funded=50_00)
    made = issue(client, person)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=consumer_codes.CODE_TTL_S + 1)
    monkeypatch.setattr(consumer_codes, "utcnow", lambda: later)
    assert seen(client, person, made["id"])["status"] == "expired"
    r = charge(client, shop, made["code"], 10_00)
    assert r.status_code == 409 and r.json()["code"] == "consumer_code_expired"
    assert wallet_balance(client, person.user_id) == 50_00
    assert merchant_balance(client, shop.merchant["id"]) == 0


def test_bad_and_unknown_codes_are_refused_then_braked(client: TestClient, shop: Shop,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumer_codes, "MISSES_MAX", 3)
    person = customer(client, funded=50_00)
    made = issue(client, person)
    r = charge(client, shop, "81 1234", 1_00)
    assert r.status_code == 422 and r.json()["code"] == "consumer_code_invalid"
    for _ in range(3):
        unknown = consumer_codes.new_code()
        r = charge(client, shop, unknown, 1_00)
        assert r.status_code == 404 and r.json()["code"] == "consumer_code_not_found"
    r = charge(client, shop, made["code"], 1_00)  # even a good code, until the window ends
    assert r.status_code == 429 and r.json()["code"] == "consumer_code_attempts_exceeded"
    assert int(r.headers["retry-after"]) > 0
    assert wallet_balance(client, person.user_id) == 50_00
    assert seen(client, person, made["id"])["status"] == "active"
    # Another merchant is not braked by this one's misses.
    owner = customer(client)
    other = Shop(owner, merchant(client, owner, name="Tea House"))
    assert charge(client, other, made["code"], 1_00).status_code == 200


def test_bad_amounts_and_currencies_are_refused(client: TestClient, shop: Shop) -> None:
    person = customer(client, funded=50_00)
    made = issue(client, person)
    for amount in (0, -5, 10**13):
        r = charge(client, shop, made["code"], amount)
        assert r.status_code == 422 and r.json()["code"] == "invalid_amount", r.text
    r = charge(client, shop, made["code"], 1_00, currency="USD")
    assert r.status_code == 422 and r.json()["code"] == "consumer_code_currency_mismatch"
    assert seen(client, person, made["id"])["status"] == "active"
    assert wallet_balance(client, person.user_id) == 50_00


def test_only_members_charge_for_a_merchant(client: TestClient, shop: Shop) -> None:
    person = customer(client, funded=50_00)
    made = issue(client, person)
    stranger = customer(client)
    r = client.post(f"{shop.base}/consumer-code-charges",
                    json={"code": made["code"], "amount_minor": 1_00},
                    headers={**stranger.h, **idem()})
    assert r.status_code == 404 and r.json()["code"] == "merchant_not_found"
    assert seen(client, person, made["id"])["status"] == "active"
    assert wallet_balance(client, person.user_id) == 50_00


def test_insufficient_funds_leave_the_code_usable(client: TestClient, shop: Shop) -> None:
    person = customer(client, funded=10_00)
    made = issue(client, person)
    r = charge(client, shop, made["code"], 20_00)
    assert r.status_code == 422 and r.json()["code"] == "insufficient_funds"
    assert wallet_balance(client, person.user_id) == 10_00
    assert merchant_balance(client, shop.merchant["id"]) == 0
    assert seen(client, person, made["id"])["status"] == "active"
    assert charge(client, shop, made["code"], 5_00).json()["status"] == "succeeded"
    assert wallet_balance(client, person.user_id) == 5_00


def test_the_tier_limit_applies(client: TestClient, shop: Shop) -> None:
    person = customer(client, funded=900_00)
    made = issue(client, person)
    r = charge(client, shop, made["code"], 600_00)  # tier 0: 500.00 a payment
    assert r.status_code == 422 and r.json()["code"] == "limit_exceeded"
    assert wallet_balance(client, person.user_id) == 900_00
    assert seen(client, person, made["id"])["status"] == "active"


def test_an_amount_needing_step_up_is_refused_unattended(client: TestClient,
                                                         shop: Shop) -> None:
    person = customer(client, funded=3_000_00)
    grant_tier(client, person, 1)
    made = issue(client, person)
    r = charge(client, shop, made["code"], 2_500_00)
    assert r.status_code == 403
    assert r.json()["code"] == "consumer_code_confirmation_required"
    assert wallet_balance(client, person.user_id) == 3_000_00
    assert seen(client, person, made["id"])["status"] == "active"
    assert charge(client, shop, made["code"], 2_000_00).json()["status"] == "succeeded"


# -- a merchant's server with its API key ------------------------------------------------------


def test_a_secret_key_charges_a_code(client: TestClient, shop: Shop) -> None:
    person = customer(client, funded=50_00)
    made = issue(client, person)
    secret = api_key(client, shop.owner, shop.merchant["id"])
    url = "/api/v1/consumer-code-charges"
    body = {"code": made["code"], "amount_minor": 12_00}
    bearer = {"Authorization": f"Bearer {secret}"}
    r = client.post(url, json=body, headers=bearer)
    assert r.status_code == 400 and r.json()["code"] == "idempotency_key_missing"
    r = client.post(url, json=body, headers={"Authorization": "Bearer sk_test_nope", **idem()})
    assert r.status_code == 401 and r.json()["code"] == "api_key_invalid"
    publishable = api_key(client, shop.owner, shop.merchant["id"], kind="publishable")
    r = client.post(url, json=body, headers={"Authorization": f"Bearer {publishable}", **idem()})
    assert r.status_code == 401
    read_only = api_key(client, shop.owner, shop.merchant["id"], scopes=["payments:read"])
    r = client.post(url, json=body, headers={"Authorization": f"Bearer {read_only}", **idem()})
    assert r.status_code == 403 and r.json()["code"] == "api_key_scope_missing"
    assert wallet_balance(client, person.user_id) == 50_00
    key = str(uuid.uuid4())
    r = client.post(url, json=body, headers={**bearer, **idem(key)})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    replay = client.post(url, json=body, headers={**bearer, **idem(key)})
    assert replay.json()["id"] == r.json()["id"]
    assert wallet_balance(client, person.user_id) == 38_00
    r = client.post(url, json=body, headers={**bearer, **idem()})
    assert r.status_code == 409 and r.json()["code"] == "consumer_code_used"
    seen_by_owner = client.get(f"{shop.base}/payment-intents/{replay.json()['id']}",
                               headers=shop.owner.h)
    assert seen_by_owner.json()["status"] == "succeeded"


# -- the customer's page ---------------------------------------------------------------------


def test_the_code_page_issues_and_polls(client: TestClient, shop: Shop) -> None:
    person = customer(client, funded=50_00)
    page = client.get("/pay/code", headers=person.h)
    assert page.status_code == 200 and 'data-state="start"' in page.text
    drawn = client.post("/pay/code", headers={**person.h, "HX-Request": "true"})
    assert drawn.status_code == 200 and 'data-state="active"' in drawn.text
    assert drawn.headers["cache-control"] == "no-store" and "<svg" in drawn.text
    code = drawn.text.split('data-paycode="', 1)[1].split('"', 1)[0]
    code_id = drawn.text.split('/pay/code/', 1)[1].split('/status', 1)[0]
    status_url = f"/pay/code/{code_id}/status"
    assert client.post(status_url, headers=person.h).status_code == 204
    assert charge(client, shop, code, 7_00).status_code == 200
    done = client.post(status_url, headers=person.h)
    assert done.status_code == 200 and 'data-state="paid"' in done.text
    assert 'data-balance="4300"' in done.text and "hx-trigger" not in done.text


# -- concurrency (PostgreSQL) ------------------------------------------------------------------


def test_one_code_charged_at_once_by_many_pays_once(pg_client: TestClient) -> None:
    client = pg_client
    owner = customer(client)
    shop = Shop(owner, merchant(client, owner))
    owner2 = customer(client)
    shop2 = Shop(owner2, merchant(client, owner2, name="Tea House"))
    person = customer(client, funded=100_00)
    made = issue(client, person)
    calls = [lambda s=s: charge(client, s, made["code"], 30_00)
             for s in (shop, shop2, shop, shop2, shop, shop2)]
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        results = [f.result() for f in [pool.submit(c) for c in calls]]
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(200) == 1, [r.text for r in results]
    assert all(r.status_code == 200 or r.json()["code"] == "consumer_code_used"
               for r in results), [r.text for r in results]
    assert wallet_balance(client, person.user_id) == 70_00
    assert merchant_balance(client, shop.merchant["id"]) \
        + merchant_balance(client, shop2.merchant["id"]) == 30_00 - 18


def _drawn(response) -> tuple[str, str]:
    """The code and its id in a drawn panel."""
    assert 'data-state="active"' in response.text, response.text
    code = response.text.split('data-paycode="', 1)[1].split('"', 1)[0]
    code_id = response.text.split("/pay/code/", 1)[1].split("/status", 1)[0]
    return code, code_id


def test_the_code_page_draws_the_next_code_before_this_one_expires(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from bankwallet.payments import pos

    person = customer(client, funded=5_00)
    first, first_id = _drawn(client.post("/pay/code", headers={**person.h, "HX-Request": "true"}))
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(
        seconds=consumer_codes.CODE_TTL_S - pos.REFRESH_BEFORE_S + 1)
    monkeypatch.setattr(consumer_codes, "utcnow", lambda: soon)
    again = client.post(f"/pay/code/{first_id}/status", data={"round": "0"}, headers=person.h)
    second, second_id = _drawn(again)
    assert second != first and second_id != first_id
    assert '&#34;round&#34;: &#34;1&#34;' in again.text or '"round": "1"' in again.text
    assert seen(client, person, first_id)["status"] == "revoked"
    # The first page, polling again, learns a newer code replaced it (no ping-pong).
    r = client.post(f"/pay/code/{first_id}/status", headers=person.h)
    assert 'data-state="replaced"' in r.text and "hx-trigger" not in r.text
    # An unattended page stops drawing codes after a while.
    later = soon + dt.timedelta(seconds=consumer_codes.CODE_TTL_S)
    monkeypatch.setattr(consumer_codes, "utcnow", lambda: later)
    r = client.post(f"/pay/code/{second_id}/status",
                    data={"round": str(pos.AUTO_REFRESH_MAX)}, headers=person.h)
    assert 'data-state="ended"' in r.text and "hx-trigger" not in r.text
    # Another customer's code id shows nothing.
    other = customer(client)
    r = client.post(f"/pay/code/{second_id}/status", headers=other.h)
    assert 'data-state="ended"' in r.text and "data-paycode" not in r.text


def test_the_code_page_needs_a_login_and_the_form_token(client: TestClient) -> None:
    anonymous = client.get("/pay/code", follow_redirects=False)
    assert anonymous.status_code == 303 and "/login" in anonymous.headers["location"]
    assert client.post("/pay/code").status_code in (401, 403)


def test_issuing_is_bounded_per_minute(client: TestClient) -> None:
    person = customer(client)
    for _ in range(consumer_codes.ISSUES_PER_WINDOW_MAX):
        issue(client, person)
    r = client.post(CODES, headers=person.h)
    assert r.status_code == 429 and r.json()["code"] == "consumer_code_issue_limited"
    assert r.headers["retry-after"] == str(consumer_codes.ISSUE_WINDOW_S)


# -- the merchant's point-of-sale page ---------------------------------------------------------


def test_the_pos_page_charges_once_per_form(client: TestClient, shop: Shop) -> None:
    person = customer(client, funded=50_00)
    made = issue(client, person)
    pos_url = f"/merchant/{shop.merchant['id']}/pos"
    page = client.get(pos_url, headers=shop.owner.h)
    assert page.status_code == 200 and 'name="idempotency_key"' in page.text
    stranger = customer(client)
    assert client.get(pos_url, headers=stranger.h).status_code == 404
    form = {"amount": "12.30", "code": made["code_display"], "idempotency_key": "form-1"}
    r = client.post(pos_url, data=form, headers=stranger.h)
    assert r.status_code == 404
    first = client.post(pos_url, data=form, headers=shop.owner.h)
    assert first.status_code == 200 and 'data-status="succeeded"' in first.text
    twice = client.post(pos_url, data=form, headers=shop.owner.h)  # a double submit
    assert twice.status_code == 200 and 'data-status="succeeded"' in twice.text
    assert wallet_balance(client, person.user_id) == 50_00 - 12_30
    again = client.post(pos_url, data={**form, "idempotency_key": "form-2"},
                        headers={**shop.owner.h, "Accept-Language": "en"})
    assert again.status_code == 409 and "already used" in again.text
    bad = client.post(pos_url, data={**form, "amount": "abc", "idempotency_key": "form-3"},
                      headers=shop.owner.h)
    assert bad.status_code == 422 and 'role="alert"' in bad.text
    assert wallet_balance(client, person.user_id) == 50_00 - 12_30


def test_the_pos_page_reads_a_photo_of_the_code_then_charges_it(client: TestClient,
                                                                shop: Shop) -> None:
    """The till "scans" the customer's code from a photo: the code field is filled, nothing
    is charged until the form is sent."""
    pytest.importorskip("zxingcpp")
    from bankwallet.qr import render

    person = customer(client, funded=20_00)
    made = issue(client, person)
    picture_url = f"/merchant/{shop.merchant['id']}/pos/picture"
    png = render.render_png(made["code"])
    r = client.post(picture_url, data={"amount": "4.50"},
                    files={"picture": ("code.png", png, "image/png")}, headers=shop.owner.h)
    assert r.status_code == 200, r.text
    assert f'value="{made["code"]}"' in r.text and 'value="4.50"' in r.text
    assert wallet_balance(client, person.user_id) == 20_00  # only read, not charged
    bad = client.post(picture_url, files={"picture": ("x.png", b"not a picture", "image/png")},
                      headers=shop.owner.h)
    assert bad.status_code == 422 and 'role="alert"' in bad.text
    stranger = customer(client)
    assert client.post(picture_url, files={"picture": ("code.png", png, "image/png")},
                       headers=stranger.h).status_code == 404
    form = {"amount": "4.50", "code": made["code"], "idempotency_key": str(uuid.uuid4())}
    r = client.post(f"/merchant/{shop.merchant['id']}/pos", data=form, headers=shop.owner.h)
    assert r.status_code == 200 and 'data-status="succeeded"' in r.text
    assert wallet_balance(client, person.user_id) == 20_00 - 4_50
