"""Operator commands: `audit verify` and `worker`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text

from bankwallet.core import audit, crypto, outbox
from bankwallet.core.db import Database
from tests.conftest import create_sqlite_database


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bankwallet", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=60)


def test_audit_verify_exits_1_on_an_edited_event(tmp_path: Path) -> None:
    url = create_sqlite_database(tmp_path)

    async def write() -> None:
        db = Database(url)
        async with db.unit_of_work() as session:
            for i in range(3):
                await audit.record(session, action="test.thing.done", data={"i": i})
        await db.dispose()

    asyncio.run(write())
    env = {"BANKWALLET_ENV": "test", "BANKWALLET_KEY_FILE": str(tmp_path / "keys.json")}
    clean = run_cli("audit", "verify", "--database-url", url, env=env)
    assert clean.returncode == 0 and "clean" in clean.stdout

    async def tamper() -> None:
        db = Database(url)
        async with db.engine.begin() as conn:
            await conn.execute(text("UPDATE core_audit_event SET action = 'test.thing.undone' "
                                    "WHERE seq = 2"))
        await db.dispose()

    asyncio.run(tamper())
    bad = run_cli("audit", "verify", "--database-url", url, env=env)
    assert bad.returncode == 1 and "BAD" in bad.stderr


def test_worker_delivers_outbox_events_without_http(tmp_path: Path) -> None:
    url = create_sqlite_database(tmp_path)
    key_file = tmp_path / "keys.json"
    env = {"BANKWALLET_ENV": "test", "BANKWALLET_KEY_FILE": str(key_file),
           "BANKWALLET_DATABASE_URL": url}
    os.environ.update(env)
    from bankwallet.settings import get_settings

    get_settings.cache_clear()
    crypto.reset_keyring()
    try:
        async def publish() -> None:
            db = Database(url)
            async with db.unit_of_work() as session:
                await outbox.publish(session, "notification.otp",
                                     {"purpose": "signup", "channel": "sms", "locale": "en"},
                                     sensitive={"destination": "+8613800138000",
                                                "code": "424242"})
            await db.dispose()

        asyncio.run(publish())
        process = subprocess.Popen([sys.executable, "-m", "bankwallet", "worker"],
                                   env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            delivered = 0
            while time.monotonic() < deadline and not delivered:
                time.sleep(0.3)
                delivered = asyncio.run(_count(url))
            assert delivered == 1
        finally:
            process.terminate()
            process.wait(timeout=10)
    finally:
        for key in env:
            os.environ.pop(key, None)
        get_settings.cache_clear()
        crypto.reset_keyring()


async def _count(url: str) -> int:
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            return (await conn.execute(text("SELECT count(*) FROM notifications_dev_message"))
                    ).scalar_one()
    finally:
        await db.dispose()
