"""E-mail through an SMTP relay (aiosmtplib): one connection per message, bounded timeout."""

from __future__ import annotations

import logging
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Final

import aiosmtplib

from bankwallet.connectors.messaging.base import (
    EMAIL_TEXT_MAX_CHARS,
    SUBJECT_MAX_CHARS,
    SendResult,
    is_email_address,
)

log = logging.getLogger("bankwallet.connectors.smtp")

TIMEOUT_MAX_S: Final = 60.0


class SmtpEmailSender:
    def __init__(self, *, host: str, port: int, sender: str, username: str | None = None,
                 password: str | None = None, starttls: bool = True, use_tls: bool = False,
                 timeout_s: float = 10.0, validate_certs: bool = True) -> None:
        assert 0 < timeout_s <= TIMEOUT_MAX_S, timeout_s
        assert not (starttls and use_tls), "STARTTLS upgrades a plain connection; pick one"
        assert is_email_address(parseaddr(sender)[1]), "email_from must hold an address"
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password = username, password
        self.starttls, self.use_tls = starttls, use_tls
        self.timeout_s, self.validate_certs = timeout_s, validate_certs

    @classmethod
    def from_settings(cls, settings) -> SmtpEmailSender:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return cls(host=settings.smtp_host, port=settings.smtp_port, sender=settings.email_from,
                   username=settings.smtp_username, password=password,
                   # Implicit TLS already encrypts: STARTTLS only applies without it.
                   starttls=settings.smtp_starttls and not settings.smtp_tls,
                   use_tls=settings.smtp_tls,
                   timeout_s=settings.smtp_timeout_s)

    def build(self, to: str, subject: str, text: str, html: str | None = None) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = Address(addr_spec=to)
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain=parseaddr(self.sender)[1].rpartition("@")[2])
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
        return message

    async def send(self, to: str, subject: str, text: str, html: str | None = None) -> SendResult:
        if not is_email_address(to):
            return SendResult.failed("invalid_recipient", retryable=False)
        if len(subject) > SUBJECT_MAX_CHARS or len(text) > EMAIL_TEXT_MAX_CHARS or (
                html is not None and len(html) > EMAIL_TEXT_MAX_CHARS):
            return SendResult.failed("message_too_long", retryable=False)
        try:
            message = self.build(to, subject, text, html)
        except (ValueError, TypeError, MessageError):  # an address the parser refuses
            return SendResult.failed("invalid_recipient", retryable=False)
        try:
            await aiosmtplib.send(
                message, hostname=self.host, port=self.port, username=self.username,
                password=self.password, start_tls=self.starttls, use_tls=self.use_tls,
                timeout=self.timeout_s, validate_certs=self.validate_certs)
        except Exception as exc:  # every failure becomes a result; see _classify
            result = _classify(exc)
            log.warning("smtp send failed", extra={"error": result.error,
                                                   "retryable": result.retryable})
            return result
        return SendResult.sent(str(message["Message-ID"]))


def _classify(exc: Exception) -> SendResult:
    """Map an aiosmtplib error to a result. Server replies are not copied: they often echo
    the recipient. 5xx is permanent; 4xx, timeouts, refused connections and bad credentials
    (an operator can fix those) are worth retrying."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients] or [550]
        return SendResult.failed(f"smtp_{min(codes)}", retryable=all(c < 500 for c in codes))
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return SendResult.failed("smtp_auth", retryable=True)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError):
        return SendResult.failed("smtp_timeout", retryable=True)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return SendResult.failed(f"smtp_{exc.code}", retryable=not 500 <= exc.code < 600)
    if isinstance(exc, (aiosmtplib.SMTPException, OSError, TimeoutError)):
        return SendResult.failed(f"smtp_{type(exc).__name__}", retryable=True)
    raise exc
