"""Quote arithmetic on exact fractions: the customer never gets more than the mid rate gives,
round trips never make money, every rounding goes the bank's way, and currencies with 0, 2, 3
or 4 minor digits (Babel's) all work."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bankwallet.core.money import minor_digits
from bankwallet.fx import pricing

CURRENCIES = ("CNY", "USD", "EUR", "HKD", "JPY", "KWD", "CLF")
amounts = st.integers(min_value=1, max_value=10**12)
# Mid prices in a common base: positive decimals with up to 6 places, wide in magnitude.
prices = st.builds(lambda units, scale: Fraction(units, 10**scale),
                   st.integers(min_value=1, max_value=10**9), st.integers(min_value=0, max_value=6))
pairs = st.tuples(st.sampled_from(CURRENCIES), st.sampled_from(CURRENCIES)).filter(
    lambda p: p[0] != p[1])
spreads = st.sampled_from([Fraction(0), Fraction(1, 10_000), pricing.SPREAD, Fraction(3, 100)])


def at_mid(sell_minor: int, sell: str, buy: str, mid: Fraction) -> Fraction:
    """What ``sell_minor`` is worth in buy minor units at the mid rate, exactly."""
    return sell_minor * pricing.per_minor(mid, sell, buy)


def test_babel_gives_the_minor_digits() -> None:
    assert [minor_digits(c) for c in ("JPY", "CNY", "KWD", "CLF")] == [0, 2, 3, 4]


def test_a_worked_example_cny_to_usd() -> None:
    mid = Fraction(1) / Fraction("7.1")  # USD per CNY
    sold = pricing.price_sell(100_00, sell="CNY", buy="USD", mid=mid)
    # 100 CNY at 1/7.1 less 0.5 %: 14.0140... USD, rounded down to 14.01.
    assert (sold.sell_minor, sold.buy_minor) == (100_00, 14_01)
    bought = pricing.price_buy(100_00, sell="CNY", buy="USD", mid=mid)
    # 100 USD costs 710 / 0.995 = 713.5678... CNY, rounded up to 713.57.
    assert (bought.sell_minor, bought.buy_minor) == (713_57, 100_00)
    assert pricing.rate_text(sold.rate) == "0.1401408450"


def test_jpy_has_no_minor_units_and_kwd_three() -> None:
    # 1 KWD = 500 JPY, say: 1.000 KWD (1000 fils) buys 497 JPY after the spread.
    sold = pricing.price_sell(1000, sell="KWD", buy="JPY", mid=Fraction(500))
    assert sold.buy_minor == 497
    back = pricing.price_sell(497, sell="JPY", buy="KWD", mid=Fraction(1, 500))
    assert back.buy_minor == 989  # 0.989 KWD: the round trip cost the spread twice
    with pytest.raises(pricing.PricingError) as small:
        pricing.price_sell(1, sell="JPY", buy="KWD", mid=Fraction(1, 5000))
    assert small.value.reason == "too_small"


def test_too_large_is_refused() -> None:
    with pytest.raises(pricing.PricingError) as large:
        pricing.price_sell(10**15, sell="JPY", buy="CLF", mid=Fraction(10**9))
    assert large.value.reason == "too_large"


@settings(max_examples=400, deadline=None)
@given(amount=amounts, pair=pairs, sell_price=prices, buy_price=prices, spread=spreads)
def test_selling_never_gives_more_than_the_mid_rate(amount, pair, sell_price, buy_price,
                                                   spread) -> None:
    sell, buy = pair
    mid = sell_price / buy_price
    try:
        priced = pricing.price_sell(amount, sell=sell, buy=buy, mid=mid, spread=spread)
    except pricing.PricingError as exc:
        # Refused only when it really buys nothing (or overflows).
        worth = amount * pricing.per_minor(pricing.customer_rate(mid, spread), sell, buy)
        assert (exc.reason == "too_small" and worth < 1) or exc.reason == "too_large"
        return
    assert priced.sell_minor == amount
    assert 1 <= priced.buy_minor <= at_mid(amount, sell, buy, mid)
    # Rounded down, never more: one more minor unit would beat the customer's rate.
    customer_worth = amount * pricing.per_minor(priced.rate, sell, buy)
    assert priced.buy_minor == math.floor(customer_worth)


@settings(max_examples=400, deadline=None)
@given(amount=amounts, pair=pairs, sell_price=prices, buy_price=prices, spread=spreads)
def test_buying_never_costs_less_than_the_mid_rate(amount, pair, sell_price, buy_price,
                                                  spread) -> None:
    sell, buy = pair
    mid = sell_price / buy_price
    try:
        priced = pricing.price_buy(amount, sell=sell, buy=buy, mid=mid, spread=spread)
    except pricing.PricingError as exc:
        assert exc.reason == "too_large"
        return
    assert priced.buy_minor == amount
    assert priced.buy_minor <= at_mid(priced.sell_minor, sell, buy, mid)
    # Rounded up, never less: one minor unit less would not pay for it at the customer's rate.
    assert (priced.sell_minor - 1) * pricing.per_minor(priced.rate, sell, buy) < amount


@settings(max_examples=400, deadline=None)
@given(amount=amounts, pair=pairs, sell_price=prices, buy_price=prices, spread=spreads,
       second_leg_buys=st.booleans())
def test_a_round_trip_never_makes_money(amount, pair, sell_price, buy_price, spread,
                                        second_leg_buys) -> None:
    x, y = pair
    there = sell_price / buy_price  # y per x
    back = buy_price / sell_price  # x per y
    try:
        first = pricing.price_sell(amount, sell=x, buy=y, mid=there, spread=spread)
        if second_leg_buys:
            # Buy back exactly what was sold: it must cost at least everything received.
            second = pricing.price_buy(amount, sell=y, buy=x, mid=back, spread=spread)
            assert second.sell_minor >= first.buy_minor
        else:
            second = pricing.price_sell(first.buy_minor, sell=y, buy=x, mid=back, spread=spread)
            assert second.buy_minor <= amount
    except pricing.PricingError:
        assume(False)


@settings(max_examples=200, deadline=None)
@given(amount=amounts, pair=pairs, sell_price=prices, buy_price=prices)
def test_buy_then_sell_back_never_makes_money(amount, pair, sell_price, buy_price) -> None:
    x, y = pair
    try:
        bought = pricing.price_buy(amount, sell=x, buy=y, mid=sell_price / buy_price)
        back = pricing.price_sell(amount, sell=y, buy=x, mid=buy_price / sell_price)
    except pricing.PricingError:
        assume(False)
        return
    assert back.buy_minor <= bought.sell_minor


@given(amount=st.integers(min_value=0, max_value=10**12), price=prices,
       currency=st.sampled_from(CURRENCIES))
def test_valuing_in_cny_rounds_up(amount, price, currency) -> None:
    prices_ = {"CNY": Fraction(1), currency: price} if currency != "CNY" else {"CNY": Fraction(1)}
    valued = pricing.value_minor(amount, currency=currency, target="CNY", prices=prices_)
    exact = amount * pricing.per_minor(prices_[currency], currency, "CNY")
    assert valued == math.ceil(exact)


def test_board_prices_round_the_banks_way() -> None:
    mid, buys_at, sells_at = pricing.customer_prices(Fraction("7.1"))
    assert (mid, buys_at, sells_at) == ("7.1000", "7.1357", "7.0645")
    assert Decimal(sells_at) < Decimal(mid) < Decimal(buys_at)
