"""Merchant QR codes: the static code on the merchant's home page, the dynamic code of an
intent awaiting payment, and the customer's ``/pay/scan`` that resolves a pasted payload."""

from __future__ import annotations

import html
import io
import re
import uuid

import pytest
from fastapi.testclient import TestClient
from identity.test_web import log_in_with_cookie

from bankwallet.payments import qr as payments_qr
from bankwallet.payments import service
from bankwallet.payments.models import PaymentIntent
from bankwallet.qr import decode, render
from bankwallet.qr.errors import QrCrcMismatch, QrFieldInvalid, QrFieldMissing
from payments.conftest import customer, intent, merchant, wallet_balance
from payments.test_web import form_value, fresh_second_factor

EN = {"accept-language": "en"}


def page_payload(text: str) -> str:
    match = re.search(r'data-qr-payload="([^"]+)"', text)
    assert match, "no QR payload in the page"
    return html.unescape(match.group(1))


def scanned(png: bytes) -> str:
    """The text a camera would read from the PNG (zxing-cpp, a dev dependency)."""
    zxingcpp = pytest.importorskip("zxingcpp")
    from PIL import Image

    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(found) == 1
    return found[0].text


def resolve(client: TestClient, payload: str):
    async def run():
        async with client.app.state.db.unit_of_work() as session:
            return await service.resolve_qr(session, payload)

    return client.portal.call(run)


def intents_of(client: TestClient, merchant_id: str) -> int:
    from sqlalchemy import func, select

    async def run() -> int:
        async with client.app.state.db.unit_of_work() as session:
            return (await session.execute(select(func.count()).select_from(PaymentIntent).where(
                PaymentIntent.merchant_id == uuid.UUID(merchant_id)))).scalar_one()

    return client.portal.call(run)


def test_static_code_on_the_merchant_home_page(client: TestClient) -> None:
    owner = customer(client)
    shop = merchant(client, owner, name="莲花面馆 Lotus Noodles")
    log_in_with_cookie(client, owner.login)
    home = client.get(f"/merchant/{shop['id']}", headers=EN)
    assert home.status_code == 200
    payload = page_payload(home.text)
    svg = client.get(f"/merchant/{shop['id']}/qr/svg")
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert svg.content == render.render_svg(payload)  # the picture is of that payload
    png = client.get(f"/merchant/{shop['id']}/qr/png")
    assert png.headers["content-type"] == "image/png"
    assert scanned(png.content) == payload
    poster = client.get(f"/merchant/{shop['id']}/qr/poster", headers=EN)
    assert poster.status_code == 200 and b"Scan to pay" in poster.content
    assert "莲花面馆" in poster.content.decode()
    for kind in ("svg", "png", "poster"):
        assert f"/merchant/{shop['id']}/qr/{kind}" in home.text

    qr = decode(payload)
    assert qr.initiation == "11" and qr.amount_minor is None
    assert qr.currency_numeric == "156" and qr.mcc == "5812" and qr.country == "CN"
    assert qr.merchant_accounts["26"].gui == "CN.BANKWALLET"
    assert qr.name == "Lotus Noodles" and qr.language.name == "莲花面馆 Lotus Noodles"
    found, none = resolve(client, payload)
    assert str(found.id) == shop["id"] and none is None

    # Another user sees neither the page nor the code.
    log_in_with_cookie(client, customer(client).login)
    assert client.get(f"/merchant/{shop['id']}/qr/svg").status_code == 404


