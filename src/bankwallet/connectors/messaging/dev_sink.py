"""The development provider: "sends" e-mail and SMS by storing them, sealed, for the
development inbox (``/dev/inbox``). Nothing leaves the machine.

It writes through the session it is given (the consumer's unit of work), so a message is
stored exactly once together with the outbox delivery that sent it.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.connectors.messaging.base import (
    EMAIL_TEXT_MAX_CHARS,
    SMS_MAX_CHARS,
    SUBJECT_MAX_CHARS,
    SendResult,
    is_e164,
    is_email_address,
)
from bankwallet.core.crypto import get_keyring
from bankwallet.core.db import utcnow
from bankwallet.core.ids import uuid7

# The table belongs to the notifications domain, which reads it back for the inbox page.
from bankwallet.notifications.models import DEV_MESSAGE_CONTEXT, DevMessage


async def _store(session: AsyncSession, channel: str, content: dict[str, Any]) -> SendResult:
    message_id = uuid7()
    sealed = get_keyring().encrypt(orjson.dumps(content), context=DEV_MESSAGE_CONTEXT)
    session.add(DevMessage(id=message_id, channel=channel, sealed=sealed, created_at=utcnow()))
    await session.flush()
    return SendResult.sent(f"dev-{message_id}")


class DevEmailSender:
    def __init__(self, session: AsyncSession, *, sender: str) -> None:
        self.session, self.sender = session, sender

    async def send(self, to: str, subject: str, text: str, html: str | None = None) -> SendResult:
        if not is_email_address(to):
            return SendResult.failed("invalid_recipient", retryable=False)
        if len(subject) > SUBJECT_MAX_CHARS or len(text) > EMAIL_TEXT_MAX_CHARS:
            return SendResult.failed("message_too_long", retryable=False)
        return await _store(self.session, "email", {"from": self.sender, "to": to,
                                                    "subject": subject, "text": text,
                                                    "html": html})


class DevSmsSender:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def send(self, to_e164: str, text: str) -> SendResult:
        if not is_e164(to_e164):
            return SendResult.failed("invalid_recipient", retryable=False)
        if len(text) > SMS_MAX_CHARS:
            return SendResult.failed("message_too_long", retryable=False)
        return await _store(self.session, "sms", {"to": to_e164, "text": text})
