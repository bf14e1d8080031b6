"""A merchant and a customer, each in their own browser, against one real server whose demo
customers have money in their wallets: the merchant onboards, adds a webhook endpoint (a real
HTTP server in this test), charges an amount with a dynamic QR code and downloads its picture;
the customer, on a phone, uploads the picture at /pay/scan and pays from the balance; the
merchant sees it paid, the endpoint receives one signed ``payment_intent.succeeded``, and a
partial refund lands back in the customer's wallet and at the endpoint. A second journey pays
an intent made through the Stripe-style API on the hosted pay page and returns to the shop."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from bankwallet import demo
from bankwallet.core import webhooks
from bankwallet.payments.webhooks import SIGNATURE_HEADER

from .conftest import PHONE

pytestmark = pytest.mark.e2e

DESKTOP = {"viewport": {"width": 1280, "height": 900}}
CUSTOMER, OTHER_CUSTOMER, MERCHANT_USER = "alice", "bob", "wang.fang"
WEBHOOK_TIMEOUT_S = 20.0
SMS_TIMEOUT_S = 15.0
STEP_UP_ROUNDS_MAX = 3


# -- the merchant's webhook endpoint: a real HTTP server ---------------------------------------


@dataclass
class Received:
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    url: str
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self, type_: str, object_field: str, value: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.event["type"] == type_
                    and r.event["data"]["object"].get(object_field) == value]

    async def wait_for(self, type_: str, object_field: str, value: str, *,
                       timeout_s: float = WEBHOOK_TIMEOUT_S) -> list[Received]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            if found := self.events(type_, object_field, value):
                return found
            await asyncio.sleep(0.2)
        with self.lock:
            seen = [r.event["type"] for r in self.received]
        raise AssertionError(f"no {type_} for {value} within {timeout_s} s; got {seen}")


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver: WebhookReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.lock:
                receiver.received.append(Received(
                    {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = WebhookReceiver(f"http://127.0.0.1:{server.server_address[1]}/hooks")
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver",
                              daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- browsers ------------------------------------------------------------------------------------


def _watch(page: Any, problems: list[str]) -> None:
    """Script errors and CSP violations; a refused form (4xx) is not a problem here."""
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" and not m.text
            .startswith("Failed to load resource: the server responded with a status of 4")
            else None)


@pytest.fixture
async def merchant_page(browser: Any, demo_server_url: str) -> AsyncIterator[Any]:
    """The merchant's desktop browser, in English."""
    context = await browser.new_context(base_url=demo_server_url, locale="en-GB",
                                        accept_downloads=True, **DESKTOP)
    await context.add_cookies([{"name": "lang", "value": "en", "url": demo_server_url}])
    page = await context.new_page()
    yield page
    await context.close()


@pytest.fixture
async def customer_page(browser: Any, demo_server_url: str) -> AsyncIterator[Any]:
    """The customer's phone, in Simplified Chinese."""
    context = await browser.new_context(base_url=demo_server_url, locale="zh-CN", **PHONE)
    await context.add_cookies([{"name": "lang", "value": "zh-CN", "url": demo_server_url}])
    page = await context.new_page()
    yield page
    await context.close()


async def log_in(page: Any, name: str, *, zh: bool) -> None:
    await page.goto("/login")
    await page.get_by_label("手机号或电子邮箱" if zh else "Mobile number or e-mail").fill(
        demo.CUSTOMERS[name])
    await page.get_by_label("密码" if zh else "Password").fill(demo.PASSWORD)
    await page.get_by_role("button", name="登录" if zh else "Log in", exact=True).click()
    await page.wait_for_url(re.compile(r"/wallet$"))


async def _inbox(server_url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=server_url) as client:
        return (await client.get("/dev/inbox.json")).json()["items"]


