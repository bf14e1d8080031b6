"""Merchants, API keys, payment intents paid from the wallet, capture, cancel and refunds
through our JSON API, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlalchemy import text

from payments.conftest import (
    CARD_ACCOUNT,
    IBAN,
    Shop,
    api_key,
    available_of,
    customer,
    fees_balance,
    fund,
    idem,
    intent,
    merchant,
    merchant_balance,
    pay,
    wallet_balance,
)

# -- onboarding ------------------------------------------------------------------------------


BAD_ONBOARDING = [
    ("mcc", "0000", "invalid_mcc"), ("mcc", "58x2", "invalid_mcc"), ("mcc", "581", "invalid_mcc"),
    ("bank_account", "DE89 3704 0044 0532 0130 01", "invalid_bank_account"),
    ("bank_account", "6222 0212 3456 7890 127", "invalid_bank_account"),
    ("bank_account", "1234", "invalid_bank_account"),
    ("country", "XX", "invalid_country"), ("name", "   ", "invalid_merchant_name"),
    ("city", "", "invalid_city"),
]


def test_onboarding_refuses_bad_input(client: TestClient) -> None:
    owner = customer(client)
    for field, value, code in BAD_ONBOARDING:
        body = {"name": "Shop", "mcc": "5812", "city": "Beijing", "bank_account": CARD_ACCOUNT,
                field: value}
        r = client.post("/api/v1/merchants", json=body, headers=owner.h)
        assert r.status_code == 422 and r.json()["code"] == code, (field, value, r.text)
    assert client.get("/api/v1/merchants", headers=owner.h).json() == {"data": []}


def test_onboarding_keeps_the_bank_account_encrypted(client: TestClient) -> None:
    owner = customer(client)
    made = merchant(client, owner, bank_account=IBAN, country="de")
    assert made["bank_account"] == "····3000" and made["country"] == "DE"
    assert made["role"] == "owner" and made["mcc_description"]
    listed = client.get("/api/v1/merchants", headers=owner.h).json()["data"]
    assert [m["id"] for m in listed] == [made["id"]]
    assert "DE89370400440532013000" not in dump(client, "payments_merchant")
    # The merchant's ledger account exists in CNY with a zero balance.
    r = client.get(f"/api/v1/merchants/{made['id']}/balances", headers=owner.h)
    assert r.json() == [{"currency": "CNY", "available_minor": 0, "posted_minor": 0,
                         "settling_minor": 0}]


def dump(client: TestClient, table: str) -> str:
    """Every row of ``table`` as text (hex for bytes), as an attacker with a copy would see."""

    async def run() -> str:
        async with client.app.state.db.engine.connect() as conn:
            rows = (await conn.execute(text(f"SELECT * FROM {table}"))).all()
        return "\n".join(repr([v.hex() if isinstance(v, (bytes, memoryview)) else v
                               for v in row]) for row in rows)

    return client.portal.call(run)


def test_another_users_merchant_is_not_found(client: TestClient, shop: Shop) -> None:
    stranger = customer(client)
    paid = intent(client, shop.owner, shop.merchant["id"])
    for path in ("", "/balances", "/api-keys", "/payment-intents", "/events",
                 f"/payment-intents/{paid['id']}", "/webhook-endpoints",
                 "/webhook-deliveries", "/settlements", f"/payment-intents/{paid['id']}/refunds"):
        r = client.get(shop.base + path, headers=stranger.h)
        assert r.status_code == 404, (path, r.text)
    for path, body in (("/api-keys", {}), ("/payment-intents", {"amount_minor": 1,
                                                                "currency": "CNY"}),
                       (f"/payment-intents/{paid['id']}/cancel", {}),
                       (f"/payment-intents/{paid['id']}/refunds", {}),
                       ("/webhook-endpoints", {"url": "http://127.0.0.1:9/x"}),
                       ("/settlements", {})):
        r = client.post(shop.base + path, json=body, headers={**stranger.h, **idem()})
        assert r.status_code == 404, (path, r.text)
    assert client.get(f"{shop.base}/payment-intents/{paid['id']}",
                      headers=shop.owner.h).json()["status"] == "requires_payment_method"


def test_unauthenticated_calls_are_refused(client: TestClient, shop: Shop) -> None:
    assert client.get(shop.base).status_code == 401
    assert client.post("/api/v1/merchants", json={}).status_code == 401


# -- API keys --------------------------------------------------------------------------------


def test_api_keys_are_shown_once_hashed_scoped_and_revocable(client: TestClient,
                                                             shop: Shop) -> None:
    r = client.post(f"{shop.base}/api-keys", json={"name": "server", "scopes": ["payments:read"]},
                    headers=shop.owner.h)
    assert r.status_code == 201
    read_only = r.json()
    key = read_only["key"]
    assert key.startswith("sk_test_") and len(key) == 40
    assert read_only["display"] == f"sk_test_…{key[-4:]}"
    listed = client.get(f"{shop.base}/api-keys", headers=shop.owner.h).json()["data"]
    assert [k["id"] for k in listed] == [read_only["id"]] and "key" not in listed[0]
    assert key not in dump(client, "payments_api_key")
    assert key[8:] not in dump(client, "payments_api_key")

    auth = {"Authorization": f"Bearer {key}"}
    assert client.get("/stripe/v1/payment_intents", headers=auth).status_code == 200
    r = client.post("/stripe/v1/payment_intents", data={"amount": "100", "currency": "cny"},
                    headers={**auth, **idem()})
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"

    r = client.post(f"{shop.base}/api-keys/{read_only['id']}/revoke", headers=shop.owner.h)
    assert r.status_code == 200 and r.json()["revoked_at"]
    r = client.get("/stripe/v1/payment_intents", headers=auth)
    assert r.status_code == 401 and r.json()["error"]["type"] == "invalid_request_error"
    assert key not in r.text

    r = client.post(f"{shop.base}/api-keys", json={"scopes": ["payments:everything"]},
                    headers=shop.owner.h)
    assert r.status_code == 422 and r.json()["code"] == "invalid_scopes"


def test_creating_a_key_needs_a_fresh_second_factor(client: TestClient, shop: Shop) -> None:
    from identity.test_mfa import make_stale

    make_stale(client, shop.owner.session_id)
    r = client.post(f"{shop.base}/api-keys", json={}, headers=shop.owner.h)
    assert r.status_code == 403 and r.json()["code"] == "step_up_required"


# -- paying from the wallet ------------------------------------------------------------------


def test_customer_pays_from_the_wallet_with_the_fee_as_a_linked_leg(client: TestClient,
                                                                    shop: Shop) -> None:
    payer = customer(client, funded=500_00)
    made = intent(client, shop.owner, shop.merchant["id"], amount=123_45,
                  description="Two bowls", metadata={"order": "A-17"})
    assert made["status"] == "requires_payment_method" and made["fee_minor"] == 0
    fees_before = fees_balance(client)

    view = client.get(f"/api/v1/payment-intents/{made['client_secret']}", headers=payer.h)
    assert view.status_code == 200, view.text
    assert view.json() == {"id": made["id"], "merchant_name": "Lotus Noodle Bar",
                           "amount_minor": 123_45, "currency": "CNY",
                           "status": "requires_payment_method", "description": "Two bowls",
                           "payable": True, "payable_by": ["bankwallet_balance"],
                           "payment_method": None, "card": None, "next_action_url": None,
                           "last_payment_error": None}
    # The bare id is not enough to see someone else's payment request.
    assert client.get(f"/api/v1/payment-intents/{made['id']}",
                      headers=payer.h).status_code == 404

    key = str(uuid.uuid4())
    r = pay(client, payer, made["client_secret"], key)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded" and r.json()["payable"] is False
    fee = 74  # 0.6 % of 123.45 = 0.7407 → 0.74
    assert wallet_balance(client, payer.user_id) == 500_00 - 123_45
    assert merchant_balance(client, shop.merchant["id"]) == 123_45 - fee
    assert fees_balance(client) - fees_before == fee

    # The same request again: the same answer, no second payment.
    again = pay(client, payer, made["client_secret"], key)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    # Another attempt: the intent is paid.
    r = pay(client, payer, made["client_secret"])
    assert r.status_code == 409 and r.json()["code"] == "payment_intent_unexpected_state"
    assert wallet_balance(client, payer.user_id) == 500_00 - 123_45

    seen = client.get(f"{shop.base}/payment-intents/{made['id']}", headers=shop.owner.h).json()
    assert seen["status"] == "succeeded" and seen["amount_received_minor"] == 123_45
    assert seen["fee_minor"] == fee and seen["payment_method"] == "bankwallet_balance"
    # The payer now sees it by id too; anyone else with the secret does not.
    assert client.get(f"/api/v1/payment-intents/{made['id']}", headers=payer.h).status_code == 200
    other = customer(client, funded=500_00)
    assert client.get(f"/api/v1/payment-intents/{made['client_secret']}",
                      headers=other.h).status_code == 404
    assert pay(client, other, made["client_secret"]).status_code == 404
    types = [e["type"] for e in client.get(f"{shop.base}/events",
                                           headers=shop.owner.h).json()["data"]]
    assert types[:2] == ["payment_intent.succeeded", "payment_intent.created"]


def test_insufficient_funds_moves_nothing_and_the_intent_stays_payable(client: TestClient,
                                                                       shop: Shop) -> None:
    payer = customer(client, funded=50_00)
    made = intent(client, shop.owner, shop.merchant["id"], amount=80_00)
    key = str(uuid.uuid4())
    r = pay(client, payer, made["client_secret"], key)
    assert r.status_code == 422 and r.json()["code"] == "insufficient_funds", r.text
    assert wallet_balance(client, payer.user_id) == 50_00
    assert merchant_balance(client, shop.merchant["id"]) == 0
    seen = client.get(f"{shop.base}/payment-intents/{made['id']}", headers=shop.owner.h).json()
    assert seen["status"] == "requires_payment_method"
    assert seen["last_payment_error"]["code"] == "insufficient_funds"
    # Retrying the same request replays the decision.
    again = pay(client, payer, made["client_secret"], key)
    assert again.status_code == 422 and again.headers["idempotent-replayed"] == "true"

    fund(client, payer.user_id, 30_00)
    r = pay(client, payer, made["client_secret"])
    assert r.status_code == 200 and r.json()["status"] == "succeeded"
    assert wallet_balance(client, payer.user_id) == 0
    assert merchant_balance(client, shop.merchant["id"]) == 80_00 - 48


def test_a_failing_fee_leg_undoes_the_payment_leg(client: TestClient, shop: Shop) -> None:
    """The legs are linked: when the fee transfer fails, the customer's money does not move."""
    from bankwallet.core.ids import derived_id
    from bankwallet.ledger import service as ledger_service
    from bankwallet.ledger.types import TransferIn
    from bankwallet.wallets import service as wallets_service

    payer = customer(client, funded=100_00)
    made = intent(client, shop.owner, shop.merchant["id"], amount=40_00)
    key = str(uuid.uuid4())
    charge_id = derived_id("payments.charge", uuid.UUID(payer.user_id), key)
    fee_id = derived_id("payments.charge.fee", charge_id)

    async def occupy() -> None:  # another transfer already holds the fee leg's id
        bank = wallets_service.system_account_id(wallets_service.SystemAccount.BANK_SETTLEMENT,
                                                 "CNY")
        fees = wallets_service.system_account_id(wallets_service.SystemAccount.FEES, "CNY")
        await ledger_service.submit_one(client.app.state.ledger, TransferIn(
            id=fee_id, debit_account_id=bank, credit_account_id=fees, amount=1, ledger="CNY",
            code=9002))

    client.portal.call(occupy)
    r = pay(client, payer, made["client_secret"], key)
    assert r.status_code == 409 and r.json()["code"] == "payment_failed", r.text
    assert wallet_balance(client, payer.user_id) == 100_00
    assert merchant_balance(client, shop.merchant["id"]) == 0
    seen = client.get(f"{shop.base}/payment-intents/{made['id']}", headers=shop.owner.h).json()
    assert seen["status"] == "requires_payment_method"
    assert pay(client, payer, made["client_secret"]).status_code == 200