def test_dynamic_code_on_an_intent_awaiting_payment(client: TestClient) -> None:
    owner = customer(client)
    shop = merchant(client, owner)
    made = intent(client, owner, shop["id"], amount=42_50)
    log_in_with_cookie(client, owner.login)
    page = client.get(f"/merchant/{shop['id']}/payments/{made['id']}", headers=EN)
    assert page.status_code == 200
    payload = page_payload(page.text)
    base = f"/merchant/{shop['id']}/payments/{made['id']}/qr"
    assert client.get(f"{base}/svg").content == render.render_svg(payload)
    assert scanned(client.get(f"{base}/png").content) == payload
    qr = decode(payload)
    assert qr.is_dynamic and qr.amount_minor == 42_50
    assert len(qr.additional_data.reference_label) <= 25
    found, paying = resolve(client, payload)
    assert str(found.id) == shop["id"]
    assert paying is not None and paying.id.hex == made["id"].removeprefix("pi_")

    # Once canceled it awaits nothing: no code.
    r = client.post(f"/api/v1/merchants/{shop['id']}/payment-intents/{made['id']}/cancel",
                    json={}, headers={**owner.h, "Idempotency-Key": str(uuid.uuid4())})
    assert r.status_code == 200, r.text
    page = client.get(f"/merchant/{shop['id']}/payments/{made['id']}", headers=EN)
    assert "data-qr-payload" not in page.text
    assert client.get(f"{base}/svg").status_code == 404


def test_scan_a_dynamic_code_leads_to_the_pay_page(client: TestClient) -> None:
    owner = customer(client)
    payer = customer(client, funded=100_00)
    shop = merchant(client, owner, name="Tea House")
    made = intent(client, owner, shop["id"], amount=12_00)
    log_in_with_cookie(client, owner.login)
    payload = page_payload(client.get(f"/merchant/{shop['id']}/payments/{made['id']}").text)
    csrf = log_in_with_cookie(client, payer.login)
    assert client.get("/pay/scan", headers=EN).status_code == 200
    r = client.post("/pay/scan", data={"csrf_token": csrf, "payload": payload},
                    headers=EN)
    assert r.status_code == 200 and "Tea House" in r.text and "12.00" in r.text
    link = html.unescape(re.search(r'href="(/pay/[^"]+)"[^>]*>Continue', r.text).group(1))
    assert link == f"/pay/{made['client_secret']}"
    pay_page = client.get(link, headers=EN)
    assert pay_page.status_code == 200 and "Confirm and pay" in pay_page.text
    r = client.post(link, data={"csrf_token": csrf,
                                "idempotency_key": form_value(pay_page.text, "idempotency_key")},
                    follow_redirects=False)
    assert r.status_code == 303
    assert wallet_balance(client, payer.user_id) == 88_00


def test_scan_a_static_code_asks_the_amount_and_makes_the_intent(client: TestClient) -> None:
    owner = customer(client)
    payer = customer(client, funded=50_00)
    shop = merchant(client, owner, name="Corner Shop")
    log_in_with_cookie(client, owner.login)
    payload = page_payload(client.get(f"/merchant/{shop['id']}", headers=EN).text)
    csrf = log_in_with_cookie(client, payer.login)
    r = client.post("/pay/scan", data={"csrf_token": csrf, "payload": payload}, headers=EN)
    assert r.status_code == 200 and "Corner Shop" in r.text and 'name="amount"' in r.text
    form = {"csrf_token": csrf, "payload": payload, "amount": "8.80",
            "idempotency_key": form_value(r.text, "idempotency_key")}
    made = client.post("/pay/scan/amount", data=form, follow_redirects=False)
    assert made.status_code == 303 and made.headers["location"].startswith("/pay/pi_")
    again = client.post("/pay/scan/amount", data=form, follow_redirects=False)
    assert again.headers["location"] == made.headers["location"]  # a double submit: one
    assert intents_of(client, shop["id"]) == 1
    page = client.get(made.headers["location"], headers=EN)
    assert page.status_code == 200 and "Corner Shop" in page.text and "8.80" in page.text


def test_a_corrupted_payload_shows_the_qr_error_and_changes_nothing(client: TestClient) -> None:
    owner = customer(client)
    payer = customer(client)
    shop = merchant(client, owner, name="Tea House")
    log_in_with_cookie(client, owner.login)
    payload = page_payload(client.get(f"/merchant/{shop['id']}", headers=EN).text)
    broken = payload.replace("Tea House", "Tea Hovse")
    with pytest.raises(QrCrcMismatch):
        resolve(client, broken)
    csrf = log_in_with_cookie(client, payer.login)
    r = client.post("/pay/scan", data={"csrf_token": csrf, "payload": broken}, headers=EN)
    assert r.status_code == 422 or r.status_code == 400
    assert "ID 63 (CRC)" in html.unescape(r.text)
    r = client.post("/pay/scan/amount", data={"csrf_token": csrf, "payload": broken,
                                              "amount": "5", "idempotency_key": "k-1"},
                    headers=EN, follow_redirects=False)
    assert r.status_code in (400, 422) and "ID 63 (CRC)" in html.unescape(r.text)
    assert intents_of(client, shop["id"]) == 0
    # A valid code that is not ours names the missing account; one of ours for a merchant
    # we do not know names its merchant id.
    with pytest.raises(QrFieldMissing):
        resolve(client, _not_ours())
    unknown = payments_qr.static_qr(merchant_id=uuid.uuid4(), name="X", city="Y", mcc="5812",
                                    country="CN").encode()
    with pytest.raises(QrFieldInvalid, match="26.01"):
        resolve(client, unknown)


