"""``bankwallet ledger verify``: recompute everything from the transfers and compare.

Checks, in order, and names the first bad transfer or account of each kind:
- the hash chain: every transfer's hash is H(previous hash ‖ its canonical bytes), sequence
  numbers run 1..n without gaps, and the chain head matches the last transfer;
- every account's four balances equal the sums of its transfers;
- per ledger (currency), Σ debits = Σ credits, posted and pending;
- no account breaks its flags;
- the open-hold index matches the holds that are still open.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bankwallet.ledger.models import LedgerAccount, LedgerChain, LedgerOpenHold, LedgerTransfer
from bankwallet.ledger.store import _transfer_from_orm_row
from bankwallet.ledger.types import GENESIS_HASH, AccountFlags, TransferFlags, chain_hash

_PAGE = 5000


@dataclass
class VerifyReport:
    transfers: int = 0
    accounts: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(engine: AsyncEngine, *, max_problems: int = 50) -> VerifyReport:
    report = VerifyReport()
    sums: dict[uuid.UUID, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    open_holds: dict[uuid.UUID, object] = {}
    chain_broken = False
    table = LedgerTransfer.__table__
    async with engine.connect() as conn:
        prev_hash, expected_seq, after = GENESIS_HASH, 1, 0
        pending_amounts: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID, int]] = {}
        while True:
            rows = (await conn.execute(select(table).where(table.c.seq > after)
                                       .order_by(table.c.seq).limit(_PAGE))).all()
            if not rows:
                break
            for row in rows:
                t = _transfer_from_orm_row(row)
                report.transfers += 1
                after = t.seq
                if not chain_broken:
                    if t.seq != expected_seq:
                        report.problems.append(
                            f"transfer {t.id}: sequence {t.seq}, expected {expected_seq} "
                            "(a transfer is missing)")
                        chain_broken = True
                    elif chain_hash(prev_hash, t) != t.hash:
                        report.problems.append(
                            f"transfer {t.id} (seq {t.seq}): hash does not match its contents "
                            "or its predecessor")
                        chain_broken = True
                    prev_hash, expected_seq = t.hash, t.seq + 1
                _add_to_sums(t, sums, pending_amounts, open_holds)
        head = (await conn.execute(select(LedgerChain.__table__))).one()
        if not chain_broken and (head.seq != expected_seq - 1 or bytes(head.hash) != prev_hash):
            report.problems.append(
                f"chain head: seq {head.seq} does not match the last transfer ({expected_seq - 1})")
        accounts = (await conn.execute(select(LedgerAccount.__table__)
                                       .order_by(LedgerAccount.id))).all()
        holds = {r.pending_id for r in await conn.execute(select(LedgerOpenHold.pending_id))}
        report.accounts = len(accounts)
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for a in accounts:
            stored = [a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted]
            if stored != sums.get(a.id, [0, 0, 0, 0]):
                report.problems.append(
                    f"account {a.id}: balances {stored} but its transfers sum to "
                    f"{sums.get(a.id, [0, 0, 0, 0])} (debits_pending, debits_posted, "
                    "credits_pending, credits_posted)")
            for k in range(4):
                totals[a.ledger][k] += stored[k]
            if a.flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS and (
                    a.debits_pending + a.debits_posted > a.credits_posted):
                report.problems.append(f"account {a.id}: debits exceed credits")
            if a.flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS and (
                    a.credits_pending + a.credits_posted > a.debits_posted):
                report.problems.append(f"account {a.id}: credits exceed debits")
        for ledger, (dp, dpo, cp, cpo) in sorted(totals.items()):
            if dp != cp or dpo != cpo:
                report.problems.append(
                    f"ledger {ledger}: debits {dpo}+{dp} pending != credits {cpo}+{cp} pending")
        for missing in sorted(set(open_holds) - holds):
            report.problems.append(f"hold {missing}: open with a timeout but not indexed")
        for extra in sorted(holds - set(open_holds)):
            report.problems.append(f"hold {extra}: indexed as open but already resolved")
        count = (await conn.execute(select(func.count()).select_from(table))).scalar_one()
        if count != report.transfers:  # pragma: no cover - a row with a NULL seq
            report.problems.append(f"{count - report.transfers} transfers outside the chain")
    del report.problems[max_problems:]
    return report


def _add_to_sums(t, sums, pending_amounts, open_holds) -> None:
    dr, cr = sums[t.debit_account_id], sums[t.credit_account_id]
    if t.flags & TransferFlags.PENDING:
        dr[0] += t.amount
        cr[2] += t.amount
        pending_amounts[t.id] = (t.debit_account_id, t.credit_account_id, t.amount)
        if t.timeout_s:
            open_holds[t.id] = t.expires_at
        return
    if t.flags & (TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING):
        held = pending_amounts.pop(t.pending_id, None)
        open_holds.pop(t.pending_id, None)
        if held is not None:
            sums[held[0]][0] -= held[2]
            sums[held[1]][2] -= held[2]
        if t.flags & TransferFlags.VOID_PENDING:
            return
    dr[1] += t.amount
    cr[3] += t.amount