def test_pay_needs_an_idempotency_key_and_a_real_handle(client: TestClient, shop: Shop) -> None:
    payer = customer(client, funded=10_00)
    made = intent(client, shop.owner, shop.merchant["id"], amount=1_00)
    r = client.post(f"/api/v1/payment-intents/{made['client_secret']}/pay", headers=payer.h)
    assert r.status_code == 400 and r.json()["code"] == "idempotency_key_missing"
    forged = made["client_secret"][:-3] + "aaa"
    for handle in (forged, "pi_nothing", made["id"] + "x"):
        assert pay(client, payer, handle).status_code == 404
    assert wallet_balance(client, payer.user_id) == 10_00


def test_a_big_payment_needs_a_fresh_second_factor(client: TestClient, shop: Shop) -> None:
    from identity.test_mfa import make_stale

    from bankwallet.identity import kyc

    payer = customer(client, funded=3_000_00)

    async def verify() -> None:
        async with client.app.state.db.unit_of_work() as session:
            await kyc.grant_tier(session, uuid.UUID(payer.user_id), 1, reason="test")

    client.portal.call(verify)
    made = intent(client, shop.owner, shop.merchant["id"], amount=2_500_00)
    make_stale(client, payer.session_id)
    r = pay(client, payer, made["client_secret"])
    assert r.status_code == 403 and r.json()["code"] == "step_up_required"
    assert wallet_balance(client, payer.user_id) == 3_000_00
    seen = client.get(f"{shop.base}/payment-intents/{made['id']}", headers=shop.owner.h).json()
    assert seen["status"] == "requires_payment_method"


