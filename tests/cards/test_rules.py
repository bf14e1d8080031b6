"""The card rules: Luhn, brands by BIN, lengths, expiry, security code, holder name."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bankwallet.cards import rules
from bankwallet.cards.errors import (
    CardBrandUnsupported,
    CardExpired,
    InvalidCardNumber,
    InvalidCvc,
    InvalidExpiry,
    InvalidHolderName,
)
from bankwallet.connectors.gateway.base import (
    BRAND_LENGTHS,
    Brand,
    brand_of,
    luhn_check_digit,
    luhn_valid,
)

TODAY = dt.date(2026, 6, 15)

# A prefix of each brand's range, with a length it issues.
PREFIXES = st.one_of(
    st.tuples(st.just(Brand.UNIONPAY), st.just("62"), st.sampled_from([16, 17, 18, 19])),
    st.tuples(st.just(Brand.VISA), st.just("4"), st.sampled_from([13, 16, 19])),
    st.tuples(st.just(Brand.MASTERCARD), st.integers(51, 55).map(str), st.just(16)),
    st.tuples(st.just(Brand.MASTERCARD), st.integers(2221, 2720).map(str), st.just(16)),
    st.tuples(st.just(Brand.AMEX), st.sampled_from(["34", "37"]), st.just(15)),
    st.tuples(st.just(Brand.JCB), st.integers(3528, 3589).map(str),
              st.sampled_from([16, 17, 18, 19])),
)


@st.composite
def valid_cards(draw: st.DrawFn) -> tuple[Brand, str]:
    brand, prefix, length = draw(PREFIXES)
    middle = draw(st.text("0123456789", min_size=length - len(prefix) - 1,
                          max_size=length - len(prefix) - 1))
    body = prefix + middle
    return brand, body + luhn_check_digit(body)


@settings(max_examples=300, deadline=None)
@given(valid_cards())
def test_generated_valid_numbers_pass(card: tuple[Brand, str]) -> None:
    brand, number = card
    assert luhn_valid(number)
    assert rules.check_number(number) == (number, brand)
    spaced = " ".join(number[i:i + 4] for i in range(0, len(number), 4))
    assert rules.check_number(spaced) == (number, brand)


@settings(max_examples=300, deadline=None)
@given(valid_cards(), st.data())
def test_any_single_digit_change_fails_luhn(card: tuple[Brand, str], data: st.DataObject) -> None:
    _, number = card
    position = data.draw(st.integers(0, len(number) - 1))
    digit = data.draw(st.sampled_from([d for d in "0123456789" if d != number[position]]))
    changed = number[:position] + digit + number[position + 1:]
    assert not luhn_valid(changed)
    with pytest.raises((InvalidCardNumber, CardBrandUnsupported)):
        rules.check_number(changed)


@pytest.mark.parametrize(("number", "brand"), [
    ("4242424242424242", Brand.VISA), ("5555555555554444", Brand.MASTERCARD),
    ("2223003122003222", Brand.MASTERCARD), ("378282246310005", Brand.AMEX),
    ("6200000000000005", Brand.UNIONPAY), ("3566002020360505", Brand.JCB),
    ("4000002500003155", Brand.VISA)])
def test_known_test_cards(number: str, brand: Brand) -> None:
    assert rules.check_number(number) == (number, brand)


@pytest.mark.parametrize(("prefix", "brand"), [
    ("62", Brand.UNIONPAY), ("4", Brand.VISA), ("51", Brand.MASTERCARD),
    ("55", Brand.MASTERCARD), ("2221", Brand.MASTERCARD), ("2720", Brand.MASTERCARD),
    ("34", Brand.AMEX), ("37", Brand.AMEX), ("3528", Brand.JCB), ("3589", Brand.JCB),
    ("50", None), ("56", None), ("2220", None), ("2721", None), ("35", None), ("3527", None),
    ("3590", None), ("36", None), ("6011", None), ("60", None), ("1", None)])
def test_brand_boundaries(prefix: str, brand: Brand | None) -> None:
    assert brand_of(prefix.ljust(16, "0")) is brand


@pytest.mark.parametrize("text", ["", "4242", "4242424242424241", "4242-4242-4242-424x",
                                  "42424242424242424242", "４２４２４２４２４２４２４２４２",
                                  "4242\t4242 4242 4242"])
def test_bad_numbers(text: str) -> None:
    with pytest.raises(InvalidCardNumber) as refused:
        rules.check_number(text)
    assert "4242" not in str(refused.value) and "4242" not in repr(refused.value.to_problem())


def test_lengths_a_brand_does_not_issue() -> None:
    body = "34" + "0" * 13  # 16-digit "Amex"
    with pytest.raises(InvalidCardNumber):
        rules.check_number(body + luhn_check_digit(body))
    assert all(lengths for lengths in BRAND_LENGTHS.values())


def test_unsupported_brand() -> None:
    with pytest.raises(CardBrandUnsupported):
        rules.check_number("6011111111111117")  # Discover


@pytest.mark.parametrize(("month", "year", "expected"), [
    (6, 2026, (6, 2026)), (12, 26, (12, 2026)), (1, 2046, (1, 2046)), (7, 30, (7, 2030))])
def test_good_expiries(month: int, year: int, expected: tuple[int, int]) -> None:
    assert rules.check_expiry(month, year, today=TODAY) == expected


@pytest.mark.parametrize(("month", "year", "error"), [
    (0, 2030, InvalidExpiry), (13, 2030, InvalidExpiry), (-1, 2030, InvalidExpiry),
    (6, 2047, InvalidExpiry), (6, 1999, InvalidExpiry), (6, 10**9, InvalidExpiry),
    (5, 2026, CardExpired), (12, 2025, CardExpired), (6, 25, CardExpired)])
def test_bad_expiries(month: int, year: int, error: type) -> None:
    with pytest.raises(error):
        rules.check_expiry(month, year, today=TODAY)


def test_is_expired_turns_after_the_last_day_of_the_month() -> None:
    assert not rules.is_expired(6, 2026, today=dt.date(2026, 6, 30))
    assert rules.is_expired(6, 2026, today=dt.date(2026, 7, 1))


@pytest.mark.parametrize(("cvc", "brand", "ok"), [
    ("123", Brand.VISA, True), ("1234", Brand.AMEX, True), ("123", Brand.AMEX, False),
    ("1234", Brand.VISA, False), ("12a", Brand.VISA, False), ("", Brand.JCB, False),
    ("١٢٣", Brand.UNIONPAY, False)])
def test_security_codes(cvc: str, brand: Brand, ok: bool) -> None:
    if ok:
        assert rules.check_cvc(cvc, brand) == cvc
    else:
        with pytest.raises(InvalidCvc) as refused:
            rules.check_cvc(cvc, brand)
        assert cvc not in refused.value.detail or not cvc


@pytest.mark.parametrize(("name", "expected"), [
    ("  Li   Lei ", "Li Lei"), ("王芳", "王芳"), ("Zoë O'Neil-Smith Jr.", "Zoë O'Neil-Smith Jr."),
    ("Ｌｉ Ｌｅｉ", "Li Lei")])
def test_holder_names(name: str, expected: str) -> None:
    assert rules.check_holder_name(name) == expected


@pytest.mark.parametrize("name", ["", "   ", "12345", "Li\x00Lei", "<script>", "a" * 65,
                                  "Li Lei 4242424242424242"])
def test_bad_holder_names(name: str) -> None:
    with pytest.raises(InvalidHolderName):
        rules.check_holder_name(name)


def test_a_checked_card_never_shows_its_number_or_code() -> None:
    card = rules.check_card(number="4242 4242 4242 4242", exp_month=1, exp_year=2030,
                            cvc="739", holder_name="Li Lei", today=TODAY)
    assert card.number == "4242424242424242" and card.last4 == "4242"
    assert "4242424242424242" not in repr(card) and "739" not in repr(card)
    assert rules.masked_number(card.brand, card.last4) == "•••• 4242"
