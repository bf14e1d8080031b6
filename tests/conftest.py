"""Shared fixtures: databases (SQLite always; PostgreSQL when reachable, required under CI)."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bankwallet.core.db import make_engine
from bankwallet.core.migrate import upgrade
from bankwallet.ledger.store import SqlLedgerStore

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_URL = os.environ.get("BANKWALLET_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(autouse=True)
def _settings_and_keyring_from_the_environment() -> Iterator[None]:
    """Each test starts from the environment's settings and key file, as a server process it
    starts would, and leaves the environment as it found it: a command run in-process (its
    ``--database-url`` sets BANKWALLET_DATABASE_URL) or a keyring cached by an earlier test
    must not leak into the next one."""
    from bankwallet.core import crypto
    from bankwallet.settings import get_settings

    saved = {k: v for k, v in os.environ.items() if k.startswith("BANKWALLET_")}
    get_settings.cache_clear()
    crypto.reset_keyring()
    yield
    for name in [k for k in os.environ if k.startswith("BANKWALLET_") and k not in saved]:
        del os.environ[name]
    os.environ.update(saved)
    get_settings.cache_clear()


def skip_or_fail(reason: str) -> None:
    """Locally a missing server skips loudly; under CI it is an error."""
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(f"SKIPPED LOUDLY: {reason}")


def _pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


async def _pg_admin(statement: str) -> None:
    engine = make_engine(PG_ADMIN_URL)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql(statement)
    finally:
        await engine.dispose()


def create_pg_database() -> str:
    """A fresh, migrated database; returns its URL."""
    name = f"bankwallet_test_{os.getpid()}_{secrets.token_hex(4)}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    return url


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def create_sqlite_database(directory: Path) -> str:
    url = f"sqlite+aiosqlite:///{directory / f'bw-{secrets.token_hex(4)}.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    if not _pg_reachable():
        skip_or_fail("PostgreSQL is not reachable on 127.0.0.1:5432 (install and start "
                     "postgresql, trust auth for user postgres)")
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return create_sqlite_database(tmp_path_factory.mktemp("sqlite"))


@pytest.fixture(params=["sqlite", "postgres"], scope="session")
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes this runs on both databases (shared per session)."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def fresh_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own, for tests that break or count everything (tamper, verify)."""
    kind = getattr(request, "param", "sqlite")
    if kind == "postgres":
        if not _pg_reachable():
            skip_or_fail("PostgreSQL is not reachable on 127.0.0.1:5432")
        url = create_pg_database()
        yield url
        drop_pg_database(url)
    else:
        yield create_sqlite_database(tmp_path)


@pytest.fixture
async def ledger(db_url: str) -> AsyncIterator[SqlLedgerStore]:
    engine = make_engine(db_url)
    store = SqlLedgerStore(engine, batch_max=500)
    yield store
    await store.close()
    await engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_id() -> uuid.UUID:
    return uuid.uuid4()


PYTHON = sys.executable