async def step_up_if_asked(page: Any, server_url: str, name: str, *, zh: bool) -> bool:
    """On the step-up page: ask for an SMS code, read the new one from the development inbox
    and confirm (which returns to the page that asked). False when nothing was asked."""
    if "/me/step-up" not in page.url:
        return False
    seen = {m["id"] for m in await _inbox(server_url)}
    await page.get_by_role("button", name="通过短信给我发送验证码" if zh
                           else "Send me a code by SMS").click()
    await page.wait_for_load_state()
    to = demo.CUSTOMERS[name]
    deadline = asyncio.get_running_loop().time() + SMS_TIMEOUT_S
    code = None
    while code is None:
        assert asyncio.get_running_loop().time() < deadline, f"no SMS reached {to}"
        for message in await _inbox(server_url):
            if message["id"] not in seen and message["channel"] == "sms" \
                    and message["to"] == to:
                found = re.search(r"\b(\d{6})\b", message["text"])
                assert found, message["text"]
                code = found.group(1)
                break
        else:
            await asyncio.sleep(0.2)
    await page.get_by_role("textbox", name="验证码" if zh else "Code").fill(code)
    await page.get_by_role("button", name="确认" if zh else "Confirm", exact=True).click()
    await page.wait_for_url(lambda url: "/me/step-up" not in url)
    return True


def amount_of(text: str) -> Decimal:
    """12,345.67 out of "¥12,345.67" or "CN¥12,345.67"."""
    found = re.search(r"-?[\d,]+\.\d{2}", text)
    assert found, text
    return Decimal(found.group(0).replace(",", ""))


async def wallet_balance(page: Any) -> Decimal:
    await page.goto("/wallet")
    return amount_of(await page.locator(".balance-amount").first.inner_text())


# -- the merchant's dashboard ----------------------------------------------------------------


async def onboard(page: Any, name: str) -> str:
    """A new merchant account through the form; returns the dashboard's path."""
    await page.goto("/merchant")
    await page.get_by_label("Business name").fill(name)
    await page.get_by_label("Merchant category code (MCC)").fill("5812")
    await page.get_by_label("City").fill("Shanghai")
    await page.get_by_label("Settlement bank account").fill("6222 0202 0011 2233 446")
    await page.get_by_role("button", name="Open the merchant account").click()
    await page.wait_for_url(re.compile(r"/merchant/[0-9a-f-]{36}$"))
    from playwright.async_api import expect

    await expect(page.get_by_role("heading", level=1)).to_have_text(name)
    return page.url.removeprefix(page.url.split("/merchant/")[0])


async def add_webhook_endpoint(page: Any, server_url: str, home: str, url: str) -> str:
    """The endpoint (all events) and its signing secret, as the page shows it once."""
    for _ in range(STEP_UP_ROUNDS_MAX):
        await page.goto(f"{home}/webhooks")
        await page.get_by_label("URL").fill(url)
        await page.get_by_label("Description").fill("till")
        await page.get_by_role("button", name="Add the endpoint").click()
        await page.wait_for_load_state()
        if not await step_up_if_asked(page, server_url, MERCHANT_USER, zh=False):
            break
    secret = (await page.locator("[data-new-secret]").inner_text()).strip()
    assert secret.startswith("whsec_"), secret
    return secret


async def create_payment(page: Any, home: str, amount: str, description: str) -> str:
    """A payment made on the dashboard; returns the path of its page."""
    await page.goto(f"{home}/payments")
    form = page.locator("form", has=page.get_by_role("button", name="Create the payment"))
    await form.get_by_label("Amount").fill(amount)
    await form.get_by_label("Currency").select_option("CNY")
    await form.get_by_label("Description (optional)").fill(description)
    await form.get_by_role("button", name="Create the payment").click()
    await page.wait_for_url(re.compile(r"/payments/pi_[A-Za-z0-9]+$"))
    return page.url.removeprefix(page.url.split("/merchant/")[0])


def verified(received: Received, secret: str) -> dict[str, Any]:
    """The event, once its signature checks out with our verifier and Stripe's library."""
    header = received.headers.get(SIGNATURE_HEADER.lower())
    webhooks.verify(secret, received.body, header)
    with pytest.raises(webhooks.WebhookSignatureInvalid):
        webhooks.verify("whsec_" + "x" * 32, received.body, header)
    try:
        import stripe
    except ImportError:
        return received.event
    event = stripe.Webhook.construct_event(received.body.decode(), header, secret)
    assert event["id"] == received.event["id"]
    return received.event


