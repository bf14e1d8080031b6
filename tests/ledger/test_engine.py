"""Unit tests of ``engine.decide`` on hand-built snapshots: every rule, every result code.

No database: each case builds the accounts and stored transfers a batch would load, decides
one call and checks the result code and that a refused transfer changes nothing at all.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from bankwallet.ledger import engine
from bankwallet.ledger.engine import Snapshot
from bankwallet.ledger.types import (
    AMOUNT_MAX,
    CODE_MAX,
    GENESIS_HASH,
    TIMEOUT_MAX_S,
    AccountFlags,
    AccountState,
    Result,
    Transfer,
    TransferFlags,
    TransferIn,
    chain_hash,
)

NOW = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
LINKED = int(TransferFlags.LINKED)
PENDING = int(TransferFlags.PENDING)
POST = int(TransferFlags.POST_PENDING)
VOID = int(TransferFlags.VOID_PENDING)
DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
CMNED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)

# Fixed ids make failures readable.
BANK = uuid.UUID(int=0xB)        # no flags: the bank's settlement account, may go negative
ALICE = uuid.UUID(int=0xA)       # customer wallet: debits must not exceed credits
BOB = uuid.UUID(int=0xB0B)       # customer wallet
EURO = uuid.UUID(int=0xE)        # an account in another currency
LIABILITY = uuid.UUID(int=0x1)   # credits must not exceed debits
FEES = uuid.UUID(int=0xFEE)      # no flags, empty
HOLD = uuid.UUID(int=0x401D)     # a pending transfer ALICE -> BOB, 100
HOLD_T = uuid.UUID(int=0x401E)   # a pending transfer with a timeout, expired at NOW
MISSING = uuid.UUID(int=0xDEAD)


def tid(n: int) -> uuid.UUID:
    return uuid.UUID(int=0x7000 + n)


def stored(transfer_id: uuid.UUID, debit: uuid.UUID, credit: uuid.UUID, amount: int, *,
           flags: int = 0, code: int = 1, ledger: str = "CNY", pending_id: uuid.UUID | None = None,
           timeout_s: int = 0, expires_at: dt.datetime | None = None,
           user_data: dict | None = None) -> Transfer:
    return Transfer(transfer_id, debit, credit, amount, ledger, code, flags, pending_id, timeout_s,
                    user_data, NOW - dt.timedelta(hours=1), expires_at, seq=1, hash=b"\x01" * 32)


def world(*, alice_credits: int = 1000, extra_transfers: tuple[Transfer, ...] = (),
          resolved: dict[uuid.UUID, int] | None = None) -> Snapshot:
    """A small ledger: ALICE holds ``alice_credits`` and has a hold of 100 towards BOB; an
    expired hold of 50 is also open."""
    accounts = {
        BANK: AccountState(BANK, "CNY", 0, debits_posted=alice_credits),
        ALICE: AccountState(ALICE, "CNY", DMNEC, debits_pending=150,
                            credits_posted=alice_credits),
        BOB: AccountState(BOB, "CNY", DMNEC, credits_pending=150),
        EURO: AccountState(EURO, "EUR", 0),
        LIABILITY: AccountState(LIABILITY, "CNY", CMNED, debits_posted=10),
        FEES: AccountState(FEES, "CNY", 0),
    }
    transfers = {
        HOLD: stored(HOLD, ALICE, BOB, 100, flags=PENDING, code=7),
        HOLD_T: stored(HOLD_T, ALICE, BOB, 50, flags=PENDING, code=7, timeout_s=3600,
                       expires_at=NOW),
    }
    transfers.update({t.id: t for t in extra_transfers})
    return Snapshot(accounts, transfers, dict(resolved or {}), head_seq=41,
                    head_hash=b"\x02" * 32)


def pay(n: int = 1, *, debit: uuid.UUID | None = ALICE, credit: uuid.UUID | None = BOB,
        amount: int | None = 10, **kw) -> TransferIn:
    kw.setdefault("ledger", "CNY")
    kw.setdefault("code", 1)
    return TransferIn(id=tid(n), debit_account_id=debit, credit_account_id=credit,
                      amount=amount, **kw)


def post(n: int = 1, pending_id: uuid.UUID | None = HOLD, **kw) -> TransferIn:
    return TransferIn(id=tid(n), pending_id=pending_id, flags=POST | kw.pop("flags", 0), **kw)


def void(n: int = 1, pending_id: uuid.UUID | None = HOLD, **kw) -> TransferIn:
    return TransferIn(id=tid(n), pending_id=pending_id, flags=VOID | kw.pop("flags", 0), **kw)


def balances(snap: Snapshot) -> dict[uuid.UUID, tuple[int, int, int, int]]:
    return {a.id: a.balances() for a in snap.accounts.values()}


@dataclass
class Case:
    """One call decided against one snapshot; ``at`` is the transfer whose result we check."""

    call: list[TransferIn]
    snap: Snapshot = field(default_factory=world)
    at: int = -1


# One case per result code that a single transfer can earn (chains are tested below).
CASES: dict[Result, list[Callable[[], Case]]] = {
    Result.CREATED: [lambda: Case([pay()])],
    Result.EXISTS: [
        lambda: Case([pay()], world(extra_transfers=(stored(tid(1), ALICE, BOB, 10),))),
        # A post that left the amount out inherited the whole hold; the retry matches.
        lambda: Case([post()], world(extra_transfers=(
            stored(tid(1), ALICE, BOB, 100, flags=POST, code=7, pending_id=HOLD),),
            resolved={HOLD: POST})),
    ],
    Result.FLAGS_UNKNOWN: [lambda: Case([pay(flags=16)]), lambda: Case([pay(flags=1 << 20)])],
    Result.FLAGS_ARE_MUTUALLY_EXCLUSIVE: [
        lambda: Case([pay(flags=PENDING | POST)]),
        lambda: Case([post(flags=VOID)]),
        lambda: Case([pay(flags=PENDING | VOID)]),
    ],
    Result.AMOUNT_MUST_NOT_BE_ZERO: [
        lambda: Case([pay(amount=0)]),
        lambda: Case([pay(amount=-1)]),
        lambda: Case([pay(amount=-(2**70))]),
        lambda: Case([pay(amount=None)]),
        lambda: Case([post(amount=0)]),
        lambda: Case([void(amount=-100)]),
    ],
    Result.AMOUNT_TOO_LARGE: [
        lambda: Case([pay(amount=AMOUNT_MAX + 1)]),
        lambda: Case([pay(amount=2**64)]),
        lambda: Case([post(amount=AMOUNT_MAX + 1)]),
    ],
    Result.CODE_MUST_NOT_BE_ZERO: [lambda: Case([pay(code=0)]), lambda: Case([pay(code=-3)]),
                                   lambda: Case([post(code=-1)])],
    Result.CODE_TOO_LARGE: [lambda: Case([pay(code=CODE_MAX + 1)]),
                            lambda: Case([pay(code=2**31)]),
                            lambda: Case([post(code=CODE_MAX + 1)])],
    Result.DEBIT_ACCOUNT_REQUIRED: [lambda: Case([pay(debit=None)])],
    Result.CREDIT_ACCOUNT_REQUIRED: [lambda: Case([pay(credit=None)])],
    Result.LEDGER_REQUIRED: [lambda: Case([pay(ledger=None)]), lambda: Case([pay(ledger="")])],
    Result.ACCOUNTS_MUST_BE_DIFFERENT: [lambda: Case([pay(debit=ALICE, credit=ALICE)])],
    Result.PENDING_ID_MUST_BE_ZERO: [lambda: Case([pay(pending_id=HOLD)]),
                                     lambda: Case([pay(flags=PENDING, pending_id=HOLD)])],
    Result.PENDING_ID_REQUIRED: [lambda: Case([post(pending_id=None)]),
                                 lambda: Case([void(pending_id=None)])],
    Result.PENDING_ID_MUST_BE_DIFFERENT: [lambda: Case([post(pending_id=tid(1))]),
                                          lambda: Case([void(pending_id=tid(1))])],
    Result.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER: [lambda: Case([pay(timeout_s=60)]),
                                                   lambda: Case([post(timeout_s=60)])],
    Result.TIMEOUT_INVALID: [lambda: Case([pay(flags=PENDING, timeout_s=-1)]),
                             lambda: Case([pay(flags=PENDING, timeout_s=TIMEOUT_MAX_S + 1)])],
    Result.USER_DATA_INVALID: [
        lambda: Case([pay(user_data=["not", "an", "object"])]),  # type: ignore[arg-type]
        lambda: Case([pay(user_data={"nested": {"a": 1}})]),
        lambda: Case([pay(user_data={"f": 1.5})]),
        lambda: Case([pay(user_data={"big": AMOUNT_MAX + 1})]),
        lambda: Case([pay(user_data={1: "key not a string"})]),  # type: ignore[dict-item]
        lambda: Case([pay(user_data={"k" * 65: "key too long"})]),
        lambda: Case([pay(user_data={f"k{i}": i for i in range(33)})]),
        lambda: Case([pay(user_data={"s": "x" * 3000})]),
        lambda: Case([post(user_data={"list": [1]})]),
    ],
    Result.EXISTS_WITH_DIFFERENT_FIELDS: [
        lambda: Case([pay(amount=11)], world(extra_transfers=(stored(tid(1), ALICE, BOB, 10),))),
        lambda: Case([pay(code=2)], world(extra_transfers=(stored(tid(1), ALICE, BOB, 10),))),
        lambda: Case([pay(credit=BANK)], world(extra_transfers=(stored(tid(1), ALICE, BOB, 10),))),
        lambda: Case([pay(user_data={"a": 1})],
                     world(extra_transfers=(stored(tid(1), ALICE, BOB, 10),))),
        lambda: Case([pay(flags=PENDING)],
                     world(extra_transfers=(stored(tid(1), ALICE, BOB, 10),))),
        # A post retried with an explicit partial amount is not the full post that was stored.
        lambda: Case([post(amount=99)], world(extra_transfers=(
            stored(tid(1), ALICE, BOB, 100, flags=POST, code=7, pending_id=HOLD),),
            resolved={HOLD: POST})),
        # A stored hold's id reused for a void of another hold.
        lambda: Case([TransferIn(id=HOLD, pending_id=HOLD_T, flags=VOID)]),
    ],
    Result.DEBIT_ACCOUNT_NOT_FOUND: [
        lambda: Case([pay(debit=MISSING)]),
        lambda: Case([pay(debit=MISSING, credit=uuid.UUID(int=0xBEEF))]),  # both missing
    ],
    Result.CREDIT_ACCOUNT_NOT_FOUND: [lambda: Case([pay(credit=MISSING)])],
    Result.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER: [lambda: Case([pay(credit=EURO)]),
                                                lambda: Case([pay(credit=EURO, ledger="EUR")])],
    Result.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS: [lambda: Case([pay(ledger="EUR")])],
    Result.PENDING_TRANSFER_NOT_FOUND: [lambda: Case([post(pending_id=MISSING)]),
                                        lambda: Case([void(pending_id=MISSING)])],
    Result.PENDING_TRANSFER_NOT_PENDING: [lambda: Case([post(pending_id=tid(9))], world(
        extra_transfers=(stored(tid(9), ALICE, BOB, 10),)))],
    Result.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT: [
        lambda: Case([post(debit_account_id=BANK)])],
    Result.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT: [
        lambda: Case([void(credit_account_id=ALICE)])],
    Result.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER: [lambda: Case([post(ledger="EUR")])],
    Result.PENDING_TRANSFER_HAS_DIFFERENT_CODE: [lambda: Case([post(code=8)])],
    Result.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT: [lambda: Case([void(amount=99)]),
                                                   lambda: Case([void(amount=101)])],
    Result.EXCEEDS_PENDING_TRANSFER_AMOUNT: [lambda: Case([post(amount=101)]),
                                             lambda: Case([post(amount=AMOUNT_MAX)])],
    Result.PENDING_TRANSFER_ALREADY_POSTED: [
        lambda: Case([post()], world(resolved={HOLD: POST})),
        lambda: Case([void()], world(resolved={HOLD: POST})),
        lambda: Case([post(1), post(2)]),          # posting twice in one call
        lambda: Case([post(1, amount=1), post(2, amount=1)]),
    ],
    Result.PENDING_TRANSFER_ALREADY_VOIDED: [
        lambda: Case([void()], world(resolved={HOLD: VOID})),
        lambda: Case([post()], world(resolved={HOLD: VOID})),
        lambda: Case([void(1), void(2)]),
        lambda: Case([void(1), post(2)]),
    ],
    Result.PENDING_TRANSFER_EXPIRED: [
        lambda: Case([post(pending_id=HOLD_T)]),  # now == expires_at: expired
        lambda: Case([void(pending_id=HOLD_T)]),
        # The expiry job's flag releases a hold; it never lets a post through.
        lambda: Case([post(pending_id=HOLD_T, expire=True)]),
    ],
    Result.EXCEEDS_CREDITS: [
        lambda: Case([pay(amount=851)]),  # 1000 credits - 150 held = 850 available
        lambda: Case([pay(amount=851, flags=PENDING)]),
        lambda: Case([pay(1, amount=850), pay(2, amount=1)]),
    ],
    Result.EXCEEDS_DEBITS: [lambda: Case([pay(debit=BANK, credit=LIABILITY, amount=11)]),
                            lambda: Case([pay(debit=BANK, credit=LIABILITY, amount=11,
                                              flags=PENDING)])],
    Result.OVERFLOWS_DEBITS: [
        lambda: Case([pay(debit=BANK, credit=BOB, amount=AMOUNT_MAX - 999)]),
        lambda: Case([pay(1, debit=BANK, credit=FEES, amount=AMOUNT_MAX, flags=PENDING),
                      pay(2, debit=BANK, amount=1, flags=PENDING)]),
    ],
    Result.OVERFLOWS_CREDITS: [
        lambda: Case([pay(debit=FEES, credit=ALICE, amount=AMOUNT_MAX - 999)]),
        lambda: Case([pay(1, debit=FEES, credit=ALICE, amount=AMOUNT_MAX, flags=PENDING),
                      pay(2, debit=BANK, credit=ALICE, amount=1, flags=PENDING)]),
    ],
}

CHAIN_RESULTS = {Result.LINKED_EVENT_FAILED, Result.LINKED_EVENT_CHAIN_OPEN}


def test_every_result_code_has_a_case() -> None:
    covered = set(CASES) | CHAIN_RESULTS
    assert covered == set(Result), f"no test for {set(Result) - covered}"


def _cases() -> list[pytest.param]:
    return [pytest.param(code, make, id=f"{code.value}-{i}")
            for code, makers in CASES.items() for i, make in enumerate(makers)]


@pytest.mark.parametrize(("code", "make"), _cases())
def test_result_code(code: Result, make: Callable[[], Case]) -> None:
    case = make()
    snap = case.snap
    before_balances = balances(snap)
    before_transfers = dict(snap.transfers)
    before_resolved = dict(snap.resolved)
    decision = engine.decide([case.call], snap, NOW)
    outcomes = decision.outcomes[0]
    assert len(outcomes) == len(case.call)
    assert outcomes[case.at].result is code, outcomes[case.at].message
    # The snapshot's stored transfers and resolutions are the store's copy: never mutated.
    assert snap.transfers == before_transfers
    assert snap.resolved == before_resolved
    if len(case.call) == 1 and not code.ok:
        assert outcomes[0].transfer is None or code is Result.EXISTS_WITH_DIFFERENT_FIELDS
        assert_nothing_changed(decision, snap, before_balances)
    if code is Result.EXISTS:
        assert outcomes[0].ok and outcomes[0].transfer is snap.transfers[case.call[0].id]
        assert_nothing_changed(decision, snap, before_balances)


def assert_nothing_changed(decision: engine.Decision, snap: Snapshot,
                           before: dict[uuid.UUID, tuple[int, int, int, int]]) -> None:
    assert decision.created == []
    assert decision.touched == {}
    assert balances(snap) == before
    assert (decision.head_seq, decision.head_hash) == (snap.head_seq, snap.head_hash)


# -- applying: what created transfers do to balances -------------------------------------------


def test_regular_transfer_moves_posted_balances_and_chains_the_hash() -> None:
    snap = world()
    decision = engine.decide([[pay(amount=850)]], snap, NOW)
    (outcome,) = decision.outcomes[0]
    assert outcome.result is Result.CREATED
    t = outcome.transfer
    assert t is not None and t.amount == 850 and t.ledger == "CNY" and t.created_at == NOW
    assert snap.accounts[ALICE].balances() == (150, 850, 0, 1000)
    assert snap.accounts[BOB].balances() == (0, 0, 150, 850)
    assert set(decision.touched) == {ALICE, BOB}
    assert decision.created == [t]
    assert t.seq == 42 == decision.head_seq
    assert t.hash == chain_hash(b"\x02" * 32, t) == decision.head_hash


def test_hashes_chain_across_calls_of_one_batch() -> None:
    snap = world()
    snap.head_seq, snap.head_hash = 0, GENESIS_HASH
    decision = engine.decide([[pay(1)], [pay(2, amount=0)], [pay(3)]], snap, NOW)
    first, third = decision.created
    assert (first.seq, third.seq) == (1, 2)
    assert first.hash == chain_hash(GENESIS_HASH, first)
    assert third.hash == chain_hash(first.hash, third) == decision.head_hash


def test_limits_exactly_at_the_edge_are_allowed() -> None:
    snap = world()
    decision = engine.decide([[pay(1, amount=850), pay(2, debit=BANK, credit=LIABILITY,
                                                       amount=10)]], snap, NOW)
    assert [o.result for o in decision.outcomes[0]] == [Result.CREATED, Result.CREATED]
    assert snap.accounts[ALICE].balances() == (150, 850, 0, 1000)
    assert snap.accounts[LIABILITY].balances() == (0, 10, 0, 10)


def test_the_largest_code_is_allowed() -> None:
    decision = engine.decide([[pay(1, code=CODE_MAX)]], world(), NOW)
    assert decision.outcomes[0][0].result is Result.CREATED


def test_balances_may_reach_exactly_amount_max() -> None:
    snap = world()
    decision = engine.decide([[pay(debit=BANK, credit=BOB, amount=AMOUNT_MAX - 1000)]],
                             snap, NOW)
    assert decision.outcomes[0][0].result is Result.CREATED
    assert snap.accounts[BANK].debits_posted == AMOUNT_MAX


def test_pending_transfer_holds_and_counts_against_the_limit() -> None:
    snap = world()
    hold = pay(1, amount=800, flags=PENDING, timeout_s=60)
    spend = pay(2, amount=51)  # 850 available - 800 held
    decision = engine.decide([[hold, spend]], snap, NOW)
    assert [o.result for o in decision.outcomes[0]] == [Result.CREATED, Result.EXCEEDS_CREDITS]
    created = decision.outcomes[0][0].transfer
    assert created is not None and created.expires_at == NOW + dt.timedelta(seconds=60)
    assert snap.accounts[ALICE].balances() == (950, 0, 0, 1000)
    assert snap.accounts[BOB].balances() == (0, 0, 950, 0)


def test_hold_without_timeout_never_expires() -> None:
    snap = world()
    decision = engine.decide([[pay(1, amount=5, flags=PENDING)]], snap, NOW)
    assert decision.created[0].expires_at is None


def test_post_whole_hold_when_amount_left_out() -> None:
    snap = world()
    decision = engine.decide([[post()]], snap, NOW)
    (outcome,) = decision.outcomes[0]
    assert outcome.result is Result.CREATED
    t = outcome.transfer
    assert t is not None
    assert (t.amount, t.debit_account_id, t.credit_account_id, t.ledger, t.code, t.pending_id) == (
        100, ALICE, BOB, "CNY", 7, HOLD)
    assert snap.accounts[ALICE].balances() == (50, 100, 0, 1000)
    assert snap.accounts[BOB].balances() == (0, 0, 50, 100)


def test_partial_post_releases_the_rest_of_the_hold() -> None:
    snap = world()
    decision = engine.decide([[post(amount=30, debit_account_id=ALICE, credit_account_id=BOB,
                                    ledger="CNY", code=7)]], snap, NOW)
    assert decision.outcomes[0][0].result is Result.CREATED
    assert snap.accounts[ALICE].balances() == (50, 30, 0, 1000)
    assert snap.accounts[BOB].balances() == (0, 0, 50, 30)


def test_void_releases_the_whole_hold() -> None:
    for amount in (None, 100):
        snap = world()
        decision = engine.decide([[void(amount=amount)]], snap, NOW)
        (outcome,) = decision.outcomes[0]
        assert outcome.result is Result.CREATED and outcome.transfer is not None
        assert outcome.transfer.amount == 100
        assert snap.accounts[ALICE].balances() == (50, 0, 0, 1000)
        assert snap.accounts[BOB].balances() == (0, 0, 50, 0)


def test_hold_created_and_posted_in_one_call() -> None:
    snap = world()
    decision = engine.decide([[pay(1, amount=40, flags=PENDING), post(2, pending_id=tid(1),
                                                                      amount=25)]], snap, NOW)
    assert [o.result for o in decision.outcomes[0]] == [Result.CREATED, Result.CREATED]
    assert snap.accounts[ALICE].balances() == (150, 25, 0, 1000)


def test_expiry_boundary() -> None:
    just_before = NOW - dt.timedelta(microseconds=1)
    decision = engine.decide([[post(pending_id=HOLD_T)]], world(), just_before)
    assert decision.outcomes[0][0].result is Result.CREATED
    decision = engine.decide([[post(pending_id=HOLD_T)]], world(), NOW)
    assert decision.outcomes[0][0].result is Result.PENDING_TRANSFER_EXPIRED


def test_expiry_void_releases_an_expired_hold() -> None:
    snap = world()
    decision = engine.decide([[void(pending_id=HOLD_T, expire=True)]], snap, NOW)
    assert decision.outcomes[0][0].result is Result.CREATED
    assert snap.accounts[ALICE].balances() == (100, 0, 0, 1000)


def test_post_after_the_timeout_is_refused_even_long_after() -> None:
    later = NOW + dt.timedelta(days=400)
    for t in (post(pending_id=HOLD_T), void(pending_id=HOLD_T), post(pending_id=HOLD_T,
                                                                      amount=1)):
        snap = world()
        before = balances(snap)
        decision = engine.decide([[t]], snap, later)
        assert decision.outcomes[0][0].result is Result.PENDING_TRANSFER_EXPIRED
        assert_nothing_changed(decision, snap, before)


def test_resolved_twice_is_refused_after_a_successful_resolution_in_the_same_call() -> None:
    snap = world()
    decision = engine.decide([[post(1, amount=10), void(2), post(3)]], snap, NOW)
    assert [o.result for o in decision.outcomes[0]] == [
        Result.CREATED, Result.PENDING_TRANSFER_ALREADY_POSTED,
        Result.PENDING_TRANSFER_ALREADY_POSTED]
    assert snap.accounts[ALICE].balances() == (50, 10, 0, 1000)


def test_failed_transfer_is_not_stored_so_a_retry_can_succeed() -> None:
    snap = world(alice_credits=0)
    snap.accounts[ALICE].debits_pending = 0
    first = pay(1, amount=10)
    decision = engine.decide([[first], [pay(2, debit=BANK, credit=ALICE, amount=10)], [first]],
                             snap, NOW)
    assert [o[0].result for o in decision.outcomes] == [
        Result.EXCEEDS_CREDITS, Result.CREATED, Result.CREATED]


def test_same_id_twice_in_one_batch_is_applied_once() -> None:
    snap = world()
    decision = engine.decide([[pay(1)], [pay(1)], [pay(1, amount=11)]], snap, NOW)
    results = [o[0].result for o in decision.outcomes]
    assert results == [Result.CREATED, Result.EXISTS, Result.EXISTS_WITH_DIFFERENT_FIELDS]
    assert decision.outcomes[1][0].transfer is decision.outcomes[0][0].transfer
    assert len(decision.created) == 1
    assert snap.accounts[ALICE].debits_posted == 10


def test_exists_is_checked_after_shape_but_before_accounts() -> None:
    # A retry is answered from the stored transfer alone, before any account is looked at.
    existing = stored(tid(1), MISSING, BOB, 10)
    snap = world(extra_transfers=(existing,))
    decision = engine.decide([[pay(1, debit=MISSING)]], snap, NOW)
    assert decision.outcomes[0][0].result is Result.EXISTS
    decision = engine.decide([[pay(1, debit=MISSING, amount=0)]], snap, NOW)
    assert decision.outcomes[0][0].result is Result.AMOUNT_MUST_NOT_BE_ZERO


def test_one_bad_call_never_fails_its_neighbours() -> None:
    snap = world()
    decision = engine.decide([[pay(1)], [pay(2, amount=10**6)], [pay(3)]], snap, NOW)
    assert [o[0].result for o in decision.outcomes] == [
        Result.CREATED, Result.EXCEEDS_CREDITS, Result.CREATED]
    assert snap.accounts[ALICE].debits_posted == 20


# -- linked chains ------------------------------------------------------------------------------


def test_linked_chain_applies_all_together() -> None:
    snap = world()
    chain = [pay(1, amount=100, flags=LINKED), pay(2, debit=BOB, credit=BANK, amount=60,
                                                  flags=LINKED),
             post(3, flags=LINKED), pay(4, debit=BANK, credit=LIABILITY, amount=10)]
    decision = engine.decide([chain], snap, NOW)
    assert [o.result for o in decision.outcomes[0]] == [Result.CREATED] * 4
    assert len(decision.created) == 4


@pytest.mark.parametrize("fail_at", [0, 1, 2, 3])
def test_linked_chain_failure_rolls_back_everything_exactly(fail_at: int) -> None:
    snap = world()
    # A transfer before the chain in the same call, and one after it: both stand.
    before = pay(10, debit=BANK, credit=ALICE, amount=5)
    chain = [
        pay(1, amount=100, flags=LINKED),                                  # ALICE -> BOB
        pay(2, debit=BOB, credit=BANK, amount=60, flags=LINKED),           # spends what came in
        post(3, flags=LINKED, amount=40),                                  # resolves HOLD
        pay(4, debit=BANK, credit=ALICE, amount=7, flags=PENDING),         # new hold, last
    ]
    bad = {0: dict(amount=10**9), 1: dict(amount=10**9), 2: dict(amount=101),
           3: dict(credit_account_id=MISSING)}[fail_at]
    chain[fail_at] = TransferIn(**{**_fields(chain[fail_at]), **bad})
    after = pay(11, debit=BANK, credit=BOB, amount=3)
    expected_after_before = world()
    engine.decide([[before]], expected_after_before, NOW)
    engine.decide([[after]], expected_after_before, NOW)
    decision = engine.decide([[before, *chain, after]], snap, NOW)
    results = [o.result for o in decision.outcomes[0]]
    assert results[0] is Result.CREATED and results[-1] is Result.CREATED
    chain_results = results[1:-1]
    for k, r in enumerate(chain_results):
        if k == fail_at:
            assert r not in (Result.CREATED, Result.LINKED_EVENT_FAILED), r
        else:
            assert r is Result.LINKED_EVENT_FAILED
    assert all(o.transfer is None for o in decision.outcomes[0][1:-1])
    # Balances are exactly as if only the neighbours had run; the hold is still open.
    assert balances(snap) == balances(expected_after_before)
    assert [t.id for t in decision.created] == [tid(10), tid(11)]
    assert [t.seq for t in decision.created] == [42, 43]
    assert decision.created[1].hash == decision.head_hash
    # The hold the chain would have posted can still be posted afterwards.
    again = engine.decide([[post(5)]], snap, NOW)
    assert again.outcomes[0][0].result is Result.CREATED


def _fields(t: TransferIn) -> dict:
    return {name: getattr(t, name) for name in TransferIn.__dataclass_fields__}


def test_failed_chain_frees_its_ids_and_resolutions_for_later_calls_in_the_batch() -> None:
    snap = world()
    chain = [post(1, flags=LINKED), pay(2, amount=10**9)]
    decision = engine.decide([chain, [post(1)], [pay(2)]], snap, NOW)
    assert [o.result for o in decision.outcomes[0]] == [
        Result.LINKED_EVENT_FAILED, Result.EXCEEDS_CREDITS]
    assert decision.outcomes[1][0].result is Result.CREATED  # same id, the hold is unresolved
    assert decision.outcomes[2][0].result is Result.CREATED
    assert snap.accounts[ALICE].balances() == (50, 110, 0, 1000)


def test_chain_rollback_keeps_earlier_resolutions_and_undoes_its_own() -> None:
    snap = world()
    early = NOW - dt.timedelta(minutes=1)  # HOLD_T has not expired yet
    decision = engine.decide([
        [post(1, amount=10)],                                   # resolves HOLD
        [void(2, pending_id=HOLD_T, flags=LINKED), post(3)],    # HOLD again: the chain fails
        [post(4)],                                              # HOLD stays posted
        [post(5, pending_id=HOLD_T)],                           # HOLD_T is open again
    ], snap, early)
    assert [[o.result for o in call] for call in decision.outcomes] == [
        [Result.CREATED],
        [Result.LINKED_EVENT_FAILED, Result.PENDING_TRANSFER_ALREADY_POSTED],
        [Result.PENDING_TRANSFER_ALREADY_POSTED],
        [Result.CREATED]]
    assert snap.accounts[ALICE].balances() == (0, 60, 0, 1000)
    assert snap.accounts[BOB].balances() == (0, 0, 0, 60)
    assert snap.resolved == {}
    assert [t.id for t in decision.created] == [tid(1), tid(5)]


def test_chain_failing_on_its_first_transfer_touches_nothing() -> None:
    snap = world()
    before = balances(snap)
    decision = engine.decide([[pay(1, amount=0, flags=LINKED), pay(2)]], snap, NOW)
    assert [o.result for o in decision.outcomes[0]] == [
        Result.AMOUNT_MUST_NOT_BE_ZERO, Result.LINKED_EVENT_FAILED]
    assert_nothing_changed(decision, snap, before)


def test_two_chains_in_one_call_are_independent() -> None:
    snap = world()
    call = [pay(1, flags=LINKED), pay(2, amount=0), pay(3, flags=LINKED), pay(4)]
    decision = engine.decide([call], snap, NOW)
    assert [o.result for o in decision.outcomes[0]] == [
        Result.LINKED_EVENT_FAILED, Result.AMOUNT_MUST_NOT_BE_ZERO, Result.CREATED,
        Result.CREATED]
    assert snap.accounts[ALICE].debits_posted == 20


def test_call_ending_inside_a_chain_is_refused_as_open() -> None:
    snap = world()
    before = balances(snap)
    decision = engine.decide([[pay(1, flags=LINKED), pay(2, flags=LINKED)]], snap, NOW)
    assert [o.result for o in decision.outcomes[0]] == [Result.LINKED_EVENT_CHAIN_OPEN] * 2
    assert_nothing_changed(decision, snap, before)
    decision = engine.decide([[pay(3, flags=LINKED)]], snap, NOW)
    assert decision.outcomes[0][0].result is Result.LINKED_EVENT_CHAIN_OPEN
    assert_nothing_changed(decision, snap, before)


def test_open_chain_only_fails_the_open_tail() -> None:
    snap = world()
    decision = engine.decide([[pay(1), pay(2, flags=LINKED), pay(3), pay(4, flags=LINKED),
                               pay(5, flags=LINKED)]], snap, NOW)
    assert [o.result for o in decision.outcomes[0]] == [
        Result.CREATED, Result.CREATED, Result.CREATED, Result.LINKED_EVENT_CHAIN_OPEN,
        Result.LINKED_EVENT_CHAIN_OPEN]
    assert snap.accounts[ALICE].debits_posted == 30


def test_chain_state_does_not_leak_into_the_next_call() -> None:
    snap = world()
    decision = engine.decide([[pay(1, flags=LINKED), pay(2)], [pay(3, amount=10**9)]], snap, NOW)
    assert [o.result for o in decision.outcomes[0]] == [Result.CREATED, Result.CREATED]
    assert decision.outcomes[1][0].result is Result.EXCEEDS_CREDITS
    assert snap.accounts[ALICE].debits_posted == 20


def test_chain_rollback_restores_accounts_touched_earlier_in_the_batch() -> None:
    snap = world()
    # The first call moves ALICE's balances; the chain changes them again and fails.
    decision = engine.decide([[pay(1, amount=100)],
                              [pay(2, amount=100, flags=LINKED), pay(3, credit=MISSING)]],
                             snap, NOW)
    assert decision.outcomes[1][1].result is Result.CREDIT_ACCOUNT_NOT_FOUND
    assert snap.accounts[ALICE].balances() == (150, 100, 0, 1000)
    assert snap.accounts[BOB].balances() == (0, 0, 150, 100)
    assert [t.id for t in decision.created] == [tid(1)]


def test_refused_transfers_leave_the_snapshot_as_it_was() -> None:
    snap = world()
    pristine = copy.deepcopy(snap)
    engine.decide([[pay(1, amount=0)], [post(2, amount=101)]], snap, NOW)
    assert balances(snap) == balances(pristine)
    assert snap.transfers == pristine.transfers


def test_a_code_too_large_for_the_column_fails_only_its_own_transfer() -> None:
    # canonical_bytes packs code as int32 and the PostgreSQL column is int4: an unchecked
    # code >= 2**31 used to raise inside decide and fail every transfer of its batch.
    snap = world()
    decision = engine.decide([[pay(1)], [pay(2, code=2**31)], [pay(3)]], snap, NOW)
    assert [o[0].result for o in decision.outcomes] == [
        Result.CREATED, Result.CODE_TOO_LARGE, Result.CREATED]
