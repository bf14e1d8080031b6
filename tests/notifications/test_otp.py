"""One-time codes end to end: an identity-style ``notification.otp`` event, committed, then
the outbox dispatcher, the OTP consumer and a provider (a real local SMTP server for e-mail,
the development sink for SMS)."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

import orjson
import pytest
from sqlalchemy import select, text, update

from bankwallet.core import outbox
from bankwallet.core.crypto import get_keyring
from bankwallet.core.db import Database, utcnow
from bankwallet.core.logging import JsonFormatter
from bankwallet.core.outbox import OutboxEvent
from bankwallet.notifications import service, tasks
from bankwallet.notifications.models import DEV_MESSAGE_CONTEXT, DevMessage
from notifications.conftest import SmtpServer, new_code, new_email, new_phone

ZH_SMS = "【bankwallet】验证码 {code}，5 分钟内有效。请勿告诉他人。"
EN_SMS = "bankwallet code: {code}. Valid for 5 minutes. Never share it."


@pytest.fixture(autouse=True)
def only_notification_consumers():
    """Other tests' consumers (and their retries) stay out of these dispatches."""
    saved = {topic: dict(consumers) for topic, consumers in outbox._REGISTRY.items()}
    outbox._REGISTRY.clear()
    outbox.consumer(tasks.OTP_TOPIC, name="notifications.send_otp")(tasks.send_otp)
    yield
    outbox._REGISTRY.clear()
    outbox._REGISTRY.update(saved)


async def publish_otp(db: Database, *, channel: str, destination: str, code: str,
                      locale: str = "zh_CN", purpose: str = "login") -> uuid.UUID:
    async with db.unit_of_work() as session:
        return await outbox.publish(session, tasks.OTP_TOPIC,
                                    {"purpose": purpose, "channel": channel, "locale": locale},
                                    sensitive={"destination": destination, "code": code})


async def event_row(db: Database, event_id: uuid.UUID) -> OutboxEvent:
    async with db.unit_of_work() as session:
        return await session.get(OutboxEvent, event_id)


async def dev_messages_to(db: Database, destination: str) -> list[dict]:
    """Every stored development message to ``destination`` (not just the inbox's last 50)."""
    keyring = get_keyring()
    async with db.unit_of_work() as session:
        rows = (await session.scalars(select(DevMessage))).all()
    opened = [{"channel": row.channel,
               **orjson.loads(keyring.decrypt(row.sealed, context=DEV_MESSAGE_CONTEXT))}
              for row in rows]
    return [m for m in opened if m["to"] == destination]


@pytest.mark.parametrize(("locale", "subject", "line"), [
    ("en", "Your bankwallet verification code", EN_SMS),
    ("zh_CN", "bankwallet 验证码", ZH_SMS),
])
async def test_otp_email_is_sent_through_smtp_once(
        db: Database, smtp_server: SmtpServer, configure, locale: str, subject: str,
        line: str) -> None:
    configure(email_backend="smtp", smtp_host="127.0.0.1", smtp_port=smtp_server.port,
              smtp_starttls=False, email_from="bankwallet <no-reply@bank.example>")
    address, code = new_email(), new_code()
    event_id = await publish_otp(db, channel="email", destination=address, code=code,
                                 locale=locale)

    await outbox.dispatch_once(db)
    await outbox.dispatch_once(db)  # already delivered: nothing is sent again

    (message,) = smtp_server.to(address)
    assert message["Subject"] == subject
    assert message["To"] == address
    assert message["From"] == "bankwallet <no-reply@bank.example>"
    assert message["Message-ID"] and message["Date"]
    body = message.get_content()
    assert body.splitlines()[0] == line.format(code=code)
    assert (await event_row(db, event_id)).dispatched_at is not None


async def test_otp_sms_goes_to_the_dev_sink_sealed(db: Database, configure) -> None:
    configure(sms_backend="dev")
    phone, code = new_phone(), new_code()
    await publish_otp(db, channel="sms", destination=phone, code=code)

    await outbox.dispatch_once(db)
    await outbox.dispatch_once(db)

    (message,) = await dev_messages_to(db, phone)
    assert message == {"channel": "sms", "to": phone, "text": ZH_SMS.format(code=code)}
    async with db.engine.connect() as conn:
        dump = repr((await conn.execute(text("SELECT * FROM notifications_dev_message"))).all())
    assert phone not in dump and phone.lstrip("+") not in dump and code not in dump


