"""The messaging providers: results instead of exceptions, and nothing sent in the clear."""

from __future__ import annotations

import pytest

from bankwallet.connectors.messaging.base import (
    EmailSender,
    SendStatus,
    SmsSender,
    is_e164,
    is_email_address,
)
from bankwallet.connectors.messaging.dev_sink import DevEmailSender, DevSmsSender
from bankwallet.connectors.messaging.smtp import SmtpEmailSender
from conftest import free_port
from notifications.conftest import SmtpServer, new_email

FROM = "bankwallet <no-reply@bank.example>"


def smtp(port: int, **kwargs) -> SmtpEmailSender:
    return SmtpEmailSender(host="127.0.0.1", port=port, sender=FROM,
                           **{"starttls": False, "timeout_s": 2, **kwargs})


def test_providers_implement_the_interfaces() -> None:
    assert isinstance(smtp(25), EmailSender)
    assert isinstance(DevEmailSender(None, sender=FROM), EmailSender)  # type: ignore[arg-type]
    assert isinstance(DevSmsSender(None), SmsSender)  # type: ignore[arg-type]


async def test_smtp_sends_text_and_html(smtp_server: SmtpServer) -> None:
    address = new_email()
    result = await smtp(smtp_server.port).send(address, "Hello", "plain body",
                                               html="<p>html body</p>")
    assert result.status is SendStatus.SENT and result.provider_message_id
    (message,) = smtp_server.to(address)
    assert message.get_body(("plain",)).get_content().strip() == "plain body"
    assert message.get_body(("html",)).get_content().strip() == "<p>html body</p>"
    assert message["Message-ID"] == result.provider_message_id


async def test_smtp_requires_starttls_when_configured(smtp_server: SmtpServer) -> None:
    """A server without STARTTLS gets nothing: codes never cross the network in the clear."""
    address = new_email()
    result = await smtp(smtp_server.port, starttls=True).send(address, "s", "secret 123456")
    assert result.status is SendStatus.FAILED and result.retryable
    assert smtp_server.received == []


async def test_smtp_unreachable_is_a_retryable_result() -> None:
    result = await smtp(free_port()).send(new_email(), "s", "t")
    assert (result.status, result.retryable) == (SendStatus.FAILED, True)
    assert result.error and "@" not in result.error


@pytest.mark.parametrize("address", ["no-at", "a@b\r\nBcc: x@evil.example", "a b@c.example",
                                     "<a@b.example>", "a@b@c.example", ""])
async def test_smtp_refuses_bad_recipients_before_connecting(address: str) -> None:
    result = await smtp(free_port()).send(address, "s", "t")
    assert (result.status, result.error, result.retryable) == (
        SendStatus.FAILED, "invalid_recipient", False)


@pytest.mark.parametrize(("number", "ok"), [("+8613800138000", True), ("+14155550123", True),
                                            ("8613800138000", False), ("+0123456789", False),
                                            ("+86 138 0013 8000", False), ("+1234", False)])
def test_e164(number: str, ok: bool) -> None:
    assert is_e164(number) is ok


def test_email_address_sanity_check() -> None:
    assert is_email_address("alice@example.com")
    assert not is_email_address("alice@example.com\n")
    assert not is_email_address("x" * 250 + "@example.com")
