"""Browser journeys for second factors and devices, in Chromium against the real server:
enrol TOTP then log in with it; register a passkey with Chromium's virtual authenticator (CDP
``WebAuthn.addVirtualAuthenticator``) and log in with it, no password; see and revoke
another session."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pyotp
import pytest

from .conftest import PHONE
from .test_identity import PASSWORD, sign_up

pytestmark = pytest.mark.e2e


@pytest.fixture
async def new_page(browser: Any, server_url: str) -> AsyncIterator[Callable[..., Any]]:
    """Opens pages in fresh English phone contexts; ``host="localhost"`` for WebAuthn, whose
    relying party id must be a domain name, not an IP address."""
    contexts: list[Any] = []
    problems: list[str] = []

    async def open_page(host: str = "127.0.0.1") -> Any:
        context = await browser.new_context(base_url=server_url.replace("127.0.0.1", host),
                                            locale="en-GB", **PHONE)
        await context.add_cookies([{"name": "lang", "value": "en",
                                    "url": server_url.replace("127.0.0.1", host)}])
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" and not m.text
                .startswith("Failed to load resource: the server responded with a status of 4")
                else None)
        return page

    yield open_page
    for context in contexts:
        await context.close()
    assert problems == []


async def log_in(page: Any, number: str) -> None:
    await page.goto("/login?next=/me/security")
    await page.get_by_label("Mobile number or e-mail").fill(number)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in", exact=True).click()


async def test_enrol_totp_log_out_and_log_in_with_it(new_page: Callable[..., Any],
                                                     server_url: str) -> None:
    from playwright.async_api import expect

    page = await new_page()
    number = await sign_up(page, server_url)
    await page.goto("/me/security")
    await page.get_by_role("link", name="Authenticator app and recovery codes").click()
    await page.get_by_role("button", name="Set up an authenticator app").click()
    await expect(page.locator("figure.totp-qr svg")).to_be_visible()
    totp = pyotp.TOTP((await page.locator("p.hint code").inner_text()).strip())
    await page.get_by_role("textbox", name="Code").fill(totp.now())
    await page.get_by_role("button", name="Turn on").click()
    await expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    assert await page.locator("ul.recovery-codes li").count() == 10

    await page.goto("/me/security")
    await page.get_by_role("button", name="Log out").click()
    await log_in(page, number)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Two-step verification")
    await page.get_by_role("textbox", name="Code").fill(totp.at(time.time() + 30))  # a step not used yet
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(re.compile(r"/me/security$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Security")


async def test_register_a_passkey_and_log_in_with_it(new_page: Callable[..., Any],
                                                     server_url: str) -> None:
    from playwright.async_api import expect

    page = await new_page(host="localhost")
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    added = await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
        "automaticPresenceSimulation": True}})

    await sign_up(page, server_url.replace("127.0.0.1", "localhost"))
    await page.goto("/me/security")
    await expect(page.get_by_text("No passkeys yet.")).to_be_visible()
    await page.get_by_label("Name this passkey").fill("Test phone")
    await page.get_by_role("button", name="Add a passkey").click()
    await expect(page.locator("li.passkey strong")).to_have_text("Test phone")
    credentials = (await cdp.send("WebAuthn.getCredentials", {
        "authenticatorId": added["authenticatorId"]}))["credentials"]
    assert len(credentials) == 1 and credentials[0]["isResidentCredential"]

    await page.get_by_role("button", name="Log out").click()
    await page.goto("/login?next=/me/security")
    await page.get_by_role("button", name="Log in with a passkey").click()
    await expect(page).to_have_url(re.compile(r"/me/security$"))
    await expect(page.locator("li.passkey .hint")).to_contain_text("last used")


async def test_see_and_revoke_another_session(new_page: Callable[..., Any],
                                              server_url: str) -> None:
    from playwright.async_api import expect

    laptop = await new_page()
    number = await sign_up(laptop, server_url)
    phone = await new_page()
    await log_in(phone, number)
    await expect(phone.get_by_role("heading", level=1)).to_have_text("Security")

    await laptop.goto("/me/security")
    sessions = laptop.locator("li.session:not(.passkey)")
    await expect(sessions).to_have_count(2)
    await laptop.get_by_role("button", name="Sign out", exact=True).click()
    await expect(sessions).to_have_count(1)
    await expect(sessions.first).to_contain_text("This device")

    await phone.goto("/me/security")
    await expect(phone).to_have_url(re.compile(r"/login\?next=/me/security$"))