# -- the journeys ----------------------------------------------------------------------------


async def test_a_dynamic_qr_paid_by_picture_with_a_signed_webhook_and_a_partial_refund(
        merchant_page: Any, customer_page: Any, demo_server_url: str,
        webhook_receiver: WebhookReceiver, tmp_path: Path) -> None:
    from playwright.async_api import expect

    server, shop, till = demo_server_url, merchant_page, customer_page
    problems: list[str] = []
    _watch(shop, problems)
    _watch(till, problems)
    name = f"Noodle Bar {uuid.uuid4().hex[:6]}"

    # The merchant onboards, adds the endpoint, and charges 88.80 with a dynamic code.
    await log_in(shop, MERCHANT_USER, zh=False)
    home = await onboard(shop, name)
    secret = await add_webhook_endpoint(shop, server, home, webhook_receiver.url)
    await expect(shop.get_by_text(webhook_receiver.url)).to_be_visible()
    await shop.goto(f"{home}/payments")
    await shop.get_by_label("Amount", exact=True).fill("eighty")
    await shop.get_by_role("button", name="Create the payment").click()
    await expect(shop.get_by_role("alert")).to_have_text("Enter a valid amount.")
    payment_path = await create_payment(shop, home, "88.80", "Two bowls of noodles")
    pid = payment_path.rsplit("/", 1)[1]
    await expect(shop.get_by_role("heading", level=1)).to_have_text(re.compile(r"88\.80"))
    await expect(shop.get_by_text("Waiting for payment")).to_be_visible()
    async with shop.expect_download() as download_info:
        await shop.get_by_role("link", name="Download PNG").click()
    picture = tmp_path / "till-qr.png"
    await (await download_info.value).save_as(picture)
    assert picture.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    # The customer uploads the picture, sees whom and how much, and pays from the balance.
    await log_in(till, CUSTOMER, zh=True)
    before = await wallet_balance(till)
    await till.goto("/pay/scan")
    await till.get_by_label("或上传二维码照片").set_input_files(picture)
    await till.get_by_role("button", name="识别图片").click()
    await expect(till.get_by_text(f"{name}")).to_be_visible()
    await expect(till.locator(".preview-amount")).to_contain_text("88.80")
    await till.get_by_role("link", name="继续").click()
    await expect(till.get_by_role("heading", level=1)).to_contain_text("88.80")
    for _ in range(STEP_UP_ROUNDS_MAX):
        await till.get_by_role("button", name="确认支付").click()
        await till.wait_for_load_state()
        if not await step_up_if_asked(till, server, CUSTOMER, zh=True):
            break
    await expect(till.get_by_text("支付成功，谢谢！")).to_be_visible()
    assert await wallet_balance(till) == before - Decimal("88.80")

    # The merchant sees it paid; the endpoint got one signed payment_intent.succeeded.
    await shop.goto(payment_path)
    await expect(shop.get_by_text("Paid", exact=True)).to_be_visible()
    succeeded = await webhook_receiver.wait_for("payment_intent.succeeded", "id", pid)
    event = verified(succeeded[0], secret)
    assert event["data"]["object"]["amount"] == 88_80
    assert event["data"]["object"]["status"] == "succeeded"

    # A partial refund from the dashboard: back in the wallet, and at the endpoint.
    for _ in range(STEP_UP_ROUNDS_MAX):
        await shop.goto(payment_path)
        await shop.get_by_label("Amount (CNY)").fill("20.50")
        await shop.get_by_label("Reason").select_option("requested_by_customer")
        await shop.get_by_role("button", name="Refund", exact=True).click()
        await shop.wait_for_load_state()
        if not await step_up_if_asked(shop, server, MERCHANT_USER, zh=False):
            break
    refunds = shop.get_by_role("list", name="Refunds")
    await expect(refunds.get_by_text("CN¥20.50")).to_be_visible()
    await expect(shop.get_by_role("button", name="Refund", exact=True)).to_be_visible()
    assert await wallet_balance(till) == before - Decimal("88.80") + Decimal("20.50")
    refunded = await webhook_receiver.wait_for("charge.refunded", "payment_intent", pid)
    refund_event = verified(refunded[0], secret)
    assert refund_event["data"]["object"]["amount_refunded"] == 20_50

    # Exactly one succeeded event for the payment, every delivery signed, none sent twice.
    assert len(webhook_receiver.events("payment_intent.succeeded", "id", pid)) == 1
    ids = [r.event["id"] for r in webhook_receiver.received]
    assert len(ids) == len(set(ids)), ids
    for received in webhook_receiver.received:
        verified(received, secret)
    await shop.goto(f"{home}/webhooks")
    log = shop.get_by_role("list", name="Delivery log").get_by_role("listitem")
    await expect(log.filter(has_text="payment_intent.succeeded")).to_contain_text("Delivered")
    await expect(log.filter(has_text="charge.refunded")).to_contain_text("Delivered")
    assert problems == []


