"""The ledger's use cases on real databases: history pages, hold expiry, typed refusals, and
many concurrent submissions through the batcher (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator

import pytest

from bankwallet.core.db import make_engine
from bankwallet.core.ids import derived_id
from bankwallet.ledger import service
from bankwallet.ledger import store as store_module
from bankwallet.ledger.errors import AccountNotFound, TransferRejected
from bankwallet.ledger.store import SqlLedgerStore
from bankwallet.ledger.types import (
    AccountFlags,
    AccountIn,
    Outcome,
    Result,
    TransferFlags,
    TransferIn,
)
from bankwallet.ledger.verify import verify

DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
LINKED = int(TransferFlags.LINKED)
PENDING = int(TransferFlags.PENDING)
POST = int(TransferFlags.POST_PENDING)
VOID = int(TransferFlags.VOID_PENDING)
FAR_FUTURE = dt.datetime(2999, 1, 1, tzinfo=dt.UTC)
both_databases = pytest.mark.parametrize("fresh_db_url", ["sqlite", "postgres"], indirect=True)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


async def open_accounts(ledger: SqlLedgerStore, count: int, *, flags: int = 0,
                        ledger_code: str = "CNY") -> list[uuid.UUID]:
    ids = [new_id() for _ in range(count)]
    created = await ledger.create_accounts([AccountIn(i, ledger_code, "wallet", flags)
                                            for i in ids])
    assert created == [True] * count
    return ids


def pay(debit: uuid.UUID, credit: uuid.UUID, amount: int, **kw) -> TransferIn:
    kw.setdefault("id", new_id())
    kw.setdefault("code", 1)
    return TransferIn(debit_account_id=debit, credit_account_id=credit, amount=amount,
                      ledger="CNY", **kw)


async def created(ledger: SqlLedgerStore, *transfers: TransferIn) -> list[Outcome]:
    outcomes = await ledger.create_transfers(transfers)
    assert [o.result for o in outcomes] == [Result.CREATED] * len(transfers), outcomes
    return outcomes


async def balances(ledger: SqlLedgerStore, account_id: uuid.UUID) -> tuple[int, int, int, int]:
    a = (await ledger.lookup_accounts([account_id]))[account_id]
    return (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)


@pytest.fixture
async def fresh_ledger(fresh_db_url: str) -> AsyncIterator[SqlLedgerStore]:
    engine = make_engine(fresh_db_url)
    store = SqlLedgerStore(engine)
    yield store
    await store.close()
    report = await verify(engine)  # whatever a test did, the ledger it leaves is consistent
    await engine.dispose()
    assert report.ok, report.problems


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The store's clock, under the test's control (holds expire when the test says so)."""
    fake = Clock()
    monkeypatch.setattr(store_module, "utcnow", fake)
    return fake


# -- history ------------------------------------------------------------------------------------


async def _history(ledger: SqlLedgerStore, account_id: uuid.UUID, limit: int
                   ) -> tuple[list[uuid.UUID], list[int], int]:
    ids: list[uuid.UUID] = []
    seqs: list[int] = []
    pages, cursor = 0, None
    while True:
        page, cursor = await service.account_history(ledger, account_id, before_seq=cursor,
                                                     limit=limit)
        pages += 1
        assert len(page) <= limit
        assert page, "no empty pages: the cursor is None once the last page is served"
        ids += [t.id for t in page]
        seqs += [t.seq for t in page]
        if cursor is None:
            return ids, seqs, pages
        assert cursor == page[-1].seq