def _not_ours() -> str:
    from bankwallet.qr import GuiTemplate, MerchantPresentedQr

    return MerchantPresentedQr(merchant_accounts={"26": GuiTemplate(gui="COM.EXAMPLE")},
                               mcc="5812", currency="CNY", country="CN", name="X",
                               city="Y").encode()


def test_scan_a_picture_of_the_code(client: TestClient) -> None:
    pytest.importorskip("zxingcpp")
    owner = customer(client)
    payer = customer(client)
    shop = merchant(client, owner, name="Photo Shop")
    made = intent(client, owner, shop["id"], amount=3_30)
    log_in_with_cookie(client, owner.login)
    png = client.get(f"/merchant/{shop['id']}/payments/{made['id']}/qr/png").content
    csrf = log_in_with_cookie(client, payer.login)
    r = client.post("/pay/scan/picture", data={"csrf_token": csrf},
                    files={"picture": ("code.png", png, "image/png")}, headers=EN)
    assert r.status_code == 200, r.text
    assert "Photo Shop" in r.text and f"/pay/{made['client_secret']}" in html.unescape(r.text)
    r = client.post("/pay/scan/picture", data={"csrf_token": csrf},
                    files={"picture": ("x.png", b"not a picture", "image/png")}, headers=EN)
    assert r.status_code == 422 and "the picture cannot be read" in r.text


def test_scan_to_pay_above_the_step_up_threshold_asks_for_a_second_factor(
        client: TestClient) -> None:
    """Scan → the merchant and the amount → confirm: above the risk threshold the pay page
    sends the customer to the step-up page first; nothing moves until then."""
    from bankwallet.identity import kyc
    from bankwallet.risk.service import STEP_UP_THRESHOLD_MINOR

    owner = customer(client)
    payer = customer(client, funded=3_000_00)

    async def verify() -> None:  # tier 1: the amount is within the payer's limits
        async with client.app.state.db.unit_of_work() as session:
            await kyc.grant_tier(session, uuid.UUID(payer.user_id), 1, reason="test")

    client.portal.call(verify)
    shop = merchant(client, owner, name="Tea House")
    amount = STEP_UP_THRESHOLD_MINOR + 500_00
    made = intent(client, owner, shop["id"], amount=amount)
    log_in_with_cookie(client, owner.login)
    payload = page_payload(client.get(f"/merchant/{shop['id']}/payments/{made['id']}").text)
    csrf = log_in_with_cookie(client, payer.login)  # a password login: no second factor yet
    r = client.post("/pay/scan", data={"csrf_token": csrf, "payload": payload}, headers=EN)
    assert r.status_code == 200 and "Tea House" in r.text
    link = html.unescape(re.search(r'href="(/pay/[^"]+)"[^>]*>Continue', r.text).group(1))
    pay_page = client.get(link, headers=EN)
    form = {"csrf_token": csrf, "idempotency_key": form_value(pay_page.text, "idempotency_key")}
    r = client.post(link, data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/me/step-up?next=")
    assert wallet_balance(client, payer.user_id) == 3_000_00

    fresh_second_factor(client, payer.user_id)  # the customer confirmed a code
    pay_page = client.get(link, headers=EN)
    form["idempotency_key"] = form_value(pay_page.text, "idempotency_key")
    r = client.post(link, data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("?done=1"), r.text
    assert wallet_balance(client, payer.user_id) == 3_000_00 - amount
    client.cookies.clear()
