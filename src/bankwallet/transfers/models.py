"""Transfers between customers, requests for money, and split bills.

A ``transfers_transfer`` row is the intent and outcome of one movement (docs/money-movement.md):
its id derives from the payer and the Idempotency-Key, its ledger transfer id from its own id,
and it holds everything the ledger transfer carries (the masked names were fixed when the
intent was recorded), so a healing job can resubmit exactly the same transfer.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from bankwallet.core.db import Base, UTCDateTime

NOTE_MAX_CHARS = 140
DISPLAY_MAX_CHARS = 64
FAILURE_MAX_CHARS = 64


class Split(Base):
    """A bill shared out: one request per participant, listed together."""

    __tablename__ = "transfers_split"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    requester_user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("identity_user.id"), index=True)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    my_share_minor: Mapped[int] = mapped_column(BigInteger)  # what the requester keeps paying
    mode: Mapped[str] = mapped_column(String(8))  # equal | explicit
    note: Mapped[str | None] = mapped_column(String(NOTE_MAX_CHARS))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class MoneyRequest(Base):
    """One customer asking another for an amount.

    status: ``open`` → ``paying`` (a payment's intent is recorded) → ``paid``; a failed
    payment returns it to ``open``; ``declined`` by the payer, ``cancelled`` by the requester.
    """

    __tablename__ = "transfers_request"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    requester_user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("identity_user.id"), index=True)
    payer_user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("identity_user.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    note: Mapped[str | None] = mapped_column(String(NOTE_MAX_CHARS))
    status: Mapped[str] = mapped_column(String(16))
    split_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("transfers_split.id"), index=True)
    split_position: Mapped[int | None] = mapped_column(Integer)  # the order it was listed in
    # The payment in progress or made (no foreign key: the transfer row points back here).
    transfer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    requester_display: Mapped[str] = mapped_column(String(DISPLAY_MAX_CHARS))
    payer_display: Mapped[str] = mapped_column(String(DISPLAY_MAX_CHARS))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Transfer(Base):
    """One movement from a payer's wallet to a payee's: ``pending`` → ``posted`` | ``failed``."""

    __tablename__ = "transfers_transfer"
    __table_args__ = (
        # The healing job's question, pending rows by age. Only pending rows are in it: a row
        # that leaves 'pending' leaves this index rather than being entered in it again.
        Index("ix_transfers_transfer_pending", "created_at",
              postgresql_where=text("status = 'pending'"),
              sqlite_where=text("status = 'pending'")),
        # The transfers that pay a money request; most pay none, and those are left out.
        Index("ix_transfers_transfer_request_id", "request_id",
              postgresql_where=text("request_id IS NOT NULL"),
              sqlite_where=text("request_id IS NOT NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    payer_user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("identity_user.id"), index=True)
    payee_user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("identity_user.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    code: Mapped[int] = mapped_column(Integer)  # wallets.codes.Code: P2P or REQUEST_PAYMENT
    note: Mapped[str | None] = mapped_column(String(NOTE_MAX_CHARS))
    status: Mapped[str] = mapped_column(String(8))
    failure_code: Mapped[str | None] = mapped_column(String(FAILURE_MAX_CHARS))
    ledger_transfer_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    request_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("transfers_request.id"))
    from_display: Mapped[str] = mapped_column(String(DISPLAY_MAX_CHARS))  # shown to the payee
    to_display: Mapped[str] = mapped_column(String(DISPLAY_MAX_CHARS))  # shown to the payer
    outflow_day: Mapped[dt.date] = mapped_column(Date)  # the limit counter it was counted on
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
