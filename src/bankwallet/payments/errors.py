"""Payments' operating errors: each a stable code, an HTTP status and a message. The
Stripe-compatible API (``stripe_api``) maps the same errors onto Stripe's error shape."""

from __future__ import annotations

from bankwallet.core.errors import (
    BankwalletError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
)


class MerchantNotFound(NotFound):
    code = "merchant_not_found"
    title = "No such merchant"


class PaymentIntentNotFound(NotFound):
    code = "payment_intent_not_found"
    title = "No such payment"


class RefundNotFound(NotFound):
    code = "refund_not_found"
    title = "No such refund"


class EventNotFound(NotFound):
    code = "event_not_found"
    title = "No such event"


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"
    title = "No such API key"


class WebhookEndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"
    title = "No such webhook endpoint"


class WebhookDeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"
    title = "No such webhook delivery"


class InvalidMcc(InvalidInput):
    code = "invalid_mcc"
    title = "Not a merchant category code"


class InvalidBankAccount(InvalidInput):
    code = "invalid_bank_account"
    title = "Not a valid bank account number"


class InvalidCountry(InvalidInput):
    code = "invalid_country"
    title = "Not an ISO 3166 country code"


class InvalidMerchantName(InvalidInput):
    code = "invalid_merchant_name"
    title = "Give the business name"


class InvalidCity(InvalidInput):
    code = "invalid_city"
    title = "Give the city"


class InvalidScopes(InvalidInput):
    code = "invalid_scopes"
    title = "Unknown API key scope"


class InvalidWebhookUrl(InvalidInput):
    code = "invalid_webhook_url"
    title = "Not a webhook URL this server can call"


class InvalidEventTypes(InvalidInput):
    code = "invalid_event_types"
    title = "Unknown event type"


class InvalidAmount(InvalidInput):
    code = "invalid_amount"
    title = "Invalid amount"


class InvalidMetadata(InvalidInput):
    code = "invalid_metadata"
    title = "Invalid metadata"


class InvalidPaymentMethod(InvalidInput):
    code = "invalid_payment_method"
    title = "This payment method is not offered"


class PaymentMethodRequired(InvalidInput):
    code = "payment_method_required"
    title = "Confirm needs a payment method"


class PaymentMethodUnavailable(Conflict):
    """A payment method the intent allows but this server cannot take yet (cards, until the
    cards domain plugs in)."""

    code = "payment_method_unavailable"
    title = "This payment method is not available yet"


class UnexpectedState(Conflict):
    """A transition the state machine does not allow from the intent's current status."""

    code = "payment_intent_unexpected_state"
    title = "The payment is not in a state that allows this"

    def __init__(self, detail: str, *, status: str) -> None:
        super().__init__(detail, payment_intent_status=status)


class RefundExceedsCaptured(Conflict):
    code = "refund_exceeds_captured"
    title = "The refund is more than what is left to refund"

    def __init__(self, *, refundable_minor: int, currency: str) -> None:
        super().__init__("The refund is more than what was paid less what was refunded.",
                         refundable_minor=refundable_minor, currency=currency)


class CaptureExceedsCapturable(Conflict):
    code = "capture_exceeds_capturable"
    title = "The capture is more than the authorised amount"


class InsufficientFunds(BankwalletError):
    code = "insufficient_funds"
    status = 422
    title = "Not enough money in this balance"


class MerchantBalanceInsufficient(Conflict):
    code = "merchant_balance_insufficient"
    title = "The merchant's balance does not cover this"


class PaymentFailed(Conflict):
    code = "payment_failed"
    title = "The payment could not be made"


class PaymentRefused(Forbidden):
    code = "payment_refused"
    title = "This payment cannot be made"


class MerchantRoleRequired(Forbidden):
    code = "merchant_role_required"
    title = "Your role at this merchant does not allow this"


class ApiKeyInvalid(BankwalletError):
    code = "api_key_invalid"
    status = 401
    title = "Invalid API key"


class ApiKeyScopeMissing(Forbidden):
    code = "api_key_scope_missing"
    title = "This API key does not have the scope for this request"


class SettlementNothingToSettle(Conflict):
    code = "settlement_nothing_to_settle"
    title = "There is nothing to settle"


class InvalidReturnUrl(InvalidInput):
    code = "invalid_return_url"
    title = "Not a return URL"
