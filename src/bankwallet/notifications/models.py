"""Notification tables."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, Boolean, Index, LargeBinary, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from bankwallet.core.crypto import register_encrypted_column
from bankwallet.core.db import Base, UTCDateTime

TITLE_MAX_CHARS = 200
BODY_MAX_CHARS = 2000


class NotificationMessage(Base):
    """A message in a user's in-app inbox."""

    __tablename__ = "notifications_message"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)  # uuid7: the page cursor
    # A string, not a foreign key: users live in another domain (and ids may be any kind).
    user_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(TITLE_MAX_CHARS))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_notifications_message_user_id_id", "user_id", "id"),)


class DevMessage(Base):
    """An e-mail or SMS the development sink "sent": the development inbox reads these.

    Everything but the channel is sealed (recipient, subject, text): one-time codes and
    phone numbers are secrets even in a development database.
    """

    __tablename__ = "notifications_dev_message"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))  # "email" | "sms"
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


DEV_MESSAGE_CONTEXT = "notifications_dev_message.sealed"
register_encrypted_column(DevMessage.__tablename__, "sealed", context=DEV_MESSAGE_CONTEXT)


class MoneyPreference(Base):
    """How a user wants to hear about money moving (``notifications.money``). No row: the
    defaults. The in-app inbox always gets a message; these choose SMS and e-mail on top."""

    __tablename__ = "notifications_money_preference"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sms_withdrawals: Mapped[bool] = mapped_column(Boolean)
    sms_money_out: Mapped[bool] = mapped_column(Boolean)
    # Money out of at least this much (minor units of the movement's currency) gets an SMS.
    sms_money_out_min_minor: Mapped[int] = mapped_column(BigInteger)
    sms_money_in: Mapped[bool] = mapped_column(Boolean)
    email: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
