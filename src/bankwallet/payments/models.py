"""Payments tables: merchants and their users, API keys, payment intents with their charges
and refunds, settlements, and the merchant webhooks (endpoints, events, deliveries, attempts).

Secrets are never stored in the clear: API keys as SHA-256 only, webhook signing secrets and
settlement bank account numbers envelope-encrypted (``core.crypto``)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from bankwallet.core.crypto import register_encrypted_column
from bankwallet.core.db import Base, JSONType, UTCDateTime

BANK_ACCOUNT_CONTEXT = "payments_merchant.bank_account"
WEBHOOK_SECRET_CONTEXT = "payments_webhook_endpoint.secret"

register_encrypted_column("payments_merchant", "bank_account_enc", context=BANK_ACCOUNT_CONTEXT)
register_encrypted_column("payments_webhook_endpoint", "secret_enc",
                          context=WEBHOOK_SECRET_CONTEXT)


class Merchant(Base):
    __tablename__ = "payments_merchant"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    mcc: Mapped[str] = mapped_column(String(4))  # ISO 18245 merchant category code
    city: Mapped[str] = mapped_column(String(64))
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166-1 alpha-2
    bank_account_enc: Mapped[bytes] = mapped_column(LargeBinary)
    bank_account_kind: Mapped[str] = mapped_column(String(8))  # iban | domestic
    bank_account_last4: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(16))  # active | suspended
    created_by: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identity_user.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class MerchantUser(Base):
    """Who may act for a merchant (the creator is its owner)."""

    __tablename__ = "payments_merchant_user"

    merchant_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("payments_merchant.id"),
                                                   primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identity_user.id"),
                                               primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16))  # owner
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ApiKey(Base):
    """A merchant's API key: shown once, kept as its SHA-256 only."""

    __tablename__ = "payments_api_key"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    merchant_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("payments_merchant.id"),
                                                   index=True)
    kind: Mapped[str] = mapped_column(String(12))  # secret | publishable
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    last4: Mapped[str] = mapped_column(String(4))
    name: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSONType)
    created_by: Mapped[uuid.UUID] = mapped_column(Uuid)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class PaymentIntent(Base):
    __tablename__ = "payments_payment_intent"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    merchant_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("payments_merchant.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(32))
    capture_method: Mapped[str] = mapped_column(String(16))  # automatic | manual
    payment_method_types: Mapped[list[str]] = mapped_column(JSONType)
    payment_method: Mapped[str | None] = mapped_column(String(32))
    description: Mapped[str | None] = mapped_column(String(500))
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSONType)
    return_url: Mapped[str | None] = mapped_column(String(2048))
    payer_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    latest_charge_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    amount_received_minor: Mapped[int] = mapped_column(BigInteger)
    amount_capturable_minor: Mapped[int] = mapped_column(BigInteger)
    # Refunds succeeded or in progress: what a new refund may not push past the captured sum.
    amount_refunded_minor: Mapped[int] = mapped_column(BigInteger)
    fee_minor: Mapped[int] = mapped_column(BigInteger)
    fee_refunded_minor: Mapped[int] = mapped_column(BigInteger)
    last_payment_error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    cancellation_reason: Mapped[str | None] = mapped_column(String(32))
    canceled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_payments_payment_intent_merchant_created", "merchant_id", "created_at", "id"),
    )


class Charge(Base):
    """One attempt to pay an intent: the money movement (customer wallet → merchant)."""

    __tablename__ = "payments_charge"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    intent_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("payments_payment_intent.id"),
                                                 index=True)
    merchant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    payer_user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    method: Mapped[str] = mapped_column(String(32))
    capture_method: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    amount_captured_minor: Mapped[int] = mapped_column(BigInteger)
    fee_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # pending → succeeded | authorized | failed; authorized → capturing → succeeded;
    # authorized → canceling → canceled. A card charge may also be requires_action (3-D
    # Secure) and, once the gateway authorised it, capturing (automatic capture: the gateway
    # capture and the ledger posting in flight) or posting (manual: the ledger hold in flight).
    status: Mapped[str] = mapped_column(String(16))
    payment_transfer_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    fee_transfer_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    payer_display: Mapped[str] = mapped_column(String(140))
    merchant_display: Mapped[str] = mapped_column(String(140))
    outflow_day: Mapped[dt.date] = mapped_column(Date)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(String(255))
    # A card charge: the saved card (its brand and last four kept for history, never its
    # number), the gateway's payment and, while 3-D Secure waits, the challenge page.
    card_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    card_brand: Mapped[str | None] = mapped_column(String(16))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    gateway_payment_id: Mapped[str | None] = mapped_column(String(64), index=True)
    next_action_url: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_payments_charge_status_updated", "status", "updated_at"),)


class Refund(Base):
    __tablename__ = "payments_refund"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    intent_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("payments_payment_intent.id"),
                                                 index=True)
    charge_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    merchant_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    payee_user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    fee_refund_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # pending | succeeded | failed; a card refund is processing while the gateway is asked
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSONType)
    refund_transfer_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    fee_transfer_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    payee_display: Mapped[str] = mapped_column(String(140))
    merchant_display: Mapped[str] = mapped_column(String(140))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    gateway_refund_id: Mapped[str | None] = mapped_column(String(64))  # a card refund's
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_payments_refund_status_updated", "status", "updated_at"),)


class Settlement(Base):
    """The merchant's balance paid out to its bank account: a hold on the merchant account,
    posted when the core bank confirms the credit, voided when it refuses."""

    __tablename__ = "payments_settlement"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    merchant_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("payments_merchant.id"),
                                                   index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # pending (hold not placed yet) → queued (held, waiting for the bank) → submitted →
    # succeeded | failed
    status: Mapped[str] = mapped_column(String(16))
    hold_transfer_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    bank_account_last4: Mapped[str] = mapped_column(String(4))
    instruction_id: Mapped[str | None] = mapped_column(String(64))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[uuid.UUID] = mapped_column(Uuid)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_payments_settlement_status_updated", "status", "updated_at"),)


class WebhookEndpoint(Base):
    __tablename__ = "payments_webhook_endpoint"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    merchant_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("payments_merchant.id"),
                                                   index=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(200))
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    enabled_events: Mapped[list[str]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16))  # enabled | disabled
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Event(Base):
    """What happened to a merchant's objects, in Stripe's event shape (``evt_…``)."""

    __tablename__ = "payments_event"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)  # uuid7: time-ordered
    merchant_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("payments_merchant.id"))
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)  # the object as it was then
    api_version: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_payments_event_merchant_created", "merchant_id", "created_at", "id"),
    )


class WebhookDelivery(Base):
    """One event to one endpoint: at most one row per pair (de-duplicated by event id)."""

    __tablename__ = "payments_webhook_delivery"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("payments_event.id"))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(Uuid,
                                                   ForeignKey("payments_webhook_endpoint.id"))
    merchant_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    status: Mapped[str] = mapped_column(String(16))  # pending | succeeded | failed
    attempts: Mapped[int] = mapped_column(Integer)
    attempts_allowed: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id",
                         name="uq_payments_webhook_delivery_event_endpoint"),
        Index("ix_payments_webhook_delivery_due", "status", "next_attempt_at"),
    )


class WebhookAttempt(Base):
    """The delivery log: one row per HTTP attempt."""

    __tablename__ = "payments_webhook_attempt"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(Uuid,
                                                   ForeignKey("payments_webhook_delivery.id"),
                                                   index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
