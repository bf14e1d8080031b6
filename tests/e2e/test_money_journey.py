"""Money movement end to end, through the pages only: two customers on two phones. A links a
bank account at the sandbox bank, tops up from it, sends money to B by mobile number; B sees
it arrive and asks for some back; A finds the request and pays it, withdraws to the bank and
downloads the month's PDF statement. Every balance is checked on the page as it changes, and
at the end A's wallet, B's wallet and the bank account still hold the bank account's opening
balance between them: nothing was made or lost.

A reads the pages in English and B in Simplified Chinese. B's buttons and labels are found by
their translations in the catalogue, so one left untranslated fails the journey.
"""

from __future__ import annotations

import contextlib
import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from funding.conftest import HOLDER, LiveWallet, card_number, live_wallet

from bankwallet.core import i18n

from .conftest import PHONE
from .test_identity import PASSWORD, sms_code

pytestmark = pytest.mark.e2e
SETTLE_TIMEOUT_MS = 20_000
CNY = "CNY"
BANK_OPENING_MINOR = 500_00
TOPUP_MINOR = 200_00
SENT_MINOR = 80_00
ASKED_BACK_MINOR = 30_00
WITHDRAWN_MINOR = 40_00


@pytest.fixture(scope="module")
def banked_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveWallet]:
    """A wallet server and its sandbox bank, real processes; the bank's webhooks arrive over
    HTTP."""
    with live_wallet(tmp_path_factory.mktemp("e2e-money-journey")) as live:
        yield live


@dataclass
class Customer:
    """One person on their own phone (browser context), reading the pages in ``locale``."""

    page: Any
    locale: str
    number: str  # the national mobile number they sign up with
    problems: list[str]

    def _(self, message: str, **values: Any) -> str:
        text = i18n.gettext(message, self.locale)
        assert self.locale == "en" or text != message, f"no {self.locale} for {message!r}"
        return text % values if values else text

    def money(self, amount_minor: int) -> str:
        return i18n.format_money(amount_minor, CNY, self.locale)

    @property
    def e164(self) -> str:
        return f"+86{self.number}"

    @property
    def masked(self) -> str:
        """How other customers see them (``identity.mfa.masked_login``)."""
        return f"{self.e164[:-8]}****{self.e164[-4:]}"


async def _customer(browser: Any, live: LiveWallet, *, locale: str, browser_locale: str,
                    lang_cookie: str, prefix: str) -> tuple[Any, Customer]:
    context = await browser.new_context(base_url=live.wallet_url, locale=browser_locale,
                                        accept_downloads=True, **PHONE)
    await context.add_cookies([{"name": "lang", "value": lang_cookie, "url": live.wallet_url}])
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    number = f"{prefix}{uuid.uuid4().int % 10**8:08d}"  # the prefix tells masked ones apart
    return context, Customer(page, locale, number, problems)


async def _sign_up(c: Customer, live: LiveWallet) -> None:
    from playwright.async_api import expect

    page, _ = c.page, c._
    await page.goto("/signup")
    await page.get_by_label(_("Mobile number or e-mail")).fill(c.number)
    await page.get_by_label(_("Password")).fill(PASSWORD)
    await page.get_by_role("button", name=_("Send me a code")).click()
    await page.get_by_role("textbox", name=_("Code")).fill(
        await sms_code(live.wallet_url, c.e164))
    await page.get_by_role("button", name=_("Create my wallet")).click()
    await expect(page).to_have_url(re.compile(r"/wallet$"))


async def _expect_wallet_balance(c: Customer, amount_minor: int) -> None:
    """The wallet's home page (loaded unless the journey just arrived there) shows exactly
    this one balance, all of it available: nothing on the way in or on hold."""
    from playwright.async_api import expect

    page = c.page
    if not re.search(r"/wallet$", page.url):
        await page.goto("/wallet")
    await expect(page.locator(".balance-amount")).to_have_text([c.money(amount_minor)])
    await expect(page.locator(".balance .hint")).to_have_text([c._("available")])


