"""Ledger tables. Transfers are append-only; balances change only through the store."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from bankwallet.core.db import Base, JSONType, UTCDateTime


class LedgerAccount(Base):
    __tablename__ = "ledger_account"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    ledger: Mapped[str] = mapped_column(String(3))  # ISO 4217 currency code
    kind: Mapped[str] = mapped_column(String(32))
    owner_id: Mapped[str | None] = mapped_column(String(64), index=True)
    flags: Mapped[int] = mapped_column(Integer)
    debits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    debits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    user_data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    # Room on each page for HOT updates: balances change on every transfer.
    __table_args__ = ({"postgresql_with": {"fillfactor": 80}},)


class LedgerTransfer(Base):
    __tablename__ = "ledger_transfer"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # Position in the hash chain; also the cursor for history pages.
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    # No foreign keys: the store checks both accounts exist, in memory, under the ledger's
    # write lock; per-row FK checks would nearly double the cost of an insert.
    # `ledger verify` reports any transfer whose account is missing.
    debit_account_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    credit_account_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    amount: Mapped[int] = mapped_column(BigInteger)
    ledger: Mapped[str] = mapped_column(String(3))
    code: Mapped[int] = mapped_column(Integer)
    flags: Mapped[int] = mapped_column(Integer)
    pending_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    timeout_s: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    user_data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))

    __table_args__ = (
        Index("ix_ledger_transfer_debit_seq", "debit_account_id", "seq"),
        Index("ix_ledger_transfer_credit_seq", "credit_account_id", "seq"),
        # A hold is resolved at most once: by one post or one void.
        Index("uq_ledger_transfer_pending_id", "pending_id", unique=True,
              postgresql_where=text("pending_id IS NOT NULL"),
              sqlite_where=text("pending_id IS NOT NULL")),
    )


class LedgerChain(Base):
    """The head of the hash chain: one row, whose lock is the ledger's write lock."""

    __tablename__ = "ledger_chain"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    batches: Mapped[int] = mapped_column(BigInteger)


class LedgerOpenHold(Base):
    """Holds with a timeout that are not yet posted or voided: what the expiry job scans.

    Derived data, kept beside the chain so the job never scans history.
    """

    __tablename__ = "ledger_open_hold"

    pending_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
