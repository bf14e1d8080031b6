"""Bank account numbers: IBANs checked with schwifty, card and account numbers with Luhn."""

from __future__ import annotations

import pytest

from bankwallet.funding.errors import InvalidBankAccountNumber
from bankwallet.funding.service import luhn_ok, parse_account_number

from .conftest import card_number, iban_number


@pytest.mark.parametrize("text", ["DE89 3704 0044 0532 0130 00", "de89370400440532013000",
                                  "GB82-WEST-1234-5698-7654-32"])
def test_ibans_are_normalised(text: str) -> None:
    parsed = parse_account_number(text)
    assert parsed.kind == "iban" and parsed.number == parsed.number.upper()
    assert " " not in parsed.number and "-" not in parsed.number
    assert parsed.country == parsed.number[:2] and parsed.last4 == parsed.number[-4:]


@pytest.mark.parametrize("text", ["4111 1111 1111 1111", "4000056655665556",
                                  "6011-1111-1111-1117", "3530111333300000",
                                  "6212345678901265"])
def test_card_numbers_with_a_good_check_digit(text: str) -> None:
    parsed = parse_account_number(text)
    assert parsed.kind == "card" and parsed.country is None and parsed.number.isdigit()


def test_generated_numbers_are_valid() -> None:
    for _ in range(50):
        assert luhn_ok(card_number()) and luhn_ok(card_number(19))
        assert parse_account_number(iban_number()).kind == "iban"


@pytest.mark.parametrize(("text", "reason"), [
    ("4111111111111112", "luhn"),                 # one digit off
    ("411111111111111", "length"),                # 15 digits
    ("41111111111111111111", "length"),           # 20 digits
    ("DE89370400440532013001", "iban_checksum"),  # one digit off
    ("XX89370400440532013000", "iban_country"),
    ("DE8937040044053201300", "iban_length"),
    ("DE89 3704 0044 0532 0130 0A", "iban_format"),
    ("hello", "format"),
    ("", "format"),
    ("１２３４５６７８９０１２３４５６", "format"),  # full-width digits are not ASCII
    ("4111 1111 1111 1111 ; DROP", "format"),
])
def test_bad_numbers_name_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidBankAccountNumber) as caught:
        parse_account_number(text)
    assert caught.value.reason == reason
    assert caught.value.code == "invalid_bank_account_number" and caught.value.status == 422
