"""Quotes (a price offered for a short time) and exchanges (a quote executed as two linked
ledger legs). Amounts are integer minor units; rates are exact decimal text for the record
(the amounts, fixed when quoted, are what moves)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from bankwallet.core.db import Base, UTCDateTime

RATE_TEXT_MAX_CHARS = 40
STATUSES = ("pending", "posted", "failed")


class Quote(Base):
    __tablename__ = "fx_quote"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)  # uuid7
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identity_user.id"), index=True)
    sell_currency: Mapped[str] = mapped_column(String(3))
    sell_amount_minor: Mapped[int] = mapped_column(BigInteger)
    buy_currency: Mapped[str] = mapped_column(String(3))
    buy_amount_minor: Mapped[int] = mapped_column(BigInteger)
    rate: Mapped[str] = mapped_column(String(RATE_TEXT_MAX_CHARS))  # buy per sell, customer's
    mid_rate: Mapped[str] = mapped_column(String(RATE_TEXT_MAX_CHARS))
    spread_bps: Mapped[int] = mapped_column(Integer)
    # The sell amount valued in the limits' currency at the mid rate (daily outflow, risk).
    limits_value_minor: Mapped[int] = mapped_column(BigInteger)
    rates_source: Mapped[str] = mapped_column(String(32))
    rates_as_of: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    exchange_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the exchange that used it


class Exchange(Base):
    __tablename__ = "fx_exchange"

    # Derived from the user and the Idempotency-Key: a retry after a crash finds this row.
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identity_user.id"))
    quote_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("fx_quote.id"), unique=True)
    sell_currency: Mapped[str] = mapped_column(String(3))
    sell_amount_minor: Mapped[int] = mapped_column(BigInteger)
    buy_currency: Mapped[str] = mapped_column(String(3))
    buy_amount_minor: Mapped[int] = mapped_column(BigInteger)
    rate: Mapped[str] = mapped_column(String(RATE_TEXT_MAX_CHARS))
    sell_transfer_id: Mapped[uuid.UUID] = mapped_column(Uuid)  # customer -> FX_POSITION
    buy_transfer_id: Mapped[uuid.UUID] = mapped_column(Uuid)  # FX_POSITION -> customer
    status: Mapped[str] = mapped_column(String(8))  # pending | posted | failed
    failure_reason: Mapped[str | None] = mapped_column(String(64))  # the ledger's result
    # What was counted against the daily outflow, and on which bank day (to give it back).
    outflow_minor: Mapped[int] = mapped_column(BigInteger)
    outflow_day: Mapped[dt.date] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_fx_exchange_user_id_created_at", "user_id", "created_at"),
        # The healing job scans what is still pending, oldest first.
        Index("ix_fx_exchange_status_created_at", "status", "created_at"),
    )
