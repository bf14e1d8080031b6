"""The customer client's shell in a phone-sized headless Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.mark.e2e
async def test_shell_journey(phone: Any, server_url: str, tmp_path: Path) -> None:
    from playwright.async_api import expect

    problems: list[str] = []  # CSP violations and script errors show up here

    def on_console(message: Any) -> None:
        if message.type == "error":
            problems.append(message.text)

    phone.on("console", on_console)
    phone.on("pageerror", lambda error: problems.append(str(error)))

    await phone.goto("/")
    heading = phone.get_by_role("heading", level=1)
    await expect(heading).to_have_text("把银行装进口袋")
    await expect(phone.locator("html")).to_have_attribute("lang", "zh-CN")
    await expect(phone.get_by_role("navigation", name="主导航")).to_contain_text("钱包")

    await phone.get_by_role("button", name="English").click()
    await expect(heading).to_have_text("Your bank, in your pocket")
    await expect(phone.locator("html")).to_have_attribute("lang", "en")
    await expect(phone.get_by_role("button", name="English")).to_have_attribute(
        "aria-pressed", "true")
    await expect(phone.get_by_role("navigation", name="Main")).to_contain_text("Wallet")

    scope = await phone.evaluate("navigator.serviceWorker.ready.then((r) => r.scope)")
    assert scope == f"{server_url}/"
    assert await phone.evaluate("typeof htmx === 'object'")  # vendored htmx loaded

    screenshot = tmp_path / "shell-en.png"
    await phone.screenshot(path=screenshot)  # the viewport: what the phone shows
    assert screenshot.stat().st_size > 10_000
    assert problems == []


@pytest.mark.e2e
async def test_offline_navigation_shows_the_offline_page(phone: Any) -> None:
    from playwright.async_api import expect

    await phone.goto("/")
    await phone.evaluate("navigator.serviceWorker.ready")
    # The worker takes over the page it installed from; a reload puts it in control for sure.
    await phone.reload()
    assert await phone.evaluate("navigator.serviceWorker.controller !== null")

    await phone.context.set_offline(True)
    await phone.goto("/somewhere")
    await expect(phone.get_by_role("heading", level=1)).to_have_text("您已离线")
    await expect(phone.locator("link[rel=stylesheet]")).to_have_count(1)
    assert await phone.evaluate(
        "getComputedStyle(document.body).backgroundColor") != "rgba(0, 0, 0, 0)"
