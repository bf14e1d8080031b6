"""The real SQL ledger store against a plain in-memory model, driven by hypothesis.

A ``RuleBasedStateMachine`` creates accounts, submits transfers, holds, posts, voids, linked
chains, exact and altered retries, concurrent calls (one batch) and expiry sweeps, through
two stores on one database (two processes, each with its own cache of account states). The model
below is written from the rules, not from the engine: it predicts every result code and every
balance, and after every step the invariants compare it with what the database holds.

Hypothesis has no async state machines, so the store lives on an event loop of its own in a
background thread; each rule hands it coroutines and waits. The store's clock is replaced by a
virtual one the machine advances, so holds expire exactly when the model says they do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from bankwallet.core.db import make_engine
from bankwallet.core.ids import derived_id
from bankwallet.ledger import service
from bankwallet.ledger import store as store_module
from bankwallet.ledger.store import SqlLedgerStore
from bankwallet.ledger.types import AccountIn, Outcome, Result, Transfer, TransferIn
from bankwallet.ledger.verify import verify

T = TypeVar("T")

MAX = 2**63 - 1
LINKED, PENDING, POST, VOID = 1, 2, 4, 8
DMNEC, CMNED = 2, 4  # debits must not exceed credits / credits must not exceed debits
LEDGERS = ("CNY", "USD")
ACCOUNT_FLAGS = (0, 0, DMNEC, DMNEC, CMNED, DMNEC | CMNED)
TIMEOUTS = (0, 0, 10, 60)
FAR_FUTURE = dt.datetime(2999, 1, 1, tzinfo=dt.UTC)
USER_DATA = (None, None, None, {}, {"note": "rent"}, {"n": 7, "ok": True, "x": None},
             {"bad": 1.5})

NEVER_MISSING = {Result.CREATED, Result.EXISTS, Result.EXISTS_WITH_DIFFERENT_FIELDS,
                 Result.LINKED_EVENT_FAILED, Result.EXCEEDS_CREDITS}

# Modest on purpose: the whole file should take well under a minute on two cores.
# LEDGER_MODEL_EXAMPLES raises the count for a longer hunt.
SQLITE_SETTINGS = settings(max_examples=int(os.environ.get("LEDGER_MODEL_EXAMPLES", 50)),
                           stateful_step_count=35, deadline=None,
                           suppress_health_check=list(HealthCheck))
POSTGRES_SETTINGS = settings(SQLITE_SETTINGS,
                             max_examples=int(os.environ.get("LEDGER_MODEL_EXAMPLES", 30)))


# -- the model ----------------------------------------------------------------------------------


@dataclass
class MAccount:
    ledger: str
    flags: int
    dp: int = 0  # debits pending
    dpo: int = 0  # debits posted
    cp: int = 0  # credits pending
    cpo: int = 0  # credits posted

    def balances(self) -> tuple[int, int, int, int]:
        return (self.dp, self.dpo, self.cp, self.cpo)


@dataclass(frozen=True)
class MTransfer:
    id: uuid.UUID
    debit: uuid.UUID
    credit: uuid.UUID
    amount: int
    ledger: str
    code: int
    flags: int
    pending_id: uuid.UUID | None
    timeout_s: int
    user_data: dict[str, Any] | None
    expires_at: dt.datetime | None


def user_data_ok(data: Any) -> bool:
    if data is None:
        return True
    if not isinstance(data, dict) or len(data) > 32:
        return False
    for key, value in data.items():
        if not isinstance(key, str) or len(key) > 64:
            return False
        if value is None or isinstance(value, (bool, str)):
            continue
        if not isinstance(value, int) or abs(value) > MAX:
            return False
    return len(orjson.dumps(data)) <= 2048


class Model:
    """What the ledger should hold, from the rules alone."""

    def __init__(self) -> None:
        self.accounts: dict[uuid.UUID, MAccount] = {}
        self.transfers: dict[uuid.UUID, MTransfer] = {}
        self.resolved: dict[uuid.UUID, int] = {}  # hold id -> POST or VOID

    # A linked chain is all-or-nothing: keep a copy, put it back when a link fails.
    def save(self) -> tuple[Any, ...]:
        return ({k: dataclasses.replace(a) for k, a in self.accounts.items()},
                dict(self.transfers), dict(self.resolved))

    def restore(self, saved: tuple[Any, ...]) -> None:
        self.accounts, self.transfers, self.resolved = saved

    def call(self, call: list[TransferIn], now: dt.datetime
             ) -> list[tuple[Result, MTransfer | None]]:
        out: list[tuple[Result, MTransfer | None]] = []
        chain: list[TransferIn] = []
        for position, t in enumerate(call):
            chain.append(t)
            last = position == len(call) - 1
            if t.flags & LINKED and not last:
                continue
            if t.flags & LINKED:  # the call ends with the chain still open
                out.extend((Result.LINKED_EVENT_CHAIN_OPEN, None) for _ in chain)
            else:
                out.extend(self.chain(chain, now))
            chain = []
        return out

    def chain(self, chain: list[TransferIn], now: dt.datetime
              ) -> list[tuple[Result, MTransfer | None]]:
        saved = self.save() if len(chain) > 1 else None
        done: list[tuple[Result, MTransfer | None]] = []
        for t in chain:
            result, made = self.one(t, now)
            if result not in (Result.CREATED, Result.EXISTS) and saved is not None:
                self.restore(saved)
                failed: list[tuple[Result, MTransfer | None]] = [
                    (Result.LINKED_EVENT_FAILED, None) for _ in chain]
                failed[len(done)] = (result, None)
                return failed
            done.append((result, made))
        return done

    def one(self, t: TransferIn, now: dt.datetime) -> tuple[Result, MTransfer | None]:
        problem = self.shape(t)
        if problem is not None:
            return problem, None
        stored = self.transfers.get(t.id)
        if stored is not None:
            if self.same(t, stored):
                return Result.EXISTS, stored
            return Result.EXISTS_WITH_DIFFERENT_FIELDS, None
        if t.flags & (POST | VOID):
            return self.resolve(t, now)
        return self.new(t, now)

    @staticmethod
    def shape(t: TransferIn) -> Result | None:
        if t.flags & ~(LINKED | PENDING | POST | VOID):
            return Result.FLAGS_UNKNOWN
        if bin(t.flags & (PENDING | POST | VOID)).count("1") > 1:
            return Result.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if t.amount is not None and t.amount <= 0:
            return Result.AMOUNT_MUST_NOT_BE_ZERO
        if t.amount is not None and t.amount > MAX:
            return Result.AMOUNT_TOO_LARGE
        if t.code > 65535:  # a u16, as in TigerBeetle
            return Result.CODE_TOO_LARGE
        if not 0 <= t.timeout_s <= 366 * 24 * 3600:
            return Result.TIMEOUT_INVALID
        if t.timeout_s and not t.flags & PENDING:
            return Result.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        if not user_data_ok(t.user_data):
            return Result.USER_DATA_INVALID
        if t.flags & (POST | VOID):
            if t.pending_id is None:
                return Result.PENDING_ID_REQUIRED
            if t.pending_id == t.id:
                return Result.PENDING_ID_MUST_BE_DIFFERENT
            return Result.CODE_MUST_NOT_BE_ZERO if t.code < 0 else None
        if t.pending_id is not None:
            return Result.PENDING_ID_MUST_BE_ZERO
        if t.amount is None:
            return Result.AMOUNT_MUST_NOT_BE_ZERO
        if t.code <= 0:
            return Result.CODE_MUST_NOT_BE_ZERO
        if t.debit_account_id is None:
            return Result.DEBIT_ACCOUNT_REQUIRED
        if t.credit_account_id is None:
            return Result.CREDIT_ACCOUNT_REQUIRED
        if t.debit_account_id == t.credit_account_id:
            return Result.ACCOUNTS_MUST_BE_DIFFERENT
        if not t.ledger:
            return Result.LEDGER_REQUIRED
        return None

    def same(self, t: TransferIn, s: MTransfer) -> bool:
        """A retry is the stored transfer when every field it gives matches (the ones a
        post or void leaves out are inherited from the hold)."""
        if (t.flags, t.pending_id, t.timeout_s) != (s.flags, s.pending_id, s.timeout_s):
            return False
        if (t.user_data or None) != s.user_data:
            return False
        given = [(t.debit_account_id, s.debit), (t.credit_account_id, s.credit),
                 (t.ledger, s.ledger), (t.code or None, s.code)]
        if any(mine is not None and mine != theirs for mine, theirs in given):
            return False
        if t.amount is not None:
            return t.amount == s.amount
        hold = self.transfers.get(s.pending_id) if s.pending_id else None
        return hold is not None and hold.amount == s.amount

    def new(self, t: TransferIn, now: dt.datetime) -> tuple[Result, MTransfer | None]:
        dr = self.accounts.get(t.debit_account_id)  # type: ignore[arg-type]
        cr = self.accounts.get(t.credit_account_id)  # type: ignore[arg-type]
        if dr is None:
            return Result.DEBIT_ACCOUNT_NOT_FOUND, None
        if cr is None:
            return Result.CREDIT_ACCOUNT_NOT_FOUND, None
        if dr.ledger != cr.ledger:
            return Result.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER, None
        if t.ledger != dr.ledger:
            return Result.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS, None
        amount = t.amount
        assert amount is not None
        # Holds count against the limits as if they were posted.
        if dr.flags & DMNEC and dr.dp + dr.dpo + amount > dr.cpo:
            return Result.EXCEEDS_CREDITS, None
        if cr.flags & CMNED and cr.cp + cr.cpo + amount > cr.dpo:
            return Result.EXCEEDS_DEBITS, None
        hold = bool(t.flags & PENDING)
        if (dr.dp if hold else dr.dpo) + amount > MAX:
            return Result.OVERFLOWS_DEBITS, None
        if (cr.cp if hold else cr.cpo) + amount > MAX:
            return Result.OVERFLOWS_CREDITS, None
        if hold:
            dr.dp += amount
            cr.cp += amount
        else:
            dr.dpo += amount
            cr.cpo += amount
        expires_at = now + dt.timedelta(seconds=t.timeout_s) if t.timeout_s else None
        made = MTransfer(t.id, t.debit_account_id, t.credit_account_id, amount,  # type: ignore[arg-type]
                         dr.ledger, t.code, t.flags, None, t.timeout_s, t.user_data or None,
                         expires_at)
        self.transfers[t.id] = made
        return Result.CREATED, made

    def resolve(self, t: TransferIn, now: dt.datetime) -> tuple[Result, MTransfer | None]:
        hold = self.transfers.get(t.pending_id)  # type: ignore[arg-type]
        if hold is None:
            return Result.PENDING_TRANSFER_NOT_FOUND, None
        if not hold.flags & PENDING:
            return Result.PENDING_TRANSFER_NOT_PENDING, None
        if t.debit_account_id is not None and t.debit_account_id != hold.debit:
            return Result.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT, None
        if t.credit_account_id is not None and t.credit_account_id != hold.credit:
            return Result.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT, None
        if t.ledger is not None and t.ledger != hold.ledger:
            return Result.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER, None
        if t.code and t.code != hold.code:
            return Result.PENDING_TRANSFER_HAS_DIFFERENT_CODE, None
        posting = bool(t.flags & POST)
        amount = hold.amount if t.amount is None else t.amount
        if posting and amount > hold.amount:
            return Result.EXCEEDS_PENDING_TRANSFER_AMOUNT, None
        if not posting and amount != hold.amount:
            return Result.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT, None
        if hold.id in self.resolved:
            return (Result.PENDING_TRANSFER_ALREADY_POSTED if self.resolved[hold.id] == POST
                    else Result.PENDING_TRANSFER_ALREADY_VOIDED), None
        expired = hold.expires_at is not None and now >= hold.expires_at
        if expired and not (t.expire and not posting):
            return Result.PENDING_TRANSFER_EXPIRED, None
        dr, cr = self.accounts[hold.debit], self.accounts[hold.credit]
        if posting and dr.dpo + amount > MAX:
            return Result.OVERFLOWS_DEBITS, None
        if posting and cr.cpo + amount > MAX:
            return Result.OVERFLOWS_CREDITS, None
        dr.dp -= hold.amount
        cr.cp -= hold.amount
        if posting:
            dr.dpo += amount
            cr.cpo += amount
        self.resolved[hold.id] = POST if posting else VOID
        made = MTransfer(t.id, hold.debit, hold.credit, amount, hold.ledger, t.code or hold.code,
                         t.flags, hold.id, 0, t.user_data or None, None)
        self.transfers[t.id] = made
        return Result.CREATED, made

    def open_timed_holds(self) -> dict[uuid.UUID, MTransfer]:
        return {t.id: t for t in self.transfers.values()
                if t.flags & PENDING and t.expires_at is not None and t.id not in self.resolved}

    def sweep(self, now: dt.datetime, clock: dt.datetime) -> list[MTransfer]:
        """The expiry job: void every open hold whose timeout has passed at ``now``."""
        voids = []
        for hold in self.open_timed_holds().values():
            if hold.expires_at <= now:  # type: ignore[operator]
                void = TransferIn(id=derived_id("ledger.expire", hold.id), pending_id=hold.id,
                                  flags=VOID, user_data={"reason": "expired"}, expire=True)
                result, made = self.resolve(void, clock)
                assert result is Result.CREATED and made is not None
                voids.append(made)
        return voids


# -- running the async store from hypothesis' synchronous machine -------------------------------


class LoopThread:
    """An event loop in a thread of its own; ``run`` waits for a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ledger-model-loop",
                                       daemon=True)
        self.thread.start()

    def run(self, awaitable: Awaitable[T], timeout_s: float = 60) -> T:
        async def wrap() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(timeout_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class VirtualClock:
    def __init__(self) -> None:
        self.value = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.value


@dataclass
class Harness:
    runner: LoopThread
    engine: AsyncEngine
    clock: VirtualClock
    seen: Counter[Result] = dataclasses.field(default_factory=Counter)  # results predicted


@pytest.fixture
def harness(fresh_db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    clock = VirtualClock()
    monkeypatch.setattr(store_module, "utcnow", clock)
    runner = LoopThread()
    engine = make_engine(fresh_db_url, pool_size=4)
    try:
        h = Harness(runner, engine, clock)
        yield h
        # The runs must not have gone vacuous: the common outcomes all happened.
        assert not NEVER_MISSING - set(h.seen), f"never seen: {NEVER_MISSING - set(h.seen)}"
        # Every run is also checked as a whole: hash chain, balances from transfers, hold index.
        report = runner.run(verify(engine))
        assert report.ok, report.problems
        assert report.transfers > 0
    finally:
        runner.run(engine.dispose())
        runner.close()


async def _new_store(engine: AsyncEngine) -> SqlLedgerStore:
    return SqlLedgerStore(engine)


def machine(h: Harness) -> type[RuleBasedStateMachine]:  # noqa: C901 - one class, many rules
    class LedgerMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.model = Model()
            # Two stores on one database: two processes, each with its own batcher and cache
            # of account states; the machine switches between them (``switch_process``).
            self.stores = [h.runner.run(_new_store(h.engine)) for _ in range(2)]
            self.store = self.stores[0]
            self.calls: list[list[TransferIn]] = []
            self.seen: set[uuid.UUID] = set()  # every transfer id this run has used
            h.clock.value += dt.timedelta(days=1)
            # Holds left open by earlier runs would be swept with ours and spoil the counts.
            while h.runner.run(service.expire_holds(self.store, now=FAR_FUTURE)):
                pass

        def teardown(self) -> None:
            for store in self.stores:
                h.runner.run(store.close())

        @property
        def now(self) -> dt.datetime:
            return h.clock.value

        # -- drawing ---------------------------------------------------------------------------

        @staticmethod
        def chance(data: st.DataObject, percent: int, label: str) -> bool:
            """True ``percent`` times in a hundred; shrinks towards False (the ordinary case)."""
            return data.draw(st.integers(0, 99), label=label) >= 100 - percent

        def account(self, data: st.DataObject, *, unknown: bool = True,
                    ledger: str | None = None, other_than: uuid.UUID | None = None) -> uuid.UUID:
            if unknown and self.chance(data, 4, "unknown account?"):
                return uuid.uuid4()
            choices = [i for i, a in self.model.accounts.items()
                       if (ledger is None or a.ledger == ledger) and i != other_than]
            return data.draw(st.sampled_from(choices or list(self.model.accounts)),
                             label="account")

        def amount(self, data: st.DataObject) -> int:
            if self.chance(data, 10, "odd amount?"):
                return data.draw(st.sampled_from([0, -1, 2**62, MAX, MAX + 1]), label="amount")
            return data.draw(st.integers(1, 400), label="amount")

        def pair(self, data: st.DataObject) -> tuple[uuid.UUID, uuid.UUID]:
            """Mostly two different accounts of one currency; now and then any two."""
            dr = self.account(data)
            if dr not in self.model.accounts or self.chance(data, 8, "any credit account?"):
                return dr, self.account(data)
            return dr, self.account(data, ledger=self.model.accounts[dr].ledger, other_than=dr)

        def new_transfer(self, data: st.DataObject, *, hold: bool | None = None) -> TransferIn:
            dr, cr = self.pair(data)
            if hold is None:
                hold = self.chance(data, 40, "hold?")
            known = self.model.accounts.get(dr) or self.model.accounts.get(cr)
            ledger = known.ledger if known else "CNY"
            if self.chance(data, 3, "other ledger?"):
                ledger = "USD" if ledger == "CNY" else "CNY"
            user_data = None
            if self.chance(data, 20, "user data?"):
                user_data = data.draw(st.sampled_from(USER_DATA), label="user_data")
            t = TransferIn(id=uuid.uuid4(), debit_account_id=dr, credit_account_id=cr,
                           amount=self.amount(data), ledger=ledger,
                           code=data.draw(st.integers(1, 3), label="code"),
                           flags=PENDING if hold else 0,
                           timeout_s=data.draw(st.sampled_from(TIMEOUTS)) if hold else 0,
                           user_data=user_data)
            return self.spoil(data, t)

        def spoil(self, data: st.DataObject, t: TransferIn) -> TransferIn:
            """Now and then, one malformed field."""
            if not self.chance(data, 8, "spoil?"):
                return t
            fields = data.draw(st.sampled_from([
                {"code": 0},
                {"code": 65536},
                {"credit_account_id": t.debit_account_id},
                {"timeout_s": 5, "flags": t.flags & ~PENDING},
                {"timeout_s": -1, "flags": t.flags | PENDING},
                {"pending_id": uuid.uuid4()},
                {"flags": t.flags | POST | PENDING},
                {"flags": t.flags | 64},
                {"ledger": None},
                {"debit_account_id": None},
                {"credit_account_id": None},
                {"flags": POST, "pending_id": None},
                {"flags": VOID, "pending_id": t.id},
            ]), label="spoiled fields")
            return dataclasses.replace(t, **fields)

        def resolution(self, data: st.DataObject, *, post: bool | None = None) -> TransferIn:
            if post is None:
                post = self.chance(data, 60, "post?")
            holds = [t.id for t in self.model.transfers.values() if t.flags & PENDING]
            open_holds = [i for i in holds if i not in self.model.resolved]
            others = [t.id for t in self.model.transfers.values() if not t.flags & PENDING]
            pick = data.draw(st.integers(0, 99), label="which hold")
            if pick < 60 and open_holds:
                hold_id = data.draw(st.sampled_from(open_holds), label="open hold")
            elif pick < 90 and holds:
                hold_id = data.draw(st.sampled_from(holds), label="any hold")
            elif pick < 95 and others:
                hold_id = data.draw(st.sampled_from(others), label="not a hold")
            else:
                hold_id = uuid.uuid4()  # no such hold
            hold = self.model.transfers.get(hold_id)
            full = hold.amount if hold else 100
            amounts: list[int | None] = [None, None, full, full + 1]
            if post:
                amounts.append(data.draw(st.integers(1, max(1, min(full - 1, 10**6))),
                                         label="partial"))
            else:
                amounts.append(max(full - 1, 1))
            fields: dict[str, Any] = {}
            if hold and self.chance(data, 25, "more fields?"):
                fields = data.draw(st.sampled_from([
                    {"debit_account_id": hold.debit, "credit_account_id": hold.credit,
                     "ledger": hold.ledger, "code": hold.code},
                    {"code": hold.code + 1},
                    {"debit_account_id": hold.credit},
                    {"credit_account_id": hold.debit},
                    {"ledger": "USD" if hold.ledger == "CNY" else "CNY"},
                ]), label="resolution fields")
            return TransferIn(id=uuid.uuid4(), pending_id=hold_id, flags=POST if post else VOID,
                              amount=data.draw(st.sampled_from(amounts), label="amount"),
                              user_data=data.draw(st.sampled_from(USER_DATA[:5])), **fields)

        def element(self, data: st.DataObject, previous: TransferIn | None) -> TransferIn:
            kind = data.draw(st.sampled_from(["pay", "pay", "pay", "hold", "hold", "resolve",
                                              "previous", "bad"]), label="kind")
            if kind == "previous" and previous is not None and previous.flags & PENDING:
                return TransferIn(id=uuid.uuid4(), pending_id=previous.id,
                                  flags=data.draw(st.sampled_from([POST, VOID])),
                                  amount=data.draw(st.sampled_from([None, 1, previous.amount])))
            if kind == "resolve" and self.model.transfers:
                return self.resolution(data)
            if kind == "bad":
                return dataclasses.replace(self.new_transfer(data), amount=0)
            return self.new_transfer(data, hold=kind == "hold")

        # -- submitting and checking -----------------------------------------------------------

        def submit(self, calls: list[list[TransferIn]], *, retryable: bool = True
                   ) -> list[list[Outcome]]:
            """Submit the calls concurrently (one batch, in this order) and check each outcome
            against the model's prediction."""
            for call in calls:
                self.seen.update(t.id for t in call)
                if retryable:
                    self.calls.append(call)

            async def go() -> list[list[Outcome]]:
                return list(await asyncio.gather(*(self.store.create_transfers(c)
                                                   for c in calls)))

            outcomes = h.runner.run(go())
            for call, got in zip(calls, outcomes, strict=True):
                expected = self.model.call(call, self.now)
                assert len(got) == len(call)
                for t, outcome, (result, made) in zip(call, got, expected, strict=True):
                    h.seen[result] += 1
                    assert outcome.result is result, (
                        f"{t}: the store said {outcome.result.value}, the model {result.value}")
                    if result.ok:
                        assert made is not None and outcome.transfer is not None
                        assert_same_transfer(outcome.transfer, made)
                    elif result is not Result.EXISTS_WITH_DIFFERENT_FIELDS:
                        assert outcome.transfer is None
            return outcomes

        # -- rules -----------------------------------------------------------------------------

        @initialize()
        def open_banks(self) -> None:
            """Per currency: a settlement account, two funded wallets and a liability."""
            funding = []
            for ledger in LEDGERS:
                bank = AccountIn(uuid.uuid4(), ledger, "settlement", 0)
                wallets = [AccountIn(uuid.uuid4(), ledger, "wallet", DMNEC) for _ in range(2)]
                liability = AccountIn(uuid.uuid4(), ledger, "liability", CMNED)
                self.open([bank, *wallets, liability])
                funding += [TransferIn(id=uuid.uuid4(), debit_account_id=bank.id,
                                       credit_account_id=w.id, amount=1000, ledger=ledger, code=1)
                            for w in wallets]
                funding.append(TransferIn(id=uuid.uuid4(), debit_account_id=liability.id,
                                          credit_account_id=bank.id, amount=500, ledger=ledger,
                                          code=1))
            self.submit([funding])

        def open(self, accounts: list[AccountIn]) -> None:
            created = h.runner.run(self.store.create_accounts(accounts))
            expected = []
            for a in accounts:
                fresh = a.id not in self.model.accounts
                expected.append(fresh)
                if fresh:
                    self.model.accounts[a.id] = MAccount(a.ledger, a.flags)
            assert created == expected

        @rule(data=st.data())
        def create_accounts(self, data: st.DataObject) -> None:
            count = data.draw(st.integers(1, 3), label="accounts")
            accounts = []
            for _ in range(count):
                account_id = uuid.uuid4()
                if self.chance(data, 10, "reuse id?"):
                    account_id = self.account(data, unknown=False)  # refused: stays as it is
                accounts.append(AccountIn(account_id, data.draw(st.sampled_from(LEDGERS)),
                                          "wallet", data.draw(st.sampled_from(ACCOUNT_FLAGS))))
            self.open(accounts)

        @rule(data=st.data())
        def transfer(self, data: st.DataObject) -> None:
            self.submit([[self.new_transfer(data)]])

        @rule(data=st.data())
        def fund(self, data: st.DataObject) -> None:
            """From a settlement account, so customer wallets have something to spend."""
            dr = [i for i, a in self.model.accounts.items() if a.flags == 0]
            source = data.draw(st.sampled_from(dr))
            targets = [i for i, a in self.model.accounts.items()
                       if a.ledger == self.model.accounts[source].ledger and i != source]
            if not targets:
                return
            t = TransferIn(id=uuid.uuid4(), debit_account_id=source,
                           credit_account_id=data.draw(st.sampled_from(targets)),
                           amount=data.draw(st.integers(1, 1000)),
                           ledger=self.model.accounts[source].ledger, code=1)
            self.submit([[t]])

        @precondition(lambda self: any(t.flags & PENDING for t in self.model.transfers.values()))
        @rule(data=st.data())
        def post_or_void(self, data: st.DataObject) -> None:
            self.submit([[self.resolution(data)]])

        @rule(data=st.data())
        def linked_chain(self, data: st.DataObject) -> None:
            call: list[TransferIn] = []
            if self.chance(data, 30, "lone transfer first?"):
                call.append(self.new_transfer(data))
            previous = None
            for _ in range(data.draw(st.integers(2, 4), label="chain length")):
                previous = self.element(data, previous)
                call.append(dataclasses.replace(previous, flags=previous.flags | LINKED))
            if not self.chance(data, 15, "leave open?"):
                call[-1] = dataclasses.replace(call[-1], flags=call[-1].flags & ~LINKED)
            self.submit([call])

        @rule(data=st.data())
        def concurrent_calls(self, data: st.DataObject) -> None:
            calls = []
            previous = None
            for _ in range(data.draw(st.integers(2, 5), label="calls")):
                previous = self.element(data, previous)
                calls.append([previous])
            if self.calls and self.chance(data, 40, "with a duplicate?"):
                calls.append(data.draw(st.sampled_from(self.calls), label="duplicate"))
            self.submit(calls)

        @precondition(lambda self: bool(self.calls))
        @rule(data=st.data())
        def retry_same(self, data: st.DataObject) -> None:
            call = data.draw(st.sampled_from(self.calls), label="retried call")
            stored_before = all(t.id in self.model.transfers for t in call)
            outcomes = self.submit([call])
            if stored_before:  # applied once already: every transfer is answered, none applied
                assert all(o.result is Result.EXISTS for o in outcomes[0])

        @precondition(lambda self: any(not t.flags & LINKED
                                       for t in self.model.transfers.values()))
        @rule(data=st.data())
        def retry_changed(self, data: st.DataObject) -> None:
            # Insertion order, not id order: ids are random, draws must replay.
            stored = data.draw(st.sampled_from(
                [t for t in self.model.transfers.values() if not t.flags & LINKED]),
                label="retried transfer")
            change = data.draw(st.sampled_from(["amount", "code", "user_data", "account",
                                                "timeout"]), label="change")
            t = TransferIn(id=stored.id, debit_account_id=stored.debit,
                           credit_account_id=stored.credit, amount=stored.amount,
                           ledger=stored.ledger, code=stored.code, flags=stored.flags,
                           pending_id=stored.pending_id, timeout_s=stored.timeout_s,
                           user_data=stored.user_data)
            if change == "amount":
                t = dataclasses.replace(t, amount=stored.amount + 1 if stored.amount < MAX
                                        else stored.amount - 1)
            elif change == "code":
                t = dataclasses.replace(t, code=stored.code + 1)
            elif change == "user_data":
                t = dataclasses.replace(t, user_data={"changed": True})
            elif change == "account":
                t = dataclasses.replace(t, debit_account_id=uuid.uuid4())
            elif stored.flags & PENDING:
                t = dataclasses.replace(t, timeout_s=stored.timeout_s + 1)
            else:
                t = dataclasses.replace(t, code=stored.code + 1)
            outcomes = self.submit([[t]], retryable=False)
            assert outcomes[0][0].result is Result.EXISTS_WITH_DIFFERENT_FIELDS

        @rule()
        def switch_process(self) -> None:
            """The other process writes next: its cache must notice what this one wrote."""
            self.store = self.stores[1] if self.store is self.stores[0] else self.stores[0]

        @rule(seconds=st.sampled_from([1, 9, 10, 30, 61, 3600]))
        def advance_clock(self, seconds: int) -> None:
            h.clock.value += dt.timedelta(seconds=seconds)

        @rule(ahead_s=st.sampled_from([0, 0, 5, 10, 60]), twice=st.booleans())
        def sweep_expired_holds(self, ahead_s: int, twice: bool) -> None:
            """The expiry job with an injected ``now``; twice at once voids each hold once."""
            now = self.now + dt.timedelta(seconds=ahead_s)
            expected = self.model.sweep(now, self.now)
            self.seen.update(t.id for t in expected)

            async def go() -> list[int]:
                runs = [service.expire_holds(self.store, now=now) for _ in range(2 if twice
                                                                                    else 1)]
                return list(await asyncio.gather(*runs))

            voided = h.runner.run(go())
            assert sum(voided) == len(expected)
            found = h.runner.run(self.store.lookup_transfers([t.id for t in expected]))
            for t in expected:
                assert_same_transfer(found[t.id], t)

        # -- invariants ------------------------------------------------------------------------

        def stored_accounts(self) -> dict[uuid.UUID, Any]:
            return h.runner.run(self.store.lookup_accounts(list(self.model.accounts)))

        @invariant()
        def balances_are_the_models(self) -> None:
            stored = self.stored_accounts()
            assert set(stored) == set(self.model.accounts)
            for account_id, expected in self.model.accounts.items():
                a = stored[account_id]
                got = (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
                assert got == expected.balances(), f"account {account_id}"
                assert (a.ledger, a.flags) == (expected.ledger, expected.flags)

        @invariant()
        def debits_equal_credits_per_currency(self) -> None:
            totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
            for a in self.stored_accounts().values():
                for k, value in enumerate((a.debits_pending, a.debits_posted,
                                           a.credits_pending, a.credits_posted)):
                    totals[a.ledger][k] += value
            for ledger, (dp, dpo, cp, cpo) in totals.items():
                assert dp == cp, f"{ledger}: pending debits {dp} != pending credits {cp}"
                assert dpo == cpo, f"{ledger}: posted debits {dpo} != posted credits {cpo}"

        @invariant()
        def no_account_breaks_its_flags(self) -> None:
            for a in self.stored_accounts().values():
                assert min(a.debits_pending, a.debits_posted, a.credits_pending,
                           a.credits_posted) >= 0
                assert max(a.debits_pending, a.debits_posted, a.credits_pending,
                           a.credits_posted) <= MAX
                if a.flags & DMNEC:
                    assert a.debits_pending + a.debits_posted <= a.credits_posted
                if a.flags & CMNED:
                    assert a.credits_pending + a.credits_posted <= a.debits_posted

        @invariant()
        def transfers_are_the_models(self) -> None:
            """Exactly the transfers the model applied are stored; refused ones are not."""
            found = h.runner.run(self.store.lookup_transfers(self.seen))
            assert set(found) == set(self.model.transfers)
            for transfer_id, expected in self.model.transfers.items():
                assert_same_transfer(found[transfer_id], expected)

        @invariant()
        def open_hold_index_is_the_models(self) -> None:
            indexed = h.runner.run(self.store.expired_holds(FAR_FUTURE, limit=10_000))
            assert set(indexed) == set(self.model.open_timed_holds())

    return LedgerMachine


def assert_same_transfer(got: Transfer, expected: MTransfer) -> None:
    assert (got.id, got.debit_account_id, got.credit_account_id, got.amount, got.ledger,
            got.code, got.flags, got.pending_id, got.timeout_s, got.user_data, got.expires_at
            ) == (expected.id, expected.debit, expected.credit, expected.amount, expected.ledger,
                  expected.code, expected.flags, expected.pending_id, expected.timeout_s,
                  expected.user_data, expected.expires_at)


class TestLedgerModelSqlite:
    def test_store_behaves_like_the_model(self, harness: Harness) -> None:
        run_state_machine_as_test(machine(harness), settings=SQLITE_SETTINGS)


@pytest.mark.postgres
class TestLedgerModelPostgres:
    @pytest.mark.parametrize("fresh_db_url", ["postgres"], indirect=True)
    def test_store_behaves_like_the_model(self, harness: Harness) -> None:
        run_state_machine_as_test(machine(harness), settings=POSTGRES_SETTINGS)
