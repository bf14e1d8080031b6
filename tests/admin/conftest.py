"""The back-office tests get databases of their own and one key file.

They list every pending KYC application and the whole audit log, so rows other test modules
encrypted under their own test keys must not be in the database they read.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import _pg_reachable, create_pg_database, create_sqlite_database, drop_pg_database, skip_or_fail
from identity.test_api import key_file  # noqa: F401 - one key file for every test here


@pytest.fixture(scope="session")
def admin_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return create_sqlite_database(tmp_path_factory.mktemp("admin-sqlite"))


@pytest.fixture(scope="session")
def admin_pg_url() -> Iterator[str]:
    if not _pg_reachable():
        skip_or_fail("PostgreSQL is not reachable on 127.0.0.1:5432")
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(params=["sqlite", "postgres"], scope="session")
def db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("admin_sqlite_url" if request.param == "sqlite"
                                   else "admin_pg_url")
