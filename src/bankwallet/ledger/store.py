"""The SQL ledger store: a batcher in front of one database transaction per batch.

Transfers submitted concurrently are grouped (bounded size, bounded wait) into one database
transaction. Every batch first locks the chain-head row — the ledger's single write lock, so
batches from every process apply one after another and never deadlock — then loads what the
batch touches, decides each transfer in memory (``engine.decide``) and writes the results
with a few set-based statements. One bad transfer never fails its neighbours: rules are
checked in memory before anything is written.

``LedgerStore`` is the interface; a TigerBeetle cluster could stand behind it instead.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bankwallet.core.db import utcnow
from bankwallet.ledger import engine
from bankwallet.ledger.models import LedgerAccount, LedgerChain, LedgerOpenHold, LedgerTransfer
from bankwallet.ledger.types import (
    GENESIS_HASH,
    Account,
    AccountIn,
    AccountState,
    Outcome,
    Transfer,
    TransferFlags,
    TransferIn,
)

log = logging.getLogger("bankwallet.ledger")

CALL_MAX = 8190  # transfers in one call, as TigerBeetle allows
HISTORY_PAGE_MAX = 500
_RESOLVES = int(TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING)

_TRANSFER_COLUMN_NAMES = ("id", "seq", "debit_account_id", "credit_account_id", "amount", "ledger",
                          "code", "flags", "pending_id", "timeout_s", "expires_at", "user_data",
                          "created_at", "hash")
_TRANSFER_COLUMNS = ("id, seq, debit_account_id, credit_account_id, amount, ledger, code, flags, "
                     "pending_id, timeout_s, expires_at, user_data, created_at, hash")


class LedgerStore(Protocol):
    async def create_accounts(self, accounts: Sequence[AccountIn]) -> list[bool]: ...

    async def create_transfers(self, transfers: Sequence[TransferIn]) -> list[Outcome]: ...

    async def lookup_accounts(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Account]: ...

    async def lookup_transfers(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Transfer]: ...

    async def account_transfers(self, account_id: uuid.UUID, *, before_seq: int | None,
                                limit: int) -> list[Transfer]: ...

    async def expired_holds(self, now: dt.datetime, *, limit: int) -> list[uuid.UUID]: ...


@dataclass(slots=True)
class _Call:
    transfers: Sequence[TransferIn]
    future: asyncio.Future[list[Outcome]]


class SqlLedgerStore:
    """The ledger on SQLite or PostgreSQL through one SQLAlchemy engine."""

    def __init__(self, sa_engine: AsyncEngine, *, batch_max: int = 2000,
                 batch_wait_ms: float = 0.0, cache_max: int = 1_000_000) -> None:
        assert 1 <= batch_max <= CALL_MAX
        self.engine = sa_engine
        self.postgres = sa_engine.dialect.name == "postgresql"
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_ms / 1000
        self._queue: collections.deque[_Call] = collections.deque()
        self._wakeup = asyncio.Event()
        self._worker_task: asyncio.Task[None] | None = None
        self._closing = False
        # Account states as of chain head `_tip`, the head this process last committed.
        # Balances change only in batches, and every batch that writes moves the head, so
        # when the head a batch locks is `_tip`, nobody else wrote in between and the cache
        # is exact. Any other head, or any failure, empties it.
        self._cache: dict[uuid.UUID, AccountState] = {}
        self._tip: tuple[int, bytes] | None = None
        self.cache_max = cache_max
        self.batches = 0
        self.batched_transfers = 0

    # -- lifecycle -------------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._worker_task is None:
            self._worker_task = asyncio.get_running_loop().create_task(
                self._worker(), name="ledger-batcher")

    async def close(self) -> None:
        self._closing = True
        self._wakeup.set()
        if self._worker_task is not None:
            self._worker_task.cancel()
            await asyncio.gather(self._worker_task, return_exceptions=True)
            self._worker_task = None
        while self._queue:
            call = self._queue.popleft()
            if not call.future.done():
                call.future.set_exception(RuntimeError("the ledger store is closed"))

    # -- accounts --------------------------------------------------------------------------

    async def create_accounts(self, accounts: Sequence[AccountIn]) -> list[bool]:
        """Create accounts; an id that exists already is left as it is (False)."""
        if not accounts:
            return []
        now = utcnow()
        async with self.engine.begin() as conn:
            existing = set((await self._lookup_accounts(conn, [a.id for a in accounts])))
            rows, created = [], []
            for a in accounts:
                fresh = a.id not in existing
                created.append(fresh)
                if fresh:
                    existing.add(a.id)
                    rows.append({"id": a.id, "ledger": a.ledger, "kind": a.kind,
                                 "owner_id": a.owner_id, "flags": int(a.flags),
                                 "debits_pending": 0, "debits_posted": 0, "credits_pending": 0,
                                 "credits_posted": 0, "user_data": a.user_data,
                                 "created_at": now})
            for chunk in _chunks(rows, 5000):
                await conn.execute(insert(LedgerAccount), chunk)
        return created

    async def lookup_accounts(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Account]:
        async with self.engine.connect() as conn:
            return await self._lookup_accounts(conn, list(ids))

    async def _lookup_accounts(self, conn: AsyncConnection,
                               ids: list[uuid.UUID]) -> dict[uuid.UUID, Account]:
        found: dict[uuid.UUID, Account] = {}
        table = LedgerAccount.__table__
        for chunk in _chunks(ids, 5000):
            rows = await conn.execute(select(table).where(table.c.id.in_(chunk)))
            for r in rows:
                found[r.id] = Account(r.id, r.ledger, r.kind, r.flags, r.owner_id,
                                      r.debits_pending, r.debits_posted, r.credits_pending,
                                      r.credits_posted, r.created_at, r.user_data)
        return found

    # -- transfers -------------------------------------------------------------------------

    async def create_transfers(self, transfers: Sequence[TransferIn]) -> list[Outcome]:
        """Submit transfers; one outcome each, in order. Safe to retry with the same ids."""
        if not transfers:
            return []
        if len(transfers) > CALL_MAX:
            raise ValueError(f"at most {CALL_MAX} transfers in one call")
        if self._closing:
            raise RuntimeError("the ledger store is closed")
        self._ensure_started()
        future: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Call(transfers, future))
        self._wakeup.set()
        return await future

    async def lookup_transfers(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Transfer]:
        table = LedgerTransfer.__table__
        found: dict[uuid.UUID, Transfer] = {}
        async with self.engine.connect() as conn:
            for chunk in _chunks(list(ids), 5000):
                rows = await conn.execute(select(table).where(table.c.id.in_(chunk)))
                for r in rows:
                    found[r.id] = _transfer_from_orm_row(r)
        return found

    async def account_transfers(self, account_id: uuid.UUID, *, before_seq: int | None,
                                limit: int) -> list[Transfer]:
        """One account's transfers, newest first, a page at a time (cursor: ``seq``)."""
        limit = max(1, min(limit, HISTORY_PAGE_MAX))
        table = LedgerTransfer.__table__
        pages = []
        for column in (table.c.debit_account_id, table.c.credit_account_id):
            query = select(table).where(column == account_id)
            if before_seq is not None:
                query = query.where(table.c.seq < before_seq)
            pages.append(query.order_by(table.c.seq.desc()).limit(limit))
        async with self.engine.connect() as conn:
            rows = [r for page in pages for r in await conn.execute(page)]
        rows.sort(key=lambda r: r.seq, reverse=True)
        return [_transfer_from_orm_row(r) for r in rows[:limit]]

    async def expired_holds(self, now: dt.datetime, *, limit: int) -> list[uuid.UUID]:
        table = LedgerOpenHold.__table__
        query = (select(table.c.pending_id).where(table.c.expires_at <= now)
                 .order_by(table.c.expires_at).limit(limit))
        async with self.engine.connect() as conn:
            return [r.pending_id for r in await conn.execute(query)]

    # -- the batcher -----------------------------------------------------------------------

    async def _worker(self) -> None:
        while not self._closing:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self.batch_wait_s and self._pending_count() < self.batch_max:
                await asyncio.sleep(self.batch_wait_s)
            calls = self._take_batch()
            if not calls:
                continue
            try:
                outcomes = await self._apply(calls)
            except asyncio.CancelledError:
                self._fail(calls, RuntimeError("the ledger store is closing"))
                raise
            except Exception as exc:  # the whole batch rolled back: callers may retry
                log.exception("ledger batch failed", extra={"calls": len(calls)})
                self._fail(calls, exc)
                continue
            for call, result in zip(calls, outcomes, strict=True):
                if not call.future.done():
                    call.future.set_result(result)

    def _fail(self, calls: list[_Call], exc: BaseException) -> None:
        self._invalidate()
        for call in calls:
            if not call.future.done():
                call.future.set_exception(exc)

    def _invalidate(self) -> None:
        self._cache.clear()
        self._tip = None

    def _pending_count(self) -> int:
        return sum(len(c.transfers) for c in self._queue)

    def _take_batch(self) -> list[_Call]:
        calls: list[_Call] = []
        size = 0
        while self._queue:
            call = self._queue[0]
            if calls and size + len(call.transfers) > self.batch_max:
                break
            self._queue.popleft()
            if call.future.done():  # the caller gave up (cancelled): drop the call
                continue
            calls.append(call)
            size += len(call.transfers)
        if self._queue:
            self._wakeup.set()
        return calls

    async def _apply(self, calls: list[_Call]) -> list[list[Outcome]]:
        """Lock the chain head, load what the batch touches, decide in memory, write."""
        wanted = _Wanted(calls)
        async with self.engine.begin() as conn:
            io = _PostgresIO(await conn.get_raw_connection()) if self.postgres else _SqliteIO(conn)
            head = await io.lock_head(conn)
            if head != self._tip or len(self._cache) > self.cache_max:
                self._invalidate()
            transfers, resolved = await io.load_transfers(wanted.ids | wanted.pending_ids,
                                                          wanted.pending_ids)
            account_ids = wanted.account_ids(transfers)
            missing = [a for a in account_ids if a not in self._cache]
            if missing:
                self._cache.update(await io.load_account_states(missing))
            accounts = {a: self._cache[a] for a in account_ids if a in self._cache}
            snap = engine.Snapshot(accounts, transfers, resolved, head[0], head[1])
            # From here until the commit the cache runs ahead of the database.
            self._tip = None
            decision = engine.decide(wanted.requests, snap, utcnow())
            if decision.created:
                await io.insert_transfers(decision.created)
                await io.update_accounts(_balances(decision.touched.values()))
                await io.update_holds(decision.created)
                await io.set_head(decision.head_seq, decision.head_hash)
        self._tip = (decision.head_seq, decision.head_hash)
        self.batches += 1
        self.batched_transfers += wanted.count
        return decision.outcomes


