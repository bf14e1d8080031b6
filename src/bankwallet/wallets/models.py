"""Per-user, per-day outflow counters: the row every outgoing movement locks and adds to, so
the daily limit holds under concurrency (two payments at once cannot both squeeze in)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, Date, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from bankwallet.core.db import Base


class DailyOutflow(Base):
    __tablename__ = "wallets_daily_outflow"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)  # in the bank's time zone
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
