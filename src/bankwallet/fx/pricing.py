"""Exchange arithmetic: pure functions on exact fractions and integer minor units.

A rate is a ``Fraction``: how many major units of the *buy* currency one major unit of the
*sell* currency is worth. The customer's rate is the mid rate less the bank's spread, and every
rounding goes the bank's way: what the customer receives is rounded down, what the customer
pays is rounded up. So for any amount the customer never receives more than the mid rate
would give, and a round trip (sell X for Y, then Y back for X) never makes money.

Minor units come from Babel (``core.money.minor_digits``): JPY has none, KWD three.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from typing import Final

from bankwallet.core.money import MAX_AMOUNT_MINOR, minor_digits

# The bank's margin on every exchange, in basis points of the mid rate (50 = 0.5 %).
SPREAD_BPS: Final = 50
SPREAD: Final = Fraction(SPREAD_BPS, 10_000)
RATE_TEXT_PLACES: Final = 10  # decimals kept when a rate is stored or shown as text
assert 0 <= SPREAD < 1


class PricingError(ValueError):
    """An amount that cannot be exchanged; the service turns it into a typed error."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "too_small" | "too_large"


@dataclass(frozen=True, slots=True)
class Priced:
    sell_currency: str
    sell_minor: int
    buy_currency: str
    buy_minor: int
    mid_rate: Fraction  # buy per sell, major units
    rate: Fraction  # the customer's: mid less the spread


def cross_rate(prices: Mapping[str, Fraction], sell: str, buy: str) -> Fraction:
    """Mid rate buy-per-sell from prices in one base currency (``prices[base] == 1``)."""
    return prices[sell] / prices[buy]


def customer_rate(mid: Fraction, spread: Fraction = SPREAD) -> Fraction:
    return mid * (1 - spread)


def per_minor(rate: Fraction, sell: str, buy: str) -> Fraction:
    """A major-unit rate as buy minor units per sell minor unit."""
    return rate * Fraction(10 ** minor_digits(buy), 10 ** minor_digits(sell))


def price_sell(sell_minor: int, *, sell: str, buy: str, mid: Fraction,
               spread: Fraction = SPREAD) -> Priced:
    """The customer sells exactly ``sell_minor``; receives the buy amount rounded down."""
    assert sell_minor > 0 and mid > 0
    rate = customer_rate(mid, spread)
    buy_minor = math.floor(sell_minor * per_minor(rate, sell, buy))
    if buy_minor < 1:
        raise PricingError("too_small")
    return _checked(Priced(sell, sell_minor, buy, buy_minor, mid, rate))


def price_buy(buy_minor: int, *, sell: str, buy: str, mid: Fraction,
              spread: Fraction = SPREAD) -> Priced:
    """The customer receives exactly ``buy_minor``; pays the sell amount rounded up."""
    assert buy_minor > 0 and mid > 0
    rate = customer_rate(mid, spread)
    sell_minor = math.ceil(buy_minor / per_minor(rate, sell, buy))
    return _checked(Priced(sell, sell_minor, buy, buy_minor, mid, rate))


def _checked(priced: Priced) -> Priced:
    if max(priced.sell_minor, priced.buy_minor) > MAX_AMOUNT_MINOR:
        raise PricingError("too_large")
    # The promise of this module, checked on every quote (exact: fractions, no rounding).
    at_mid = priced.sell_minor * per_minor(priced.mid_rate, priced.sell_currency,
                                           priced.buy_currency)
    assert 0 < priced.buy_minor <= at_mid, priced
    return priced


def value_minor(amount_minor: int, *, currency: str, target: str,
                prices: Mapping[str, Fraction]) -> int:
    """``amount_minor`` of ``currency`` in minor units of ``target`` at the mid rate, rounded
    up: a limit counts a foreign amount at no less than it is worth."""
    assert amount_minor >= 0
    if currency == target:
        return amount_minor
    return math.ceil(amount_minor * per_minor(cross_rate(prices, currency, target),
                                              currency, target))


def rate_text(rate: Fraction, places: int = RATE_TEXT_PLACES, *, rounding: str = ROUND_FLOOR
              ) -> str:
    """A rate as a decimal string (floor by default: never shows the customer a better rate
    than they get)."""
    with localcontext() as ctx:
        ctx.prec = 60
        value = Decimal(rate.numerator) / Decimal(rate.denominator)
        return str(value.quantize(Decimal(1).scaleb(-places), rounding=rounding))


def customer_prices(mid: Fraction, spread: Fraction = SPREAD, places: int = 4
                    ) -> tuple[str, str, str]:
    """Board prices of one foreign unit in the base currency: (mid, the customer buys at,
    the customer sells at), each rounded the bank's way."""
    buys_at = mid / (1 - spread)  # the base the customer pays for one unit
    sells_at = mid * (1 - spread)  # the base the customer gets for one unit
    return (rate_text(mid, places, rounding=ROUND_HALF_EVEN),
            rate_text(buys_at, places, rounding=ROUND_CEILING),
            rate_text(sells_at, places, rounding=ROUND_FLOOR))