async def test_history_pages_cover_both_sides_newest_first(ledger: SqlLedgerStore) -> None:
    me, other, third = await open_accounts(ledger, 3)
    mine: list[uuid.UUID] = []
    # 18 transfers of mine, in both directions, interleaved with others' transfers and
    # submitted partly concurrently (one batch) so sequence order is the batcher's.
    for k in range(6):
        out = pay(me, other, 10 + k)
        inn = pay(third, me, 20 + k)
        noise = pay(other, third, 1)
        await created(ledger, out, noise)
        await asyncio.gather(created(ledger, inn), created(ledger, pay(third, other, 2)))
        hold = pay(other, me, 5, flags=PENDING)
        await created(ledger, hold)
        mine += [out.id, inn.id, hold.id]
    stored = await ledger.lookup_transfers(mine)
    expected = sorted(mine, key=lambda i: stored[i].seq, reverse=True)
    assert len(expected) == 18
    for limit in (1, 3, 4, 5, 6, 17, 18, 19, 500):
        ids, seqs, pages = await _history(ledger, me, limit)
        assert ids == expected, f"limit {limit}"
        assert len(set(ids)) == len(ids)
        assert seqs == sorted(seqs, reverse=True)
        assert pages == -(-18 // limit)


async def test_history_cursor_is_stable_while_new_transfers_arrive(ledger: SqlLedgerStore) -> None:
    me, other = await open_accounts(ledger, 2)
    old = [pay(me, other, k + 1) if k % 2 else pay(other, me, k + 1) for k in range(9)]
    for t in old:
        await created(ledger, t)
    first, cursor = await service.account_history(ledger, me, limit=4)
    assert [t.id for t in first] == [t.id for t in reversed(old)][:4]
    await created(ledger, pay(me, other, 99), pay(other, me, 98))  # newer than the cursor
    rest: list[uuid.UUID] = []
    while cursor is not None:
        page, cursor = await service.account_history(ledger, me, before_seq=cursor, limit=4)
        rest += [t.id for t in page]
    assert rest == [t.id for t in reversed(old)][4:]


async def test_history_of_an_account_without_transfers_and_an_unknown_account(
        ledger: SqlLedgerStore) -> None:
    (lonely,) = await open_accounts(ledger, 1)
    assert await service.account_history(ledger, lonely) == ([], None)
    with pytest.raises(AccountNotFound):
        await service.account_history(ledger, new_id())


# -- hold expiry --------------------------------------------------------------------------------


async def _funded_wallet(ledger: SqlLedgerStore, amount: int = 1000
                         ) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    (bank, merchant) = await open_accounts(ledger, 2)
    (wallet,) = await open_accounts(ledger, 1, flags=DMNEC)
    await created(ledger, pay(bank, wallet, amount))
    return bank, wallet, merchant


@both_databases
async def test_expire_holds_voids_each_expired_hold_once(fresh_ledger: SqlLedgerStore,
                                                         clock: Clock) -> None:
    ledger = fresh_ledger
    _, wallet, merchant = await _funded_wallet(ledger)
    t0 = clock.now
    h10 = pay(wallet, merchant, 100, flags=PENDING, timeout_s=10)
    h100 = pay(wallet, merchant, 200, flags=PENDING, timeout_s=100)
    forever = pay(wallet, merchant, 50, flags=PENDING)
    posted = pay(wallet, merchant, 30, flags=PENDING, timeout_s=10)
    voided = pay(wallet, merchant, 20, flags=PENDING, timeout_s=10)
    await created(ledger, h10, h100, forever, posted, voided)
    await created(ledger, TransferIn(id=new_id(), pending_id=posted.id, flags=POST),
                  TransferIn(id=new_id(), pending_id=voided.id, flags=VOID))
    assert set(await ledger.expired_holds(FAR_FUTURE, limit=100)) == {h10.id, h100.id}

    assert await service.expire_holds(ledger, now=t0 + dt.timedelta(seconds=9)) == 0
    assert await service.expire_holds(ledger, now=t0 + dt.timedelta(seconds=10)) == 1
    assert await service.expire_holds(ledger, now=t0 + dt.timedelta(seconds=10)) == 0
    assert await service.expire_holds(ledger, now=t0 + dt.timedelta(seconds=99)) == 0
    assert await balances(ledger, wallet) == (250, 30, 0, 1000)

    void_id = derived_id("ledger.expire", h10.id)
    void = (await ledger.lookup_transfers([void_id]))[void_id]
    assert (void.flags, void.pending_id, void.amount, void.debit_account_id,
            void.credit_account_id, void.user_data) == (
        VOID, h10.id, 100, wallet, merchant, {"reason": "expired"})
    # The hold is gone for good: posting it now is refused, whatever the store's clock says.
    (late,) = await ledger.create_transfers([TransferIn(id=new_id(), pending_id=h10.id,
                                                        flags=POST)])
    assert late.result is Result.PENDING_TRANSFER_ALREADY_VOIDED

    assert await service.expire_holds(ledger, now=t0 + dt.timedelta(seconds=100)) == 1
    assert await ledger.expired_holds(FAR_FUTURE, limit=100) == []  # the index is empty
    assert await service.expire_holds(ledger, now=FAR_FUTURE) == 0
    assert await balances(ledger, wallet) == (50, 30, 0, 1000)


@both_databases
async def test_post_or_void_after_the_timeout_is_refused(fresh_ledger: SqlLedgerStore,
                                                         clock: Clock) -> None:
    ledger = fresh_ledger
    _, wallet, merchant = await _funded_wallet(ledger)
    hold = pay(wallet, merchant, 100, flags=PENDING, timeout_s=10)
    await created(ledger, hold)
    clock.advance(10)  # exactly at the timeout: expired
    attempts = [TransferIn(id=new_id(), pending_id=hold.id, flags=POST),
                TransferIn(id=new_id(), pending_id=hold.id, flags=POST, amount=1),
                TransferIn(id=new_id(), pending_id=hold.id, flags=VOID)]
    for attempt in attempts:
        (outcome,) = await ledger.create_transfers([attempt])
        assert outcome.result is Result.PENDING_TRANSFER_EXPIRED
    assert await balances(ledger, wallet) == (100, 0, 0, 1000)  # still held until the sweep
    assert await ledger.expired_holds(clock.now, limit=10) == [hold.id]
    assert await service.expire_holds(ledger, now=clock.now) == 1
    (outcome,) = await ledger.create_transfers([attempts[0]])
    assert outcome.result is Result.PENDING_TRANSFER_ALREADY_VOIDED
    assert await balances(ledger, wallet) == (0, 0, 0, 1000)
    found = await ledger.lookup_transfers([a.id for a in attempts])
    assert found == {}  # refused transfers are not stored


@both_databases
async def test_concurrent_expiry_jobs_void_each_hold_once(fresh_ledger: SqlLedgerStore,
                                                          fresh_db_url: str,
                                                          clock: Clock) -> None:
    ledger = fresh_ledger
    _, wallet, merchant = await _funded_wallet(ledger)
    holds = [pay(wallet, merchant, 10, flags=PENDING, timeout_s=1 + k % 3) for k in range(40)]
    await created(ledger, *holds)
    # A second process: its own engine and store on the same database.
    engine = make_engine(fresh_db_url)
    other = SqlLedgerStore(engine)
    try:
        now = clock.now + dt.timedelta(seconds=3)
        counts = await asyncio.gather(*(service.expire_holds(s, now=now)
                                        for s in (ledger, other, ledger, other, ledger)))
    finally:
        await other.close()
        await engine.dispose()
    assert sum(counts) == 40
    voids = await ledger.lookup_transfers(derived_id("ledger.expire", h.id) for h in holds)
    assert len(voids) == 40
    assert await balances(ledger, wallet) == (0, 0, 0, 1000)
    assert await ledger.expired_holds(FAR_FUTURE, limit=100) == []


# -- submit_one ---------------------------------------------------------------------------------


async def test_submit_one_returns_the_transfer_or_raises_with_the_code(
        ledger: SqlLedgerStore) -> None:
    _, wallet, merchant = await _funded_wallet(ledger, 100)
    ok = pay(wallet, merchant, 60)
    stored = await service.submit_one(ledger, ok)
    assert stored.id == ok.id and stored.amount == 60 and stored.seq > 0
    assert await service.submit_one(ledger, ok) == stored  # exists is a success, not twice
    assert await balances(ledger, wallet) == (0, 60, 0, 100)

    too_much = pay(wallet, merchant, 41)
    with pytest.raises(TransferRejected) as refused:
        await service.submit_one(ledger, too_much)
    assert refused.value.code == "exceeds_credits"
    problem = refused.value.to_problem("/x")
    assert (problem["status"], problem["code"], problem["result"]) == (
        422, "exceeds_credits", "exceeds_credits")
    assert problem["detail"] == "The debit account does not have enough funds."
    assert await ledger.lookup_transfers([too_much.id]) == {}

    with pytest.raises(TransferRejected) as changed:
        await service.submit_one(ledger, pay(wallet, merchant, 61, id=ok.id))
    assert changed.value.code == "transfer_exists_with_different_fields"
    with pytest.raises(TransferRejected) as chain:
        await service.submit_one(ledger, pay(wallet, merchant, 1, flags=LINKED))
    assert chain.value.code == "linked_event_chain_open"
    assert await balances(ledger, wallet) == (0, 60, 0, 100)


# -- concurrency --------------------------------------------------------------------------------


@both_databases
async def test_concurrent_calls_with_duplicate_ids_apply_each_id_once(
        fresh_db_url: str) -> None:
    engine = make_engine(fresh_db_url)
    # Small batches, so several form, one after another, each seeing what the last wrote.
    ledger = SqlLedgerStore(engine, batch_max=40)
    try:
        await _hammer(ledger)
    finally:
        await ledger.close()
        report = await verify(engine)
        await engine.dispose()
    assert report.ok, report.problems


async def _hammer(ledger: SqlLedgerStore) -> None:
    rng = random.Random(7)
    (bank, merchant, fees) = await open_accounts(ledger, 3)
    wallets = await open_accounts(ledger, 20, flags=DMNEC)
    await created(ledger, *(pay(bank, w, 40) for w in wallets))
    calls: list[list[TransferIn]] = []
    for _ in range(110):  # payments, some of which overdraw their wallet
        calls.append([pay(rng.choice(wallets), merchant, rng.randint(1, 9))])
    for _ in range(20):  # payment + fee, all or nothing
        w = rng.choice(wallets)
        calls.append([pay(w, merchant, rng.randint(1, 9), flags=LINKED), pay(w, fees, 1)])
    originals = list(calls)
    for _ in range(50):  # exact duplicates: a client retrying
        calls.append(list(rng.choice(originals)))
    for _ in range(20):  # same id, other amount: a buggy client
        (t,) = rng.choice(originals[:110])
        calls.append([dataclasses.replace(t, amount=t.amount + 1)])
    rng.shuffle(calls)
    assert len(calls) == 200

    batches_before = ledger.batches
    results = await asyncio.gather(*(ledger.create_transfers(c) for c in calls))

    batches = ledger.batches - batches_before
    assert -(-sum(len(c) for c in calls) // 40) <= batches < len(calls)
    by_id: dict[uuid.UUID, list[tuple[TransferIn, Outcome]]] = defaultdict(list)
    for call, outcomes in zip(calls, results, strict=True):
        assert len(outcomes) == len(call)
        for t, o in zip(call, outcomes, strict=True):
            by_id[t.id].append((t, o))
    stored = await ledger.lookup_transfers(by_id)
    for transfer_id, seen in by_id.items():
        kinds = Counter(o.result for _, o in seen)
        if transfer_id not in stored:  # refused every time: never applied
            assert not kinds[Result.CREATED] and not kinds[Result.EXISTS], kinds
            continue
        assert kinds[Result.CREATED] == 1, kinds  # applied exactly once
        (winner,) = [t for t, o in seen if o.result is Result.CREATED]
        assert stored[transfer_id].amount == winner.amount
        for t, o in seen:
            # Balances only shrink here, so the winner's twins never failed before it won.
            if t == winner:
                assert o.result in (Result.CREATED, Result.EXISTS), o
            if o.result is Result.EXISTS:
                assert o.transfer is not None and o.transfer.seq == stored[transfer_id].seq
    totals = Counter(o.result for outs in results for o in outs)
    assert totals[Result.EXISTS] > 0 and totals[Result.EXISTS_WITH_DIFFERENT_FIELDS] > 0
    assert totals[Result.EXCEEDS_CREDITS] > 0  # some wallets ran dry: refused, not overdrawn
    # Balances are exactly the sums of what was stored.
    accounts = await ledger.lookup_accounts([merchant, fees, *wallets])
    credited: Counter[uuid.UUID] = Counter()
    debited: Counter[uuid.UUID] = Counter()
    for t in stored.values():
        credited[t.credit_account_id] += t.amount
        debited[t.debit_account_id] += t.amount
    assert accounts[merchant].credits_posted == credited[merchant]
    assert accounts[fees].credits_posted == credited[fees]
    for w in wallets:
        a = accounts[w]
        assert a.debits_posted == debited[w] <= a.credits_posted == 40


@both_databases
async def test_concurrent_spending_from_two_processes_never_overdraws(
        fresh_ledger: SqlLedgerStore, fresh_db_url: str) -> None:
    ledger = fresh_ledger
    _, wallet, merchant = await _funded_wallet(ledger, 100)
    engine = make_engine(fresh_db_url)
    other = SqlLedgerStore(engine)
    try:
        spends = [pay(wallet, merchant, 7) for _ in range(50)]
        results = await asyncio.gather(*((ledger if k % 2 else other).create_transfers([t])
                                         for k, t in enumerate(spends)))
    finally:
        await other.close()
        await engine.dispose()
    kinds = Counter(r[0].result for r in results)
    assert kinds == {Result.CREATED: 14, Result.EXCEEDS_CREDITS: 36}
    assert await balances(ledger, wallet) == (0, 98, 0, 100)


async def test_history_page_of_the_largest_size_still_has_a_next_cursor(
        ledger: SqlLedgerStore) -> None:
    """The service asks for one row past the page to learn whether another page follows;
    a page of the largest size must still get that row."""
    me, other = await open_accounts(ledger, 2)
    size = store_module.HISTORY_PAGE_MAX
    await created(ledger, *(pay(me, other, 1) for _ in range(size + 2)))
    page, cursor = await service.account_history(ledger, me, limit=size)
    assert len(page) == size and cursor is not None
    rest, cursor = await service.account_history(ledger, me, before_seq=cursor, limit=size)
    assert len(rest) == 2 and cursor is None


@both_databases
async def test_concurrent_account_creation_with_one_id_creates_it_once(
        fresh_ledger: SqlLedgerStore, fresh_db_url: str) -> None:
    """Opening the same account twice at once (two API nodes, a retried signup) must answer
    True once and False otherwise, as it does one after the other, never raise."""
    engine = make_engine(fresh_db_url)
    other = SqlLedgerStore(engine)
    ids = [new_id() for _ in range(30)]
    try:
        results = await asyncio.gather(*(
            store.create_accounts([AccountIn(i, "CNY", "wallet", DMNEC),
                                   AccountIn(i, "CNY", "wallet", DMNEC)])
            for i in ids for store in (fresh_ledger, other, fresh_ledger)))
    finally:
        await other.close()
        await engine.dispose()
    for k, account_id in enumerate(ids):
        answers = [flag for r in results[3 * k:3 * k + 3] for flag in r]
        assert answers.count(True) == 1, (account_id, answers)
    assert set(await fresh_ledger.lookup_accounts(ids)) == set(ids)
