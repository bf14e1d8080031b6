"""The pay page and the merchant dashboard, with cookie sessions and CSRF tokens."""

from __future__ import annotations

import datetime as dt
import re
import uuid

from fastapi.testclient import TestClient
from identity.test_web import log_in_with_cookie
from sqlalchemy import update

from payments.conftest import Receiver, customer, intent, wallet_balance

EN = {"accept-language": "en"}


def fresh_second_factor(client: TestClient, user_id: str) -> None:
    """As if the user had just confirmed a code (a cookie login alone has not)."""
    from bankwallet.identity.models import Session

    async def run() -> None:
        async with client.app.state.db.unit_of_work() as session:
            await session.execute(update(Session).where(Session.user_id == uuid.UUID(user_id))
                                  .values(second_factor_at=dt.datetime.now(dt.UTC)))

    client.portal.call(run)


def form_value(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert match, f"no {name} in the page"
    return match.group(1)


def test_onboarding_paying_refunding_keys_webhooks_and_settlement(client: TestClient,
                                                                 receiver: Receiver) -> None:
    owner = customer(client)
    payer = customer(client, funded=100_00)
    assert client.get("/merchant", follow_redirects=False).headers["location"] == \
        "/login?next=%2Fmerchant"

    csrf = log_in_with_cookie(client, owner.login)
    page = client.get("/merchant", headers=EN)
    assert page.status_code == 200 and "Open a merchant account" in page.text
    bad = client.post("/merchant", data={"csrf_token": csrf, "name": "Tea House", "mcc": "0000",
                                         "city": "Hangzhou", "bank_account": "1234"}, headers=EN)
    assert bad.status_code == 422 and "form-error" in bad.text and "Tea House" in bad.text
    r = client.post("/merchant", data={"name": "Tea House", "mcc": "5812", "city": "Hangzhou",
                                       "bank_account": "DE89 3704 0044 0532 0130 00"},
                    follow_redirects=False)
    assert r.status_code == 403  # no CSRF token
    r = client.post("/merchant", data={"csrf_token": csrf, "name": "Tea House", "mcc": "5812",
                                       "city": "Hangzhou", "country": "CN",
                                       "bank_account": "DE89 3704 0044 0532 0130 00"},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    home = r.headers["location"]
    merchant_id = home.rsplit("/", 1)[1]
    page = client.get(home, headers=EN)
    assert page.status_code == 200 and "Tea House" in page.text and "····3000" in page.text

    made = intent(client, owner, merchant_id, amount=25_00, description="Oolong")

    # The customer pays on the pay page.
    client.cookies.clear()
    assert client.get(f"/pay/{made['client_secret']}", follow_redirects=False
                      ).headers["location"].startswith("/login?next=%2Fpay%2F")
    payer_csrf = log_in_with_cookie(client, payer.login)
    page = client.get(f"/pay/{made['client_secret']}", headers=EN)
    assert page.status_code == 200 and "Tea House" in page.text and "Oolong" in page.text
    key = form_value(page.text, "idempotency_key")
    form = {"csrf_token": payer_csrf, "idempotency_key": key}
    r = client.post(f"/pay/{made['client_secret']}", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("?done=1"), r.text
    again = client.post(f"/pay/{made['client_secret']}", data=form, follow_redirects=False)
    assert again.status_code == 303  # a double submit answers as the first did
    assert wallet_balance(client, payer.user_id) == 75_00
    done = client.get(r.headers["location"], headers=EN)
    assert "Paid. Thank you!" in done.text
    assert client.get(f"/merchant/{merchant_id}", headers=EN).status_code == 404
    assert client.get("/pay/pi_nothing").status_code == 404

    # The owner refunds part of it from the payment's page.
    client.cookies.clear()
    csrf = log_in_with_cookie(client, owner.login)
    listing = client.get(f"/merchant/{merchant_id}/payments?status=succeeded", headers=EN)
    assert made["id"] in listing.text
    detail = client.get(f"/merchant/{merchant_id}/payments/{made['id']}", headers=EN)
    assert detail.status_code == 200 and "Refund" in detail.text
    refund_key = form_value(detail.text, "idempotency_key")
    url = f"/merchant/{merchant_id}/payments/{made['id']}/refund"
    r = client.post(url, data={"csrf_token": csrf, "idempotency_key": str(uuid.uuid4()),
                               "amount": "ten"}, headers=EN)
    assert r.status_code == 422 and "form-error" in r.text
    r = client.post(url, data={"csrf_token": csrf, "idempotency_key": refund_key,
                               "amount": "10.00", "reason": "requested_by_customer"},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    assert wallet_balance(client, payer.user_id) == 85_00

    # Keys: a fresh second factor first, then the key is shown once.
    r = client.post(f"/merchant/{merchant_id}/keys", data={"csrf_token": csrf, "name": "shop"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/me/step-up")
    fresh_second_factor(client, owner.user_id)
    r = client.post(f"/merchant/{merchant_id}/keys",
                    data={"csrf_token": csrf, "name": "shop", "kind": "secret",
                          "scope": ["payments:read", "payments:write"]}, headers=EN)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    secret_key = re.search(r"data-new-key>(sk_test_\w+)<", r.text).group(1)
    keys_page = client.get(f"/merchant/{merchant_id}/keys", headers=EN)
    assert secret_key not in keys_page.text and secret_key[-4:] in keys_page.text
    assert client.get("/stripe/v1/payment_intents",
                      headers={"Authorization": f"Bearer {secret_key}"}).status_code == 200

    # Webhooks: the secret once, then a delivery in the log to send again.
    r = client.post(f"/merchant/{merchant_id}/webhooks",
                    data={"csrf_token": csrf, "url": receiver.url}, headers=EN)
    assert r.status_code == 200 and "whsec_" in r.text
    assert "whsec_" not in client.get(f"/merchant/{merchant_id}/webhooks", headers=EN).text
    intent(client, owner, merchant_id, amount=1_00)
    from payments.test_webhooks import deliver, dispatch

    dispatch(client)
    assert deliver(client) == 1
    page = client.get(f"/merchant/{merchant_id}/webhooks", headers=EN)
    assert "payment_intent.created" in page.text and "Delivered" in page.text
    delivery_id = re.search(r"/webhooks/([0-9a-f-]{36})/replay", page.text).group(1)
    r = client.post(f"/merchant/{merchant_id}/webhooks/{delivery_id}/replay",
                    data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert deliver(client) == 1 and len(receiver.received) == 2

    # Settlement of what is left.
    page = client.get(f"/merchant/{merchant_id}/settlements", headers=EN)
    r = client.post(f"/merchant/{merchant_id}/settlements",
                    data={"csrf_token": csrf, "currency": "CNY",
                          "idempotency_key": form_value(page.text, "idempotency_key")},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    page = client.get(f"/merchant/{merchant_id}/settlements", headers=EN)
    assert "Queued for the bank" in page.text


def test_pages_render_in_chinese(client: TestClient) -> None:
    owner = customer(client)
    log_in_with_cookie(client, owner.login)
    page = client.get("/merchant", headers={"accept-language": "zh-CN"})
    assert page.status_code == 200 and 'lang="zh' in page.text
