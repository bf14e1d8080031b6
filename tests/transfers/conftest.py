"""Fixtures of the transfers tests: one app per module and database (starting an app per test
costs more than most of these tests), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from identity.test_api import CLIENT_ADDRESSES, key_file  # noqa: F401 - the session's keys

from bankwallet.app import create_app
from bankwallet.settings import Settings


@pytest.fixture(scope="module")
def client(db_url: str, key_file) -> Iterator[TestClient]:  # noqa: F811
    from bankwallet.core import crypto
    from bankwallet.settings import get_settings

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BANKWALLET_ENV", "test")
        get_settings.cache_clear()
        crypto.reset_keyring()
        app = create_app(Settings(database_url=db_url, env="test"), run_workers=False)
        with TestClient(app, client=(next(CLIENT_ADDRESSES), 50000)) as test_client:
            yield test_client
        crypto.reset_keyring()
        get_settings.cache_clear()


@pytest.fixture(autouse=True)
def no_cookies(request: pytest.FixtureRequest) -> None:
    """Tests share the module's client: no test inherits another's web session."""
    if "client" in request.fixturenames:
        request.getfixturevalue("client").cookies.clear()
