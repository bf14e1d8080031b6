"""What makes a card acceptable before anyone is asked: the number (Luhn check digit, a brand
we take, a length that brand issues), the expiry (a real month, not past), the security code
(three digits, four for Amex) and the holder's name. Pure functions; each refusal is a typed
error whose message never repeats what was typed."""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass, field
from typing import Final

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
    HOLDER_NAME_MAX_CHARS,
    Brand,
    brand_of,
    cvc_digits,
    luhn_valid,
    normalize_number,
)

EXPIRY_YEARS_MAX: Final = 20  # cards are issued for a few years; further is a typo
MASK: Final = "•"


@dataclass(frozen=True, slots=True)
class CheckedCard:
    """A card that passed every rule. ``number`` and ``cvc`` stay out of its repr, so a
    traceback or a debug print cannot show them."""

    number: str = field(repr=False)
    cvc: str = field(repr=False)
    brand: Brand
    exp_month: int
    exp_year: int
    holder_name: str

    @property
    def last4(self) -> str:
        return self.number[-4:]


def check_number(text: str) -> tuple[str, Brand]:
    """The card number's digits and brand."""
    number = normalize_number(text)
    if number is None or not luhn_valid(number):
        raise InvalidCardNumber("Check the card number: it has a typo.")
    brand = brand_of(number)
    if brand is None:
        raise CardBrandUnsupported("We take UnionPay, Visa, Mastercard, American Express and "
                                   "JCB cards.")
    if len(number) not in BRAND_LENGTHS[brand]:
        raise InvalidCardNumber("Check the card number: it is too short or too long.")
    return number, brand


def check_expiry(month: int, year: int, *, today: dt.date) -> tuple[int, int]:
    """The expiry as (month, four-digit year); a two-digit year is 20xx. A card is good
    through the last day of its expiry month."""
    if 0 <= year <= 99:
        year += 2000
    if not 1 <= month <= 12 or not 2000 <= year <= today.year + EXPIRY_YEARS_MAX:
        raise InvalidExpiry("Enter the month (1-12) and year printed on the card.")
    if is_expired(month, year, today=today):
        raise CardExpired("This card has expired; add the card that replaced it.")
    return month, year


def is_expired(month: int, year: int, *, today: dt.date) -> bool:
    return (year, month) < (today.year, today.month)


def check_cvc(cvc: str, brand: Brand) -> str:
    digits = cvc_digits(brand)
    if not (cvc.isascii() and cvc.isdigit() and len(cvc) == digits):
        raise InvalidCvc(f"Enter the {digits}-digit security code "
                         + ("on the front of the card." if brand is Brand.AMEX
                            else "on the back of the card."))
    return cvc


def check_holder_name(name: str) -> str:
    """The name as printed on the card: letters in any script, spaces, and . ' - only."""
    name = " ".join(unicodedata.normalize("NFKC", name).split())
    if not 1 <= len(name) <= HOLDER_NAME_MAX_CHARS:
        raise InvalidHolderName(f"Enter 1 to {HOLDER_NAME_MAX_CHARS} characters.")
    if not any(c.isalpha() for c in name) or not all(
            c.isalpha() or c in " .'-·" or unicodedata.category(c) == "Mn" for c in name):
        raise InvalidHolderName("Use the letters of the name printed on the card.")
    return name


def check_card(*, number: str, exp_month: int, exp_year: int, cvc: str, holder_name: str,
               today: dt.date) -> CheckedCard:
    digits, brand = check_number(number)
    month, year = check_expiry(exp_month, exp_year, today=today)
    return CheckedCard(number=digits, cvc=check_cvc(cvc, brand), brand=brand, exp_month=month,
                       exp_year=year, holder_name=check_holder_name(holder_name))


def masked_number(brand: str, last4: str) -> str:
    """What the customer sees: only the last four digits (PCI DSS 3.4.1 allows at most the
    first six and the last four)."""
    del brand  # every brand is shown the same way
    return f"{MASK * 4} {last4}"
