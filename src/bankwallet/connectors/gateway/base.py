"""The interface every card gateway (processor) implements, its result types, and the facts
about card numbers that every gateway and the card vault share (ISO/IEC 7812: the Luhn check
digit, brands by their issuer identification number).

A provider maps the processor's outcomes onto these results and returns them: it never raises
for a declined, failed or unanswered request, and never touches the database (the cards and
payments services persist). Statuses that are easy to confuse:

- ``REQUIRES_ACTION``: the issuer wants the customer to authenticate (3-D Secure); send them
  to ``next_action_url``; the outcome comes by webhook or by ``get_payment``;
- ``PENDING``: the processor answered with a status this code does not know (unknown →
  pending): never taken for a success or a failure;
- ``UNKNOWN``: no answer (a timeout, a 5xx). Ask again (``get_payment``) or re-send with the
  *same* idempotency key, which is safe.

Only ``parse_webhook`` raises: a request with a bad signature or body must be refused by the
route that received it (``WebhookVerificationFailed`` / ``WebhookPayloadInvalid``, both 400).

Card numbers (PAN) and security codes (CVC) go to ``tokenize`` and nowhere else: every later
call uses the token. No result carries either, and no provider logs them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol, runtime_checkable

from bankwallet.core.errors import InvalidInput

IDEMPOTENCY_KEY_MAX_CHARS: Final = 255
REFERENCE_MAX_CHARS: Final = 140
RETURN_URL_MAX_CHARS: Final = 2048
HOLDER_NAME_MAX_CHARS: Final = 64
WEBHOOK_BODY_MAX_BYTES: Final = 64 * 1024
PAN_MIN_DIGITS: Final = 12
PAN_MAX_DIGITS: Final = 19
AMOUNT_MAX_MINOR: Final = 10**15


# -- card numbers ----------------------------------------------------------------------------


class Brand(enum.StrEnum):
    VISA = "visa"
    MASTERCARD = "mastercard"
    AMEX = "amex"
    UNIONPAY = "unionpay"
    JCB = "jcb"


# Lengths each brand issues (Visa's 13-digit numbers are legacy but still valid).
BRAND_LENGTHS: Final[dict[Brand, frozenset[int]]] = {
    Brand.VISA: frozenset({13, 16, 19}),
    Brand.MASTERCARD: frozenset({16}),
    Brand.AMEX: frozenset({15}),
    Brand.UNIONPAY: frozenset({16, 17, 18, 19}),
    Brand.JCB: frozenset({16, 17, 18, 19}),
}
CVC_DIGITS: Final[dict[Brand, int]] = {Brand.AMEX: 4}  # every other brand: 3


def normalize_number(text: str) -> str | None:
    """The digits of a card number typed with spaces or dashes; None if anything else is in
    it or the length is impossible for a card."""
    number = text.replace(" ", "").replace("-", "")
    if not (number.isascii() and number.isdigit()):
        return None
    if not PAN_MIN_DIGITS <= len(number) <= PAN_MAX_DIGITS:
        return None
    return number


def luhn_check_digit(partial: str) -> str:
    """The digit that makes ``partial + digit`` pass the Luhn check."""
    assert partial.isascii() and partial.isdigit(), "digits only"
    total = 0
    # The check digit will sit at position 0 from the right, so partial's last digit doubles.
    for i, char in enumerate(reversed(partial)):
        d = int(char)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    if not (number.isascii() and number.isdigit()) or len(number) < 2:
        return False
    return luhn_check_digit(number[:-1]) == number[-1]


def brand_of(number: str) -> Brand | None:
    """The brand by the number's leading digits (UnionPay 62, Visa 4, Mastercard 51–55 and
    2221–2720, Amex 34/37, JCB 3528–3589); None for any other."""
    if number.startswith("62"):
        return Brand.UNIONPAY
    if number.startswith("4"):
        return Brand.VISA
    if number[:2] in ("34", "37"):
        return Brand.AMEX
    if len(number) >= 4 and number[:4].isdigit():
        first2, first4 = int(number[:2]), int(number[:4])
        if 51 <= first2 <= 55 or 2221 <= first4 <= 2720:
            return Brand.MASTERCARD
        if 3528 <= first4 <= 3589:
            return Brand.JCB
    return None


def cvc_digits(brand: Brand | None) -> int:
    return CVC_DIGITS.get(brand, 3) if brand is not None else 3


def last4(number: str) -> str:
    return number[-4:]


# -- results ---------------------------------------------------------------------------------


class PaymentStatus(enum.StrEnum):
    REQUIRES_ACTION = "requires_action"  # the customer must authenticate (3-D Secure)
    AUTHORIZED = "authorized"            # the amount is held on the card: capture or void
    CAPTURED = "captured"                # taken (fully or partly); refunds may follow
    REFUNDED = "refunded"                # everything captured went back
    VOIDED = "voided"                    # the hold was released; nothing was taken
    DECLINED = "declined"                # final: the issuer (or the challenge) said no
    FAILED = "failed"                    # final: a processing error; nothing is held
    PENDING = "pending"                  # a status we do not know: neither success nor failure
    UNKNOWN = "unknown"                  # no answer: ask again before deciding anything

    @property
    def is_final(self) -> bool:
        return self in (PaymentStatus.VOIDED, PaymentStatus.DECLINED, PaymentStatus.FAILED,
                        PaymentStatus.REFUNDED)


class RefundStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"        # refused (e.g. more than was captured): nothing moved
    PENDING = "pending"      # a status we do not know
    UNKNOWN = "unknown"      # no answer


class Funding(enum.StrEnum):
    CREDIT = "credit"
    DEBIT = "debit"
    PREPAID = "prepaid"
    UNKNOWN = "unknown"


class WebhookPayloadInvalid(InvalidInput):
    code = "webhook_payload_invalid"
    status = 400
    title = "Webhook payload invalid"


@dataclass(frozen=True, slots=True)
class TokenResult:
    """A card token (``ok``), or why there is none. ``error`` is a short code, safe to log."""

    token: str | None
    brand: str | None = None
    funding: Funding = Funding.UNKNOWN
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    error: str | None = None
    retryable: bool = False

    @property
    def ok(self) -> bool:
        return self.token is not None and self.error is None


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """A payment (an authorisation and what followed it) as the gateway reports it.

    ``error`` is set when the gateway refused *this operation* (a capture above the amount
    held, a void of a captured payment, a reused idempotency key): nothing changed, and
    ``status`` is the payment's status as reported with the refusal (``PENDING`` when the
    refusal did not say)."""

    status: PaymentStatus
    payment_id: str | None = None  # None when the gateway never answered
    amount_minor: int | None = None
    currency: str | None = None
    amount_captured_minor: int = 0
    amount_refunded_minor: int = 0
    reason: str | None = None          # a decline or failure code (``insufficient_funds``)
    next_action_url: str | None = None  # where the customer authenticates (REQUIRES_ACTION)
    reference: str | None = None
    error: str | None = None
    retryable: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RefundResult:
    status: RefundStatus
    refund_id: str | None = None
    payment_id: str | None = None
    amount_minor: int | None = None
    currency: str | None = None
    reason: str | None = None  # why it failed (``refund_exceeds_captured``) or no answer
    retryable: bool = False
    payment: PaymentResult | None = None  # the payment after the refund, when reported


class EventType(enum.StrEnum):
    AUTHORIZED = "payment.authorized"
    DECLINED = "payment.declined"
    FAILED = "payment.failed"
    CAPTURED = "payment.captured"
    VOIDED = "payment.voided"
    REFUNDED = "payment.refunded"


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    id: str  # unique per event; a duplicate delivery repeats it
    type: str  # an ``EventType`` value, or a type this code does not know (ignore those)
    payment_id: str
    status: PaymentStatus  # the payment's status after the event (unknown → pending)
    amount_minor: int
    currency: str
    amount_captured_minor: int
    amount_refunded_minor: int
    created_at: datetime
    reference: str | None = None
    reason: str | None = None
    refund_id: str | None = None
    refund_amount_minor: int | None = None

    @property
    def known_type(self) -> EventType | None:
        try:
            return EventType(self.type)
        except ValueError:
            return None


@runtime_checkable
class CardGateway(Protocol):
    async def tokenize(self, *, number: str, exp_month: int, exp_year: int, cvc: str,
                       holder_name: str) -> TokenResult:
        """A reusable token for the card. The CVC is checked with the first authorisation of
        the token and kept by nobody after it."""
        ...

    async def authorize(self, idempotency_key: str, *, token: str, amount_minor: int,
                        currency: str, reference: str, return_url: str | None = None,
                        failure_mode: str | None = None) -> PaymentResult:
        """Hold ``amount_minor`` on the card (0: only verify the card). A 3-D Secure challenge
        answers ``REQUIRES_ACTION``; the customer comes back to ``return_url``."""
        ...

    async def capture(self, idempotency_key: str, payment_id: str,
                      amount_minor: int | None = None) -> PaymentResult:
        """Take all (None) or part of what is held; the rest of the hold is released."""
        ...

    async def void(self, idempotency_key: str, payment_id: str) -> PaymentResult: ...

    async def refund(self, idempotency_key: str, payment_id: str,
                     amount_minor: int | None = None) -> RefundResult:
        """Give back all that is left (None) or part of what was captured; never more."""
        ...

    async def get_payment(self, payment_id: str) -> PaymentResult | None:
        """The payment's current status; None when the gateway has no such payment."""
        ...

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent: ...
