"""Card vault tables. The card number is stored only envelope-encrypted (``pan_enc``) and found
by a keyed hash (``pan_index``, a blind index); the security code is never stored. A card that
fails verification or is removed keeps only what history needs (brand, last four, expiry):
its encrypted number, index, holder name and token are wiped."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    ForeignKey,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from bankwallet.core.db import Base, UTCDateTime

# verifying: the gateway is being asked; requires_action: the customer must finish 3-D Secure;
# active: usable; failed: verification declined (wiped); removed: by the customer (wiped).
CARD_STATUSES = ("verifying", "requires_action", "active", "failed", "removed")
LIVE_STATUSES = ("verifying", "requires_action", "active")


class Card(Base):
    __tablename__ = "cards_card"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identity_user.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    brand: Mapped[str] = mapped_column(String(16))
    funding: Mapped[str] = mapped_column(String(8))  # credit | debit | prepaid | unknown
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int] = mapped_column(SmallInteger)
    exp_year: Mapped[int] = mapped_column(SmallInteger)
    pan_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    # HMAC of the number: one user cannot add a card twice (NULLs never collide: a wiped card
    # can be added again).
    pan_index: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    holder_name_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    gateway_token: Mapped[str | None] = mapped_column(String(64))
    verification_payment_id: Mapped[str | None] = mapped_column(String(64), index=True)
    challenge_url: Mapped[str | None] = mapped_column(String(2048))
    failure_reason: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    removed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("user_id", "pan_index"),)


class GatewayEvent(Base):
    """A gateway webhook already handled: a duplicate delivery (same event id) is skipped."""

    __tablename__ = "cards_gateway_event"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    payment_id: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
