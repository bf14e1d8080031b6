"""Outbox consumers of the notifications domain. Importing this module registers them."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.connectors.messaging.dev_sink import DevEmailSender, DevSmsSender
from bankwallet.connectors.messaging.smtp import SmtpEmailSender
from bankwallet.core import outbox
from bankwallet.notifications import service
from bankwallet.settings import Settings, get_settings

log = logging.getLogger("bankwallet.notifications")

OTP_TOPIC = "notification.otp"

_settings: Settings | None = None


def configure(settings: Settings | None) -> None:
    """Use these settings for the providers (the app passes its own; None: the environment's)."""
    global _settings
    _settings = settings
    current = settings or get_settings()
    if current.env == "prod" and "dev" in (current.email_backend, current.sms_backend):
        log.warning("a development message backend is configured in production: codes are "
                    "stored, not sent", extra={"email_backend": current.email_backend,
                                               "sms_backend": current.sms_backend})


def senders_for(session: AsyncSession, settings: Settings) -> service.Senders:
    email = (SmtpEmailSender.from_settings(settings) if settings.email_backend == "smtp"
             else DevEmailSender(session, sender=settings.email_from))
    assert settings.sms_backend == "dev", settings.sms_backend
    return service.Senders(email=email, sms=DevSmsSender(session))


@outbox.consumer(OTP_TOPIC, name="notifications.send_otp")
async def send_otp(session: AsyncSession, event: outbox.Event) -> None:
    settings = _settings or get_settings()
    await service.send_otp(senders=senders_for(session, settings), payload=event.payload,
                           sensitive=event.sensitive, created_at=event.created_at,
                           default_locale=settings.default_locale,
                           default_ttl_s=settings.otp_ttl_s)


from bankwallet.notifications import money as _money  # noqa: E402, F401  (registers money.moved)
