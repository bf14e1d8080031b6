"""Money: integer minor units from Babel's CLDR data, strict parsing, exact formatting."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bankwallet.core.errors import InvalidInput
from bankwallet.core.money import (
    MAX_AMOUNT_MINOR,
    InvalidAmount,
    Money,
    UnknownCurrency,
    check_currency,
    format_money,
    from_minor,
    minor_digits,
    to_minor,
)

# 0, 2, 3 and 4 minor digits, including currencies a hand-written table tends to get wrong.
CURRENCIES = ["JPY", "KRW", "ISK", "CNY", "USD", "EUR", "KWD", "BHD", "JOD", "TND", "CLF", "UYW"]


@pytest.mark.parametrize(("currency", "digits"), [
    ("JPY", 0), ("KWD", 3), ("CLF", 4), ("CNY", 2), ("USD", 2), ("BHD", 3),
])
def test_minor_digits_come_from_cldr(currency: str, digits: int) -> None:
    assert minor_digits(currency) == digits


@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("12.34", "USD", 1234),
    ("12.3", "USD", 1230),
    ("12", "USD", 1200),
    ("0.01", "CNY", 1),
    ("0", "CNY", 0),
    ("1000", "JPY", 1000),
    ("1.234", "KWD", 1234),
    ("0.001", "BHD", 1),
    ("1.2345", "CLF", 12345),
    (" 7.50 ", "EUR", 750),
    ("92233720368547758.07", "USD", MAX_AMOUNT_MINOR),
    (str(MAX_AMOUNT_MINOR), "JPY", MAX_AMOUNT_MINOR),
])
def test_to_minor_parses_plain_decimals(text: str, currency: str, minor: int) -> None:
    assert to_minor(text, currency) == minor
    assert Money.parse(text, currency) == Money(minor, currency)


@pytest.mark.parametrize(("text", "currency"), [
    ("1.5", "JPY"), ("0.1", "JPY"),
    ("1.001", "USD"), ("1.234", "CNY"), ("0.005", "CNY"),
    ("1.0001", "KWD"), ("0.0005", "BHD"),
    ("0.00001", "CLF"),
])
def test_too_many_decimals_for_the_currency_is_refused(text: str, currency: str) -> None:
    with pytest.raises(InvalidAmount) as caught:
        to_minor(text, currency)
    error = caught.value
    assert error.code == "invalid_amount"
    assert error.status == 422
    assert error.extra == {"currency": currency, "decimal_places": minor_digits(currency)}
    problem = error.to_problem("/x")
    assert problem["code"] == "invalid_amount" and problem["type"] == "/problems/invalid_amount"
    with pytest.raises(InvalidAmount):
        Money.parse(text, currency)


@given(currency=st.sampled_from(CURRENCIES), minor=st.integers(0, 10**12),
       extra_digits=st.integers(1, 4), last=st.integers(1, 9))
@settings(deadline=None)
def test_any_nonzero_digit_past_the_currency_precision_is_refused(
        currency: str, minor: int, extra_digits: int, last: int) -> None:
    digits = minor_digits(currency)
    point = "" if digits else "."
    text = from_minor(minor, currency) + point + "0" * (extra_digits - 1) + str(last)
    with pytest.raises(InvalidAmount):
        to_minor(text, currency)


@pytest.mark.parametrize("text", ["-1", "-0.01", "-0", " -5"])
def test_negative_amounts_are_refused(text: str) -> None:
    with pytest.raises(InvalidAmount) as caught:
        to_minor(text, "USD")
    assert caught.value.code == "invalid_amount"


@pytest.mark.parametrize("text", [
    "", " ", "abc", "12.34 USD", "$12", "+1", "1,000.00", "1 000", "1_000", "1.2.3", ".5", "5.",
    "NaN", "nan", "Infinity", "inf", "0x10", "1/2", "12\x00", "1\n2",
])
def test_garbage_is_refused(text: str) -> None:
    with pytest.raises(InvalidAmount):
        to_minor(text, "USD")


@pytest.mark.parametrize("text", ["1e3", "1E3", "1e-2", "1.5e2", "1E+2", "0e0"])
def test_exponent_notation_is_refused(text: str) -> None:
    with pytest.raises(InvalidAmount):
        to_minor(text, "USD")


@pytest.mark.parametrize(("text", "currency"), [
    (str(MAX_AMOUNT_MINOR + 1), "JPY"),
    ("92233720368547758.08", "USD"),
    ("9223372036854775.808", "KWD"),
    ("922337203685477.5808", "CLF"),
    ("99999999999999999999", "JPY"),  # 20 digits: inside the regex, past BIGINT
    ("999999999999999999999", "JPY"),  # 21 digits: past the regex
])
def test_amounts_over_bigint_are_refused(text: str, currency: str) -> None:
    with pytest.raises(InvalidAmount):
        to_minor(text, currency)


@pytest.mark.parametrize(("minor", "currency", "text"), [
    (1234, "USD", "12.34"),
    (0, "USD", "0.00"),
    (5, "CNY", "0.05"),
    (5, "JPY", "5"),
    (1, "KWD", "0.001"),
    (1, "CLF", "0.0001"),
    (MAX_AMOUNT_MINOR, "USD", "92233720368547758.07"),
])
def test_from_minor_is_a_plain_decimal_with_the_currency_places(minor: int, currency: str,
                                                                 text: str) -> None:
    assert from_minor(minor, currency) == text


@given(currency=st.sampled_from(CURRENCIES), minor=st.integers(0, MAX_AMOUNT_MINOR))
@settings(deadline=None)
def test_from_minor_round_trips(currency: str, minor: int) -> None:
    assert to_minor(from_minor(minor, currency), currency) == minor
    money = Money(minor, currency)
    assert Money.parse(from_minor(minor, currency), currency) == money
    assert money.to_decimal() == Decimal(from_minor(minor, currency))


@pytest.mark.parametrize("code", ["ZZZ", "ABC", "US", "USDX", "", "123", "U$D", "€"])
def test_unknown_currencies_are_refused(code: str) -> None:
    for call in (lambda: check_currency(code), lambda: minor_digits(code),
                 lambda: to_minor("1", code), lambda: from_minor(1, code),
                 lambda: format_money(1, code), lambda: Money(1, code),
                 lambda: Money.parse("1", code)):
        with pytest.raises(UnknownCurrency) as caught:
            call()
        assert caught.value.code == "unknown_currency"
        assert isinstance(caught.value, InvalidInput) and caught.value.status == 422


def test_currency_codes_are_case_insensitive() -> None:
    assert check_currency("usd") == "USD"
    assert Money.parse("1.5", "cny") == Money(150, "CNY")
    with pytest.raises(InvalidAmount):
        Money.parse("1.5", "jpy")


@pytest.mark.parametrize(("minor", "currency", "locale", "text"), [
    (123456, "CNY", "zh_CN", "¥1,234.56"),
    (123456, "CNY", "en", "CN¥1,234.56"),
    (1234567, "JPY", "en", "¥1,234,567"),
    (1234567, "JPY", "zh_CN", "JP¥1,234,567"),
    (100, "USD", "en", "$1.00"),
    (100, "USD", "zh_CN", "US$1.00"),
    (1234567, "KWD", "en", "KWD1,234.567"),
    (12345, "CLF", "en", "CLF1.2345"),
    (5, "CNY", "zh_CN", "¥0.05"),
])
def test_format_money_follows_the_locale(minor: int, currency: str, locale: str,
                                         text: str) -> None:
    assert format_money(minor, currency, locale) == text
    assert Money(minor, currency).format(locale) == text


@pytest.mark.parametrize(("currency", "text"), [
    ("USD", "$92,233,720,368,547,758.07"),
    ("JPY", "¥9,223,372,036,854,775,807"),
    ("CLF", "CLF922,337,203,685,477.5807"),
])
def test_format_money_is_exact_for_the_largest_amount(currency: str, text: str) -> None:
    # A float carries ~16 significant digits: it would round the last few of these.
    assert float(MAX_AMOUNT_MINOR) != MAX_AMOUNT_MINOR
    assert format_money(MAX_AMOUNT_MINOR, currency, "en") == text


def test_money_holds_only_integers() -> None:
    for amount in (1.5, Decimal("1"), "1", True):
        with pytest.raises(AssertionError):
            Money(amount, "USD")  # type: ignore[arg-type]


def test_money_adds_and_subtracts_within_one_currency() -> None:
    assert Money(1050, "USD") + Money(25, "USD") == Money(1075, "USD")
    assert Money(1050, "USD") - Money(1075, "USD") == Money(-25, "USD")


def test_money_refuses_mixing_currencies() -> None:
    with pytest.raises(AssertionError, match="different currencies"):
        Money(100, "USD") + Money(100, "CNY")
    with pytest.raises(AssertionError, match="different currencies"):
        Money(100, "JPY") - Money(1, "CNY")
