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
from typing import Any, Literal, Protocol

import orjson
from sqlalchemy import and_, bindparam, case, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bankwallet.core.db import utcnow
from bankwallet.core.money import UnknownCurrency, check_currency
from bankwallet.ledger import engine
from bankwallet.ledger.models import LedgerAccount, LedgerChain, LedgerOpenHold, LedgerTransfer
from bankwallet.ledger.types import (
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
PIPELINE_MAX = 4
LEASE_MAX_S = 0.2  # a process hands the ledger lease back at least this often under load
# An idle process keeps the lease this long for the next call before handing it back: taking
# it again costs a connection, the lock, reading the head and (if anyone wrote in between) the
# account cache, which at a few requests per batch cost more than the batch itself.
LEASE_LINGER_S = 0.005
# Asked for the lease by another process (a NOTIFY on LEASE_CHANNEL), the holder hands it
# over once it has held it this long: long enough for a few batches, short enough that the
# other process's callers wait milliseconds, not LEASE_MAX_S.
LEASE_ASKED_HOLD_S = 0.01
LEDGER_LEASE_KEY = 0x6C6564676572  # pg_advisory_lock key: "ledger"
LEASE_CHANNEL = "bankwallet_ledger_lease"
HISTORY_PAGE_MAX = 500
_RESOLVES = int(TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING)

_TRANSFER_COLUMN_NAMES = ("id", "seq", "debit_account_id", "credit_account_id", "amount", "ledger",
                          "code", "flags", "pending_id", "timeout_s", "expires_at", "user_data",
                          "created_at", "hash")
_TRANSFER_COLUMNS = ("id, seq, debit_account_id, credit_account_id, amount, ledger, code, flags, "
                     "pending_id, timeout_s, expires_at, user_data, created_at, hash")


# account_activity: bounds of one call.
ACTIVITY_ACCOUNTS_MAX = 16
ACTIVITY_TEXTS_MAX = 4
ACTIVITY_TEXT_MAX_CHARS = 64
ACTIVITY_KEYS_MAX = 8
# With filters, each (account, side) index range is read at most this many rows per call: a
# filter that matches little returns a short (even empty) page and a cursor to go on from.
ACTIVITY_SCAN_WINDOW = 2000
# Transfers are stamped in seq order by one clock; a scan bounded below by time stops once
# it is this far past the bound, in case that clock ever stepped back.
ACTIVITY_CLOCK_SKEW = dt.timedelta(hours=1)
_PENDING = int(TransferFlags.PENDING)
_NOT_POSTED = int(TransferFlags.PENDING | TransferFlags.VOID_PENDING)


@dataclass(frozen=True, slots=True)
class TextMatch:
    """A case-insensitive substring of a ``user_data`` value: looked for in ``out_keys`` when
    the transfer debits one of the accounts asked about, in ``in_keys`` when it credits one."""

    text: str
    out_keys: tuple[str, ...]
    in_keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ActivityQuery:
    """Which transfers of a set of accounts ``account_activity`` returns, newest first.

    ``shape="entries"``: what happened to the accounts, one transfer per movement (plain
    transfers and holds; a hold's later post or void comes in ``Activity.related``).
    ``shape="postings"``: what changed their posted balances (plain transfers and posts of
    holds; the hold a post resolves comes in ``Activity.related``, for its ``user_data``).
    Filters read each transfer's own columns and ``user_data``.
    """

    account_ids: tuple[uuid.UUID, ...]
    shape: Literal["entries", "postings"] = "entries"
    before_seq: int | None = None  # the cursor: only transfers older than this
    limit: int = 50
    codes: frozenset[int] | None = None
    created_from: dt.datetime | None = None  # inclusive
    created_before: dt.datetime | None = None  # exclusive
    amount_min: int | None = None
    amount_max: int | None = None
    texts: tuple[TextMatch, ...] = ()

    @property
    def filtered(self) -> bool:
        return bool(self.codes is not None or self.created_from or self.created_before
                    or self.amount_min is not None or self.amount_max is not None
                    or self.texts)


@dataclass(slots=True)
class Activity:
    transfers: list[Transfer]  # newest first, at most ``limit``; may be short with a cursor
    related: dict[uuid.UUID, Transfer]  # keyed by hold id: its post/void, or the hold itself
    next_before_seq: int | None  # None: nothing older matches


class LedgerStore(Protocol):
    async def create_accounts(self, accounts: Sequence[AccountIn]) -> list[bool]: ...

    async def create_transfers(self, transfers: Sequence[TransferIn]) -> list[Outcome]: ...

    async def lookup_accounts(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Account]: ...

    async def lookup_transfers(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Transfer]: ...

    async def accounts_of_owner(self, owner_id: str, *, limit: int) -> list[Account]: ...

    async def account_transfers(self, account_id: uuid.UUID, *, before_seq: int | None,
                                limit: int) -> list[Transfer]: ...

    async def expired_holds(self, now: dt.datetime, *, limit: int) -> list[uuid.UUID]: ...

    async def account_activity(self, query: ActivityQuery) -> Activity: ...


@dataclass(slots=True)
class _Call:
    transfers: Sequence[TransferIn]
    future: asyncio.Future[list[Outcome]]


class SqlLedgerStore:
    """The ledger on SQLite or PostgreSQL through one SQLAlchemy engine."""

    def __init__(self, sa_engine: AsyncEngine, *, batch_max: int = 2000,
                 batch_wait_ms: float = 0.0, pipeline: int = 2,
                 cache_max: int = 1_000_000) -> None:
        assert 1 <= batch_max <= CALL_MAX and 1 <= pipeline <= PIPELINE_MAX
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
        # PostgreSQL: batches in flight at once, each on its own connection (see _lease_loop).
        self.pipeline = pipeline
        self._recent: collections.deque[_Flight] = collections.deque(maxlen=pipeline + 2)
        self.leases = 0
        self._lease_asked = False  # another process waits for the lease
        self.leases_handed_over = 0  # leases given up early because another process asked
        self.batches = 0
        self.batched_transfers = 0

    # -- lifecycle -------------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._worker_task is None:
            loop = self._lease_loop() if self.postgres else self._worker()
            self._worker_task = asyncio.get_running_loop().create_task(
                loop, name="ledger-batcher")

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
        for a in accounts:  # the chain's canonical bytes hold a three-letter ledger
            check_currency(a.ledger)
            if a.ledger != a.ledger.upper():
                raise UnknownCurrency(f"{a.ledger!r}: currency codes are upper case.")
        now = utcnow()
        rows, seen = [], set()
        for a in accounts:
            if a.id not in seen:
                seen.add(a.id)
                rows.append({"id": a.id, "ledger": a.ledger, "kind": a.kind,
                             "owner_id": a.owner_id, "flags": int(a.flags),
                             "debits_pending": 0, "debits_posted": 0, "credits_pending": 0,
                             "credits_posted": 0, "user_data": a.user_data, "created_at": now})
        # ON CONFLICT DO NOTHING, not look-then-insert: a concurrent creator of the same id
        # (another request, another process) must get False, not an IntegrityError.
        # RETURNING names the rows this call inserted.
        dialect_insert = postgresql.insert if self.postgres else sqlite.insert
        statement = (dialect_insert(LedgerAccount).on_conflict_do_nothing(index_elements=["id"])
                     .returning(LedgerAccount.id))
        inserted: set[uuid.UUID] = set()
        async with self.engine.begin() as conn:
            for chunk in _chunks(rows, 5000):
                inserted.update((await conn.execute(statement, chunk)).scalars())
        created = []
        for a in accounts:  # a repeated id is created by its first mention only
            created.append(a.id in inserted)
            inserted.discard(a.id)
        return created

    async def lookup_accounts(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Account]:
        async with self.engine.connect() as conn:
            return await self._lookup_accounts(conn, list(ids))

    async def accounts_of_owner(self, owner_id: str, *, limit: int) -> list[Account]:
        table = LedgerAccount.__table__
        async with self.engine.connect() as conn:
            ids = (await conn.execute(select(table.c.id).where(table.c.owner_id == owner_id)
                                      .order_by(table.c.id).limit(limit))).scalars().all()
            found = await self._lookup_accounts(conn, list(ids))
        return [found[i] for i in ids]

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
        # +1: callers ask for one row past a full page to learn whether another page follows.
        limit = max(1, min(limit, HISTORY_PAGE_MAX + 1))
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

    async def account_activity(self, query: ActivityQuery) -> Activity:
        """A page of the transfers touching ``query.account_ids`` (see ``ActivityQuery``).

        Each (account, debit or credit side) is one range of an index (``ix_ledger_transfer_
        debit_seq`` / ``credit_seq``) read backwards from the cursor. Unfiltered, a range is
        read for one row past the page; filtered, for at most ``ACTIVITY_SCAN_WINDOW`` rows,
        testing the filter in the same statement. The ranges are merged by ``seq``: the page
        holds only what every range has covered, and the cursor resumes below that.
        """
        _check_activity_query(query)
        table = LedgerTransfer.__table__
        limit = query.limit
        window = max(limit + 1, ACTIVITY_SCAN_WINDOW) if query.filtered else limit + 1
        base = [table.c.pending_id.is_(None) if query.shape == "entries"
                else table.c.flags.op("&")(_NOT_POSTED) == 0]
        if query.before_seq is not None:
            base.append(table.c.seq < query.before_seq)
        found: dict[int, Any] = {}  # seq -> row (full rows unfiltered; seq only filtered)
        floors: list[int] = []
        async with self.engine.connect() as conn:
            for account_id in dict.fromkeys(query.account_ids):
                for column, outgoing in ((table.c.debit_account_id, True),
                                         (table.c.credit_account_id, False)):
                    condition = _activity_filter(table, query, outgoing=outgoing)
                    if condition is False:
                        continue  # a text to match in keys this side does not have
                    where = and_(column == account_id, *base)
                    if condition is None:
                        statement = (select(table).where(where)
                                     .order_by(table.c.seq.desc()).limit(window))
                    else:
                        hit = case((condition, 1), else_=0).label("hit")
                        statement = (select(table.c.seq, table.c.created_at, hit).where(where)
                                     .order_by(table.c.seq.desc()).limit(window))
                    rows = list(await conn.execute(statement))
                    hits = [r for r in rows if condition is None or r.hit][:limit + 1]
                    found.update((r.seq, r) for r in hits)
                    floor = _range_floor(rows, hits, query, limit=limit, window=window)
                    if floor is not None:
                        floors.append(floor)
            floor = max(floors, default=None)
            seqs = sorted((s for s in found if floor is None or s >= floor), reverse=True)
            if len(seqs) > limit:
                seqs = seqs[:limit]
                next_before_seq: int | None = seqs[-1]
            else:
                next_before_seq = floor
            if query.filtered and seqs:
                found = {r.seq: r for chunk in _chunks(seqs, 500) for r in await conn.execute(
                    select(table).where(table.c.seq.in_(chunk)))}
            transfers = [_transfer_from_orm_row(found[s]) for s in seqs]
            related = await _related(conn, table, transfers, query.shape)
        return Activity(transfers, related, next_before_seq)

    async def expired_holds(self, now: dt.datetime, *, limit: int) -> list[uuid.UUID]:
        table = LedgerOpenHold.__table__
        query = (select(table.c.pending_id).where(table.c.expires_at <= now)
                 .order_by(table.c.expires_at).limit(limit))
        async with self.engine.connect() as conn:
            return [r.pending_id for r in await conn.execute(query)]

    # -- the batcher -----------------------------------------------------------------------

    async def _worker(self) -> None:
        """SQLite: one batch at a time, each under the chain-head lock."""
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
        """SQLite: lock the chain head, load what the batch touches, decide, write."""
        wanted = _Wanted(calls)
        async with self.engine.begin() as conn:
            io = _SqliteIO(conn)
            head = await io.lock_head(conn)
            if head != self._tip or len(self._cache) > self.cache_max:
                self._invalidate()
            transfers, resolved = await io.load_transfers(wanted.ids | wanted.pending_ids,
                                                          wanted.pending_ids)
            # set.difference(dict) reuses the set's stored hashes (UUID's hash is Python code).
            missing = wanted.account_ids(transfers).difference(self._cache)
            if missing:
                self._cache.update(await io.load_account_states(list(missing)))
            # The engine looks accounts up by id; an id it cannot find is an unknown account.
            snap = engine.Snapshot(self._cache, transfers, resolved, head[0], head[1])
            # From here until the commit the cache runs ahead of the database.
            self._tip = None
            decision = engine.decide(wanted.requests, snap, utcnow())
            if decision.created:
                await io.insert_transfers(decision.created)
                await io.update_accounts(_balances(decision.touched.values()))
                await io.update_holds(decision.created)
                await io.set_head(decision.head_seq, decision.head_hash, head)
        self._tip = (decision.head_seq, decision.head_hash)
        self.batches += 1
        self.batched_transfers += wanted.count
        return decision.outcomes


    # -- PostgreSQL: a lease and a pipeline ---------------------------------------------------

    async def _lease_loop(self) -> None:
        """PostgreSQL: batches overlap — one is decided in Python while the one before it is
        written and committed by the database.

        That is safe because the process first takes the *ledger lease*, a session advisory
        lock every PostgreSQL ledger store takes before it writes. While it holds the lease no
        other process writes, so its account cache and the transfers of its own batches in
        flight are the whole truth. Batch N+1 is decided on top of batch N, writes only after
        N's statements are done (so row locks are taken in one order), and commits only after
        N committed; if N fails, N+1 and every batch after it fail too and the cache is
        dropped. The lease is handed back when the queue has stayed empty for
        ``LEASE_LINGER_S``, after a failure, and at least every ``LEASE_MAX_S`` so other
        processes get their turn.
        """
        while not self._closing:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            try:
                async with self.engine.connect() as lease_conn:
                    lease = (await lease_conn.get_raw_connection()).driver_connection
                    # Listening before taking the lock: whoever asks once it is ours is heard.
                    await lease.add_listener(LEASE_CHANNEL, self._asked)
                    try:
                        if not await lease.fetchval("SELECT pg_try_advisory_lock($1)",
                                                    LEDGER_LEASE_KEY):
                            await lease.execute("SELECT pg_notify($1, '')", LEASE_CHANNEL)
                            await lease.execute("SELECT pg_advisory_lock($1)", LEDGER_LEASE_KEY)
                        try:
                            await self._hold_lease(lease)
                        finally:
                            await lease.execute("SELECT pg_advisory_unlock($1)",
                                                LEDGER_LEASE_KEY)
                    finally:
                        await lease.remove_listener(LEASE_CHANNEL, self._asked)
            except asyncio.CancelledError:
                raise
            except Exception:  # the lease connection failed; batches fail on their own
                log.exception("ledger lease lost")
                self._invalidate()
                await asyncio.sleep(0.05)

    def _asked(self, connection: Any, pid: int, _channel: str, _payload: str) -> None:
        """A NOTIFY on LEASE_CHANNEL: another process waits for the lease (asyncpg callback)."""
        if pid != connection.get_server_pid():
            self._lease_asked = True
            self._wakeup.set()  # an idle holder stops lingering

    async def _hold_lease(self, lease: Any) -> None:
        self.leases += 1
        row = await lease.fetchrow("SELECT seq, hash FROM ledger_chain WHERE id = 1")
        head = (row[0], bytes(row[1]))
        if head != self._tip or len(self._cache) > self.cache_max:
            self._invalidate()  # another process wrote since our last lease
        self._tip = head
        self._recent.clear()
        slots = asyncio.Semaphore(self.pipeline)
        flights: list[asyncio.Task[None]] = []
        prev: _Flight | None = None
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            while not self._closing and self._tip is not None:
                if not self._queue and not await self._linger():
                    break
                held = loop.time() - started
                if held > LEASE_MAX_S or (self._lease_asked and held > LEASE_ASKED_HOLD_S):
                    break
                if self.batch_wait_s and self._pending_count() < self.batch_max:
                    await asyncio.sleep(self.batch_wait_s)
                calls = self._take_batch()
                if not calls:
                    continue
                await slots.acquire()
                flight = _Flight(calls, prev)
                task = asyncio.create_task(self._fly(flight, slots))
                flights.append(task)
                # Decide in order: the next batch is taken once this one is decided.
                await flight.decided.wait()
                prev = flight
                flights = [f for f in flights if not f.done()]
        finally:
            if self._lease_asked:
                self.leases_handed_over += 1
                self._lease_asked = False
            await asyncio.gather(*flights, return_exceptions=True)

    async def _linger(self) -> bool:
        """Wait up to ``LEASE_LINGER_S`` for another call; whether one came (and nobody else
        asked for the lease meanwhile)."""
        self._wakeup.clear()
        if self._queue:
            return True
        if self._lease_asked:
            return False
        try:
            await asyncio.wait_for(self._wakeup.wait(), LEASE_LINGER_S)
        except TimeoutError:
            pass
        return bool(self._queue) and not self._closing and not self._lease_asked

    async def _fly(self, flight: _Flight, slots: asyncio.Semaphore) -> None:
        prev = flight.prev
        try:
            async with self.engine.connect() as conn:
                db = (await conn.get_raw_connection()).driver_connection
                io = _PostgresIO(db)
                transaction = db.transaction()
                await transaction.start()
                try:
                    outcomes = await self._fly_in(flight, io, prev)
                    if prev is not None and not await prev.committed:
                        raise _PredecessorFailed()
                    await transaction.commit()
                except BaseException:
                    await transaction.rollback()
                    raise
        except BaseException as exc:
            flight.settle(False)
            error = exc if not isinstance(exc, asyncio.CancelledError) else RuntimeError(
                "the ledger store is closing")
            if not isinstance(exc, _PredecessorFailed):
                log.exception("ledger batch failed", extra={"calls": len(flight.calls)})
            self._fail(flight.calls, error if not isinstance(exc, _PredecessorFailed)
                       else RuntimeError("an earlier batch failed; nothing was written"))
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        finally:
            flight.prev = None
            slots.release()
        flight.settle(True)
        self.batches += 1
        self.batched_transfers += sum(len(c.transfers) for c in flight.calls)
        for call, result in zip(flight.calls, outcomes, strict=True):
            if not call.future.done():
                call.future.set_result(result)

    async def _fly_in(self, flight: _Flight, io: _PostgresIO,
                      prev: _Flight | None) -> list[list[Outcome]]:
        wanted = _Wanted(flight.calls)
        # Batches not yet committed when our read starts: their rows are not in it.
        unsettled = [f for f in self._recent if f.ok is None]
        try:
            needed = wanted.ids | wanted.pending_ids
            transfers, resolved = await io.load_transfers(needed, wanted.pending_ids)
            if prev is not None:
                await prev.decided.wait()
            base = self._tip
            if base is None:  # the lease is being dropped after a failure
                raise _PredecessorFailed()
            # Accounts not in the cache were not touched by any batch in flight.
            missing = wanted.account_ids(transfers).difference(self._cache)
            if missing:
                loaded = await io.load_account_states(list(missing))
                if self._tip != base:
                    raise _PredecessorFailed()
                for account_id, state in loaded.items():
                    self._cache.setdefault(account_id, state)
            for recent in unsettled:
                for transfer_id in _common(needed, recent.created):
                    transfers[transfer_id] = recent.created[transfer_id]
                for pending_id in _common(wanted.pending_ids, recent.resolved):
                    resolved[pending_id] = recent.resolved[pending_id]
            snap = engine.Snapshot(self._cache, transfers, resolved, base[0], base[1])
            decision = engine.decide(wanted.requests, snap, utcnow())
            balances = _balances(decision.touched.values())
            self._tip = (decision.head_seq, decision.head_hash)
            flight.created = {t.id: t for t in decision.created}
            flight.resolved = {t.pending_id: t.flags for t in decision.created
                               if t.pending_id is not None}
            self._recent.append(flight)
        finally:
            flight.decided.set()
        if prev is not None:
            await prev.written.wait()
        try:
            if decision.created:
                await io.insert_transfers(decision.created)
                await io.update_accounts(balances)
                await io.update_holds(decision.created)
                await io.set_head(decision.head_seq, decision.head_hash, base)
        finally:
            flight.written.set()
        return decision.outcomes


def _check_activity_query(query: ActivityQuery) -> None:
    assert 0 < len(query.account_ids) <= ACTIVITY_ACCOUNTS_MAX, len(query.account_ids)
    assert 1 <= query.limit <= HISTORY_PAGE_MAX, query.limit
    assert query.shape in ("entries", "postings"), query.shape
    assert len(query.texts) <= ACTIVITY_TEXTS_MAX
    for match in query.texts:
        assert 0 < len(match.text) <= ACTIVITY_TEXT_MAX_CHARS
        assert len(match.out_keys) + len(match.in_keys) <= ACTIVITY_KEYS_MAX
    for moment in (query.created_from, query.created_before):
        assert moment is None or moment.tzinfo is not None, "naive datetimes are a bug"


def _activity_filter(table: Any, query: ActivityQuery, *, outgoing: bool) -> Any:
    """The filter as one SQL condition for one side; None: no filter; False: never true."""
    conditions = []
    if query.codes is not None:
        if not query.codes:
            return False
        conditions.append(table.c.code.in_(sorted(query.codes)))
    if query.created_from is not None:
        conditions.append(table.c.created_at >= query.created_from)
    if query.created_before is not None:
        conditions.append(table.c.created_at < query.created_before)
    if query.amount_min is not None:
        conditions.append(table.c.amount >= query.amount_min)
    if query.amount_max is not None:
        conditions.append(table.c.amount <= query.amount_max)
    for match in query.texts:
        keys = match.out_keys if outgoing else match.in_keys
        if not keys:
            return False
        conditions.append(or_(*(table.c.user_data[key].as_string().icontains(
            match.text, autoescape=True) for key in keys)))
    return and_(*conditions) if conditions else None


def _range_floor(rows: list[Any], hits: list[Any], query: ActivityQuery, *, limit: int,
                 window: int) -> int | None:
    """The lowest seq down to which one index range is known (None: known to its end)."""
    if len(hits) > limit:
        return hits[-1].seq
    if len(rows) < window:
        return None
    if query.created_from is not None and (
            rows[-1].created_at < query.created_from - ACTIVITY_CLOCK_SKEW):
        return None  # everything further back is older than the bound
    return rows[-1].seq


async def _related(conn: AsyncConnection, table: Any, transfers: list[Transfer],
                   shape: str) -> dict[uuid.UUID, Transfer]:
    """Entries: the post or void of each hold on the page. Postings: each post's hold."""
    if shape == "entries":
        ids = [t.id for t in transfers if t.flags & _PENDING]
        column = table.c.pending_id
    else:
        ids = [t.pending_id for t in transfers if t.pending_id is not None]
        column = table.c.id
    related: dict[uuid.UUID, Transfer] = {}
    for chunk in _chunks(ids, 500):
        for r in await conn.execute(select(table).where(column.in_(chunk))):
            t = _transfer_from_orm_row(r)
            related[t.pending_id if shape == "entries" else t.id] = t  # type: ignore[index]
    return related


def _common(ids: set[uuid.UUID], mapping: dict[uuid.UUID, Any]) -> set[uuid.UUID]:
    """The ids that are keys of ``mapping``. Two set differences, because set.difference
    with a dict or set reuses stored hashes, and UUID's own hash is Python code."""
    if not mapping:
        return set()
    return ids.difference(ids.difference(mapping))


def _balances(accounts: Iterable[AccountState]) -> list[tuple[uuid.UUID, int, int, int, int]]:
    # No sorting by id: every batch already holds the chain-head lock, the one lock all
    # ledger writers take first, so row locks cannot deadlock whatever their order.
    return [(a.id, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
            for a in accounts]


class ChainMoved(RuntimeError):
    """The chain head moved under a batch: it was rolled back and may be retried."""


class _PredecessorFailed(Exception):
    """A batch this one was decided on top of did not commit."""


class _Flight:
    """A batch on its way through the pipeline."""

    __slots__ = ("calls", "prev", "decided", "written", "committed", "ok", "created",
                 "resolved")

    def __init__(self, calls: list[_Call], prev: _Flight | None) -> None:
        self.calls = calls
        self.prev = prev
        self.decided = asyncio.Event()
        self.written = asyncio.Event()
        self.committed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.ok: bool | None = None
        self.created: dict[uuid.UUID, Transfer] = {}
        self.resolved: dict[uuid.UUID, int] = {}

    def settle(self, ok: bool) -> None:
        self.ok = ok
        self.decided.set()
        self.written.set()
        if not self.committed.done():
            self.committed.set_result(ok)


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
        if not transfers:
            return self.direct_accounts
        found = set(self.direct_accounts)
        for t in transfers.values():
            found.add(t.debit_account_id)
            found.add(t.credit_account_id)
        return found


# -- dialect I/O ---------------------------------------------------------------------------


class _PostgresIO:
    """Few, large round trips on the asyncpg connection itself (no per-row result
    processing): arrays in, ``unnest`` out, binary ``COPY`` for the transfers."""

    def __init__(self, db: Any) -> None:
        self.db = db  # the asyncpg connection, inside the batch's transaction

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

    async def set_head(self, seq: int, hash_: bytes, base: tuple[int, bytes]) -> None:
        # Extends the chain only from the head the batch was decided on: a writer that broke
        # the lease protocol makes this batch fail rather than fork the chain. The head is
        # read FOR UPDATE first, which waits for the batch before this one (still committing,
        # in the pipeline) and then sees its head. A conditional UPDATE alone would not: under
        # READ COMMITTED it tests its WHERE against the last *committed* head and skips the
        # row without waiting when that does not match.
        row = await self.db.fetchrow("SELECT seq, hash FROM ledger_chain WHERE id = 1 FOR UPDATE")
        if row is None or (row[0], bytes(row[1])) != (base[0], bytes(base[1])):
            raise ChainMoved(f"the chain head is no longer at {base[0]}")
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

    async def set_head(self, seq: int, hash_: bytes, base: tuple[int, bytes]) -> None:
        chain = LedgerChain.__table__
        result = await self.conn.execute(
            update(chain).where(chain.c.id == 1, chain.c.seq == base[0], chain.c.hash == base[1])
            .values(seq=seq, hash=hash_))
        if result.rowcount != 1:
            raise ChainMoved(f"the chain head is no longer at {base[0]}")


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
