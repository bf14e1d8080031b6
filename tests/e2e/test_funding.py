"""A customer links a bank account, tops up from it and withdraws to it, in Chromium on a
phone-sized screen, against a real wallet server talking to a real sandbox bank process (its
webhooks arrive over HTTP); the status page follows each movement until it settles."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from funding.conftest import HOLDER, LiveWallet, card_number, live_wallet

from .conftest import PHONE
from .test_identity import sign_up

pytestmark = pytest.mark.e2e
SETTLE_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def banked_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveWallet]:
    with live_wallet(tmp_path_factory.mktemp("e2e-funding")) as live:
        yield live


async def test_link_a_bank_account_top_up_and_withdraw(browser: Any,
                                                       banked_server: LiveWallet) -> None:
    from playwright.async_api import expect

    live = banked_server
    problems: list[str] = []
    context = await browser.new_context(base_url=live.wallet_url, locale="en-GB", **PHONE)
    await context.add_cookies([{"name": "lang", "value": "en", "url": live.wallet_url}])
    page = await context.new_page()
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    try:
        # A new customer.
        await sign_up(page, live.wallet_url)

        # Their bank account at the bank, in their name.
        card = card_number()
        async with httpx.AsyncClient() as bank:
            r = await bank.post(f"{live.bank_url}/sandbox/accounts", json={
                "number": card, "holder_name": HOLDER, "currency": "CNY",
                "balance_minor": 500_00})
            assert r.status_code == 201, r.text

        await page.goto("/me/bank-accounts")
        await page.get_by_label("IBAN or bank card number").fill(
            " ".join(card[i:i + 4] for i in range(0, len(card), 4)))
        await page.get_by_label("Name it (optional)").fill("Everyday")
        await page.get_by_label("Account holder's name").fill(HOLDER)
        await page.get_by_role("button", name="Link this account").click()
        await expect(page.get_by_text("It is linked")).to_be_visible()
        await expect(page.get_by_text(f"····{card[-4:]}")).to_be_visible()

        # Top up 100.00: pending, then settled by the bank's webhook, without a reload.
        await page.get_by_role("link", name="Top up").click()
        await expect(page).to_have_url(re.compile(r"/wallet/topup$"))
        await page.get_by_label("Amount").fill("100")
        await page.get_by_role("button", name="Top up").click()
        await expect(page).to_have_url(re.compile(r"/wallet/topups/[0-9a-f-]{36}$"))
        await expect(page.get_by_text("The money is in your wallet.")).to_be_visible(
            timeout=SETTLE_TIMEOUT_MS)

        # Withdraw 30.00 of it.
        await page.goto("/wallet/withdraw")
        await expect(page.get_by_text("CN¥100.00")).to_be_visible()
        await page.get_by_label("Amount").fill("30.00")
        await page.get_by_role("button", name="Withdraw").click()
        await expect(page).to_have_url(re.compile(r"/wallet/withdrawals/[0-9a-f-]{36}$"))
        await expect(page.get_by_text("The money is in your bank account.")).to_be_visible(
            timeout=SETTLE_TIMEOUT_MS)

        async with httpx.AsyncClient() as bank:
            account = (await bank.get(f"{live.bank_url}/sandbox/accounts/{card}")).json()
        assert account["balance_minor"] == 500_00 - 100_00 + 30_00
    finally:
        await context.close()
    assert problems == []
