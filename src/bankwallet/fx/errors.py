"""The fx domain's operating errors (RFC 9457 problem codes)."""

from __future__ import annotations

from bankwallet.core.errors import (
    BankwalletError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
)


class QuoteNotFound(NotFound):
    code = "quote_not_found"
    title = "No such quote"


class ExchangeNotFound(NotFound):
    code = "exchange_not_found"
    title = "No such exchange"


class QuoteExpired(Conflict):
    code = "quote_expired"
    title = "This quote has expired; ask for a new one"


class QuoteUsed(Conflict):
    code = "quote_used"
    title = "This quote was already used"


class SameCurrency(InvalidInput):
    code = "same_currency"
    title = "Choose two different currencies"


class AmountRequired(InvalidInput):
    code = "amount_required"
    title = "Give either the amount to sell or the amount to buy"


class AmountTooSmall(InvalidInput):
    code = "amount_too_small"
    title = "This amount is too small to buy one minor unit"


class AmountTooLarge(InvalidInput):
    code = "amount_too_large"
    title = "This amount is too large"


class InsufficientFunds(BankwalletError):
    code = "insufficient_funds"
    status = 422
    title = "Not enough money in this balance"


class ExchangeRefused(Forbidden):
    code = "exchange_refused"
    title = "This exchange cannot be made"


class ExchangeFailed(Conflict):
    code = "exchange_failed"
    title = "The exchange could not be completed; nothing was moved"


class RatesUnavailable(BankwalletError):
    code = "rates_unavailable"
    status = 503
    title = "Exchange rates are not available right now; try again shortly"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "30"}