def test_a_payment_over_the_tier_limit_is_refused(client: TestClient, shop: Shop) -> None:
    payer = customer(client, funded=900_00)
    made = intent(client, shop.owner, shop.merchant["id"], amount=600_00)  # tier 0: 500.00
    r = pay(client, payer, made["client_secret"])
    assert r.status_code == 422 and r.json()["code"] == "limit_exceeded"
    assert wallet_balance(client, payer.user_id) == 900_00


# -- manual capture and cancel ---------------------------------------------------------------


def test_manual_capture_holds_then_captures_part(client: TestClient, shop: Shop) -> None:
    from bankwallet.wallets import service as wallets_service

    payer = customer(client, funded=200_00)
    made = intent(client, shop.owner, shop.merchant["id"], amount=100_00,
                  capture_method="manual")
    r = pay(client, payer, made["client_secret"])
    assert r.status_code == 200 and r.json()["status"] == "requires_capture"
    wallet = wallets_service.wallet_account_id(uuid.UUID(payer.user_id), "CNY")
    assert available_of(client, wallet) == 100_00
    assert wallet_balance(client, payer.user_id) == 200_00
    seen = client.get(f"{shop.base}/payment-intents/{made['id']}", headers=shop.owner.h).json()
    assert seen["amount_capturable_minor"] == 100_00

    url = f"{shop.base}/payment-intents/{made['id']}/capture"
    r = client.post(url, json={"amount_to_capture_minor": 100_01}, headers={**shop.owner.h,
                                                                           **idem()})
    assert r.status_code == 409 and r.json()["code"] == "capture_exceeds_capturable"
    r = client.post(url, json={"amount_to_capture_minor": 60_00},
                    headers={**shop.owner.h, **idem()})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded" and r.json()["amount_received_minor"] == 60_00
    assert r.json()["fee_minor"] == 36 and r.json()["amount_capturable_minor"] == 0
    assert wallet_balance(client, payer.user_id) == 140_00
    assert available_of(client, wallet) == 140_00
    assert merchant_balance(client, shop.merchant["id"]) == 60_00 - 36
    r = client.post(url, json={}, headers={**shop.owner.h, **idem()})
    assert r.status_code == 409 and r.json()["code"] == "payment_intent_unexpected_state"


