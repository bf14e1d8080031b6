"""A configured rate source for development, tests and demos: fixed reference rates, stamped
with the time they are read (so they never look stale). Production plugs a market-data feed
in behind the same ``RateSource`` interface."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Final

from bankwallet.connectors.rates.base import RATE_MAX_DIGITS, RateSnapshot, RatesResult

BASE: Final = "CNY"
# Reference mid rates in CNY per unit (late 2025, rounded): close enough to be believable in
# a demo, and decimal strings so they stay exact.
REFERENCE_RATES: Final[Mapping[str, str]] = {
    "USD": "7.1000",
    "EUR": "8.2500",
    "HKD": "0.9126",
}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class StaticRateSource:
    name = "static"

    def __init__(self, rates: Mapping[str, str | Decimal] | None = None, *,
                 base: str = BASE, clock: Callable[[], dt.datetime] = _utcnow) -> None:
        self.base = base
        self._clock = clock
        self._mid, self._problem = _parse(REFERENCE_RATES if rates is None else rates, base)

    async def latest(self) -> RatesResult:
        if self._problem is not None:
            return RatesResult.unavailable(self._problem)
        return RatesResult.of(RateSnapshot(base=self.base, mid=dict(self._mid),
                                           as_of=self._clock(), source=self.name))


def _parse(rates: Mapping[str, str | Decimal], base: str) -> tuple[dict[str, Decimal], str | None]:
    """Configured rates as exact decimals, or the reason they cannot be used."""
    mid: dict[str, Decimal] = {}
    for code, text in rates.items():
        if code == base:
            continue
        try:
            value = text if isinstance(text, Decimal) else Decimal(str(text).strip())
        except InvalidOperation:
            return {}, f"rate for {code} is not a decimal"
        if not value.is_finite() or value <= 0 or len(value.as_tuple().digits) > RATE_MAX_DIGITS:
            return {}, f"rate for {code} is not a positive decimal"
        mid[code] = value
    return mid, None
