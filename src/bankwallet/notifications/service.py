"""Notification use cases: the in-app inbox, one-time codes out by SMS or e-mail, and the
development inbox."""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import uuid
from dataclasses import dataclass
from typing import Any, Final

import orjson
from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.connectors.messaging.base import EmailSender, SendResult, SmsSender
from bankwallet.core import i18n
from bankwallet.core.crypto import get_keyring
from bankwallet.core.db import utcnow
from bankwallet.core.i18n import N_
from bankwallet.core.ids import uuid7
from bankwallet.notifications import repository
from bankwallet.notifications.errors import InvalidCursor, MessageNotFound, SendFailed
from bankwallet.notifications.models import (
    BODY_MAX_CHARS,
    DEV_MESSAGE_CONTEXT,
    TITLE_MAX_CHARS,
    NotificationMessage,
)
from bankwallet.notifications.schemas import DevMessageRead

log = logging.getLogger("bankwallet.notifications")

PAGE_SIZE_DEFAULT: Final = 20
PAGE_SIZE_MAX: Final = 100
DEV_INBOX_SIZE: Final = 50
KIND_RE: Final = re.compile(r"^[a-z][a-z0-9_.]{0,31}$")
OTP_CODE_RE: Final = re.compile(r"^\d{4,10}$")
OTP_TTL_DEFAULT_S: Final = 300
CHANNELS: Final = ("sms", "email")

OTP_TEXT: Final = N_("bankwallet code: {code}. Valid for {minutes} minutes. Never share it.")
OTP_EMAIL_SUBJECT: Final = N_("Your bankwallet verification code")
OTP_EMAIL_FOOTER: Final = N_("If you did not ask for this code, ignore this message and "
                             "do not give the code to anyone, including bank staff.")


# -- in-app inbox --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessagePage:
    items: list[NotificationMessage]
    next_cursor: str | None


async def add_message(session: AsyncSession, *, user_id: str | uuid.UUID, kind: str,
                      title: str, body: str) -> NotificationMessage:
    """Put a message in a user's inbox (consumers of domain events call this)."""
    message = NotificationMessage(**message_row(user_id=user_id, kind=kind, title=title,
                                                body=body))
    session.add(message)  # written at the next flush
    return message


def message_row(*, user_id: str | uuid.UUID, kind: str, title: str, body: str
                ) -> dict[str, Any]:
    """An inbox message as a row for ``add_messages``."""
    assert KIND_RE.fullmatch(kind), kind
    return {"id": uuid7(), "user_id": str(user_id), "kind": kind,
            "title": _bounded(title, TITLE_MAX_CHARS), "body": _bounded(body, BODY_MAX_CHARS),
            "created_at": utcnow(), "read_at": None}