def test_canceling_an_authorisation_gives_the_money_back(client: TestClient, shop: Shop) -> None:
    payer = customer(client, funded=50_00)
    made = intent(client, shop.owner, shop.merchant["id"], amount=50_00,
                  capture_method="manual")
    assert pay(client, payer, made["client_secret"]).json()["status"] == "requires_capture"
    r = client.post(f"{shop.base}/payment-intents/{made['id']}/cancel",
                    json={"cancellation_reason": "abandoned"},
                    headers={**shop.owner.h, **idem()})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "canceled" and r.json()["cancellation_reason"] == "abandoned"
    assert wallet_balance(client, payer.user_id) == 50_00
    # The daily outflow was given back: another 50.00 fits the tier-0 limits again.
    second = intent(client, shop.owner, shop.merchant["id"], amount=50_00)
    assert pay(client, payer, second["client_secret"]).status_code == 200


# -- the state machine -----------------------------------------------------------------------


def _post(client: TestClient, shop: Shop, made: dict, action: str, body: dict | None = None):
    return client.post(f"{shop.base}/payment-intents/{made['id']}/{action}", json=body or {},
                       headers={**shop.owner.h, **idem()})


def test_forbidden_transitions_are_409_with_a_clear_code(client: TestClient, shop: Shop) -> None:
    payer = customer(client, funded=100_00)
    fresh = intent(client, shop.owner, shop.merchant["id"], amount=10_00)
    for action in ("capture", "refunds"):
        r = _post(client, shop, fresh, action)
        assert r.status_code == 409, (action, r.text)
        assert r.json()["code"] == "payment_intent_unexpected_state"
        assert r.json()["payment_intent_status"] == "requires_payment_method"

    paid = intent(client, shop.owner, shop.merchant["id"], amount=10_00)
    assert pay(client, payer, paid["client_secret"]).status_code == 200
    for action in ("capture", "cancel"):
        r = _post(client, shop, paid, action)
        assert r.status_code == 409 and r.json()["payment_intent_status"] == "succeeded"

    canceled = intent(client, shop.owner, shop.merchant["id"], amount=10_00)
    assert _post(client, shop, canceled, "cancel").json()["status"] == "canceled"
    for action in ("capture", "cancel", "refunds"):
        r = _post(client, shop, canceled, action)
        assert r.status_code == 409 and r.json()["payment_intent_status"] == "canceled"
    r = pay(client, payer, canceled["client_secret"])
    assert r.status_code == 409 and r.json()["code"] == "payment_intent_unexpected_state"
    assert wallet_balance(client, payer.user_id) == 90_00


