"""Shapes of our own payments JSON API (the merchant dashboard's and the customer's). The
Stripe-compatible API speaks Stripe's objects instead (``objects``)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from bankwallet.payments import objects, service, webhooks
from bankwallet.payments.models import (
    ApiKey,
    Charge,
    Merchant,
    PaymentIntent,
    Refund,
    Settlement,
    WebhookEndpoint,
)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


Metadata = dict[str, str | int]


class MerchantCreate(_In):
    name: str = Field(max_length=service.NAME_MAX_CHARS * 2)
    mcc: str = Field(max_length=8)
    city: str = Field(max_length=service.CITY_MAX_CHARS * 2)
    country: str = Field(default=service.DEFAULT_COUNTRY, max_length=8)
    bank_account: str = Field(max_length=64)


class MerchantBalanceRead(BaseModel):
    currency: str
    available_minor: int
    posted_minor: int
    settling_minor: int

    @classmethod
    def of(cls, b: service.MerchantBalance) -> MerchantBalanceRead:
        return cls(currency=b.currency, available_minor=b.available_minor,
                   posted_minor=b.posted_minor, settling_minor=b.settling_minor)


class MerchantRead(BaseModel):
    id: uuid.UUID
    name: str
    mcc: str
    mcc_description: str
    city: str
    country: str
    bank_account: str  # masked: ····1234
    status: str
    role: str
    created_at: dt.datetime

    @classmethod
    def of(cls, m: Merchant, role: str) -> MerchantRead:
        return cls(id=m.id, name=m.name, mcc=m.mcc, mcc_description=service.mcc_description(m.mcc),
                   city=m.city, country=m.country,
                   bank_account=service.mask_bank_account(m.bank_account_last4),
                   status=m.status, role=role, created_at=m.created_at)


class MerchantList(BaseModel):
    data: list[MerchantRead]


class ApiKeyCreate(_In):
    name: str | None = Field(default=None, max_length=service.API_KEY_NAME_MAX_CHARS)
    kind: Literal["secret", "publishable"] = "secret"
    scopes: list[str] | None = Field(default=None, max_length=len(service.SCOPES))


class ApiKeyRead(BaseModel):
    id: uuid.UUID
    kind: str
    name: str
    display: str  # sk_test_…abcd
    scopes: list[str]
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @classmethod
    def of(cls, k: ApiKey) -> ApiKeyRead:
        return cls(id=k.id, kind=k.kind, name=k.name,
                   display=f"{service.KEY_KINDS[k.kind]}…{k.last4}", scopes=list(k.scopes),
                   created_at=k.created_at, last_used_at=k.last_used_at,
                   revoked_at=k.revoked_at)


class ApiKeyCreated(ApiKeyRead):
    key: str  # shown this once


class ApiKeyList(BaseModel):
    data: list[ApiKeyRead]


class PaymentIntentCreate(_In):
    amount_minor: StrictInt
    currency: str = Field(max_length=3)
    capture_method: Literal["automatic", "manual"] = "automatic"
    payment_method_types: list[str] | None = Field(default=None, max_length=4)
    description: str | None = Field(default=None, max_length=service.DESCRIPTION_MAX_CHARS * 2)
    metadata: Metadata | None = None
    return_url: str | None = Field(default=None, max_length=service.RETURN_URL_MAX_CHARS)


class PaymentIntentRead(BaseModel):
    id: str
    amount_minor: int
    currency: str
    status: str
    capture_method: str
    amount_received_minor: int
    amount_capturable_minor: int
    amount_refunded_minor: int
    fee_minor: int
    fee_refunded_minor: int
    payment_method: str | None
    payment_method_types: list[str]
    description: str | None
    metadata: dict[str, str]
    client_secret: str
    pay_url: str
    last_payment_error: dict[str, Any] | None
    cancellation_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, i: PaymentIntent) -> PaymentIntentRead:
        return cls(id=objects.public_id("payment_intent", i.id), amount_minor=i.amount_minor,
                   currency=i.currency, status=i.status, capture_method=i.capture_method,
                   amount_received_minor=i.amount_received_minor,
                   amount_capturable_minor=i.amount_capturable_minor,
                   amount_refunded_minor=i.amount_refunded_minor, fee_minor=i.fee_minor,
                   fee_refunded_minor=i.fee_refunded_minor, payment_method=i.payment_method,
                   payment_method_types=list(i.payment_method_types),
                   description=i.description, metadata=dict(i.metadata_ or {}),
                   client_secret=objects.client_secret(i.id), pay_url=objects.pay_url(i.id),
                   last_payment_error=i.last_payment_error,
                   cancellation_reason=i.cancellation_reason, created_at=i.created_at,
                   updated_at=i.updated_at)


class PaymentIntentList(BaseModel):
    data: list[PaymentIntentRead]
    has_more: bool
    next_starting_after: str | None


class CardUsed(BaseModel):
    brand: str | None
    last4: str | None


class CustomerIntentRead(BaseModel):
    """What the paying customer sees: never the merchant's fee or metadata. ``payable_by``:
    the ways it can be paid now; ``next_action_url``: the card's 3-D Secure page, while it
    waits."""

    id: str
    merchant_name: str
    amount_minor: int
    currency: str
    status: str
    description: str | None
    payable: bool
    payable_by: list[str]
    payment_method: str | None
    card: CardUsed | None
    next_action_url: str | None
    last_payment_error: dict[str, Any] | None

    @classmethod
    def of(cls, i: PaymentIntent, merchant_name: str, *,
           charge: Charge | None = None) -> CustomerIntentRead:
        open_to_pay = service.Status(i.status) in service.TRANSITIONS["pay"]
        by = [m for m in i.payment_method_types if open_to_pay and m in service.PAYMENT_METHODS]
        card = charge if charge is not None and charge.method == service.CARD_METHOD \
            and charge.id == i.latest_charge_id else None
        waiting = card is not None and card.status == "requires_action" \
            and i.status == service.Status.REQUIRES_ACTION
        return cls(id=objects.public_id("payment_intent", i.id), merchant_name=merchant_name,
                   amount_minor=i.amount_minor, currency=i.currency, status=i.status,
                   description=i.description,
                   payable=open_to_pay and service.WALLET_METHOD in i.payment_method_types,
                   payable_by=by, payment_method=i.payment_method,
                   card=CardUsed(brand=card.card_brand, last4=card.card_last4) if card else None,
                   next_action_url=card.next_action_url if waiting and card else None,
                   last_payment_error=i.last_payment_error)


class PayCreate(_In):
    """Pay from the wallet balance (no body, or no ``card_id``) or with a saved card."""

    card_id: uuid.UUID | None = None


class CaptureCreate(_In):
    amount_to_capture_minor: StrictInt | None = None


class CancelCreate(_In):
    cancellation_reason: str | None = Field(default=None, max_length=32)


class RefundCreate(_In):
    amount_minor: StrictInt | None = None
    reason: str | None = Field(default=None, max_length=32)
    metadata: Metadata | None = None


class RefundRead(BaseModel):
    id: str
    payment_intent: str
    amount_minor: int
    fee_refund_minor: int
    currency: str
    status: str
    reason: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, r: Refund) -> RefundRead:
        return cls(id=objects.public_id("refund", r.id),
                   payment_intent=objects.public_id("payment_intent", r.intent_id),
                   amount_minor=r.amount_minor, fee_refund_minor=r.fee_refund_minor,
                   currency=r.currency, status=r.status, reason=r.reason,
                   created_at=r.created_at)


class RefundList(BaseModel):
    data: list[RefundRead]


class EventList(BaseModel):
    data: list[dict[str, Any]]
    has_more: bool


class WebhookEndpointCreate(_In):
    url: str = Field(max_length=webhooks.URL_MAX_CHARS)
    enabled_events: list[str] | None = Field(default=None, max_length=16)
    description: str | None = Field(default=None, max_length=webhooks.DESCRIPTION_MAX_CHARS)


class WebhookEndpointRead(BaseModel):
    id: uuid.UUID
    url: str
    description: str | None
    enabled_events: list[str]
    status: str
    created_at: dt.datetime

    @classmethod
    def of(cls, e: WebhookEndpoint) -> WebhookEndpointRead:
        return cls(id=e.id, url=e.url, description=e.description,
                   enabled_events=list(e.enabled_events), status=e.status,
                   created_at=e.created_at)


class WebhookEndpointCreated(WebhookEndpointRead):
    secret: str  # whsec_…, shown this once


class WebhookEndpointList(BaseModel):
    data: list[WebhookEndpointRead]


class WebhookAttemptRead(BaseModel):
    attempt: int
    status_code: int | None
    latency_ms: int
    error: str | None
    created_at: dt.datetime


class WebhookDeliveryRead(BaseModel):
    id: uuid.UUID
    event_id: str
    event_type: str
    endpoint_id: uuid.UUID
    url: str
    status: str
    attempts: int
    next_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    log: list[WebhookAttemptRead]

    @classmethod
    def of(cls, v: webhooks.DeliveryView) -> WebhookDeliveryRead:
        d = v.delivery
        return cls(id=d.id, event_id=objects.public_id("event", v.event.id),
                   event_type=v.event.type, endpoint_id=v.endpoint.id, url=v.endpoint.url,
                   status=d.status, attempts=d.attempts, next_attempt_at=d.next_attempt_at,
                   last_status_code=d.last_status_code, last_error=d.last_error,
                   log=[WebhookAttemptRead(attempt=a.attempt, status_code=a.status_code,
                                           latency_ms=a.latency_ms, error=a.error,
                                           created_at=a.created_at) for a in v.attempts])


class WebhookDeliveryList(BaseModel):
    data: list[WebhookDeliveryRead]


class SettlementCreate(_In):
    currency: str = Field(default="CNY", max_length=3)
    amount_minor: StrictInt | None = None


class SettlementRead(BaseModel):
    id: uuid.UUID
    amount_minor: int
    currency: str
    status: str
    bank_account: str
    failure_code: str | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, s: Settlement) -> SettlementRead:
        return cls(id=s.id, amount_minor=s.amount_minor, currency=s.currency, status=s.status,
                   bank_account=service.mask_bank_account(s.bank_account_last4),
                   failure_code=s.failure_code, created_at=s.created_at,
                   updated_at=s.updated_at)


class SettlementList(BaseModel):
    data: list[SettlementRead]
