"""The transfers domain's operating errors (rendered as RFC 9457 problem+json)."""

from __future__ import annotations

from bankwallet.core.errors import (
    BankwalletError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
)


class InvalidRecipient(InvalidInput):
    code = "invalid_recipient"
    title = "Enter a mobile number, an e-mail address, a wallet id or a contact card"


class RecipientNotFound(NotFound):
    """Nobody we can pay there: unknown, closed or locked all look the same."""

    code = "recipient_not_found"
    title = "No wallet can receive money there"


class InvalidContactCard(InvalidInput):
    code = "contact_card_invalid"
    title = "This contact card is not valid"


class SelfTransfer(InvalidInput):
    code = "self_transfer"
    title = "You cannot send money to yourself or ask yourself for it"


class InsufficientFunds(BankwalletError):
    code = "insufficient_funds"
    status = 422
    title = "Not enough money in your wallet"


class RecipientLimitExceeded(BankwalletError):
    """The recipient's balance cap: their figures are theirs, so none are named."""

    code = "recipient_limit_exceeded"
    status = 422
    title = "The recipient's wallet cannot receive this amount"


class TransferFailed(BankwalletError):
    code = "transfer_failed"
    status = 422
    title = "The transfer could not be made"


class RiskDeclined(Forbidden):
    code = "risk_declined"
    title = "This transfer was declined for your security"


class TransferNotFound(NotFound):
    code = "transfer_not_found"
    title = "No such transfer"


class RequestNotFound(NotFound):
    code = "request_not_found"
    title = "No such request"


class SplitNotFound(NotFound):
    code = "split_not_found"
    title = "No such split bill"


class RequestNotOpen(Conflict):
    code = "request_not_open"
    title = "This request is no longer open"


class NotThePayer(Forbidden):
    code = "not_the_payer"
    title = "Only the person asked can pay or decline this request"


class NotTheRequester(Forbidden):
    code = "not_the_requester"
    title = "Only the person who asked can cancel this request"


class TooManyOpenRequests(Conflict):
    code = "too_many_open_requests"
    title = "You have too many open requests; cancel some first"


class DuplicateParticipant(InvalidInput):
    code = "duplicate_participant"
    title = "Each person can be in a split bill once"


class SplitSharesMismatch(InvalidInput):
    code = "split_shares_mismatch"
    title = "The shares do not add up to the total"


class SplitTooSmall(InvalidInput):
    code = "split_too_small"
    title = "Every share must be at least one minor unit"
