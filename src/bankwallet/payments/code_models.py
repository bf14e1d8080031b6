"""Consumer-presented payment codes (付款码): the one-time number a customer shows and a
merchant's point of sale charges. The number itself is never stored: only its keyed blind
index (``core.crypto``), so a copy of the table cannot be replayed at a till."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from bankwallet.core.db import Base, UTCDateTime


class ConsumerCode(Base):
    __tablename__ = "payments_consumer_code"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)  # uuid7
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identity_user.id"),
                                               index=True)
    currency: Mapped[str] = mapped_column(String(3))  # the wallet balance it draws on
    code_index: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    last4: Mapped[str] = mapped_column(String(4))
    # active → used (a merchant charged it) | revoked (a newer code replaced it);
    # an active code past ``expires_at`` is expired without a write.
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    merchant_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    intent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)


class ConsumerCodeMiss(Base):
    """Unknown codes a merchant sent in the current window: the brake on guessing."""

    __tablename__ = "payments_consumer_code_miss"

    merchant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    window_started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    misses: Mapped[int] = mapped_column(Integer)
