"""``bankwallet bench ledger``: ledger throughput with two SQL baselines measured in the same run.

Runs in a scratch database beside the one given (PostgreSQL: a new database on the same server;
SQLite: a new file in the same folder), dropped afterwards, so a bench never touches real data.

- ``transfers_per_second``: the ledger (batcher, hash chain, idempotency, balance checks),
  ``submitters`` concurrent clients each sending ``per_call`` transfers per call.
- ``naive_sql_per_second``: one transfer per database transaction (lock both rows in id
  order, check the balance, insert, update both), 32 concurrent connections.
- ``batched_sql_per_second``: 100 transfers per transaction, set-based (lock rows in id
  order, check in memory, one ``unnest`` insert, one update), 8 concurrent connections.
Both baselines write to copies of the ledger tables (same columns and indexes).
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bankwallet.core.db import make_engine, utcnow
from bankwallet.core.migrate import upgrade
from bankwallet.core.runtime import tune_gc
from bankwallet.ledger.store import SqlLedgerStore
from bankwallet.ledger.types import AccountFlags, AccountIn, TransferIn
from bankwallet.ledger.verify import verify
from bankwallet.settings import get_settings

CURRENCY = "CNY"
FUNDING_MINOR = 10**12
NAIVE_CONNECTIONS = 32
BATCHED_CONNECTIONS = 8
BATCHED_SIZE = 100
WORKLOAD_MAX = 3_000_000
Progress = Callable[[str], None]


async def run_bench(url: str, *, scenario: str, seconds: float, accounts: int, submitters: int,
                    per_call: int, baselines: bool, progress: Progress) -> dict[str, Any]:
    tune_gc()  # as `bankwallet serve` does
    scratch, cleanup = await _scratch_database(url)
    progress(f"scratch database: {make_url(scratch).render_as_string(hide_password=True)}")
    try:
        await asyncio.to_thread(upgrade, scratch)
        engine = make_engine(scratch, pool_size=NAIVE_CONNECTIONS)
        try:
            return await _run(engine, scenario=scenario, seconds=seconds, accounts=accounts,
                              submitters=submitters, per_call=per_call, baselines=baselines,
                              progress=progress)
        finally:
            await engine.dispose()
    finally:
        await cleanup()


async def _run(engine: AsyncEngine, *, scenario: str, seconds: float, accounts: int,
               submitters: int, per_call: int, baselines: bool,
               progress: Progress) -> dict[str, Any]:
    postgres = engine.dialect.name == "postgresql"
    settings = await _durability(engine) if postgres else {"sqlite_synchronous": "NORMAL (WAL)"}
    progress(f"durability: {settings}")
    # The ledger as `bankwallet serve` runs it.
    config = get_settings()
    store = SqlLedgerStore(engine, batch_max=config.ledger_batch_max,
                           pipeline=config.ledger_pipeline)
    try:
        ids, hot = await _setup_accounts(store, accounts, progress)
        progress(f"ledger: {scenario}, {submitters} submitters x {per_call} per call, "
                 f"{seconds:.0f} s ...")
        workload = _Workload(ids, hot if scenario == "hot" else None, 60_000 * seconds, seed=1)
        batches0, batched0 = store.batches, store.batched_transfers
        ledger_rate, failed = await _measure_ledger(store, workload, seconds, submitters,
                                                    per_call)
        batches = store.batches - batches0
        avg_batch = (store.batched_transfers - batched0) / batches if batches else 0
        progress(f"ledger: {ledger_rate:,.0f} transfers/s ({failed} refused), "
                 f"{batches} batches, {avg_batch:.0f} transfers per batch")
    finally:
        await store.close()

    naive = batched = None
    if baselines:
        await _prepare_baseline_tables(engine, postgres)
        progress(f"naive SQL: one transfer per transaction, {seconds:.0f} s ...")
        workload = _Workload(ids, hot if scenario == "hot" else None, 10_000 * seconds, seed=2)
        naive = await _measure_naive(engine, workload, seconds, postgres)
        progress(f"naive SQL: {naive:,.0f} transfers/s")
        progress(f"batched SQL: {BATCHED_SIZE} per transaction, {seconds:.0f} s ...")
        workload = _Workload(ids, hot if scenario == "hot" else None, 60_000 * seconds, seed=3)
        batched = await _measure_batched(engine, workload, seconds, postgres)
        progress(f"batched SQL: {batched:,.0f} transfers/s")

    progress("verifying the ledger (balances from transfers, hash chain) ...")
    report = await verify(engine)
    progress(f"verify: {'clean' if report.ok else report.problems[:3]}")
    return {
        "scenario": scenario,
        "database": engine.dialect.name,
        "transfers_per_second": round(ledger_rate),
        "naive_sql_per_second": None if naive is None else round(naive),
        "batched_sql_per_second": None if batched is None else round(batched),
        "ratio_vs_naive": None if not naive else round(ledger_rate / naive, 2),
        "ratio_vs_batched": None if not batched else round(ledger_rate / batched, 2),
        "accounts": accounts,
        "submitters": submitters,
        "per_call": per_call,
        "seconds": seconds,
        "avg_batch": round(avg_batch),
        "refused": failed,
        "verify_clean": report.ok,
        **settings,
    }


async def _durability(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as conn:
        fsync = (await conn.exec_driver_sql("SHOW fsync")).scalar_one()
        sync = (await conn.exec_driver_sql("SHOW synchronous_commit")).scalar_one()
    return {"fsync": fsync, "synchronous_commit": sync}


async def _setup_accounts(store: SqlLedgerStore, n: int,
                          progress: Progress) -> tuple[list[uuid.UUID], uuid.UUID]:
    progress(f"creating {n:,} accounts and funding them through the ledger ...")
    started = time.perf_counter()
    flags = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
    bank = AccountIn(uuid.uuid4(), CURRENCY, "bank_settlement")
    hot = AccountIn(uuid.uuid4(), CURRENCY, "merchant", flags)
    customers = [AccountIn(uuid.uuid4(), CURRENCY, "customer_wallet", flags) for _ in range(n)]
    await store.create_accounts([bank, hot, *customers])
    for start in range(0, n, 4000):
        chunk = customers[start:start + 4000]
        outcomes = await store.create_transfers([
            TransferIn(uuid.uuid4(), bank.id, c.id, FUNDING_MINOR, CURRENCY, 1) for c in chunk])
        assert all(o.ok for o in outcomes), "funding failed"
    progress(f"set-up took {time.perf_counter() - started:.1f} s")
    return [c.id for c in customers], hot.id


class _Workload:
    """Random transfers made before the clock starts, the same way for all three
    measurements, so each measures the database path and not the random-number generator."""

    def __init__(self, ids: list[uuid.UUID], hot: uuid.UUID | None, size: float, *,
                 seed: int) -> None:
        rng = random.Random(seed)
        prefix = rng.getrandbits(64) << 64  # clients choose ids: a random prefix and a counter
        n = len(ids)
        self.items: list[TransferIn] = []
        for k in range(min(int(size), WORKLOAD_MAX)):
            debit = ids[rng.randrange(n)]
            credit = hot
            while credit is None or credit == debit:
                credit = ids[rng.randrange(n)]
            self.items.append(TransferIn(uuid.UUID(int=prefix | k), debit, credit,
                                         1 + rng.randrange(10_000), CURRENCY, 1))
        self.position = 0

    def take(self, count: int) -> list[TransferIn]:
        start, self.position = self.position, self.position + count
        return self.items[start:self.position]


async def _measure_ledger(store: SqlLedgerStore, workload: _Workload, seconds: float,
                          submitters: int, per_call: int) -> tuple[float, int]:
    ok = failed = 0
    deadline = time.perf_counter() + seconds

    async def submitter() -> None:
        nonlocal ok, failed
        while time.perf_counter() < deadline:
            call = workload.take(per_call)
            if not call:
                return
            for outcome in await store.create_transfers(call):
                if outcome.ok:
                    ok += 1
                else:
                    failed += 1

    started = time.perf_counter()
    await asyncio.gather(*(submitter() for _ in range(submitters)))
    return ok / (time.perf_counter() - started), failed


# -- baselines -----------------------------------------------------------------------------


async def _prepare_baseline_tables(engine: AsyncEngine, postgres: bool) -> None:
    async with engine.begin() as conn:
        if postgres:
            await conn.exec_driver_sql(
                "CREATE TABLE base_account (LIKE ledger_account INCLUDING ALL)")
            await conn.exec_driver_sql(
                "CREATE TABLE base_transfer (LIKE ledger_transfer INCLUDING ALL)")
            await conn.exec_driver_sql("CREATE SEQUENCE base_seq")
        else:
            for table in ("account", "transfer"):
                ddl = (await conn.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE type='table' AND name=?",
                    (f"ledger_{table}",))).scalar_one()
                await conn.exec_driver_sql(ddl.replace(f"ledger_{table}", f"base_{table}", 1)
                                           .replace("REFERENCES ledger_account",
                                                    "REFERENCES base_account"))
            await conn.exec_driver_sql(
                "CREATE TABLE base_seq_t (id INTEGER PRIMARY KEY AUTOINCREMENT, x INTEGER)")
        await conn.exec_driver_sql("INSERT INTO base_account SELECT * FROM ledger_account")


async def _measure_naive(engine: AsyncEngine, workload: _Workload, seconds: float,
                         postgres: bool) -> float:
    done = 0
    deadline = time.perf_counter() + seconds
    p = _Params(postgres)

    async def client() -> None:
        nonlocal done
        async with engine.connect() as conn:
            while time.perf_counter() < deadline:
                taken = workload.take(1)
                if not taken:
                    return
                t = taken[0]
                debit, credit, amount = t.debit_account_id, t.credit_account_id, t.amount
                async with conn.begin():
                    rows = (await conn.exec_driver_sql(
                        "SELECT id, debits_pending, debits_posted, credits_posted, flags "
                        f"FROM base_account WHERE id IN ({p(1)}, {p(2)}) ORDER BY id"
                        + (" FOR UPDATE" if postgres else ""),
                        p.args(min(debit, credit), max(debit, credit)))).all()
                    dr = next(r for r in rows if p.uuid(r[0]) == debit)
                    if dr[4] & 2 and dr[1] + dr[2] + amount > dr[3]:
                        continue
                    seq = await p.next_seq(conn)
                    await conn.exec_driver_sql(
                        "INSERT INTO base_transfer (id, seq, debit_account_id, credit_account_id, "
                        "amount, ledger, code, flags, pending_id, timeout_s, expires_at, "
                        "user_data, created_at, hash) VALUES "
                        f"({p(1)}, {p(2)}, {p(3)}, {p(4)}, {p(5)}, {p(6)}, 1, 0, NULL, 0, NULL, "
                        f"NULL, {p(7)}, {p(8)})",
                        p.args(t.id, seq, debit, credit, amount, CURRENCY, utcnow(),
                               bytes(32)))
                    await conn.exec_driver_sql(
                        f"UPDATE base_account SET debits_posted = debits_posted + {p(1)} "
                        f"WHERE id = {p(2)}", p.args(amount, debit))
                    await conn.exec_driver_sql(
                        f"UPDATE base_account SET credits_posted = credits_posted + {p(1)} "
                        f"WHERE id = {p(2)}", p.args(amount, credit))
                done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(NAIVE_CONNECTIONS if postgres else 1)))
    return done / (time.perf_counter() - started)


async def _measure_batched(engine: AsyncEngine, workload: _Workload, seconds: float,
                           postgres: bool) -> float:
    done = 0
    deadline = time.perf_counter() + seconds
    p = _Params(postgres)

    async def client() -> None:
        nonlocal done
        async with engine.connect() as conn:
            while time.perf_counter() < deadline:
                batch = [(t.id, t.debit_account_id, t.credit_account_id, t.amount)
                         for t in workload.take(BATCHED_SIZE)]
                if not batch:
                    return
                deltas: dict[uuid.UUID, list[int]] = {}
                for _, debit, credit, amount in batch:
                    deltas.setdefault(debit, [0, 0])[0] += amount
                    deltas.setdefault(credit, [0, 0])[1] += amount
                ids = sorted(deltas)
                async with conn.begin():
                    if postgres:
                        rows = (await conn.exec_driver_sql(
                            "SELECT id, debits_pending, debits_posted, credits_posted, flags "
                            "FROM base_account WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
                            (ids,))).all()
                    else:
                        marks = ", ".join("?" * len(ids))
                        rows = (await conn.exec_driver_sql(
                            "SELECT id, debits_pending, debits_posted, credits_posted, flags "
                            f"FROM base_account WHERE id IN ({marks}) ORDER BY id",
                            tuple(i.hex for i in ids))).all()
                    for r in rows:
                        dr = deltas[p.uuid(r[0])][0]
                        if r[4] & 2 and r[1] + r[2] + dr > r[3]:
                            raise AssertionError("baseline accounts are funded for the run")
                    now = utcnow()
                    if postgres:
                        seqs = (await conn.exec_driver_sql(
                            "SELECT nextval('base_seq') FROM generate_series(1, $1)",
                            (len(batch),))).scalars().all()
                        await conn.exec_driver_sql(
                            "INSERT INTO base_transfer (id, seq, debit_account_id, "
                            "credit_account_id, amount, ledger, code, flags, timeout_s, "
                            "created_at, hash) SELECT id, seq, d, c, a, 'CNY', 1, 0, 0, $6, $7 "
                            "FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::uuid[], "
                            "$5::bigint[]) AS v(id, seq, d, c, a)",
                            ([b[0] for b in batch], list(seqs), [b[1] for b in batch],
                             [b[2] for b in batch], [b[3] for b in batch], now, bytes(32)))
                        await conn.exec_driver_sql(
                            "UPDATE base_account AS a SET debits_posted = a.debits_posted + v.d, "
                            "credits_posted = a.credits_posted + v.c FROM unnest($1::uuid[], "
                            "$2::bigint[], $3::bigint[]) AS v(id, d, c) WHERE a.id = v.id",
                            (ids, [deltas[i][0] for i in ids], [deltas[i][1] for i in ids]))
                    else:
                        rows_in = []
                        for t_id, debit, credit, amount in batch:
                            seq = await p.next_seq(conn)
                            rows_in.append((t_id.hex, seq, debit.hex, credit.hex, amount,
                                            now.replace(tzinfo=None).isoformat(" "), bytes(32)))
                        await conn.exec_driver_sql(
                            "INSERT INTO base_transfer (id, seq, debit_account_id, "
                            "credit_account_id, amount, ledger, code, flags, timeout_s, "
                            "created_at, hash) VALUES (?, ?, ?, ?, ?, 'CNY', 1, 0, 0, ?, ?)",
                            rows_in)
                        await conn.exec_driver_sql(
                            "UPDATE base_account SET debits_posted = debits_posted + ?, "
                            "credits_posted = credits_posted + ? WHERE id = ?",
                            [(deltas[i][0], deltas[i][1], i.hex) for i in ids])
                done += len(batch)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(BATCHED_CONNECTIONS if postgres else 1)))
    return done / (time.perf_counter() - started)


class _Params:
    """Placeholders and arguments for raw SQL on either driver."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres

    def __call__(self, n: int) -> str:
        return f"${n}" if self.postgres else "?"

    def args(self, *values: Any) -> tuple[Any, ...]:
        if self.postgres:
            return values
        return tuple(v.hex if isinstance(v, uuid.UUID) else
                     v.replace(tzinfo=None).isoformat(" ") if hasattr(v, "tzinfo") else v
                     for v in values)

    def uuid(self, value: Any) -> uuid.UUID:
        return uuid.UUID(bytes=value.bytes) if self.postgres else uuid.UUID(hex=value)

    async def next_seq(self, conn) -> int:
        if self.postgres:
            return (await conn.exec_driver_sql("SELECT nextval('base_seq')")).scalar_one()
        result = await conn.exec_driver_sql("INSERT INTO base_seq_t (x) VALUES (0)")
        return result.lastrowid


# -- scratch database ----------------------------------------------------------------------


async def _scratch_database(url: str):
    parsed = make_url(url)
    suffix = secrets.token_hex(4)
    if parsed.get_backend_name() == "sqlite":
        folder = Path(parsed.database or "./var/bankwallet.db").parent
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"bench-{suffix}.db"

        async def cleanup_file() -> None:
            for extra in ("", "-wal", "-shm"):
                try:
                    os.remove(f"{path}{extra}")
                except FileNotFoundError:
                    pass

        return f"sqlite+aiosqlite:///{path}", cleanup_file

    name = f"{parsed.database}_bench_{suffix}"
    admin = make_engine(url)
    try:
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        await admin.dispose()

    async def drop() -> None:
        admin = make_engine(url)
        try:
            async with admin.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.dispose()

    return parsed.set(database=name).render_as_string(hide_password=False), drop
