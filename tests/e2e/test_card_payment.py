"""A customer adds cards (one of them asks for 3-D Secure: the challenge page is completed)
and pays a merchant's payment intent by card, once straight away and once through the
issuer's 3-D Secure page and back — in Chromium on a phone-sized screen, against a real
wallet server whose card gateway is the real sandbox gateway process (its webhooks arrive
over HTTP)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import servers
from conftest import free_port
from connectors_gateway.conftest import GatewayProcess, new_secret

from .conftest import PHONE, SERVER_START_TIMEOUT_S, wallet_env
from .test_identity import PASSWORD, sign_up, sms_code

pytestmark = pytest.mark.e2e
WEBHOOK_PATH = "/api/v1/cards/gateway/webhooks"
TIMEOUT_MS = 20_000


@dataclass(frozen=True)
class CardWallet:
    url: str
    gateway_url: str


@pytest.fixture(scope="module")
def card_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CardWallet]:
    """``bankwallet serve`` with ``BANKWALLET_GATEWAY_URL`` set, and the sandbox gateway
    delivering its webhooks to it."""
    workdir = tmp_path_factory.mktemp("e2e-card-payment")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    secret = new_secret()
    gateway = GatewayProcess(secret=secret, webhook_url=url + WEBHOOK_PATH, workdir=workdir)
    env = wallet_env(workdir, BANKWALLET_GATEWAY_URL=gateway.url,
                     BANKWALLET_GATEWAY_SECRET=secret)
    log_path = workdir / "server.log"
    try:
        with servers.running(servers.serve_argv(port), url=url, env=env, cwd=workdir,
                             log_path=log_path, timeout_s=SERVER_START_TIMEOUT_S):
            yield CardWallet(url, gateway.url)
    finally:
        gateway.stop()
    # No card number ever reaches the server's log.
    logged = log_path.read_text()
    for number in ("4242424242424242", "4000002500003155"):
        assert number not in logged


async def api_user(server: str) -> dict[str, str]:
    """A merchant owner signed up through the JSON API (a bearer token)."""
    login = f"137{uuid.uuid4().int % 10**8:08d}"
    async with httpx.AsyncClient(base_url=server) as api:
        r = await api.post("/api/v1/auth/signup", json={"login": login, "password": PASSWORD})
        assert r.status_code == 202, r.text
        code = await sms_code(server, f"+86{login}")
        r = await api.post("/api/v1/auth/signup/verify",
                           json={"challenge_id": r.json()["challenge_id"], "code": code})
        assert r.status_code == 201, r.text
        return {"authorization": f"Bearer {r.json()['token']}"}


async def merchant_intent(server: str, owner: dict[str, str], merchant_id: str,
                          amount_minor: int) -> dict:
    async with httpx.AsyncClient(base_url=server) as api:
        r = await api.post(f"/api/v1/merchants/{merchant_id}/payment-intents", headers=owner,
                           json={"amount_minor": amount_minor, "currency": "CNY",
                                 "payment_method_types": ["bankwallet_balance", "card"],
                                 "description": "Two bowls of noodles"})
        assert r.status_code == 201, r.text
        return r.json()


async def test_add_cards_then_pay_a_merchant_by_card(browser: Any,
                                                     card_server: CardWallet) -> None:
    from playwright.async_api import expect

    server = card_server.url
    owner = await api_user(server)
    async with httpx.AsyncClient(base_url=server) as api:
        r = await api.post("/api/v1/merchants", headers=owner, json={
            "name": "Lotus Noodle Bar", "mcc": "5812", "city": "Shanghai", "country": "CN",
            "bank_account": "6222 0212 3456 7890 128"})
        assert r.status_code == 201, r.text
        merchant_id = r.json()["id"]

    problems: list[str] = []
    context = await browser.new_context(base_url=server, locale="en-GB", **PHONE)
    await context.add_cookies([{"name": "lang", "value": "en", "url": server}])
    page = await context.new_page()
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" and not m.text
            .startswith("Failed to load resource") else None)
    try:
        await sign_up(page, server)

        # A card that is approved straight away.
        await add_card(page, "4242 4242 4242 4242", "123")
        await expect(page.get_by_text("Card added.")).to_be_visible()
        # A card whose bank asks for 3-D Secure: its page, "Complete", and back.
        await add_card(page, "4000 0025 0000 3155", "321")
        await page.get_by_role("link", name="Continue to your bank").click()
        await expect(page).to_have_url(re.compile(r"/3ds/pay_"))
        await page.get_by_role("button", name="Complete").click()
        await expect(page).to_have_url(re.compile(r"/me/cards\?notice=added$"),
                                       timeout=TIMEOUT_MS)
        await expect(page.get_by_text("Visa •••• 3155")).to_be_visible()

        # Pay the merchant's intent with the first card: nothing else to do.
        first = await merchant_intent(server, owner, merchant_id, 38_00)
        await page.goto(first["pay_url"])
        await expect(page.get_by_role("heading", level=1)).to_contain_text("38.00")
        await page.get_by_label(re.compile(r"Visa •••• 4242")).check()
        await page.get_by_role("button", name="Confirm and pay").click()
        await expect(page.get_by_text("Paid. Thank you!")).to_be_visible(timeout=TIMEOUT_MS)
        await expect(page.get_by_text("Visa •••• 4242")).to_be_visible()

        # Pay another with the 3-D Secure card: the bank's page, then back in the wallet.
        second = await merchant_intent(server, owner, merchant_id, 12_50)
        await page.goto(second["pay_url"])
        await page.get_by_label(re.compile(r"Visa •••• 3155")).check()
        await page.get_by_role("button", name="Confirm and pay").click()
        await page.get_by_role("link", name="Continue to your bank").click()
        await expect(page).to_have_url(re.compile(r"/3ds/pay_"))
        await page.get_by_role("button", name="Complete").click()
        await expect(page.get_by_text("Paid. Thank you!")).to_be_visible(timeout=TIMEOUT_MS)

        async with httpx.AsyncClient(base_url=server) as api:
            for made, amount in ((first, 38_00), (second, 12_50)):
                seen = (await api.get(
                    f"/api/v1/merchants/{merchant_id}/payment-intents/{made['id']}",
                    headers=owner)).json()
                assert seen["status"] == "succeeded" and seen["payment_method"] == "card"
                assert seen["amount_received_minor"] == amount
            balances = (await api.get(f"/api/v1/merchants/{merchant_id}/balances",
                                      headers=owner)).json()
        fees = sum((a * 6_000 + 500_000) // 1_000_000 for a in (38_00, 12_50))
        assert balances[0]["available_minor"] == 38_00 + 12_50 - fees
    finally:
        await context.close()
    assert problems == []


async def add_card(page: Any, number: str, cvc: str) -> None:
    await page.goto("/me/cards")
    await page.get_by_label("Card number").fill(number)
    await page.get_by_label("Name on card").fill("Li Lei")
    await page.get_by_label("Expiry month").fill("12")
    await page.get_by_label("Expiry year").fill("2031")
    await page.get_by_label("Security code").fill(cvc)
    await page.get_by_role("button", name="Add card").click()
