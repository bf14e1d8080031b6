"""The ledger lease between processes (PostgreSQL): a process that waits for it asks the
holder by NOTIFY, and a holder that is asked hands it over after LEASE_ASKED_HOLD_S instead
of keeping it for LEASE_MAX_S, so the other process's callers are not stalled behind it."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from bankwallet.core.db import make_engine
from bankwallet.ledger.store import LEASE_CHANNEL, LEDGER_LEASE_KEY, SqlLedgerStore
from bankwallet.ledger.types import AccountFlags, AccountIn, TransferIn
from bankwallet.ledger.verify import verify
from bankwallet.transfers.fast import asyncpg_dsn

CURRENCY = "CNY"
WAIT_S = 20.0


async def _accounts(store: SqlLedgerStore, n: int) -> tuple[AccountIn, list[AccountIn]]:
    flags = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
    bank = AccountIn(uuid.uuid4(), CURRENCY, "bank_settlement")
    wallets = [AccountIn(uuid.uuid4(), CURRENCY, "customer_wallet", flags) for _ in range(n)]
    await store.create_accounts([bank, *wallets])
    return bank, wallets


async def _until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.01)


@pytest.mark.postgres
@pytest.mark.parametrize("fresh_db_url", ["postgres"], indirect=True)
async def test_a_busy_holder_hands_the_lease_over_when_asked(fresh_db_url: str) -> None:
    engine = make_engine(fresh_db_url)
    store = SqlLedgerStore(engine)
    stop = asyncio.Event()
    moved = 0
    try:
        bank, wallets = await _accounts(store, 8)

        async def busy(n: int) -> None:  # keeps the queue from ever running dry
            nonlocal moved
            while not stop.is_set():
                (outcome,) = await store.create_transfers([TransferIn(
                    uuid.uuid4(), bank.id, wallets[n].id, 1, CURRENCY, 1)])
                assert outcome.ok, outcome
                moved += 1

        load = [asyncio.create_task(busy(n)) for n in range(8)]
        await _until(lambda: moved > 50, "the store never moved money")
        assert store.leases_handed_over == 0  # nobody asked yet
        other = await asyncpg.connect(asyncpg_dsn(fresh_db_url))
        try:
            await other.execute("SELECT pg_notify($1, '')", LEASE_CHANNEL)
            await _until(lambda: store.leases_handed_over >= 1, "the lease was not handed over")
        finally:
            await other.close()
        stop.set()
        await asyncio.gather(*load)
        balances = await store.lookup_accounts([w.id for w in wallets])
        assert sum(a.credits_posted for a in balances.values()) == moved
    finally:
        stop.set()
        await store.close()
    try:
        assert (await verify(engine)).ok
    finally:
        await engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("fresh_db_url", ["postgres"], indirect=True)
async def test_a_process_waiting_for_the_lease_asks_for_it(fresh_db_url: str) -> None:
    engine = make_engine(fresh_db_url)
    store = SqlLedgerStore(engine)
    dsn = asyncpg_dsn(fresh_db_url)
    holder, listener = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    asks: list[int] = []
    try:
        bank, (wallet,) = await _accounts(store, 1)
        await listener.add_listener(LEASE_CHANNEL, lambda _c, pid, _ch, _p: asks.append(pid))
        # Another "process" holds the lease: the store must ask, then wait its turn.
        await holder.execute("SELECT pg_advisory_lock($1)", LEDGER_LEASE_KEY)
        submitted = asyncio.create_task(store.create_transfers([TransferIn(
            uuid.uuid4(), bank.id, wallet.id, 7, CURRENCY, 1)]))
        await _until(lambda: bool(asks), "the waiting store did not ask for the lease")
        assert not submitted.done()  # it waits for the lease, it does not write without it
        await holder.execute("SELECT pg_advisory_unlock($1)", LEDGER_LEASE_KEY)
        (outcome,) = await asyncio.wait_for(submitted, WAIT_S)
        assert outcome.ok
        assert (await store.lookup_accounts([wallet.id]))[wallet.id].credits_posted == 7
    finally:
        await holder.close()
        await listener.close()
        await store.close()
        await engine.dispose()
