"""The interface every e-mail and SMS provider implements.

A provider maps its own outcomes onto ``SendResult`` and returns it: it never raises for a
refused or failed send, and never touches the database (the development sink is the exception
that proves the rule: the database *is* its provider). ``error`` texts are safe to log: they
never contain the recipient or the message, which may carry a one-time code.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

E164_RE: Final = re.compile(r"^\+[1-9]\d{6,14}$")
SMS_MAX_CHARS: Final = 480  # three concatenated segments at most
SUBJECT_MAX_CHARS: Final = 200
EMAIL_TEXT_MAX_CHARS: Final = 100_000


class SendStatus(enum.StrEnum):
    SENT = "sent"        # accepted by the provider
    PENDING = "pending"  # the provider's outcome is not known (yet); not an error
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SendResult:
    status: SendStatus
    provider_message_id: str | None = None
    error: str | None = None  # a short code or class name: never the recipient or the text
    retryable: bool = False   # a failure that may pass if tried again later

    @property
    def ok(self) -> bool:
        return self.status is not SendStatus.FAILED

    @classmethod
    def sent(cls, provider_message_id: str | None = None) -> SendResult:
        return cls(SendStatus.SENT, provider_message_id)

    @classmethod
    def failed(cls, error: str, *, retryable: bool) -> SendResult:
        return cls(SendStatus.FAILED, None, error, retryable)


@runtime_checkable
class EmailSender(Protocol):
    async def send(self, to: str, subject: str, text: str,
                   html: str | None = None) -> SendResult: ...


@runtime_checkable
class SmsSender(Protocol):
    async def send(self, to_e164: str, text: str) -> SendResult: ...


def is_e164(number: str) -> bool:
    return bool(E164_RE.fullmatch(number))


def is_email_address(address: str) -> bool:
    """A sanity check, not validation: one @, no whitespace or header-breaking characters."""
    local, at, domain = address.rpartition("@")
    return (bool(at and local and domain) and "@" not in local and len(address) <= 254
            and not any(c.isspace() or c in "<>,;\"" for c in address))
