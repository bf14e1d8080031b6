"""The crypto wallet in Chromium against the real server and the real sandbox chain: create a
wallet, write the words down and prove it, receive test ETH from a dev account, send some to
another address, and see the transaction confirmed."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import servers
from conftest import skip_or_fail
from eth_account import Account

from .conftest import PHONE
from .test_security import sign_up

pytestmark = pytest.mark.e2e

CHAIN_ID = 1  # the app expects Ethereum's id for ETH: the sandbox plays mainnet here
# Steps that seal or open the wallet run Argon2 at production cost (64 MiB): on a busy
# two-core machine they take longer than Playwright's default 5 s.
SLOW_MS = 20_000
CHAIN_START_TIMEOUT_S = 30.0
PIN = "482916"
ETHER = 10**18


@pytest.fixture(scope="module")
def chain_url(server_url: str) -> Iterator[str]:
    """The sandbox chain on the port the server was told (see conftest's server_url)."""
    try:
        from bankwallet.connectors.chains.sandbox_chain import dev_private_keys  # noqa: F401
    except ImportError:
        skip_or_fail("eth-tester is not installed (pip install -e '.[dev]')")
    port = os.environ["BANKWALLET_E2E_CHAIN_PORT"]
    with servers.running(
            servers.bankwallet("sandbox-chain", "--host", "127.0.0.1", "--port", port,
                               "--chain-id", str(CHAIN_ID), "--accounts", "2"),
            url=f"http://127.0.0.1:{port}/", timeout_s=CHAIN_START_TIMEOUT_S,
            name="the sandbox chain") as url:
        yield url


async def rpc(url: str, method: str, *params: Any) -> Any:
    async with httpx.AsyncClient(timeout=10) as http:
        answer = (await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                             "params": list(params)})).json()
    assert "error" not in answer, answer
    return answer["result"]


async def pay_from_dev_account(url: str, to: str, value_wei: int) -> None:
    """An outside wallet (a dev account, signing with eth-account) pays the customer."""
    from bankwallet.connectors.chains.sandbox_chain import dev_private_keys

    sender = Account.from_key(dev_private_keys(1)[0])
    base_fee = int((await rpc(url, "eth_getBlockByNumber", "latest", False))["baseFeePerGas"], 16)
    signed = sender.sign_transaction({
        "type": 2, "chainId": CHAIN_ID, "to": to, "value": value_wei, "gas": 21_000,
        "nonce": int(await rpc(url, "eth_getTransactionCount", sender.address, "pending"), 16),
        "maxPriorityFeePerGas": 10**9, "maxFeePerGas": 2 * base_fee + 10**9})
    tx_hash = await rpc(url, "eth_sendRawTransaction", signed.raw_transaction.to_0x_hex())
    receipt = await rpc(url, "eth_getTransactionReceipt", tx_hash)
    assert receipt and receipt["status"] == "0x1"


async def balance_wei(url: str, address: str) -> int:
    return int(await rpc(url, "eth_getBalance", address, "latest"), 16)


@pytest.fixture
async def new_page(browser: Any, server_url: str) -> AsyncIterator[Callable[..., Any]]:
    """English phone-sized pages; any page error or console error fails the test."""
    contexts: list[Any] = []
    problems: list[str] = []

    async def open_page() -> Any:
        context = await browser.new_context(base_url=server_url, locale="en-GB", **PHONE)
        await context.add_cookies([{"name": "lang", "value": "en", "url": server_url}])
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        return page

    yield open_page
    for context in contexts:
        await context.close()
    assert problems == []


async def test_create_back_up_receive_and_send_ether(new_page: Callable[..., Any],
                                                     server_url: str, chain_url: str) -> None:
    from playwright.async_api import expect

    page = await new_page()
    await sign_up(page, server_url)

    # Create: the words are shown once, on a page no cache keeps.
    await page.get_by_role("link", name="Crypto").click()
    await expect(page.get_by_role("heading", name="Crypto wallets")).to_be_visible()
    await page.get_by_role("link", name="Create a wallet").click()
    await page.get_by_label("Wallet name").fill("Savings")
    await page.get_by_label("Wallet PIN", exact=True).fill(PIN)
    await page.get_by_label("Wallet PIN again").fill(PIN)
    await page.get_by_role("button", name="Create the wallet").click()
    await expect(page.get_by_role("heading", name="Your recovery phrase")).to_be_visible(
        timeout=SLOW_MS)
    words = [w.strip() for w in await page.locator("ol.recovery-words li").all_inner_texts()]
    assert len(words) == 12 and all(w.isalpha() for w in words)

    # Back up: three words at positions the server chose.
    await page.get_by_role("link", name="I have written them down").click()
    await page.get_by_role("button", name="Start the check").click()
    labels = await page.locator("label[for^='backup-word-']").all_inner_texts()
    assert len(labels) == 3
    for label in labels:
        position = int(label.split()[-1])
        await page.get_by_label(label, exact=True).fill(words[position - 1])
    await page.get_by_label("Wallet PIN").fill(PIN)
    await page.get_by_role("button", name="Check", exact=True).click()
    await expect(page.get_by_text("Your backup is checked.")).to_be_visible(timeout=SLOW_MS)
    await expect(page.get_by_text("Not backed up")).to_have_count(0)

    # Receive: the address and its QR code; a dev account pays 1 ETH to it.
    await page.get_by_role("link", name="Receive").click()
    address = (await page.locator("code[data-address='ETH']").inner_text()).strip()
    assert address.startswith("0x") and len(address) == 42
    await expect(page.locator("details[data-chain='ETH'] figure svg")).to_be_visible()
    await pay_from_dev_account(chain_url, address, ETHER)
    await page.go_back()
    await page.get_by_role("link", name="Balances").click()
    await expect(page.locator("[data-chain='ETH'] [data-balance='ETH']")).to_have_text(
        "1 ETH", timeout=SLOW_MS)
    await expect(page.locator("[data-chain='BSC']")).to_contain_text(
        "not available at your bank yet")

    # Send 0.25 ETH to another address: preview, PIN, then watch it confirm.
    recipient = Account.create().address
    await page.go_back()
    await page.get_by_role("link", name="Send").click()
    await page.get_by_label("Asset").select_option(label="ETH · Ethereum")
    await page.get_by_label("Recipient address").fill(recipient)
    await page.get_by_label("Amount").fill("0.25")
    await page.get_by_role("button", name="Review").click()
    await expect(page.locator("[data-preview='amount']")).to_have_text("0.25 ETH",
                                                                      timeout=SLOW_MS)
    await expect(page.locator("[data-preview='to']")).to_have_text(recipient)
    await expect(page.locator("[data-preview='fee']")).to_contain_text("ETH")
    await page.get_by_label("Wallet PIN").fill(PIN)
    await page.get_by_role("button", name="Sign and send").click()
    await expect(page.get_by_role("heading", name="0.25 ETH")).to_be_visible(timeout=SLOW_MS)
    await expect(page.locator("#tx-status")).to_contain_text("Confirmed", timeout=SLOW_MS)
    assert await balance_wei(chain_url, recipient) == ETHER // 4

    await page.get_by_role("link", name="Savings").click()
    await expect(page.get_by_role("link", name="0.25 ETH")).to_be_visible(timeout=SLOW_MS)
    await expect(page.locator(".badge", has_text="Confirmed")).to_be_visible()
