"""The exchange journey in Chromium against a real server process: sign up, get funded,
quote, watch the countdown, confirm, see the balances; a refusal shown in place; a quote that
runs out of time on the phone; open another balance."""

from __future__ import annotations

import os
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import servers
from conftest import free_port
from e2e.conftest import PHONE, SERVER_START_TIMEOUT_S, browser  # noqa: F401
from e2e.test_security import sign_up

from bankwallet.wallets import service as wallets
from bankwallet.wallets.codes import Code

pytestmark = pytest.mark.e2e
OPS_TOKEN = secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def fx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``bankwallet serve`` with the operator API on, so the test can fund a wallet."""
    workdir = tmp_path_factory.mktemp("fx-e2e")
    port = free_port()
    env = {**os.environ, "BANKWALLET_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/bw.db",
           "BANKWALLET_ENV": "test", "BANKWALLET_LOG_JSON": "false",
           "BANKWALLET_OPS_TOKEN": OPS_TOKEN}
    with servers.running(servers.serve_argv(port), url=f"http://127.0.0.1:{port}", env=env,
                         cwd=workdir, log_path=workdir / "server.log",
                         timeout_s=SERVER_START_TIMEOUT_S) as url:
        yield url


@pytest.fixture
async def page(browser: Any, fx_server: str) -> AsyncIterator[Any]:  # noqa: F811
    context = await browser.new_context(base_url=fx_server, locale="en-GB", **PHONE)
    await context.add_cookies([{"name": "lang", "value": "en", "url": fx_server}])
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" and not m.text
            .startswith("Failed to load resource: the server responded with a status of 4")
            else None)
    yield page
    await context.close()
    assert problems == []  # no script errors, no CSP violations


async def fund(server: str, user_id: uuid.UUID, amount_minor: int) -> None:
    async with httpx.AsyncClient(base_url=server,
                                 headers={"authorization": f"Bearer {OPS_TOKEN}"}) as ops:
        r = await ops.post("/api/v1/ledger/transfers", json={"transfers": [{
            "id": str(uuid.uuid4()), "amount": amount_minor, "ledger": "CNY",
            "code": int(Code.TOPUP),
            "debit_account_id": str(wallets.system_account_id(
                wallets.SystemAccount.BANK_SETTLEMENT, "CNY")),
            "credit_account_id": str(wallets.wallet_account_id(user_id, "CNY"))}]})
        assert r.status_code == 200 and r.json()["results"][0]["result"] == "created", r.text


async def test_exchange_cny_for_usd_in_the_browser(page: Any, fx_server: str) -> None:
    from playwright.async_api import expect

    await sign_up(page, fx_server)
    await page.goto("/wallet/exchange")  # opens the CNY balance if it is not there yet
    me = await page.request.get("/api/v1/me")
    await fund(fx_server, uuid.UUID((await me.json())["id"]), 500_00)
    await page.reload()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Exchange currencies")
    balances = page.locator("ul.fx-balances")
    await expect(balances).to_contain_text("CN¥500.00")
    await expect(page.get_by_role("table")).to_contain_text("7.1357")

    # A refusal (4xx) is swapped into the page by htmx, with the reason.
    await page.get_by_label("You sell").select_option("CNY")
    await page.get_by_label("You get").select_option("USD")
    await page.get_by_label("Amount").fill("0.001")
    await page.get_by_role("button", name="Get a quote").click()
    await expect(page.get_by_role("alert")).to_contain_text("Enter an amount")

    await page.get_by_label("Amount").fill("100")
    await page.get_by_label("what I sell").check()
    await page.get_by_role("button", name="Get a quote").click()
    quote = page.locator("[data-fx-quote]")
    await expect(quote).to_contain_text("$14.01")
    await expect(quote).to_contain_text("1 USD = 7.1357 CNY")
    seconds = quote.locator("[data-fx-seconds]")
    first = int(await seconds.inner_text())
    assert 25 <= first <= 30
    await expect(seconds).not_to_have_text(str(first), timeout=3000)  # it counts down
    await page.get_by_role("button", name="Confirm exchange").click()
    await expect(page).to_have_url(re.compile(r"/wallet/exchange\?done="))
    await expect(page.get_by_role("status")).to_contain_text(
        "you sold CN¥100.00 and received $14.01")
    await expect(balances).to_contain_text("CN¥400.00")
    await expect(balances).to_contain_text("$14.01")

    # Open an HKD balance from the same page.
    await page.get_by_label("New balance in").select_option("HKD")
    await page.get_by_role("button", name="Open a balance").click()
    await expect(page.get_by_role("status")).to_contain_text("Your HKD balance is open.")
    await expect(balances).to_contain_text("HK$0.00")


async def test_a_quote_runs_out_of_time_on_the_phone(page: Any, fx_server: str) -> None:
    from playwright.async_api import expect

    await page.clock.install()
    await sign_up(page, fx_server)
    await page.goto("/wallet/exchange")
    await page.get_by_label("Amount").fill("10")
    await page.get_by_role("button", name="Get a quote").click()
    confirm = page.get_by_role("button", name="Confirm exchange")
    await expect(confirm).to_be_enabled()
    # The script has taken the quote's deadline (from the server's seconds left) ...
    await expect(page.locator("[data-fx-countdown][data-deadline]")).to_have_count(1)
    await page.clock.fast_forward(31_000)  # ... and the phone's time runs past it.
    await expect(page.get_by_role("alert")).to_have_text(
        "This quote has expired. Get a new one.")
    await expect(confirm).to_be_disabled()
