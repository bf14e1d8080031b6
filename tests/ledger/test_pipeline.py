"""The PostgreSQL pipeline: batch N+1 is written while batch N is still committing.

Regression: the chain head used to be advanced by ``UPDATE … WHERE seq = <base>``. Under READ
COMMITTED that WHERE is tested against the last *committed* head, so when batch N had written
its head but not yet committed, batch N+1's update matched nothing (instead of waiting for
N's row lock) and failed with ``ChainMoved`` — an HTTP 500 for every caller in the batch.
Here every batch's commit is held back a little, so N+1 always writes before N commits."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from bankwallet.core.db import make_engine
from bankwallet.ledger.store import SqlLedgerStore
from bankwallet.ledger.types import AccountFlags, AccountIn, TransferIn
from bankwallet.ledger.verify import verify

CURRENCY = "CNY"


@pytest.mark.postgres
@pytest.mark.parametrize("fresh_db_url", ["postgres"], indirect=True)
async def test_the_next_batch_writes_before_the_previous_one_commits(
        fresh_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(fresh_db_url)
    store = SqlLedgerStore(engine, pipeline=2, batch_max=4)  # many small batches
    original = SqlLedgerStore._fly_in

    async def slow_to_commit(self, flight, io, prev):  # type: ignore[no-untyped-def]
        outcomes = await original(self, flight, io, prev)
        await asyncio.sleep(0.02)  # written, not yet committed: the next batch writes now
        return outcomes

    monkeypatch.setattr(SqlLedgerStore, "_fly_in", slow_to_commit)
    try:
        flags = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
        bank = AccountIn(uuid.uuid4(), CURRENCY, "bank_settlement")
        # Pairs that share no account: a batch never waits on another batch's row locks, only
        # (if at all) on the chain head.
        payers = [AccountIn(uuid.uuid4(), CURRENCY, "customer_wallet", flags) for _ in range(40)]
        payees = [AccountIn(uuid.uuid4(), CURRENCY, "customer_wallet", flags) for _ in range(40)]
        await store.create_accounts([bank, *payers, *payees])
        funded = await store.create_transfers([TransferIn(uuid.uuid4(), bank.id, p.id, 10_000,
                                                          CURRENCY, 1) for p in payers])
        assert all(o.ok for o in funded)

        async def one(n: int) -> bool:
            (outcome,) = await store.create_transfers([TransferIn(
                uuid.uuid4(), payers[n].id, payees[n].id, 100 + n, CURRENCY, 1)])
            return outcome.ok

        results = []
        for _ in range(6):  # waves of concurrent single-transfer calls: many small batches
            results += await asyncio.gather(*(one(n) for n in range(40)))
        assert all(results) and len(results) == 240
        assert store.batches >= 60, "the calls should have gone through many batches"
        balances = await store.lookup_accounts([p.id for p in payees])
        assert sum(a.credits_posted for a in balances.values()) == sum(
            100 + n for n in range(40)) * 6
    finally:
        await store.close()
    try:
        assert (await verify(engine)).ok
    finally:
        await engine.dispose()
