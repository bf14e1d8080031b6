"""Paying with a payment code (付款码) at a till, in two browsers against a real server: the
customer's phone shows a one-time code; the merchant's point-of-sale page (another browser
context, another person) types it with an amount and charges it; the customer's page sees the
payment arrive by itself and shows the lower balance."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from bankwallet import demo

from .conftest import PHONE, serving_demo_data

pytestmark = pytest.mark.e2e
PAID_TIMEOUT_MS = 15_000
AMOUNT_MINOR = 23_50
CARD_ACCOUNT = "6222 0212 3456 7890 128"


@pytest.fixture(scope="module")
def funded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server on a database first filled by ``bankwallet demo`` (customers with funded
    wallets), so money can be spent without a bank behind the wallet."""
    with serving_demo_data(tmp_path_factory.mktemp("e2e-pos")) as url:
        yield url


async def _person(browser: Any, url: str, login: str, problems: list[str]) -> Any:
    context = await browser.new_context(base_url=url, locale="en-GB", **PHONE)
    await context.add_cookies([{"name": "lang", "value": "en", "url": url}])
    page = await context.new_page()
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    await page.goto("/login")
    await page.get_by_label("Mobile number or e-mail").fill(login)
    await page.get_by_label("Password").fill(demo.PASSWORD)
    await page.get_by_role("button", name="Log in", exact=True).click()
    await page.wait_for_url(re.compile(r"/wallet$"))
    return page


async def _available(page: Any) -> int:
    r = await page.request.get("/api/v1/wallet")
    assert r.ok, await r.text()
    body = await r.json()
    return next(b["available_minor"] for b in body["balances"] if b["currency"] == "CNY")


async def test_a_till_charges_the_customers_payment_code(browser: Any,
                                                         funded_server: str) -> None:
    from playwright.async_api import expect

    problems: list[str] = []
    customer = await _person(browser, funded_server, demo.CUSTOMERS["alice"], problems)
    cashier = await _person(browser, funded_server, demo.CUSTOMERS["bob"], problems)
    try:
        before = await _available(customer)
        assert before >= AMOUNT_MINOR

        # The cashier's business, and its point of sale.
        await cashier.goto("/merchant")
        await cashier.get_by_label("Business name").fill("Lotus Noodle Bar")
        await cashier.get_by_label("Merchant category code (MCC)").fill("5812")
        await cashier.get_by_label("City").fill("Shanghai")
        await cashier.get_by_label("Settlement bank account").fill(CARD_ACCOUNT)
        await cashier.get_by_role("button", name="Open the merchant account").click()
        await cashier.wait_for_url(re.compile(r"/merchant/[0-9a-f-]{36}$"))
        await cashier.goto(cashier.url + "/pos")
        await expect(cashier.get_by_role("heading", name="Point of sale")).to_be_visible()

        # The customer opens their payment code: drawn at once, a number and a QR code.
        await customer.goto("/pay/code")
        panel = customer.locator("#paycode[data-state='active']")
        await expect(panel).to_be_visible()
        await expect(panel.locator("svg")).to_be_visible()
        number = customer.locator("[data-paycode]")
        code = await number.get_attribute("data-paycode")
        assert code is not None and re.fullmatch(r"81\d{16}", code)
        await expect(number).to_have_text(re.compile(r"^81 \d{4} \d{4} \d{4} \d{4}$"))

        # The cashier types it as read out (with spaces) and charges 23.50.
        await cashier.get_by_label("Amount (CNY)").fill("23.50")
        await cashier.get_by_label("Customer's payment code").fill(await number.inner_text())
        await cashier.get_by_role("button", name="Charge").click()
        result = cashier.locator(".pos-result[data-status='succeeded']")
        await expect(result).to_be_visible()
        await expect(result).to_contain_text("23.50")

        # The customer's page notices by itself, and the balance dropped.
        paid = customer.locator("#paycode[data-state='paid']")
        await expect(paid).to_be_visible(timeout=PAID_TIMEOUT_MS)
        await expect(paid).to_contain_text("Lotus Noodle Bar")
        await expect(paid).to_contain_text("23.50")
        assert await _available(customer) == before - AMOUNT_MINOR
        assert await paid.locator("[data-balance]").get_attribute("data-balance") == \
            str(before - AMOUNT_MINOR)

        assert problems == [], problems

        # The same code again: refused (the page answers 409), nothing moves.
        await cashier.get_by_label("Amount (CNY)").fill("1.00")
        await cashier.get_by_label("Customer's payment code").fill(code)
        await cashier.get_by_role("button", name="Charge").click()
        await expect(cashier.get_by_role("alert")).to_contain_text("already used")
        assert await _available(customer) == before - AMOUNT_MINOR
        assert [p for p in problems if "409" not in p] == [], problems
    finally:
        await customer.context.close()
        await cashier.context.close()
