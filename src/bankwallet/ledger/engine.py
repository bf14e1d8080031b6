"""Deciding transfers in memory: pure, no I/O.

The store loads what a batch touches (accounts, transfers with the batch's ids, the holds
they resolve), calls ``decide`` and writes what it returns in one database transaction. The
same function serves every store, so the rules live in one place and are tested against a
plain model by hypothesis.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from bankwallet.ledger.types import (
    AMOUNT_MAX,
    CODE_MAX,
    KNOWN_TRANSFER_FLAGS,
    RESOLVES,
    TIMEOUT_MAX_S,
    USER_DATA_MAX_BYTES,
    AccountFlags,
    AccountState,
    Outcome,
    Result,
    Transfer,
    TransferFlags,
    TransferIn,
    chain_hash,
)

_LINKED = int(TransferFlags.LINKED)
_PENDING = int(TransferFlags.PENDING)
_POST = int(TransferFlags.POST_PENDING)
_VOID = int(TransferFlags.VOID_PENDING)
_RESOLVES = int(RESOLVES)
_DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_CMNED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)


@dataclass(slots=True)
class Snapshot:
    """What the store loaded for a batch."""

    accounts: dict[uuid.UUID, AccountState]
    transfers: dict[uuid.UUID, Transfer]  # existing transfers: the batch's ids and its holds
    resolved: dict[uuid.UUID, int]  # pending id -> flags of the transfer that resolved it
    head_seq: int
    head_hash: bytes


@dataclass(slots=True)
class Decision:
    outcomes: list[list[Outcome]]
    created: list[Transfer] = field(default_factory=list)
    touched: dict[uuid.UUID, AccountState] = field(default_factory=dict)
    head_seq: int = 0
    head_hash: bytes = b""


def validate_user_data(user_data: Any) -> bool:
    if user_data is None:
        return True
    if not isinstance(user_data, dict) or len(user_data) > 32:
        return False
    for key, value in user_data.items():
        if not isinstance(key, str) or len(key) > 64:
            return False
        if value is not None and not isinstance(value, (str, int, bool)):
            return False
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > AMOUNT_MAX:
            return False
    return len(orjson.dumps(user_data)) <= USER_DATA_MAX_BYTES


def check_shape(t: TransferIn) -> Result | None:
    """Rules that need nothing but the transfer itself."""
    flags = t.flags
    if flags & ~int(KNOWN_TRANSFER_FLAGS):
        return Result.FLAGS_UNKNOWN
    phase = flags & (_PENDING | _POST | _VOID)
    if phase & (phase - 1):
        return Result.FLAGS_ARE_MUTUALLY_EXCLUSIVE
    if t.amount is not None:
        if t.amount <= 0:
            return Result.AMOUNT_MUST_NOT_BE_ZERO
        if t.amount > AMOUNT_MAX:
            return Result.AMOUNT_TOO_LARGE
    if t.code > CODE_MAX:
        return Result.CODE_TOO_LARGE
    if t.timeout_s < 0 or t.timeout_s > TIMEOUT_MAX_S:
        return Result.TIMEOUT_INVALID
    if t.timeout_s and not flags & _PENDING:
        return Result.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
    if not validate_user_data(t.user_data):
        return Result.USER_DATA_INVALID
    if flags & _RESOLVES:
        if t.pending_id is None:
            return Result.PENDING_ID_REQUIRED
        if t.pending_id == t.id:
            return Result.PENDING_ID_MUST_BE_DIFFERENT
        if t.code < 0:
            return Result.CODE_MUST_NOT_BE_ZERO
        return None
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


def same_fields(t: TransferIn, stored: Transfer, pending: Transfer | None) -> bool:
    """Whether a retried transfer is the one stored (fields it left out are inherited)."""
    if t.flags != stored.flags or t.pending_id != stored.pending_id:
        return False
    if t.timeout_s != stored.timeout_s or (t.user_data or None) != (stored.user_data or None):
        return False
    if t.debit_account_id is not None and t.debit_account_id != stored.debit_account_id:
        return False
    if t.credit_account_id is not None and t.credit_account_id != stored.credit_account_id:
        return False
    if t.ledger is not None and t.ledger != stored.ledger:
        return False
    if t.code and t.code != stored.code:
        return False
    if t.amount is not None:
        return t.amount == stored.amount
    return pending is not None and stored.amount == pending.amount


class _Batch:
    """The working state of one batch: accounts and transfers as the batch changes them."""

    __slots__ = ("snap", "now", "created", "created_by_id", "resolved", "touched", "undo")

    def __init__(self, snap: Snapshot, now: dt.datetime) -> None:
        self.snap = snap
        self.now = now
        self.created: list[Transfer] = []
        self.created_by_id: dict[uuid.UUID, Transfer] = {}
        self.resolved: dict[uuid.UUID, int] = dict(snap.resolved)
        self.touched: dict[uuid.UUID, AccountState] = {}
        # Per linked chain: account balances before the chain touched them, resolutions made.
        self.undo: tuple[dict[uuid.UUID, tuple[int, int, int, int]], list[uuid.UUID]] | None = None

    def transfer(self, transfer_id: uuid.UUID) -> Transfer | None:
        found = self.created_by_id.get(transfer_id)
        return found if found is not None else self.snap.transfers.get(transfer_id)

    def touch(self, account: AccountState) -> None:
        if self.undo is not None and account.id not in self.undo[0]:
            self.undo[0][account.id] = account.balances()
        self.touched[account.id] = account

    def begin_chain(self) -> int:
        self.undo = ({}, [])
        return len(self.created)

    def end_chain(self, start: int, *, failed: bool) -> None:
        assert self.undo is not None
        if failed:
            balances, resolutions = self.undo
            for account_id, values in balances.items():
                account = self.snap.accounts[account_id]
                (account.debits_pending, account.debits_posted,
                 account.credits_pending, account.credits_posted) = values
            for pending_id in resolutions:
                if pending_id in self.snap.resolved:
                    self.resolved[pending_id] = self.snap.resolved[pending_id]
                else:
                    del self.resolved[pending_id]
            for transfer in self.created[start:]:
                del self.created_by_id[transfer.id]
            del self.created[start:]
        self.undo = None

    def resolve(self, pending_id: uuid.UUID, flags: int) -> None:
        if self.undo is not None:
            self.undo[1].append(pending_id)
        self.resolved[pending_id] = flags


def decide(calls: Sequence[Sequence[TransferIn]], snap: Snapshot, now: dt.datetime) -> Decision:
    """Decide every transfer of every call, in order; a call's linked chains are all-or-nothing.

    Mutates the snapshot's account states; returns the outcomes, the transfers to insert (with
    sequence numbers and chained hashes), the accounts to write and the new chain head.
    """
    batch = _Batch(snap, now)
    outcomes = [_decide_call(call, batch) for call in calls]
    seq, prev = snap.head_seq, snap.head_hash
    for transfer in batch.created:
        seq += 1
        transfer.seq = seq
        transfer.hash = prev = chain_hash(prev, transfer)
    touched = batch.touched if batch.created else {}
    return Decision(outcomes, batch.created, touched, seq, prev)


def _decide_call(call: Sequence[TransferIn], batch: _Batch) -> list[Outcome]:
    out: list[Outcome] = []
    i, n = 0, len(call)
    while i < n:
        j = i
        while j < n - 1 and call[j].flags & _LINKED:
            j += 1
        chain = call[i:j + 1]
        if chain[-1].flags & _LINKED:  # the call ends inside an open chain
            out.extend(Outcome(Result.LINKED_EVENT_CHAIN_OPEN) for _ in chain)
        elif len(chain) == 1:
            out.append(_decide_one(chain[0], batch))
        else:
            out.extend(_decide_chain(chain, batch))
        i = j + 1
    return out


def _decide_chain(chain: Sequence[TransferIn], batch: _Batch) -> list[Outcome]:
    start = batch.begin_chain()
    results: list[Outcome] = []
    for t in chain:
        outcome = _decide_one(t, batch)
        if not outcome.ok:
            batch.end_chain(start, failed=True)
            failed_at = len(results)
            return [Outcome(Result.LINKED_EVENT_FAILED) if k != failed_at else outcome
                    for k in range(len(chain))]
        results.append(outcome)
    batch.end_chain(start, failed=False)
    return results


def _decide_one(t: TransferIn, batch: _Batch) -> Outcome:
    problem = check_shape(t)
    if problem is not None:
        return Outcome(problem)
    stored = batch.transfer(t.id)
    if stored is not None:
        pending = batch.transfer(stored.pending_id) if stored.pending_id else None
        if same_fields(t, stored, pending):
            return Outcome(Result.EXISTS, stored)
        return Outcome(Result.EXISTS_WITH_DIFFERENT_FIELDS, stored)
    if t.flags & _RESOLVES:
        return _resolve(t, batch)
    return _apply_new(t, batch)


def _apply_new(t: TransferIn, batch: _Batch) -> Outcome:
    accounts = batch.snap.accounts
    dr = accounts.get(t.debit_account_id)  # type: ignore[arg-type]
    if dr is None:
        return Outcome(Result.DEBIT_ACCOUNT_NOT_FOUND)
    cr = accounts.get(t.credit_account_id)  # type: ignore[arg-type]
    if cr is None:
        return Outcome(Result.CREDIT_ACCOUNT_NOT_FOUND)
    if dr.ledger != cr.ledger:
        return Outcome(Result.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER)
    if t.ledger != dr.ledger:
        return Outcome(Result.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS)
    amount = t.amount
    assert amount is not None
    if dr.flags & _DMNEC and dr.debits_pending + dr.debits_posted + amount > dr.credits_posted:
        return Outcome(Result.EXCEEDS_CREDITS)
    if cr.flags & _CMNED and cr.credits_pending + cr.credits_posted + amount > cr.debits_posted:
        return Outcome(Result.EXCEEDS_DEBITS)
    pending = bool(t.flags & _PENDING)
    if pending:
        if dr.debits_pending + amount > AMOUNT_MAX:
            return Outcome(Result.OVERFLOWS_DEBITS)
        if cr.credits_pending + amount > AMOUNT_MAX:
            return Outcome(Result.OVERFLOWS_CREDITS)
    else:
        if dr.debits_posted + amount > AMOUNT_MAX:
            return Outcome(Result.OVERFLOWS_DEBITS)
        if cr.credits_posted + amount > AMOUNT_MAX:
            return Outcome(Result.OVERFLOWS_CREDITS)
    batch.touch(dr)
    batch.touch(cr)
    if pending:
        dr.debits_pending += amount
        cr.credits_pending += amount
    else:
        dr.debits_posted += amount
        cr.credits_posted += amount
    expires_at = batch.now + dt.timedelta(seconds=t.timeout_s) if t.timeout_s else None
    created = Transfer(t.id, dr.id, cr.id, amount, dr.ledger, int(t.code), int(t.flags), None,
                       t.timeout_s, t.user_data or None, batch.now, expires_at)
    return _record(created, batch)


def _resolve(t: TransferIn, batch: _Batch) -> Outcome:
    p = batch.transfer(t.pending_id)  # type: ignore[arg-type]
    if p is None:
        return Outcome(Result.PENDING_TRANSFER_NOT_FOUND)
    if not p.flags & _PENDING:
        return Outcome(Result.PENDING_TRANSFER_NOT_PENDING)
    if t.debit_account_id is not None and t.debit_account_id != p.debit_account_id:
        return Outcome(Result.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT)
    if t.credit_account_id is not None and t.credit_account_id != p.credit_account_id:
        return Outcome(Result.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT)
    if t.ledger is not None and t.ledger != p.ledger:
        return Outcome(Result.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER)
    if t.code and t.code != p.code:
        return Outcome(Result.PENDING_TRANSFER_HAS_DIFFERENT_CODE)
    posting = bool(t.flags & _POST)
    amount = p.amount if t.amount is None else t.amount
    if posting and amount > p.amount:
        return Outcome(Result.EXCEEDS_PENDING_TRANSFER_AMOUNT)
    if not posting and amount != p.amount:
        return Outcome(Result.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT)
    done = batch.resolved.get(p.id)
    if done is not None:
        return Outcome(Result.PENDING_TRANSFER_ALREADY_POSTED if done & _POST
                       else Result.PENDING_TRANSFER_ALREADY_VOIDED)
    if p.expires_at is not None and batch.now >= p.expires_at and not (t.expire and not posting):
        return Outcome(Result.PENDING_TRANSFER_EXPIRED)
    dr = batch.snap.accounts[p.debit_account_id]
    cr = batch.snap.accounts[p.credit_account_id]
    if posting:
        if dr.debits_posted + amount > AMOUNT_MAX:
            return Outcome(Result.OVERFLOWS_DEBITS)
        if cr.credits_posted + amount > AMOUNT_MAX:
            return Outcome(Result.OVERFLOWS_CREDITS)
    batch.touch(dr)
    batch.touch(cr)
    dr.debits_pending -= p.amount
    cr.credits_pending -= p.amount
    if posting:
        dr.debits_posted += amount
        cr.credits_posted += amount
    assert dr.debits_pending >= 0 and cr.credits_pending >= 0, "pending balance below zero"
    batch.resolve(p.id, t.flags)
    created = Transfer(t.id, p.debit_account_id, p.credit_account_id, amount, p.ledger,
                       int(t.code or p.code), int(t.flags), p.id, 0, t.user_data or None,
                       batch.now)
    return _record(created, batch)


def _record(created: Transfer, batch: _Batch) -> Outcome:
    batch.created.append(created)
    batch.created_by_id[created.id] = created
    return Outcome(Result.CREATED, created)
