"""Locale negotiation and locale-aware formatting (bankwallet.core.i18n)."""

from __future__ import annotations

import datetime as dt

import pytest

from bankwallet.core import i18n


@pytest.mark.parametrize(("cookie", "header", "expected"), [
    (None, None, "zh_CN"),
    (None, "", "zh_CN"),
    (None, "en-US,en;q=0.9", "en"),
    (None, "de;q=0.9, en;q=0.8, zh;q=0.7", "en"),
    (None, "en;q=0.2, zh-CN;q=0.9", "zh_CN"),
    (None, "en;q=abc, zh", "zh_CN"),  # a malformed weight means "not this"
    (None, "fr, de", "zh_CN"),
    ("en", "zh-CN", "en"),
    ("klingon", "en", "en"),
])
def test_negotiate(cookie: str | None, header: str | None, expected: str) -> None:
    assert i18n.negotiate(cookie=cookie, accept_language=header, default="zh_CN") == expected


def test_accept_language_is_bounded() -> None:
    header = ", ".join(["xx"] * 1000 + ["en"])
    assert i18n.negotiate(cookie=None, accept_language=header, default="zh_CN") == "zh_CN"


def test_translations_compile_from_po_in_memory() -> None:
    assert i18n.gettext("Wallet", "zh_CN") == "钱包"
    assert i18n.gettext("Wallet", "en") == "Wallet"


def test_formatting_follows_the_locale() -> None:
    assert i18n.format_money(123456, "CNY", "zh_CN") == "¥1,234.56"
    assert i18n.format_money(1234, "JPY", "en") == "¥1,234"
    day = dt.date(2025, 3, 9)
    assert i18n.format_date(day, "zh_CN") == "2025年3月9日"
    assert i18n.format_date(day, "en") == "Mar 9, 2025"
    moment = dt.datetime(2025, 3, 9, 16, 5, tzinfo=dt.UTC)
    assert "00:05" in i18n.format_datetime(moment, "zh_CN", tzinfo="Asia/Shanghai")
