"""The interface every exchange-rate source implements.

A source answers with *mid-market* rates (halfway between the market's bid and ask): the
bank's spread is added by the fx service, never by the source. Rates are exact decimals
(``Decimal``), quoted as units of the base currency per one unit of each currency
(``CNY per 1 USD``), with the time they were observed. The fx service turns them into exact
fractions; nothing here is a float.

A source never raises for a feed that is down or a currency it does not quote: it returns a
``RatesResult`` with ``status`` ``UNAVAILABLE`` and a short reason (no credentials, no URLs),
and it never touches the database.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, Protocol, runtime_checkable

RATE_MAX_DIGITS: Final = 20  # significant digits a source may quote
REASON_MAX_CHARS: Final = 200


class RatesStatus(enum.StrEnum):
    OK = "ok"
    UNAVAILABLE = "unavailable"  # the feed did not answer, or answered nonsense


@dataclass(frozen=True, slots=True)
class RateSnapshot:
    """Mid rates observed together: ``mid[c]`` is how many units of ``base`` one unit of
    ``c`` is worth (major units both sides). ``base`` itself is not listed."""

    base: str
    mid: Mapping[str, Decimal]
    as_of: dt.datetime  # when the source observed them (UTC)
    source: str  # the provider's name, for the record of each quote

    def __post_init__(self) -> None:
        assert self.as_of.tzinfo is not None, "rates carry an aware UTC timestamp"
        assert self.base not in self.mid, "the base currency is not quoted against itself"
        for code, rate in self.mid.items():
            assert isinstance(rate, Decimal) and rate.is_finite() and rate > 0, (code, rate)


@dataclass(frozen=True, slots=True)
class RatesResult:
    status: RatesStatus
    snapshot: RateSnapshot | None = None
    reason: str | None = field(default=None)

    def __post_init__(self) -> None:
        assert (self.status is RatesStatus.OK) == (self.snapshot is not None)
        assert self.reason is None or len(self.reason) <= REASON_MAX_CHARS

    @property
    def ok(self) -> bool:
        return self.status is RatesStatus.OK

    @classmethod
    def of(cls, snapshot: RateSnapshot) -> RatesResult:
        return cls(RatesStatus.OK, snapshot)

    @classmethod
    def unavailable(cls, reason: str) -> RatesResult:
        return cls(RatesStatus.UNAVAILABLE, None, reason[:REASON_MAX_CHARS])


@runtime_checkable
class RateSource(Protocol):
    name: str

    async def latest(self) -> RatesResult:
        """The newest mid rates the source has."""
        ...