async def _bank_balance(live: LiveWallet, number: str) -> int:
    async with httpx.AsyncClient(timeout=10) as bank:
        r = await bank.get(f"{live.bank_url}/sandbox/accounts/{number}")
    assert r.status_code == 200, r.text
    return r.json()["balance_minor"]


def _pdf_text(content: bytes) -> str | None:
    """The PDF's text, or None without pypdf (reportlab writes CID glyph codes, not text)."""
    try:
        import pypdf
    except ImportError:
        return None
    reader = pypdf.PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


async def test_link_top_up_send_request_pay_withdraw_and_statement(
        browser: Any, banked_server: LiveWallet) -> None:
    from playwright.async_api import expect

    live = banked_server
    a_context, a = await _customer(browser, live, locale="en", browser_locale="en-GB",
                                   lang_cookie="en", prefix="138")
    b_context, b = await _customer(browser, live, locale="zh_CN", browser_locale="zh-CN",
                                   lang_cookie="zh-CN", prefix="139")
    try:
        await _sign_up(a, live)
        await _sign_up(b, live)
        await _expect_wallet_balance(a, 0)
        await _expect_wallet_balance(b, 0)

        # A's bank account at the bank, in their name (the bank's side of the world).
        card = card_number()
        async with httpx.AsyncClient(timeout=10) as bank:
            r = await bank.post(f"{live.bank_url}/sandbox/accounts", json={
                "number": card, "holder_name": HOLDER, "currency": CNY,
                "balance_minor": BANK_OPENING_MINOR})
            assert r.status_code == 201, r.text

        # A: Top up → no bank account yet → link one.
        page, _ = a.page, a._
        await page.get_by_role("link", name=_("Top up")).click()
        await expect(page).to_have_url(re.compile(r"/wallet/topup$"))
        await page.get_by_role("link", name=_("Link a bank account")).click()
        await expect(page).to_have_url(re.compile(r"/me/bank-accounts$"))
        await page.get_by_label(_("IBAN or bank card number")).fill(
            " ".join(card[i:i + 4] for i in range(0, len(card), 4)))
        await page.get_by_label(_("Name it (optional)")).fill("Everyday")
        await page.get_by_label(_("Account holder's name")).fill(HOLDER)
        await page.get_by_role("button", name=_("Link this account")).click()
        await expect(page.get_by_role("status")).to_contain_text(_("It is linked"))
        await expect(page.get_by_text(f"····{card[-4:]}")).to_be_visible()

        # A tops up: pending until the bank's webhook settles it, without a reload.
        await page.get_by_role("link", name=_("Top up")).click()
        await expect(page).to_have_url(re.compile(r"/wallet/topup$"))
        await page.get_by_label(_("Amount")).fill("200")
        await page.get_by_role("button", name=_("Top up")).click()
        await expect(page).to_have_url(re.compile(r"/wallet/topups/[0-9a-f-]{36}$"))
        await expect(page.get_by_text(_("The money is in your wallet."))).to_be_visible(
            timeout=SETTLE_TIMEOUT_MS)
        await page.get_by_role("link", name=_("Back to your wallet")).click()
        await expect(page).to_have_url(re.compile(r"/wallet$"))
        a_minor = TOPUP_MINOR
        bank_minor = BANK_OPENING_MINOR - TOPUP_MINOR
        await _expect_wallet_balance(a, a_minor)
        assert await _bank_balance(live, card) == bank_minor

        # A sends to B by mobile number: form → review (B's masked number) → sent.
        await page.get_by_role("link", name=_("Send"), exact=True).click()
        await expect(page).to_have_url(re.compile(r"/wallet/send$"))
        await page.get_by_label(_("To"), exact=True).fill(b.number)
        await page.get_by_label(_("Amount")).fill("80")
        await page.get_by_label(_("Note (optional)")).fill("Dinner")
        await page.get_by_role("button", name=_("Review")).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(_("Check and send"))
        await expect(page.get_by_text(b.masked)).to_be_visible()
        await page.get_by_role("button", name=_("Send %(amount)s",
                                                amount=a.money(SENT_MINOR))).click()
        await expect(page).to_have_url(re.compile(r"/wallet/transfers/[0-9a-f-]{36}$"))
        await expect(page.get_by_role("heading", level=1)).to_have_text(_("Money sent"))
        a_minor -= SENT_MINOR
        b_minor = SENT_MINOR
        await _expect_wallet_balance(a, a_minor)

        # B sees it arrive: on the wallet's home page and in the history, with A's note.
        page, _ = b.page, b._
        await page.reload()
        await _expect_wallet_balance(b, b_minor)
        recent = page.locator(".session-list .session").filter(has_text=a.masked)
        await expect(recent).to_have_count(1)
        await expect(recent).to_contain_text(f"+{b.money(SENT_MINOR)}")
        await expect(recent).to_contain_text("Dinner")
        await page.get_by_role("link", name=_("All activity")).click()
        await expect(page).to_have_url(re.compile(r"/wallet/history$"))
        entry = page.locator(".history-entry").filter(has_text=a.masked)
        await expect(entry).to_have_count(1)
        await expect(entry).to_contain_text(f"+{b.money(SENT_MINOR)}")
        await expect(entry).to_contain_text(_("Transfer"))
        await expect(entry).to_contain_text("Dinner")

        # B asks A for some of it back.
        await page.goto("/wallet")
        await page.get_by_role("link", name=_("Requests")).click()
        await expect(page).to_have_url(re.compile(r"/wallet/requests$"))
        ask = page.get_by_role("region", name=_("Ask for money"))
        await ask.get_by_label(_("Ask"), exact=True).fill(a.number)
        await ask.get_by_label(_("Amount"), exact=True).fill("30")
        await ask.get_by_label(_("What for (optional)")).fill("Taxi")
        await ask.get_by_role("button", name=_("Send request")).click()
        await expect(page.get_by_role("status")).to_have_text(_("Your request was sent."))
        mine = page.locator("section[aria-labelledby=mine-title] .p2p-request")
        await expect(mine).to_have_count(1)
        await expect(mine).to_contain_text(_("%(amount)s from %(name)s",
                                             amount=b.money(ASKED_BACK_MINOR), name=a.masked))
        await expect(mine).to_contain_text(_("Waiting"))

        # A finds the request from the wallet's home page (a notice links to it) and pays it.
        page, _ = a.page, a._
        await page.goto("/wallet")
        await page.get_by_role("link", name=_("Requests for money waiting for you: %(count)s",
                                              count=1)).click()
        await expect(page).to_have_url(re.compile(r"/wallet/requests$"))
        asked = page.locator("section[aria-labelledby=incoming-title] .p2p-request")
        await expect(asked).to_have_count(1)
        await expect(asked).to_contain_text(_("%(name)s asks for %(amount)s", name=b.masked,
                                              amount=a.money(ASKED_BACK_MINOR)))
        await expect(asked).to_contain_text("Taxi")
        await asked.get_by_role("button", name=_("Pay %(amount)s",
                                                 amount=a.money(ASKED_BACK_MINOR))).click()
        await expect(page).to_have_url(re.compile(r"/wallet/transfers/[0-9a-f-]{36}$"))
        await expect(page.get_by_role("heading", level=1)).to_have_text(_("Money sent"))
        a_minor -= ASKED_BACK_MINOR
        b_minor += ASKED_BACK_MINOR
        await _expect_wallet_balance(a, a_minor)

        # B sees the request paid and the money in.
        page, _ = b.page, b._
        await page.reload()
        await expect(mine).to_contain_text(_("Paid"))
        await _expect_wallet_balance(b, b_minor)
        await expect(page.locator(".notice a[href='/wallet/requests']")).to_have_count(0)

        # A withdraws to the bank account and watches it settle.
        page, _ = a.page, a._
        await page.get_by_role("link", name=_("Withdraw")).click()
        await expect(page).to_have_url(re.compile(r"/wallet/withdraw$"))
        await expect(page.get_by_text(a.money(a_minor))).to_be_visible()
        await page.get_by_label(_("Amount")).fill("40.00")
        await page.get_by_role("button", name=_("Withdraw")).click()
        await expect(page).to_have_url(re.compile(r"/wallet/withdrawals/[0-9a-f-]{36}$"))
        await expect(page.get_by_text(_("The money is in your bank account."))).to_be_visible(
            timeout=SETTLE_TIMEOUT_MS)
        a_minor -= WITHDRAWN_MINOR
        bank_minor += WITHDRAWN_MINOR
        await _expect_wallet_balance(a, a_minor)
        assert await _bank_balance(live, card) == bank_minor

        # A downloads this month's statement as PDF.
        await page.get_by_role("link", name=_("Statements")).click()
        await expect(page).to_have_url(re.compile(r"/wallet/statements$"))
        pdf_link = page.get_by_role("link", name=re.compile(re.escape(
            _("PDF statement for %(month)s", month="@@")).replace("@@", r"\d{4}-\d{2}"))).first
        async with page.expect_download() as download_info:
            await pdf_link.click()
        download = await download_info.value
        assert re.fullmatch(r"statement-\d{4}-\d{2}\.pdf", download.suggested_filename)
        content = (await download.path()).read_bytes()
        assert content.startswith(b"%PDF-") and content.rstrip().endswith(b"%%EOF")
        text = _pdf_text(content)
        if text is not None:
            # The summary (opening, money in, money out, closing), then each movement: its
            # date and time, kind and counterparty, note, id, amount, and balance after it.
            money_out = ASKED_BACK_MINOR + SENT_MINOR + WITHDRAWN_MINOR
            assert "\n".join([a.money(0), a.money(TOPUP_MINOR), f"-{a.money(money_out)}",
                              a.money(a_minor)]) in text, text
            rows = re.split(r"\n\d{4}-\d{2}-\d{2} \d{2}:\d{2}\n", text)[1:]
            expected = [("Top-up", card[-4:], TOPUP_MINOR, TOPUP_MINOR),
                        ("Transfer", "Dinner", -SENT_MINOR, TOPUP_MINOR - SENT_MINOR),
                        ("Transfer", "Taxi", -ASKED_BACK_MINOR, a_minor + WITHDRAWN_MINOR),
                        ("Withdrawal", card[-4:], -WITHDRAWN_MINOR, a_minor)]
            assert len(rows) == len(expected), text
            for row, (kind, detail, amount, balance) in zip(rows, expected, strict=True):
                shown = f"-{a.money(-amount)}" if amount < 0 else a.money(amount)
                assert row.startswith(kind) and detail in row, (kind, detail, row)
                assert f"\n{shown}\n{a.money(balance)}\n" in f"{row}\n", (amount, row)
                assert (b.masked in row) == (kind == "Transfer"), row
            assert re.findall(r"Closing balance\n(\S+)", text)[-1] == a.money(a_minor), text

        # Money moved; none was made or lost.
        assert (a_minor, b_minor, bank_minor) == (50_00, 110_00, 340_00)
        assert a_minor + b_minor + bank_minor == BANK_OPENING_MINOR
        assert a.problems == [] and b.problems == []
    except BaseException:
        for name, c in (("a", a), ("b", b)):
            with contextlib.suppress(Exception):
                await c.page.screenshot(path=f"/tmp/money-journey-{name}.png", full_page=True)
        raise
    finally:
        await a_context.close()
        await b_context.close()
