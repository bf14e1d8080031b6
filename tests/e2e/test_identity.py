"""Sign up with an SMS code, see the session, log out and log in again — in Chromium, against
the real server process (its outbox dispatcher delivers the code to the development inbox)."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

PASSWORD = "Plum-Harbour-Quietly-42"


async def sms_code(server_url: str, to: str, timeout_s: float = 15.0) -> str:
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with httpx.AsyncClient(base_url=server_url) as client:
        while asyncio.get_running_loop().time() < deadline:
            items = (await client.get("/dev/inbox.json")).json()["items"]
            for item in items:
                if item["channel"] == "sms" and item["to"] == to:
                    found = re.search(r"\b(\d{6})\b", item["text"])
                    assert found, item["text"]
                    return found.group(1)
            await asyncio.sleep(0.2)
    raise AssertionError(f"no SMS reached {to}")


async def sign_up(page: Any, server_url: str) -> str:
    """A new customer signed up through the pages (English), on the wallet page; their number."""
    from playwright.async_api import expect

    number = f"139{uuid.uuid4().int % 10**8:08d}"
    await page.goto("/signup")
    await page.get_by_label("Mobile number or e-mail").fill(number)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Send me a code").click()
    await page.get_by_role("textbox", name="Code").fill(await sms_code(server_url, f"+86{number}"))
    await page.get_by_role("button", name="Create my wallet").click()
    await expect(page).to_have_url(re.compile(r"/wallet$"))
    return number


@pytest.mark.e2e
async def test_sign_up_with_an_sms_code_then_log_out_and_in(phone: Any, server_url: str,
                                                            tmp_path: Path) -> None:
    from playwright.async_api import expect

    problems: list[str] = []  # CSP violations and script errors; a refused form (4xx) is expected
    phone.on("console", lambda m: problems.append(m.text) if m.type == "error" and not m.text
             .startswith("Failed to load resource: the server responded with a status of 4")
             else None)
    phone.on("pageerror", lambda e: problems.append(str(e)))
    number = f"138{uuid.uuid4().int % 10**8:08d}"

    await phone.goto("/")
    await phone.get_by_role("link", name="开通钱包").first.click()
    await expect(phone.get_by_role("heading", level=1)).to_have_text("开通钱包")
    await phone.get_by_label("手机号或电子邮箱").fill(number)
    await phone.get_by_label("密码").fill("password1234")  # too weak: refused with a reason
    await phone.get_by_role("button", name="发送验证码").click()
    await expect(phone.get_by_role("alert")).to_contain_text("请设置更安全的密码")
    await phone.get_by_label("密码").fill(PASSWORD)
    await phone.get_by_role("button", name="发送验证码").click()
    await expect(phone.get_by_role("heading", level=1)).to_have_text("输入验证码")

    code = await sms_code(server_url, f"+86{number}")
    await phone.get_by_role("textbox", name="验证码").fill(code)
    await phone.get_by_role("button", name="开通我的钱包").click()
    await expect(phone).to_have_url(re.compile(r"/wallet$"))

    await phone.goto("/me/security")
    await expect(phone.get_by_role("heading", level=1)).to_have_text("安全")
    await expect(phone.get_by_text("本设备")).to_be_visible()
    await expect(phone.locator("strong").first).to_contain_text(number[-4:])
    await phone.screenshot(path=tmp_path / "security.png")

    await phone.get_by_role("button", name="退出登录").click()
    await phone.goto("/me/security")
    await expect(phone).to_have_url(re.compile(r"/login\?next=/me/security$"))
    await phone.get_by_label("手机号或电子邮箱").fill(number)
    await phone.get_by_label("密码").fill(PASSWORD)
    await phone.get_by_role("button", name="登录", exact=True).click()
    await expect(phone.get_by_role("heading", level=1)).to_have_text("安全")
    assert problems == []
