"""``bankwallet reconcile``: the wallet's top-ups and withdrawals against the bank's statement.

Three passes, each movement in a unit of work of its own:

1. every pending movement is checked with the bank (its instruction, or its reference) and
   the outcome applied — a lost webhook, a crash between "the bank moved money" and "the
   ledger knows";
2. every statement entry since ``since`` is matched to a movement by reference: money the
   bank moved (or moved back) that the wallet has not recorded is applied; what cannot be
   applied (an unknown reference, another amount, a movement the wallet failed) is a finding;
3. every movement since ``since`` the wallet settled is looked for on the statement, and
   shortfalls (a reversed top-up the wallet could not give back in full) are findings.

The report says what was resolved, what is still in flight, and the findings a person must
look at; it is clean when there are no findings.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Final, Literal

from bankwallet.connectors.corebanking.base import (
    CoreBanking,
    InstructionStatus,
    StatementEntry,
)
from bankwallet.core.db import Database, utcnow
from bankwallet.core.money import format_money
from bankwallet.funding import repository, service
from bankwallet.funding.errors import BankNotConnected
from bankwallet.funding.models import Movement
from bankwallet.ledger.store import LedgerStore, SqlLedgerStore
from bankwallet.settings import Settings

MOVEMENTS_MAX: Final = 10_000
STATEMENT_PAGES_MAX: Final = 200
STUCK_AFTER_S: Final = 24 * 3600
MOVED: Final = {"debit": "topup", "credit": "withdrawal"}
MOVED_BACK: Final = {"debit_reversal": "topup", "credit_reversal": "withdrawal"}

Level = Literal["resolved", "in_flight", "finding"]


@dataclass(frozen=True, slots=True)
class Line:
    level: Level
    text: str


@dataclass(slots=True)
class Report:
    lines: list[Line] = field(default_factory=list)
    movements_checked: int = 0
    entries_read: int = 0
    statement_complete: bool = True

    def add(self, level: Level, text: str) -> None:
        self.lines.append(Line(level, text))

    @property
    def findings(self) -> list[Line]:
        return [line for line in self.lines if line.level == "finding"]

    @property
    def clean(self) -> bool:
        return not self.findings

    def render(self) -> list[str]:
        labels = {"resolved": "RESOLVED ", "in_flight": "IN FLIGHT", "finding": "FINDING  "}
        out = [f"{labels[line.level]} {line.text}" for line in self.lines]
        resolved = sum(1 for line in self.lines if line.level == "resolved")
        verdict = "clean" if self.clean else f"{len(self.findings)} finding(s)"
        out.append(f"reconciliation {verdict}: {self.movements_checked} movements checked, "
                   f"{self.entries_read} bank entries read, {resolved} resolved")
        return out


def _name(m: Movement) -> str:
    return f"{m.kind} {m.id} ({format_money(m.amount_minor, m.currency)})"


async def _movement(db: Database, mid: uuid.UUID) -> Movement:
    async with db.unit_of_work() as session:
        found = await repository.movement(session, mid)
    assert found is not None
    return found


async def reconcile(db: Database, ledger: LedgerStore, bank: CoreBanking, *,
                    since: dt.datetime, now: dt.datetime | None = None) -> Report:
    assert since.tzinfo is not None
    now = now or utcnow()
    report = Report()
    await _check_pending(db, ledger, bank, report)
    seen = await _match_statement(db, ledger, bank, report, since=since)
    await _check_settled(db, report, since=since, now=now, seen=seen)
    return report


async def _check_pending(db: Database, ledger: LedgerStore, bank: CoreBanking,
                         report: Report) -> None:
    async with db.unit_of_work() as session:
        pending = await repository.pending_movement_ids(session, limit=MOVEMENTS_MAX)
    for mid in pending:
        # Twice: a re-sent instruction's first answer is the bank's acknowledgement; the
        # second question gets its current state.
        for _ in range(2):
            async with db.unit_of_work() as session:
                await service.check_movement(session, ledger, bank, mid)
            m = await _movement(db, mid)
            if m.status != "pending":
                report.add("resolved", f"{_name(m)}: the bank says {m.bank_status}; "
                                       f"now {m.status}")
                break
        report.movements_checked += 1


async def _apply(db: Database, ledger: LedgerStore, mid: uuid.UUID,
                 status: InstructionStatus) -> str:
    async with db.unit_of_work() as session:
        return await service.apply_outcome(session, ledger, mid, status)


async def _match_statement(db: Database, ledger: LedgerStore, bank: CoreBanking,
                           report: Report, *, since: dt.datetime) -> dict[uuid.UUID, set[str]]:
    """Each entry against its movement; returns what the statement shows per movement
    ("moved", "moved_back")."""
    seen: dict[uuid.UUID, set[str]] = defaultdict(set)
    after: int | None = None
    for _ in range(STATEMENT_PAGES_MAX):
        page = await bank.statement(since, after=after)
        if not page.ok:
            report.statement_complete = False
            report.add("finding", f"the bank's statement could not be read ({page.error}); "
                                  "run again")
            return seen
        for entry in page.entries:
            report.entries_read += 1
            await _match_entry(db, ledger, report, entry, seen)
        if page.next_cursor is None:
            return seen
        after = page.next_cursor
    report.statement_complete = False
    report.add("finding", f"the statement has more than {STATEMENT_PAGES_MAX} pages; "
                          "run again with a later --since")
    return seen


async def _match_entry(db: Database, ledger: LedgerStore, report: Report,
                       entry: StatementEntry, seen: dict[uuid.UUID, set[str]]) -> None:
    what = f"bank movement {entry.movement_id} ({entry.kind}, " \
           f"{format_money(abs(entry.amount_minor), entry.currency)})"
    async with db.unit_of_work() as session:
        m = await repository.movement_by_reference(session, entry.reference[:140])
    expected_kind = MOVED.get(entry.kind) or MOVED_BACK.get(entry.kind)
    if m is None:
        report.add("finding", f"{what}: no wallet movement has its reference")
        return
    if (expected_kind != m.kind or abs(entry.amount_minor) != m.amount_minor
            or entry.currency != m.currency):
        report.add("finding", f"{what}: does not match {_name(m)}")
        return
    moved_back = entry.kind in MOVED_BACK
    seen[m.id].add("moved_back" if moved_back else "moved")
    if m.status == "failed":
        report.add("finding", f"{what}: the bank moved money for {_name(m)}, which the "
                              f"wallet recorded as failed ({m.failure_reason})")
        return
    if moved_back and m.status != "reversed":
        outcome = await _apply(db, ledger, m.id, InstructionStatus.REVERSED)
        _resolved(report, outcome, f"{_name(m)}: the bank moved it back; reversed")
    elif not moved_back and m.status == "pending":
        outcome = await _apply(db, ledger, m.id, InstructionStatus.SUCCEEDED)
        _resolved(report, outcome, f"{_name(m)}: the bank moved it; posted")


def _resolved(report: Report, outcome: str, text: str) -> None:
    if outcome == "inconsistent":
        report.add("finding", f"{text} — but the ledger refused it (see the logs)")
    else:
        report.add("resolved", text)


async def _check_settled(db: Database, report: Report, *, since: dt.datetime,
                         now: dt.datetime, seen: dict[uuid.UUID, set[str]]) -> None:
    async with db.unit_of_work() as session:
        movements = await repository.movements_since(session, since, limit=MOVEMENTS_MAX)
    for m in movements:
        shown = seen.get(m.id, set())
        if m.status in ("succeeded", "reversed") and report.statement_complete \
                and "moved" not in shown:
            report.add("finding", f"{_name(m)}: {m.status} in the wallet, but the bank's "
                                  "statement has no movement for it")
        if m.status == "reversed" and report.statement_complete and "moved_back" not in shown:
            report.add("finding", f"{_name(m)}: reversed in the wallet, but the bank's "
                                  "statement does not show it moving back")
        if m.shortfall_minor:
            report.add("finding", f"{_name(m)}: shortfall of "
                                  f"{format_money(m.shortfall_minor, m.currency)} — the "
                                  "wallet no longer held the reversed top-up; recover it "
                                  f"from user {m.user_id}")
        if m.status == "pending":
            age_s = (now - m.created_at).total_seconds()
            if age_s > STUCK_AFTER_S:
                report.add("finding", f"{_name(m)}: still pending after {int(age_s)} s "
                                      f"(the bank says {m.bank_status})")
            else:
                report.add("in_flight", f"{_name(m)}: the bank says {m.bank_status}")


async def run_reconcile(settings: Settings, database_url: str, *,
                        since: dt.datetime) -> Report:
    """What ``bankwallet reconcile`` runs: its own database, ledger and connector."""
    from bankwallet.funding.tasks import build_corebanking

    bank = build_corebanking(settings)
    if bank is None:
        raise BankNotConnected("Set BANKWALLET_COREBANKING_URL and "
                               "BANKWALLET_COREBANKING_SECRET.")
    db = Database(database_url)
    ledger = SqlLedgerStore(db.engine, batch_max=settings.ledger_batch_max,
                            batch_wait_ms=settings.ledger_batch_wait_ms,
                            pipeline=settings.ledger_pipeline)
    try:
        return await reconcile(db, ledger, bank, since=since)
    finally:
        await ledger.close()
        close = getattr(bank, "aclose", None)
        if close is not None:
            await close()
        await db.dispose()
