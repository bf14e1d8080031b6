"""Fixtures of the fx tests: one app per test module and database (SQLite and PostgreSQL, via
``db_url``), a PostgreSQL-only client for concurrency, and cheap password hashing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from identity.test_api import CLIENT_ADDRESSES, key_file  # noqa: F401

from bankwallet.app import create_app
from bankwallet.identity import passwords
from bankwallet.settings import Settings


def _app_client(database_url: str) -> Iterator[TestClient]:
    from bankwallet.core import crypto
    from bankwallet.settings import get_settings

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BANKWALLET_ENV", "test")
        get_settings.cache_clear()
        crypto.reset_keyring()
        app = create_app(Settings(database_url=database_url, env="test"), run_workers=False)
        with TestClient(app) as test_client:
            yield test_client
        crypto.reset_keyring()
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def _module_client(db_url: str, key_file: Path) -> Iterator[TestClient]:  # noqa: F811
    # One app per module: each test gets fresh customers, so sharing the app is safe and
    # keeps the folder fast.
    yield from _app_client(db_url)


@pytest.fixture(scope="module")
def _module_pg_client(pg_url: str, key_file: Path) -> Iterator[TestClient]:  # noqa: F811
    yield from _app_client(pg_url)


def _fresh(client: TestClient) -> TestClient:
    client.cookies.clear()
    client.headers.pop("accept-language", None)
    # Each test calls from an address of its own (RFC 5737), so per-address throttles (sign-up)
    # never carry over between tests sharing the app.
    client._transport.client = (next(CLIENT_ADDRESSES), 50000)
    return client


@pytest.fixture
def client(_module_client: TestClient) -> TestClient:
    return _fresh(_module_client)


@pytest.fixture
def pg_client(_module_pg_client: TestClient) -> TestClient:
    return _fresh(_module_pg_client)


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sign-ups and logins are only scaffolding here: a cheap argon2id keeps the folder fast
    (the identity tests cover the real parameters)."""
    monkeypatch.setattr(passwords, "_hasher",
                        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