# -- refunds ---------------------------------------------------------------------------------


def test_partial_and_full_refunds_give_back_the_fee_share(client: TestClient,
                                                          shop: Shop) -> None:
    payer = customer(client, funded=100_00)
    made = intent(client, shop.owner, shop.merchant["id"], amount=100_00)
    assert pay(client, payer, made["client_secret"]).status_code == 200
    fees_after_payment = fees_balance(client)
    url = f"{shop.base}/payment-intents/{made['id']}/refunds"

    key = str(uuid.uuid4())
    r = client.post(url, json={"amount_minor": 30_00, "reason": "requested_by_customer"},
                    headers={**shop.owner.h, **idem(key)})
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["status"] == "succeeded" and first["fee_refund_minor"] == 18
    assert first["id"].startswith("re_")
    assert wallet_balance(client, payer.user_id) == 30_00
    assert merchant_balance(client, shop.merchant["id"]) == 100_00 - 60 - 30_00 + 18
    assert fees_balance(client) == fees_after_payment - 18
    replay = client.post(url, json={"amount_minor": 30_00, "reason": "requested_by_customer"},
                         headers={**shop.owner.h, **idem(key)})
    assert replay.json() == first and wallet_balance(client, payer.user_id) == 30_00

    r = client.post(url, json={"amount_minor": 70_01}, headers={**shop.owner.h, **idem()})
    assert r.status_code == 409 and r.json()["code"] == "refund_exceeds_captured"
    assert r.json()["refundable_minor"] == 70_00
    r = client.post(url, json={}, headers={**shop.owner.h, **idem()})  # the rest
    assert r.status_code == 201 and r.json()["amount_minor"] == 70_00
    assert r.json()["fee_refund_minor"] == 42
    assert wallet_balance(client, payer.user_id) == 100_00
    assert merchant_balance(client, shop.merchant["id"]) == 0
    assert fees_balance(client) == fees_after_payment - 60
    r = client.post(url, json={"amount_minor": 1}, headers={**shop.owner.h, **idem()})
    assert r.status_code == 409 and r.json()["refundable_minor"] == 0
    refunds = client.get(url, headers=shop.owner.h).json()["data"]
    assert sorted(x["amount_minor"] for x in refunds) == [30_00, 70_00]
    seen = client.get(f"{shop.base}/payment-intents/{made['id']}", headers=shop.owner.h).json()
    assert seen["amount_refunded_minor"] == 100_00 and seen["fee_refunded_minor"] == 60
    types = [e["type"] for e in client.get(f"{shop.base}/events",
                                           headers=shop.owner.h).json()["data"]]
    assert types.count("charge.refunded") == 2


def test_bad_refund_input_is_refused(client: TestClient, shop: Shop) -> None:
    payer = customer(client, funded=10_00)
    made = intent(client, shop.owner, shop.merchant["id"], amount=10_00)
    assert pay(client, payer, made["client_secret"]).status_code == 200
    url = f"{shop.base}/payment-intents/{made['id']}/refunds"
    for body, status in (({"amount_minor": 0}, 409), ({"amount_minor": -5}, 409),
                         ({"amount_minor": "5"}, 422), ({"reason": "bored"}, 422),
                         ({"amount_minor": 1, "extra": 1}, 422)):
        r = client.post(url, json=body, headers={**shop.owner.h, **idem()})
        assert r.status_code == status, (body, r.text)
    r = client.post(url, json={"amount_minor": 1}, headers=shop.owner.h)
    assert r.status_code == 400 and r.json()["code"] == "idempotency_key_missing"
    assert wallet_balance(client, payer.user_id) == 0


