"""A wallet process killed between "the bank debited the customer" and "the ledger posted
it" (no webhook reaches it: it is dead) heals with ``bankwallet reconcile``: exactly one
ledger effect, the right balance, a clean ledger; reconciliation then has nothing to do."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest
from conftest import create_sqlite_database

from .conftest import LiveWallet, db_rows, ledger_balance

BANK_START = 1_000_00


def test_a_crash_between_the_bank_and_the_ledger_heals_by_reconciliation(
        crashing: LiveWallet) -> None:
    live = crashing
    user_id, h = live.new_user()
    account, number = live.link(h, balance_minor=BANK_START)
    with pytest.raises(httpx.TransportError):
        live.move("topup", h, account, 25_00)
    wallet = live.processes[-1].process
    assert wallet.wait(timeout=10) == 137

    (row,) = db_rows(live.db_url, "SELECT * FROM funding_movement")
    movement_id = str(uuid.UUID(str(row["id"])))
    assert (row["status"], row["instruction_id"], row["bank_attempts"]) == ("pending", None, 1)
    deadline = time.monotonic() + 10
    while live.bank_account(number)["balance_minor"] != BANK_START - 25_00:
        assert time.monotonic() < deadline, "the bank never settled the debit"
        time.sleep(0.05)
    assert set(live.ledger_effects(movement_id)) == {"hold"}
    assert ledger_balance(live.db_url, user_id).incoming_minor == 25_00

    healed = live.cli("reconcile", "--database-url", live.db_url)
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert f"RESOLVED  topup {movement_id}" in healed.stdout
    assert set(live.ledger_effects(movement_id)) == {"hold", "post"}
    assert live.transfers_mentioning(movement_id) == 2
    balance = ledger_balance(live.db_url, user_id)
    assert (balance.posted_minor, balance.incoming_minor) == (25_00, 0)
    (row,) = db_rows(live.db_url, "SELECT status, instruction_id FROM funding_movement")
    assert row["status"] == "succeeded" and row["instruction_id"]

    assert ledger_verified(live.db_url)
    again = reconcile_in_process(live)
    assert again.clean and not [line for line in again.lines if line.level == "resolved"]
    assert set(live.ledger_effects(movement_id)) == {"hold", "post"}


def ledger_verified(url: str) -> bool:
    from bankwallet.core.db import make_engine
    from bankwallet.ledger.verify import verify

    async def run() -> bool:
        engine = make_engine(url)
        try:
            return (await verify(engine)).ok
        finally:
            await engine.dispose()

    return asyncio.run(run())


def reconcile_in_process(live: LiveWallet):
    import datetime as dt

    from bankwallet.core.db import utcnow
    from bankwallet.funding.reconcile import run_reconcile
    from bankwallet.settings import Settings

    settings = Settings(database_url=live.db_url, env="test",
                        corebanking_url=live.bank_url, corebanking_secret=live.secret)
    return asyncio.run(run_reconcile(settings, live.db_url,
                                     since=utcnow() - dt.timedelta(hours=1)))


def test_reconcile_needs_a_bank(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from bankwallet import cli
    from bankwallet.settings import get_settings

    url = create_sqlite_database(tmp_path)
    monkeypatch.setenv("BANKWALLET_DATABASE_URL", url)  # restored after: the CLI sets it
    monkeypatch.delenv("BANKWALLET_COREBANKING_URL", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli.app, ["reconcile", "--database-url", url])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2 and "not configured" in result.output