async def test_an_api_payment_paid_on_the_hosted_pay_page(
        merchant_page: Any, customer_page: Any, demo_server_url: str) -> None:
    """The intent comes from the merchant's server (secret key, Stripe-style API) with a
    return URL; the customer opens its link, pays from the balance and goes back to the shop."""
    from playwright.async_api import expect

    server, shop, phone = demo_server_url, merchant_page, customer_page
    problems: list[str] = []
    _watch(shop, problems)
    _watch(phone, problems)
    await log_in(shop, MERCHANT_USER, zh=False)
    home = await onboard(shop, f"Tea House {uuid.uuid4().hex[:6]}")

    for _ in range(STEP_UP_ROUNDS_MAX):
        await shop.goto(f"{home}/keys")
        await shop.get_by_role("button", name="Create the key").click()
        await shop.wait_for_load_state()
        if not await step_up_if_asked(shop, server, MERCHANT_USER, zh=False):
            break
    api_key = (await shop.locator("[data-new-key]").inner_text()).strip()
    assert api_key.startswith("sk_test_"), api_key
    return_url = "https://tea.example.com/orders/42"
    async with httpx.AsyncClient(base_url=server) as client:
        r = await client.post("/stripe/v1/payment_intents", auth=(api_key, ""), data={
            "amount": "3650", "currency": "cny", "description": "Oolong, 250 g",
            "return_url": return_url}, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert r.status_code == 200, r.text
    intent = r.json()
    assert intent["status"] == "requires_payment_method"

    await log_in(phone, OTHER_CUSTOMER, zh=True)
    before = await wallet_balance(phone)
    await phone.goto(f"/pay/{intent['client_secret']}")
    await expect(phone.get_by_role("heading", level=1)).to_contain_text("36.50")
    await expect(phone.get_by_text("Oolong, 250 g")).to_be_visible()
    for _ in range(STEP_UP_ROUNDS_MAX):
        await phone.get_by_role("button", name="确认支付").click()
        await phone.wait_for_load_state()
        if not await step_up_if_asked(phone, server, OTHER_CUSTOMER, zh=True):
            break
    await expect(phone.get_by_text("支付成功，谢谢！")).to_be_visible()
    await expect(phone.get_by_role("link", name="返回商店")).to_have_attribute("href",
                                                                          return_url)
    assert await wallet_balance(phone) == before - Decimal("36.50")

    await shop.goto(f"{home}/payments/{intent['id']}")
    await expect(shop.get_by_text("Paid", exact=True)).to_be_visible()
    async with httpx.AsyncClient(base_url=server) as client:
        r = await client.get(f"/stripe/v1/payment_intents/{intent['id']}",
                             auth=(api_key, ""))
    assert r.json()["status"] == "succeeded" and r.json()["amount_received"] == 3650
    assert problems == []
