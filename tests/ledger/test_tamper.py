"""Tamper evidence: edits made by hand in the database are found by `ledger verify`, which
names the first bad transfer or account and exits 1."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from sqlalchemy import text

from bankwallet.core.db import make_engine
from bankwallet.ledger.store import SqlLedgerStore
from bankwallet.ledger.types import (
    AccountFlags,
    AccountIn,
    TransferFlags,
    TransferIn,
    chain_hash,
)
from bankwallet.ledger.verify import verify

pytestmark = pytest.mark.parametrize("fresh_db_url", ["sqlite", "postgres"], indirect=True)


async def populate(url: str) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    engine = make_engine(url)
    store = SqlLedgerStore(engine)
    try:
        bank = AccountIn(uuid.uuid4(), "CNY", "bank_settlement")
        wallets = [AccountIn(uuid.uuid4(), "CNY", "customer_wallet",
                             int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)) for _ in range(3)]
        await store.create_accounts([bank, *wallets])
        transfers = [TransferIn(uuid.uuid4(), bank.id, w.id, 10_000, "CNY", 1) for w in wallets]
        transfers += [TransferIn(uuid.uuid4(), wallets[i].id, wallets[(i + 1) % 3].id, 700 + i,
                                 "CNY", 2) for i in range(3)]
        hold = TransferIn(uuid.uuid4(), wallets[0].id, wallets[1].id, 500, "CNY", 3,
                          flags=TransferFlags.PENDING, timeout_s=3600)
        transfers += [hold, TransferIn(uuid.uuid4(), pending_id=hold.id,
                                       flags=TransferFlags.POST_PENDING, amount=200)]
        assert all(o.ok for o in await store.create_transfers(transfers))
        return [w.id for w in [bank, *wallets]], [t.id for t in transfers]
    finally:
        await store.close()
        await engine.dispose()


async def run_sql(url: str, statement: str, **params: object) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement), params)
    finally:
        await engine.dispose()


async def problems(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        return (await verify(engine)).problems
    finally:
        await engine.dispose()


def cli_verify(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bankwallet", "ledger", "verify",
                           "--database-url", url], capture_output=True, text=True, timeout=120)


def sql_id(url: str, value: uuid.UUID) -> str:
    return value.hex if url.startswith("sqlite") else str(value)


async def test_a_clean_ledger_verifies(fresh_db_url: str) -> None:
    await populate(fresh_db_url)
    assert await problems(fresh_db_url) == []
    result = cli_verify(fresh_db_url)
    assert result.returncode == 0, result.stderr
    assert "clean: 8 transfers, 4 accounts" in result.stdout


async def test_an_edited_amount_is_found(fresh_db_url: str) -> None:
    accounts, transfers = await populate(fresh_db_url)
    await run_sql(fresh_db_url, "UPDATE ledger_transfer SET amount = amount + 1 WHERE seq = 4")
    found = await problems(fresh_db_url)
    assert any(str(transfers[3]) in p and "hash" in p for p in found), found
    # Both accounts of that transfer no longer match their history either.
    assert any(str(accounts[1]) in p for p in found) and any(str(accounts[2]) in p for p in found)
    result = cli_verify(fresh_db_url)
    assert result.returncode == 1
    assert str(transfers[3]) in result.stderr


async def test_an_edited_balance_is_found(fresh_db_url: str) -> None:
    accounts, _ = await populate(fresh_db_url)
    await run_sql(fresh_db_url, "UPDATE ledger_account SET credits_posted = credits_posted + 100 "
                                "WHERE id = :id", id=sql_id(fresh_db_url, accounts[2]))
    found = await problems(fresh_db_url)
    assert len([p for p in found if p.startswith(f"account {accounts[2]}")]) == 1, found
    assert any(p.startswith("ledger CNY") for p in found), found  # Σ debits ≠ Σ credits now
    result = cli_verify(fresh_db_url)
    assert result.returncode == 1 and str(accounts[2]) in result.stderr


async def test_a_deleted_transfer_is_found(fresh_db_url: str) -> None:
    _, transfers = await populate(fresh_db_url)
    await run_sql(fresh_db_url, "DELETE FROM ledger_transfer WHERE seq = 2")
    found = await problems(fresh_db_url)
    assert any(str(transfers[2]) in p and "missing" in p for p in found), found


async def test_a_rewritten_hash_is_found(fresh_db_url: str) -> None:
    """An attacker who edits a row and recomputes its hash breaks the link to the next row."""
    _, transfers = await populate(fresh_db_url)
    engine = make_engine(fresh_db_url)
    store = SqlLedgerStore(engine)
    try:
        found = await store.lookup_transfers([transfers[3], transfers[4]])
    finally:
        await store.close()
        await engine.dispose()
    previous, victim = found[transfers[3]], found[transfers[4]]
    victim.code = 77
    forged = chain_hash(previous.hash, victim)
    await run_sql(fresh_db_url, "UPDATE ledger_transfer SET code = 77, hash = :h WHERE seq = 5",
                  h=forged)
    found_problems = await problems(fresh_db_url)
    assert any(str(transfers[5]) in p for p in found_problems), found_problems
