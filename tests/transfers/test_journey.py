"""A browser journey, in English on a phone-sized Chromium against a real server process: Bob
shows his contact card; Alice pastes it, checks and sends; Bob asks Alice for money; Alice
pays the request from her list; Bob's balance shows both."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import servers
from conftest import free_port
from e2e.conftest import PHONE, SERVER_START_TIMEOUT_S, browser  # noqa: F401 - the browser
from e2e.test_security import sign_up

from bankwallet.core.db import make_engine
from bankwallet.ledger import service as ledger_service
from bankwallet.ledger.store import SqlLedgerStore
from bankwallet.ledger.types import TransferIn
from bankwallet.wallets import service as wallets
from bankwallet.wallets.codes import Code

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``bankwallet serve`` on a fresh SQLite file; yields its URL and its database URL (the
    test tops wallets up through the ledger, as the bank's funding will)."""
    workdir = tmp_path_factory.mktemp("transfers-server")
    database_url = f"sqlite+aiosqlite:///{workdir}/bankwallet.db"
    port = free_port()
    env = {**os.environ, "BANKWALLET_DATABASE_URL": database_url, "BANKWALLET_ENV": "test",
           "BANKWALLET_LOG_JSON": "false"}
    with servers.running(servers.serve_argv(port), url=f"http://127.0.0.1:{port}", env=env,
                         cwd=workdir, log_path=workdir / "server.log",
                         timeout_s=SERVER_START_TIMEOUT_S) as url:
        yield url, database_url


async def top_up(database_url: str, user_id: uuid.UUID, amount_minor: int) -> None:
    engine = make_engine(database_url)
    ledger = SqlLedgerStore(engine)
    try:
        await wallets.open_wallet(ledger, user_id)
        await ledger_service.submit_one(ledger, TransferIn(
            id=uuid.uuid4(), amount=amount_minor, ledger="CNY", code=Code.TOPUP,
            debit_account_id=wallets.system_account_id(wallets.SystemAccount.BANK_SETTLEMENT,
                                                        "CNY"),
            credit_account_id=wallets.wallet_account_id(user_id, "CNY")))
    finally:
        await ledger.close()
        await engine.dispose()


@pytest.fixture
async def pages(browser: Any, server: tuple[str, str]) -> AsyncIterator[Any]:  # noqa: F811
    url, _ = server
    contexts: list[Any] = []
    problems: list[str] = []

    async def open_page() -> Any:
        context = await browser.new_context(base_url=url, locale="en-GB", **PHONE)
        await context.add_cookies([{"name": "lang", "value": "en", "url": url}])
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        return page

    yield open_page
    for context in contexts:
        await context.close()
    assert problems == []  # no script error, nothing the CSP refused


async def test_send_by_contact_card_then_pay_a_request(pages: Any,
                                                      server: tuple[str, str]) -> None:
    from playwright.async_api import expect

    url, database_url = server
    bob, alice = await pages(), await pages()
    bob_number = await sign_up(bob, url)
    alice_number = await sign_up(alice, url)

    await bob.goto("/wallet/receive")
    await expect(bob.get_by_role("img", name="QR code of your contact card")).to_be_visible()
    card = await bob.get_by_label("Your contact card as text").input_value()
    assert card.startswith("bankwallet:pay?to=")

    await alice.goto("/wallet/receive")
    await top_up(database_url, uuid.UUID(await alice.get_by_label("Your wallet id").input_value()),
                 50_00)

    await alice.goto("/wallet/send")
    await expect(alice.get_by_text("CN¥50.00")).to_be_visible()
    await alice.get_by_label("To", exact=True).fill(card)
    await alice.get_by_label("Amount").fill("12.34")
    await alice.get_by_label("Note (optional)").fill("Books")
    await alice.get_by_role("button", name="Review").click()
    await expect(alice.get_by_role("heading", name="Check and send")).to_be_visible()
    await expect(alice.get_by_text(f"****{bob_number[-4:]}")).to_be_visible()
    await alice.get_by_role("button", name="Send CN¥12.34").click()
    await expect(alice.get_by_role("heading", name="Money sent")).to_be_visible()
    await expect(alice).to_have_url(re.compile(r"/wallet/transfers/"))

    await bob.goto("/wallet/requests")
    ask = bob.locator("section", has=bob.get_by_role("heading", name="Ask for money"))
    await ask.get_by_label("Ask", exact=True).fill(alice_number)
    await ask.get_by_label("Amount", exact=True).fill("5")
    await ask.get_by_label("What for (optional)").fill("Coffee")
    await ask.get_by_role("button", name="Send request").click()
    await expect(bob.get_by_text("Your request was sent.")).to_be_visible()

    await alice.goto("/wallet/requests")
    await expect(alice.get_by_text("Coffee")).to_be_visible()
    await alice.get_by_role("button", name="Pay CN¥5.00").click()
    await expect(alice.get_by_role("heading", name="Money sent")).to_be_visible()

    await bob.goto("/wallet/send")
    await expect(bob.get_by_text("CN¥17.34").first).to_be_visible()
    await bob.goto("/wallet/requests")
    await expect(bob.get_by_text("Paid")).to_be_visible()
