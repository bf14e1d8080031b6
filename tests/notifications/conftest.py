"""Fixtures of the notifications tests: databases, a real local SMTP server, settings."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from bankwallet.core.db import Database
from bankwallet.notifications import tasks
from bankwallet.settings import Settings
from conftest import free_port


@dataclass
class SmtpServer:
    """An aiosmtpd server on a free local port that keeps what it receives."""

    port: int
    received: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)  # recipients answered with 550

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.received.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for rcpt, m in self.received if address in rcpt]


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(port=free_port())
    controller = Controller(server, hostname="127.0.0.1", port=server.port)
    controller.start()
    yield server
    controller.stop()


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    yield database
    await database.dispose()


@pytest.fixture
def configure() -> Iterator:
    """Point the notification providers at settings of the test's choosing."""

    def apply(**overrides) -> Settings:
        settings = Settings(env="test", log_json=False, **overrides)
        tasks.configure(settings)
        return settings

    yield apply
    tasks.configure(None)


def new_email() -> str:
    return f"u{secrets.token_hex(6)}@example.com"


def new_phone() -> str:
    return "+86139" + "".join(secrets.choice("0123456789") for _ in range(8))


def new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"
