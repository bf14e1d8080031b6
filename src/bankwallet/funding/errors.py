"""Funding's operating errors (RFC 9457 codes are part of the API: never rename one)."""

from __future__ import annotations

from typing import Literal

from bankwallet.core.errors import (
    BankwalletError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
)

NumberReason = Literal["format", "length", "luhn", "iban_country", "iban_length",
                       "iban_checksum", "iban_format"]


class InvalidBankAccountNumber(InvalidInput):
    code = "invalid_bank_account_number"
    title = "Not a valid IBAN or bank card / account number"

    def __init__(self, reason: NumberReason, detail: str) -> None:
        super().__init__(detail, reason=reason)
        self.reason = reason


class InvalidBankAccountName(InvalidInput):
    code = "invalid_bank_account_name"
    title = "Give the bank account a name of 1 to 64 characters"


class HolderNameRequired(InvalidInput):
    code = "holder_name_required"
    title = "Enter the account holder's name as the bank knows it"


class BankAccountNotFound(NotFound):
    """No such linked bank account of the caller (another user's looks the same)."""

    code = "bank_account_not_found"
    title = "Bank account not found"


class BankAccountAlreadyLinked(Conflict):
    code = "bank_account_already_linked"
    title = "You have linked this bank account already"


class BankAccountLinkedElsewhere(Conflict):
    code = "bank_account_linked_elsewhere"
    title = "This bank account is linked to another wallet"


class TooManyBankAccounts(Conflict):
    code = "too_many_bank_accounts"
    title = "Remove a bank account before linking another"


class BankAccountNameMismatch(InvalidInput):
    code = "bank_account_name_mismatch"
    title = "The bank account is not in your name"


class BankAccountUnknownAtBank(InvalidInput):
    code = "bank_account_unknown_at_bank"
    title = "The bank has no account with this number"


class TooManyLinkAttempts(BankwalletError):
    code = "too_many_link_attempts"
    status = 429
    title = "Too many bank accounts could not be verified; try again later"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class BankNotConnected(BankwalletError):
    code = "bank_not_connected"
    status = 503
    title = "The bank is not connected"


class BankUnavailable(BankwalletError):
    code = "bank_unavailable"
    status = 503
    title = "The bank did not answer; try again shortly"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class MovementNotFound(NotFound):
    code = "funding_movement_not_found"
    title = "No such top-up or withdrawal"


class InsufficientFunds(InvalidInput):
    code = "insufficient_funds"
    title = "Your wallet does not hold enough for this"


class FundingRefused(Forbidden):
    code = "funding_refused"
    title = "This cannot be done from your wallet now; please contact us"


class FailureModeNotAllowed(InvalidInput):
    code = "failure_mode_not_allowed"
    title = "Failure modes are for the sandbox bank in development and tests"


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"
    title = "Invalid page cursor"
