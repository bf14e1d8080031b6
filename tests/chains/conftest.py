"""Apps for the chains tests: each test starts the apps it needs (settings differ per test:
which nodes, which tokens) and they are closed, keys and settings reset, when it ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bankwallet.app import create_app
from bankwallet.settings import Settings
from tests.identity.test_api import CLIENT_ADDRESSES, key_file  # noqa: F401 - the keys


@contextmanager
def app_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Settings], TestClient]]:
    """``start(settings)`` gives a running app's client; all are closed at the end."""
    from bankwallet.core import crypto
    from bankwallet.settings import get_settings

    monkeypatch.setenv("BANKWALLET_ENV", "test")
    get_settings.cache_clear()
    crypto.reset_keyring()
    clients: list[TestClient] = []

    def start(settings: Settings) -> TestClient:
        test_client = TestClient(create_app(settings, run_workers=False),
                                 client=(next(CLIENT_ADDRESSES), 50000))
        test_client.__enter__()
        clients.append(test_client)
        return test_client

    try:
        yield start
    finally:
        for test_client in clients:
            test_client.__exit__(None, None, None)
        crypto.reset_keyring()
        get_settings.cache_clear()


@pytest.fixture
def node_client(sqlite_url: str, key_file: Path,  # noqa: F811
                monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., TestClient]]:
    """``node_client(networks, **settings)``: an app on SQLite talking to these chain nodes."""
    with app_clients(monkeypatch) as start:
        def make(networks: dict[str, str], **settings: Any) -> TestClient:
            return start(Settings(database_url=sqlite_url, env="test", chain_networks=networks,
                                  chain_rpc_timeout_s=5.0, **settings))

        yield make
