"""Money: integer minor units plus an ISO 4217 code. Never floats.

Minor units come from Babel's CLDR data (JPY 0, KWD 3, CLF 4), not a hand-written table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from babel import Locale
from babel.numbers import format_currency, get_currency_precision, list_currencies

from bankwallet.core.errors import InvalidInput

MAX_AMOUNT_MINOR = 2**63 - 1  # the database's BIGINT
_DECIMAL_RE = re.compile(r"\d{1,20}(\.\d{1,8})?", re.ASCII)


class UnknownCurrency(InvalidInput):
    code = "unknown_currency"
    title = "Unknown currency"


class InvalidAmount(InvalidInput):
    code = "invalid_amount"
    title = "Invalid amount"


@lru_cache(maxsize=1)
def _known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def check_currency(code: str) -> str:
    code = code.upper()
    if len(code) != 3 or code not in _known_currencies():
        raise UnknownCurrency(f"{code!r} is not an ISO 4217 currency code.")
    return code


@lru_cache(maxsize=512)
def minor_digits(currency: str) -> int:
    return get_currency_precision(check_currency(currency))


@dataclass(frozen=True, slots=True)
class Money:
    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        assert isinstance(self.amount_minor, int) and not isinstance(self.amount_minor, bool)
        object.__setattr__(self, "currency", check_currency(self.currency))

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        """Parse a decimal string ("12.34") into minor units; too many decimals is an error."""
        return cls(to_minor(text, currency), currency.upper())

    def to_decimal(self) -> Decimal:
        return Decimal(self.amount_minor).scaleb(-minor_digits(self.currency))

    def format(self, locale: str = "en") -> str:
        return format_money(self.amount_minor, self.currency, locale)

    def __add__(self, other: Money) -> Money:
        assert self.currency == other.currency, "adding different currencies"
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        assert self.currency == other.currency, "subtracting different currencies"
        return Money(self.amount_minor - other.amount_minor, self.currency)


def to_minor(text: str, currency: str) -> int:
    digits = minor_digits(currency)
    text = text.strip()
    if not _DECIMAL_RE.fullmatch(text):
        raise InvalidAmount(f"{text!r} is not a positive decimal amount.")
    try:
        value = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards
        raise InvalidAmount(f"{text!r} is not a decimal amount.") from exc
    scaled = value.scaleb(digits)
    if scaled != scaled.to_integral_value():
        raise InvalidAmount(f"{currency} has {digits} decimal places; {text!r} has more.",
                            currency=currency, decimal_places=digits)
    minor = int(scaled)
    if minor > MAX_AMOUNT_MINOR:
        raise InvalidAmount("The amount is too large.")
    return minor


def from_minor(amount_minor: int, currency: str) -> str:
    """Minor units as a plain decimal string with the currency's number of places."""
    digits = minor_digits(currency)
    value = Decimal(amount_minor).scaleb(-digits)
    return f"{value:.{digits}f}"


def format_money(amount_minor: int, currency: str, locale: str = "en") -> str:
    digits = minor_digits(currency)
    value = Decimal(amount_minor).scaleb(-digits)
    return format_currency(value, currency, locale=_locale(locale), currency_digits=True)


@lru_cache(maxsize=64)
def _locale(name: str) -> Locale:
    """Babel's Locale for a name, parsed once: parsing looks the name up on disk each time
    (half a millisecond, more than the formatting)."""
    return Locale.parse(name)
