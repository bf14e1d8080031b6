"""Funding's tables: linked bank accounts, top-ups and withdrawals (one table, ``kind``), the
bank's webhook events (de-duplicated by their id) and link attempts (for throttling)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from bankwallet.core.crypto import register_encrypted_column
from bankwallet.core.db import Base, UTCDateTime

NUMBER_CONTEXT = "funding_bank_account.number"
DISPLAY_MAX_CHARS = 140
REASON_MAX_CHARS = 64
INSTRUCTION_ID_MAX_CHARS = 64
REFERENCE_MAX_CHARS = 140  # the connector's bound (ISO 20022 remittance information)
EVENT_ID_MAX_CHARS = 128


class BankAccount(Base):
    """A bank account a user linked after the bank confirmed it is theirs.

    The number is stored envelope-encrypted (``number_enc``) with a blind index for look-ups;
    ``number_claim`` holds the index while the account is linked, so one bank account cannot
    be linked to two users (the unique key decides a race). Removing unlinks it but keeps
    the row: the top-ups and withdrawals that used it still name it.
    """

    __tablename__ = "funding_bank_account"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identity_user.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))  # iban | card (a 16-19 digit number)
    country: Mapped[str | None] = mapped_column(String(2))  # an IBAN's country
    last4: Mapped[str] = mapped_column(String(4))
    number_enc: Mapped[bytes] = mapped_column(LargeBinary)
    number_index: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    number_claim: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True)
    status: Mapped[str] = mapped_column(String(8))  # linked | removed
    verified_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


register_encrypted_column(BankAccount.__tablename__, "number_enc", context=NUMBER_CONTEXT)


class Movement(Base):
    """A top-up or a withdrawal: the intent, its ledger transfer ids, and what the bank said.

    ``status`` is the customer's view (pending → succeeded → reversed, or pending → failed);
    ``bank_status`` the bank's last answer (none: never asked; unknown: no answer). Every
    transfer id derives from ``id``; the reversal's is decided (with its amount) only when the
    bank reverses, and committed before it is submitted.
    """

    __tablename__ = "funding_movement"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # topup | withdrawal
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identity_user.id"))
    bank_account_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("funding_bank_account.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    bank_status: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str] = mapped_column(String(REFERENCE_MAX_CHARS), unique=True)
    instruction_id: Mapped[str | None] = mapped_column(String(INSTRUCTION_ID_MAX_CHARS),
                                                       index=True)
    bank_attempts: Mapped[int] = mapped_column(Integer)
    failure_mode: Mapped[str | None] = mapped_column(String(32))  # sandbox bank only
    failure_reason: Mapped[str | None] = mapped_column(String(REASON_MAX_CHARS))
    hold_transfer_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    post_transfer_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    void_transfer_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    reversal_transfer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    reversal_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    shortfall_minor: Mapped[int] = mapped_column(BigInteger)
    outflow_day: Mapped[dt.date | None] = mapped_column(Date)  # withdrawals: for a release
    from_display: Mapped[str] = mapped_column(String(DISPLAY_MAX_CHARS))
    to_display: Mapped[str] = mapped_column(String(DISPLAY_MAX_CHARS))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    settled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    next_check_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    checks: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_funding_movement_user_kind_created", "user_id", "kind", "created_at"),
        Index("ix_funding_movement_due", "status", "next_check_at"),
    )


class WebhookEvent(Base):
    """One row per bank event id: a redelivery finds it and has no second effect. An event
    whose processing crashed (``processed_at`` empty) is applied again by the polling job."""

    __tablename__ = "funding_webhook_event"

    id: Mapped[str] = mapped_column(String(EVENT_ID_MAX_CHARS), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    instruction_id: Mapped[str] = mapped_column(String(INSTRUCTION_ID_MAX_CHARS))
    reference: Mapped[str] = mapped_column(String(REFERENCE_MAX_CHARS))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(String(REASON_MAX_CHARS))
    movement_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    outcome: Mapped[str | None] = mapped_column(String(16))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    processed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class LinkAttempt(Base):
    """A failed ownership check: counted per user, so the bank's answer (name matches or
    not) cannot be used to probe who holds an account."""

    __tablename__ = "funding_link_attempt"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identity_user.id"))
    outcome: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_funding_link_attempt_user_at", "user_id", "at"),)