def _balances(accounts: Iterable[AccountState]) -> list[tuple[uuid.UUID, int, int, int, int]]:
    """Rows for the balance update, in id order (the order rows are locked in)."""
    return [(a.id, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
            for a in sorted(accounts, key=lambda a: a.id)]


class _Wanted:
    """What a batch asks for: its transfers and the ids it needs loaded."""

    __slots__ = ("requests", "ids", "pending_ids", "direct_accounts", "count")

    def __init__(self, calls: list[_Call]) -> None:
        self.requests = [c.transfers for c in calls]
        self.ids: set[uuid.UUID] = set()
        self.pending_ids: set[uuid.UUID] = set()
        self.direct_accounts: set[uuid.UUID] = set()
        self.count = 0
        for call in self.requests:
            self.count += len(call)
            for t in call:
                self.ids.add(t.id)
                if t.pending_id is not None:
                    self.pending_ids.add(t.pending_id)
                if t.debit_account_id is not None:
                    self.direct_accounts.add(t.debit_account_id)
                if t.credit_account_id is not None:
                    self.direct_accounts.add(t.credit_account_id)

    def account_ids(self, transfers: dict[uuid.UUID, Transfer]) -> set[uuid.UUID]:
        found = set(self.direct_accounts)
        for t in transfers.values():
            found.add(t.debit_account_id)
            found.add(t.credit_account_id)
        return found


# -- dialect I/O ---------------------------------------------------------------------------


class _PostgresIO:
    """Few, large round trips on the asyncpg connection itself: arrays in, ``unnest`` out.

    The first statement goes through SQLAlchemy, which opens the transaction; the rest use
    the driver directly (inside that transaction) to skip per-row result processing.
    """

    def __init__(self, raw: Any) -> None:
        self.db = raw.driver_connection

    async def lock_head(self, conn: AsyncConnection) -> tuple[int, bytes]:
        row = (await conn.exec_driver_sql(
            "SELECT seq, hash FROM ledger_chain WHERE id = 1 FOR UPDATE")).one()
        return row[0], bytes(row[1])

    async def load_transfers(self, ids: set[uuid.UUID], pending_ids: set[uuid.UUID]
                             ) -> tuple[dict[uuid.UUID, Transfer], dict[uuid.UUID, int]]:
        rows = await self.db.fetch(
            f"SELECT {_TRANSFER_COLUMNS} FROM ledger_transfer "
            "WHERE id = ANY($1::uuid[]) OR pending_id = ANY($2::uuid[])",
            list(ids), list(pending_ids))
        transfers: dict[uuid.UUID, Transfer] = {}
        resolved: dict[uuid.UUID, int] = {}
        for r in rows:
            t = _transfer_from_pg_row(r)
            if t.id in ids:
                transfers[t.id] = t
            if t.pending_id is not None and t.pending_id in pending_ids:
                resolved[t.pending_id] = t.flags
        return transfers, resolved

    async def load_account_states(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, AccountState]:
        rows = await self.db.fetch(
            "SELECT id, ledger, flags, debits_pending, debits_posted, credits_pending, "
            "credits_posted FROM ledger_account WHERE id = ANY($1::uuid[])", ids)
        # asyncpg's UUID subclasses uuid.UUID with the same hash and equality.
        return {r[0]: AccountState(*r) for r in rows}

    async def insert_transfers(self, created: list[Transfer]) -> None:
        # Binary COPY: the cheapest way into PostgreSQL, for the client and the server.
        await self.db.copy_records_to_table("ledger_transfer", columns=_TRANSFER_COLUMN_NAMES,
                                            records=[_transfer_record(t) for t in created])

    async def update_accounts(self, balances: list[tuple[uuid.UUID, int, int, int, int]]
                              ) -> None:
        columns = list(zip(*balances, strict=True))
        await self.db.execute(
            "UPDATE ledger_account AS a SET debits_pending = v.dp, debits_posted = v.dpo, "
            "credits_pending = v.cp, credits_posted = v.cpo FROM unnest($1::uuid[], "
            "$2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) AS v(id, dp, dpo, cp, cpo) "
            "WHERE a.id = v.id", *columns)

    async def update_holds(self, created: list[Transfer]) -> None:
        opened = [t for t in created if t.expires_at is not None]
        closed = [t.pending_id for t in created if t.flags & _RESOLVES]
        if opened:
            await self.db.execute(
                "INSERT INTO ledger_open_hold (pending_id, expires_at) "
                "SELECT * FROM unnest($1::uuid[], $2::timestamptz[])",
                [t.id for t in opened], [t.expires_at for t in opened])
        if closed:
            await self.db.execute(
                "DELETE FROM ledger_open_hold WHERE pending_id = ANY($1::uuid[])", closed)

    async def set_head(self, seq: int, hash_: bytes) -> None:
        await self.db.execute(
            "UPDATE ledger_chain SET seq = $1, hash = $2, batches = batches + 1 WHERE id = 1",
            seq, hash_)


class _SqliteIO:
    """The same steps with SQLAlchemy Core; SQLite has one writer at a time."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def lock_head(self, conn: AsyncConnection) -> tuple[int, bytes]:
        chain = LedgerChain.__table__
        # A write first, so this transaction holds SQLite's write lock from the start.
        await conn.execute(update(chain).where(chain.c.id == 1)
                           .values(batches=chain.c.batches + 1))
        row = (await conn.execute(select(chain.c.seq, chain.c.hash)
                                  .where(chain.c.id == 1))).one()
        return row.seq, bytes(row.hash)

    async def load_transfers(self, ids: set[uuid.UUID], pending_ids: set[uuid.UUID]
                             ) -> tuple[dict[uuid.UUID, Transfer], dict[uuid.UUID, int]]:
        table = LedgerTransfer.__table__
        transfers: dict[uuid.UUID, Transfer] = {}
        resolved: dict[uuid.UUID, int] = {}
        for chunk in _chunks(list(ids), 500):
            for r in await self.conn.execute(select(table).where(table.c.id.in_(chunk))):
                transfers[r.id] = _transfer_from_orm_row(r)
        for chunk in _chunks(list(pending_ids), 500):
            query = select(table.c.pending_id, table.c.flags).where(table.c.pending_id.in_(chunk))
            for r in await self.conn.execute(query):
                resolved[r.pending_id] = r.flags
        return transfers, resolved

    async def load_account_states(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, AccountState]:
        table = LedgerAccount.__table__
        found: dict[uuid.UUID, AccountState] = {}
        for chunk in _chunks(ids, 500):
            query = select(table.c.id, table.c.ledger, table.c.flags, table.c.debits_pending,
                           table.c.debits_posted, table.c.credits_pending,
                           table.c.credits_posted).where(table.c.id.in_(chunk))
            for r in await self.conn.execute(query):
                found[r.id] = AccountState(*r)
        return found

    async def insert_transfers(self, created: list[Transfer]) -> None:
        rows = [{"id": t.id, "seq": t.seq, "debit_account_id": t.debit_account_id,
                 "credit_account_id": t.credit_account_id, "amount": t.amount,
                 "ledger": t.ledger, "code": t.code, "flags": t.flags,
                 "pending_id": t.pending_id, "timeout_s": t.timeout_s,
                 "expires_at": t.expires_at, "user_data": t.user_data,
                 "created_at": t.created_at, "hash": t.hash} for t in created]
        await self.conn.execute(insert(LedgerTransfer), rows)

    async def update_accounts(self, balances: list[tuple[uuid.UUID, int, int, int, int]]
                              ) -> None:
        table = LedgerAccount.__table__
        statement = (update(table).where(table.c.id == bindparam("b_id"))
                     .values(debits_pending=bindparam("b_dp"), debits_posted=bindparam("b_dpo"),
                             credits_pending=bindparam("b_cp"), credits_posted=bindparam("b_cpo")))
        await self.conn.execute(statement, [
            {"b_id": i, "b_dp": dp, "b_dpo": dpo, "b_cp": cp, "b_cpo": cpo}
            for i, dp, dpo, cp, cpo in balances])

    async def update_holds(self, created: list[Transfer]) -> None:
        table = LedgerOpenHold.__table__
        opened = [{"pending_id": t.id, "expires_at": t.expires_at}
                  for t in created if t.expires_at is not None]
        closed = [t.pending_id for t in created if t.flags & _RESOLVES]
        if opened:
            await self.conn.execute(insert(table), opened)
        for chunk in _chunks(closed, 500):
            await self.conn.execute(delete(table).where(table.c.pending_id.in_(chunk)))

    async def set_head(self, seq: int, hash_: bytes) -> None:
        chain = LedgerChain.__table__
        await self.conn.execute(update(chain).where(chain.c.id == 1).values(seq=seq, hash=hash_))


# -- rows ----------------------------------------------------------------------------------


def _transfer_record(t: Transfer) -> tuple[Any, ...]:
    return (t.id, t.seq, t.debit_account_id, t.credit_account_id, t.amount, t.ledger, t.code,
            t.flags, t.pending_id, t.timeout_s, t.expires_at,
            None if t.user_data is None else orjson.dumps(t.user_data).decode(), t.created_at,
            t.hash)


def _transfer_from_pg_row(r: Any) -> Transfer:
    user_data = r[11]
    if isinstance(user_data, str):
        user_data = orjson.loads(user_data)
    return Transfer(id=r[0], seq=r[1], debit_account_id=r[2], credit_account_id=r[3],
                    amount=r[4], ledger=r[5], code=r[6], flags=r[7], pending_id=r[8], timeout_s=r[9],
                    expires_at=r[10], user_data=user_data, created_at=r[12], hash=bytes(r[13]))


def _transfer_from_orm_row(r: Any) -> Transfer:
    return Transfer(id=r.id, seq=r.seq, debit_account_id=r.debit_account_id,
                    credit_account_id=r.credit_account_id, amount=r.amount, ledger=r.ledger,
                    code=r.code, flags=r.flags, pending_id=r.pending_id, timeout_s=r.timeout_s,
                    expires_at=r.expires_at, user_data=r.user_data, created_at=r.created_at,
                    hash=bytes(r.hash))


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def genesis_row() -> dict[str, Any]:
    return {"id": 1, "seq": 0, "hash": GENESIS_HASH, "batches": 0}