async def test_otp_email_to_the_dev_sink_in_development(db: Database, configure) -> None:
    configure(email_backend="dev")
    address, code = new_email(), new_code()
    await publish_otp(db, channel="email", destination=address, code=code, locale="en")
    await outbox.dispatch_once(db)
    (message,) = await dev_messages_to(db, address)
    assert message["subject"] == "Your bankwallet verification code"
    assert EN_SMS.format(code=code) in message["text"]


async def test_unreachable_smtp_retries_later_without_leaking(
        db: Database, smtp_server: SmtpServer, configure,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    from conftest import free_port

    configure(email_backend="smtp", smtp_host="127.0.0.1", smtp_port=free_port(),
              smtp_starttls=False, smtp_timeout_s=2)
    address, code = new_email(), new_code()
    event_id = await publish_otp(db, channel="email", destination=address, code=code)

    await outbox.dispatch_once(db)
    row = await event_row(db, event_id)
    assert row.dispatched_at is None and row.attempts == 1
    assert row.last_error.startswith("notifications.send_otp: SendFailed: email not sent: smtp_")
    logged = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    for secret in (address, code):
        assert secret not in row.last_error and secret not in logged

    # The server is back: the retry delivers, once.
    configure(email_backend="smtp", smtp_host="127.0.0.1", smtp_port=smtp_server.port,
              smtp_starttls=False)
    async with db.unit_of_work() as session:
        await session.execute(update(OutboxEvent).where(OutboxEvent.id == event_id)
                              .values(next_attempt_at=utcnow()))
    await outbox.dispatch_once(db)
    assert len(smtp_server.to(address)) == 1
    assert (await event_row(db, event_id)).dispatched_at is not None


async def test_refused_recipient_is_not_retried(db: Database, smtp_server: SmtpServer,
                                                configure,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    configure(email_backend="smtp", smtp_host="127.0.0.1", smtp_port=smtp_server.port,
              smtp_starttls=False)
    address = new_email()
    smtp_server.refuse.add(address)
    event_id = await publish_otp(db, channel="email", destination=address, code=new_code())

    await outbox.dispatch_once(db)
    row = await event_row(db, event_id)
    assert row.dispatched_at is not None and row.attempts == 1  # a 5xx will not get better
    assert smtp_server.to(address) == []
    (record,) = [r for r in caplog.records if r.getMessage() == "otp could not be sent"]
    assert record.error == "smtp_550"


async def test_code_expired_before_sending_is_dropped(db: Database, configure) -> None:
    configure(sms_backend="dev")
    phone = new_phone()
    event_id = await publish_otp(db, channel="sms", destination=phone, code=new_code())
    async with db.unit_of_work() as session:  # it waited out its validity in the queue
        await session.execute(update(OutboxEvent).where(OutboxEvent.id == event_id)
                              .values(created_at=utcnow() - dt.timedelta(minutes=6)))
    await outbox.dispatch_once(db)
    assert await dev_messages_to(db, phone) == []
    assert (await event_row(db, event_id)).dispatched_at is not None


@pytest.mark.parametrize(("channel", "destination", "code"), [
    ("fax", "+8613800138000", "123456"),
    ("sms", "not-a-number", "123456"),
    ("email", "no-at-sign", "123456"),
    ("sms", "+8613800138000", "12ab56"),
])
async def test_malformed_otp_events_are_dropped_not_retried(
        db: Database, configure, channel: str, destination: str, code: str) -> None:
    configure(sms_backend="dev", email_backend="dev")
    event_id = await publish_otp(db, channel=channel, destination=destination, code=code)
    await outbox.dispatch_once(db)
    row = await event_row(db, event_id)
    assert row.dispatched_at is not None and row.attempts == 1
    assert await dev_messages_to(db, destination) == []


def test_otp_texts_in_both_languages() -> None:
    assert service.otp_text("123456", locale="zh_CN", minutes=5) == ZH_SMS.format(code="123456")
    assert service.otp_text("123456", locale="en", minutes=5) == EN_SMS.format(code="123456")
    subject, body = service.otp_email("123456", locale="zh_CN", minutes=10)
    assert subject == "bankwallet 验证码"
    assert "10 分钟内有效" in body and "请勿" in body
