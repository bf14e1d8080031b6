"""The card vault's operating errors. None of them ever carries a card number or a security
code: the messages are fixed text."""

from __future__ import annotations

from bankwallet.core.errors import BankwalletError, Conflict, InvalidInput, NotFound


class InvalidCardNumber(InvalidInput):
    code = "invalid_card_number"
    title = "The card number is not valid"


class CardBrandUnsupported(InvalidInput):
    code = "card_brand_unsupported"
    title = "Cards of this brand are not accepted"


class InvalidExpiry(InvalidInput):
    code = "invalid_expiry"
    title = "The expiry date is not valid"


class CardExpired(InvalidInput):
    code = "card_expired"
    title = "The card has expired"


class InvalidCvc(InvalidInput):
    code = "invalid_cvc"
    title = "The security code is not valid"


class InvalidHolderName(InvalidInput):
    code = "invalid_holder_name"
    title = "Enter the name as printed on the card"


class CardAlreadyAdded(Conflict):
    code = "card_already_added"
    title = "This card is already in your wallet"


class TooManyCards(Conflict):
    code = "too_many_cards"
    title = "You have as many cards as a wallet can hold; remove one first"


class TooManyCardAttempts(BankwalletError):
    """Too many cards failed verification lately: card testing looks like this."""

    code = "too_many_card_attempts"
    status = 429
    title = "Too many cards were declined today; try again tomorrow"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "3600"}


class CardNotFound(NotFound):
    code = "card_not_found"
    title = "Card not found"


class CardDeclined(BankwalletError):
    """The issuer refused the verification; ``decline_code`` says why (never the number)."""

    code = "card_declined"
    status = 402
    title = "The card was declined"


class CardPaymentsNotConnected(BankwalletError):
    code = "card_payments_not_connected"
    status = 503
    title = "Card payments are not connected yet"


class CardGatewayUnavailable(BankwalletError):
    """The gateway did not answer, or failed to process: nothing was kept; try again."""

    code = "card_gateway_unavailable"
    status = 503
    title = "The card network did not answer; please try again"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


# -- paying with a saved card: the issuer's answers, with Stripe's codes (``decline_code``
# says more; the card number is never in them) ------------------------------------------------


class ExpiredCard(BankwalletError):
    code = "expired_card"
    status = 402
    title = "The card has expired"


class IncorrectCvc(BankwalletError):
    code = "incorrect_cvc"
    status = 402
    title = "The card's security code is incorrect"


class CardProcessingError(BankwalletError):
    """The gateway failed to process the payment: nothing was taken; try again."""

    code = "processing_error"
    status = 402
    title = "The card payment could not be processed; please try again"


class CardNotUsable(Conflict):
    """A saved card that is not ready to pay (still being verified, or expired)."""

    code = "card_not_usable"
    title = "This card cannot be used to pay"


class CardCaptureRefused(Conflict):
    """The gateway refused to capture a card payment (its authorisation was voided or has
    lapsed): nothing was taken and nothing changed."""

    code = "card_capture_refused"
    title = "The card authorisation can no longer be captured"


class CardRefundFailed(Conflict):
    """The gateway refused a card refund: nothing went back and nothing changed."""

    code = "card_refund_failed"
    title = "The card refund was refused"
