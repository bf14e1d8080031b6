"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bankwallet.core.db import make_engine
from bankwallet.models import metadata


async def test_migrations_match_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))
    finally:
        await engine.dispose()
    assert diff == [], f"models and migrations differ; add a migration: {diff}"


async def test_migrating_twice_changes_nothing(sqlite_url: str) -> None:
    import asyncio

    from bankwallet.core.migrate import upgrade

    await asyncio.to_thread(upgrade, sqlite_url)  # already at head: a no-op, no error
