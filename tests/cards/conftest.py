"""Fixtures of the card vault tests: the app on SQLite and PostgreSQL (``db_url``) with its card
gateway pointed at a real sandbox gateway process (``tests/connectors_gateway``), and helpers
to sign up, age or refresh a second factor, and find a card's verification at the gateway."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from connectors_gateway.conftest import (  # noqa: F401 (fixtures)
    FUTURE_YEAR,
    SandboxGateway,
    eventually,
    sandbox_gateway,
    webhook_receiver,
)
from fastapi.testclient import TestClient
from identity.test_api import (  # noqa: F401 (fixtures)
    CLIENT_ADDRESSES,
    bearer,
    key_file,
    sign_up,
    unique_phone,
)
from sqlalchemy import update

from bankwallet.app import create_app
from bankwallet.connectors.gateway.base import luhn_check_digit
from bankwallet.settings import Settings

CARDS = "/api/v1/cards"
WEBHOOKS = "/api/v1/cards/gateway/webhooks"


def _app_client(db_url: str, gateway: SandboxGateway | None,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from bankwallet.core import crypto
    from bankwallet.settings import get_settings

    monkeypatch.setenv("BANKWALLET_ENV", "test")
    get_settings.cache_clear()
    crypto.reset_keyring()
    settings = Settings(database_url=db_url, env="test",
                        gateway_url=gateway.url if gateway else None,
                        gateway_secret=gateway.secret if gateway else None)
    app = create_app(settings, run_workers=False)
    with TestClient(app, client=(next(CLIENT_ADDRESSES), 50000)) as test_client:
        yield test_client
    crypto.reset_keyring()
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sign-ups here are scaffolding: argon2 at its cheapest keeps the folder fast (the
    identity tests cover the real parameters)."""
    from argon2 import PasswordHasher

    from bankwallet.identity import passwords

    monkeypatch.setattr(passwords, "_hasher",
                        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def client(db_url: str, key_file: Path, sandbox_gateway: SandboxGateway,  # noqa: F811
           monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app, its card gateway a client of the sandbox gateway process."""
    yield from _app_client(db_url, sandbox_gateway, monkeypatch)


@pytest.fixture
def pg_client(pg_url: str, key_file: Path, sandbox_gateway: SandboxGateway,  # noqa: F811
              monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app on PostgreSQL only: concurrency claims are made there."""
    yield from _app_client(pg_url, sandbox_gateway, monkeypatch)


@pytest.fixture
def unconnected_client(db_url: str, key_file: Path,  # noqa: F811
                       monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app without a card gateway (BANKWALLET_GATEWAY_URL unset)."""
    monkeypatch.delenv("BANKWALLET_GATEWAY_URL", raising=False)
    yield from _app_client(db_url, None, monkeypatch)


def new_user(client: TestClient) -> dict:
    """A signed-up customer whose session has just proven a second factor (the sign-up
    code counts)."""
    return sign_up(client, unique_phone())


def card_body(number: str = "4242424242424242", **changes: object) -> dict:
    body = {"number": number, "exp_month": 12, "exp_year": FUTURE_YEAR,
            "cvc": "7391" if number.startswith(("34", "37")) else "739",
            "holder_name": "Li Lei"}
    return {**body, **changes}


def random_visa() -> str:
    body = "4" + "".join(secrets.choice("0123456789") for _ in range(14))
    return body + luhn_check_digit(body)


def add(client: TestClient, token: str, number: str = "4242424242424242",
        **changes: object) -> httpx.Response:
    return client.post(CARDS, json=card_body(number, **changes), headers=bearer(token))


def set_second_factor(client: TestClient, user_id: str, at: dt.datetime | None) -> None:
    """Every session of the user proved a second factor ``at`` (None: never)."""
    from bankwallet.identity.models import Session

    async def run() -> None:
        async with client.app.state.db.unit_of_work() as session:
            await session.execute(update(Session).where(Session.user_id == uuid.UUID(user_id))
                                  .values(second_factor_at=at))

    client.portal.call(run)


def make_stale(client: TestClient, user_id: str) -> None:
    set_second_factor(client, user_id, dt.datetime(2020, 1, 1, tzinfo=dt.UTC))


def make_fresh(client: TestClient, user_id: str) -> None:
    set_second_factor(client, user_id, dt.datetime.now(dt.UTC))


def verification_of(gateway: SandboxGateway, card_id: str) -> dict:
    """The gateway's verification authorisation of a card (its reference is the card id)."""
    found = httpx.get(f"{gateway.url}/v1/payments", params={"reference": card_id}).json()
    (payment,) = found["payments"]
    return payment


def answer_challenge(url: str, choice: str) -> str:
    """Press "Complete" or "Fail" on the gateway's 3-D Secure page; returns where the
    customer is sent back to."""
    page = httpx.get(url)
    assert page.status_code == 200 and f'value="{choice}"' in page.text
    answer = httpx.post(url, data={"result": choice}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


__all__ = ["CARDS", "WEBHOOKS", "add", "answer_challenge", "bearer", "card_body", "eventually",
           "make_fresh", "make_stale", "new_user", "random_visa", "verification_of"]