async def add_messages(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Many inbox messages in one statement (the consumers of busy topics)."""
    if rows:
        await session.execute(insert(NotificationMessage), rows)


async def take_back_messages(session: AsyncSession, ids: list[uuid.UUID]) -> None:
    """Delete messages just written (their event failed and will be delivered again)."""
    if ids:
        await session.execute(delete(NotificationMessage).where(NotificationMessage.id.in_(ids)))


async def list_messages(session: AsyncSession, *, user_id: str | uuid.UUID,
                        cursor: str | None = None,
                        limit: int = PAGE_SIZE_DEFAULT) -> MessagePage:
    """One page of a user's inbox, newest first; ``next_cursor`` fetches the older page."""
    limit = max(1, min(limit, PAGE_SIZE_MAX))
    before_id = _parse_cursor(cursor)
    rows = list(await repository.messages_page(session, user_id=str(user_id),
                                               before_id=before_id, limit=limit + 1))
    more = len(rows) > limit
    items = rows[:limit]
    return MessagePage(items, items[-1].id.hex if more else None)


async def mark_read(session: AsyncSession, *, user_id: str | uuid.UUID,
                    message_id: uuid.UUID) -> NotificationMessage:
    """Mark one of the user's messages read; reading it again keeps the first time."""
    message = await repository.message_of(session, user_id=str(user_id), message_id=message_id)
    if message is None:
        raise MessageNotFound()
    if message.read_at is None:
        message.read_at = utcnow()
        await session.flush()
    return message


async def unread_count(session: AsyncSession, *, user_id: str | uuid.UUID) -> int:
    return await repository.unread_count(session, user_id=str(user_id))


def _parse_cursor(cursor: str | None) -> uuid.UUID | None:
    if not cursor:
        return None
    try:
        return uuid.UUID(hex=cursor)
    except ValueError:
        raise InvalidCursor("The cursor is not one this API returned.") from None


def _bounded(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[:max_chars - 1] + "…"


# -- one-time codes ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Senders:
    email: EmailSender
    sms: SmsSender


def otp_text(code: str, *, locale: str, minutes: int) -> str:
    return i18n.gettext(OTP_TEXT, locale).format(code=code, minutes=minutes)


def otp_email(code: str, *, locale: str, minutes: int) -> tuple[str, str]:
    """Subject and plain-text body of the e-mail that carries a one-time code."""
    subject = i18n.gettext(OTP_EMAIL_SUBJECT, locale)
    body = f"{otp_text(code, locale=locale, minutes=minutes)}\n\n" \
           f"{i18n.gettext(OTP_EMAIL_FOOTER, locale)}\n"
    return subject, body


async def send_otp(*, senders: Senders, payload: dict[str, Any], sensitive: dict[str, Any],
                   created_at: dt.datetime, default_locale: str,
                   default_ttl_s: int = OTP_TTL_DEFAULT_S) -> SendResult | None:
    """Send a one-time code (a ``notification.otp`` event) through its channel.

    Returns None when nothing was sent because the event cannot ever be sent (malformed, or
    the code expired while waiting); raises ``SendFailed`` when a retry may succeed. Logs name
    the purpose and channel, never the destination or the code.
    """
    channel, purpose = payload.get("channel"), str(payload.get("purpose", ""))[:32]
    destination, code = sensitive.get("destination"), sensitive.get("code")
    context = {"purpose": purpose, "channel": channel}
    if channel not in CHANNELS or not isinstance(destination, str) or not isinstance(
            code, str) or not OTP_CODE_RE.fullmatch(code):
        log.error("malformed otp notification dropped", extra=context)
        return None
    ttl_s = int(payload.get("ttl_s") or default_ttl_s)
    if utcnow() >= created_at + dt.timedelta(seconds=ttl_s):
        log.warning("otp expired before it could be sent", extra=context)
        return None
    locale = i18n.supported(str(payload.get("locale") or "")) or default_locale
    minutes = max(1, math.ceil(ttl_s / 60))
    if channel == "sms":
        result = await senders.sms.send(destination, otp_text(code, locale=locale,
                                                               minutes=minutes))
    else:
        subject, body = otp_email(code, locale=locale, minutes=minutes)
        result = await senders.email.send(destination, subject, body)
    if result.ok:
        log.info("otp sent", extra={**context, "status": str(result.status)})
        return result
    if result.retryable:
        raise SendFailed(f"{channel} not sent: {result.error}")
    log.warning("otp could not be sent", extra={**context, "error": result.error})
    return result


# -- development inbox ---------------------------------------------------------------------


async def list_dev_messages(session: AsyncSession, *,
                            limit: int = DEV_INBOX_SIZE) -> list[DevMessageRead]:
    """The newest messages the development sink stored, decrypted. Development only."""
    limit = max(1, min(limit, DEV_INBOX_SIZE))
    keyring = get_keyring()
    items = []
    for row in await repository.latest_dev_messages(session, limit=limit):
        try:
            content = orjson.loads(keyring.decrypt(row.sealed, context=DEV_MESSAGE_CONTEXT))
        except Exception:  # sealed under a key this process does not have
            content = {"to": "?", "text": "[cannot decrypt]"}
        items.append(DevMessageRead(id=row.id, channel=row.channel, to=content.get("to", ""),
                                    subject=content.get("subject"),
                                    text=content.get("text", ""), created_at=row.created_at))
    return items