def test_a_refund_the_merchant_cannot_cover_is_refused(client: TestClient, shop: Shop) -> None:
    payer = customer(client, funded=20_00)
    made = intent(client, shop.owner, shop.merchant["id"], amount=20_00)
    assert pay(client, payer, made["client_secret"]).status_code == 200
    r = client.post(f"{shop.base}/settlements", json={"currency": "CNY"},
                    headers={**shop.owner.h, **idem()})
    assert r.status_code == 201 and r.json()["status"] == "queued"
    r = client.post(f"{shop.base}/payment-intents/{made['id']}/refunds", json={},
                    headers={**shop.owner.h, **idem()})
    assert r.status_code == 409 and r.json()["code"] == "merchant_balance_insufficient", r.text
    assert wallet_balance(client, payer.user_id) == 0
    seen = client.get(f"{shop.base}/payment-intents/{made['id']}", headers=shop.owner.h).json()
    assert seen["amount_refunded_minor"] == 0


def test_another_merchants_payment_is_not_found(client: TestClient, shop: Shop) -> None:
    other_owner = customer(client)
    other = merchant(client, other_owner)
    theirs = intent(client, other_owner, other["id"])
    for path in (f"/payment-intents/{theirs['id']}", f"/payment-intents/{theirs['id']}/refunds"):
        assert client.get(shop.base + path, headers=shop.owner.h).status_code == 404
    for action in ("capture", "cancel", "refunds"):
        r = client.post(f"{shop.base}/payment-intents/{theirs['id']}/{action}", json={},
                        headers={**shop.owner.h, **idem()})
        assert r.status_code == 404, r.text
    key = api_key(client, shop.owner, shop.merchant["id"])
    r = client.get(f"/stripe/v1/payment_intents/{theirs['id']}",
                   headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "resource_missing"
    seen = client.get(f"/api/v1/merchants/{other['id']}/payment-intents/{theirs['id']}",
                      headers=other_owner.h).json()
    assert seen["status"] == "requires_payment_method"


def test_listing_payments_filters_and_pages(client: TestClient, shop: Shop) -> None:
    payer = customer(client, funded=10_00)
    made = [intent(client, shop.owner, shop.merchant["id"], amount=n * 100) for n in range(1, 6)]
    assert pay(client, payer, made[0]["client_secret"]).status_code == 200
    url = f"{shop.base}/payment-intents"
    page = client.get(url, params={"limit": 2}, headers=shop.owner.h).json()
    assert [i["id"] for i in page["data"]] == [made[4]["id"], made[3]["id"]] and page["has_more"]
    rest = client.get(url, params={"limit": 10, "starting_after": page["next_starting_after"]},
                      headers=shop.owner.h).json()
    assert [i["id"] for i in rest["data"]] == [m["id"] for m in made[2::-1]]
    assert not rest["has_more"]
    done = client.get(url, params={"status": "succeeded"}, headers=shop.owner.h).json()
    assert [i["id"] for i in done["data"]] == [made[0]["id"]]
    assert client.get(url, params={"limit": 0}, headers=shop.owner.h).status_code == 422
    assert client.get(url, params={"starting_after": "pi_x"},
                      headers=shop.owner.h).status_code == 404


def test_a_publishable_key_reads_one_intent_with_its_client_secret(client: TestClient,
                                                                   shop: Shop) -> None:
    made = intent(client, shop.owner, shop.merchant["id"])
    pk = api_key(client, shop.owner, shop.merchant["id"], kind="publishable")
    assert pk.startswith("pk_test_")
    auth = {"Authorization": f"Bearer {pk}"}
    url = f"/stripe/v1/payment_intents/{made['id']}"
    r = client.get(url, params={"client_secret": made["client_secret"]}, headers=auth)
    assert r.status_code == 200 and r.json()["id"] == made["id"]
    assert client.get(url, headers=auth).status_code == 403
    other = intent(client, shop.owner, shop.merchant["id"])
    r = client.get(url, params={"client_secret": other["client_secret"]}, headers=auth)
    assert r.status_code == 400 and r.json()["error"]["param"] == "client_secret"
    r = client.post("/stripe/v1/payment_intents", data={"amount": "1", "currency": "cny"},
                    headers={**auth, **idem()})
    assert r.status_code == 403
