"""History use cases: the transaction list with its filters, one movement's receipt, and
monthly statements. Everything is read from the ledger; nothing here changes state.

An *entry* is one movement as the customer sees it: a plain transfer, or a hold together with
its later post or void (one line whose status moves from pending to posted or voided). A
*posting* is what changed a posted balance (plain transfers and posts): statements are made of
those, so their balances are the ones the ledger keeps.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
import zoneinfo
from dataclasses import dataclass
from typing import Any, Final, Literal

from bankwallet.core.db import utcnow
from bankwallet.core.i18n import N_
from bankwallet.core.money import MAX_AMOUNT_MINOR
from bankwallet.history import repository
from bankwallet.history.errors import (
    EntryNotFound,
    InvalidCursor,
    InvalidFilter,
    InvalidPeriod,
    StatementBusy,
)
from bankwallet.ledger.store import ACTIVITY_TEXT_MAX_CHARS, ActivityQuery, LedgerStore, TextMatch
from bankwallet.ledger.types import Transfer, TransferFlags
from bankwallet.settings import get_settings
from bankwallet.wallets import service as wallets_service
from bankwallet.wallets.codes import KIND_OF_CODE

PAGE_SIZE_DEFAULT: Final = 20
PAGE_SIZE_MAX: Final = 100
# A filtered page reads a bounded slice of the ledger per round; a page that found too little
# reads on, at most this many rounds, then answers short with a cursor.
SCAN_ROUNDS_MAX: Final = 5
TEXT_MAX_CHARS: Final = ACTIVITY_TEXT_MAX_CHARS
CURSOR_RE: Final = re.compile(r"^[1-9]\d{0,17}$", re.ASCII)
MONTH_RE: Final = re.compile(r"^(\d{4})-(\d{2})$", re.ASCII)
FIRST_YEAR: Final = 2000
SNAPSHOT_TRIES: Final = 3

Direction = Literal["in", "out"]
Status = Literal["pending", "posted", "voided"]

KINDS: Final = tuple(sorted(set(KIND_OF_CODE.values())))
CODES_OF_KIND: Final = {kind: frozenset(int(c) for c, k in KIND_OF_CODE.items() if k == kind)
                        for kind in KINDS}
# Shown to the customer; the API answers with the keys.
KIND_LABELS: Final = {
    "topup": N_("Top-up"), "withdrawal": N_("Withdrawal"),
    "topup_reversal": N_("Top-up reversed"), "withdrawal_return": N_("Withdrawal returned"),
    "p2p": N_("Transfer"), "payment": N_("Payment"), "fee": N_("Fee"), "refund": N_("Refund"),
    "settlement": N_("Settlement"), "exchange": N_("Exchange"), "correction": N_("Correction"),
    "other": N_("Other"),
}
STATUS_LABELS: Final = {"pending": N_("Pending"), "posted": N_("Completed"),
                        "voided": N_("Cancelled")}
assert set(KINDS) <= set(KIND_LABELS)


# -- entries -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resolution:
    """The post or void that settled a hold."""

    id: uuid.UUID
    status: Status
    amount_minor: int
    created_at: dt.datetime
    seq: int
    hash: str  # hex


@dataclass(frozen=True, slots=True)
class Entry:
    id: uuid.UUID  # the ledger transfer that started the movement (the hold, if any)
    direction: Direction
    kind: str
    amount_minor: int  # what moved: a posted hold's posted amount, else the transfer's
    currency: str
    counterparty: str
    note: str
    status: Status
    created_at: dt.datetime
    ref: str
    code: int
    seq: int
    hash: str  # hex: the transfer's link in the ledger's hash chain
    resolution: Resolution | None


@dataclass(frozen=True, slots=True)
class EntryPage:
    items: list[Entry]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """What the customer asks for; dates are days in the bank's time zone, inclusive."""

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    kinds: tuple[str, ...] = ()
    currency: str | None = None
    counterparty: str | None = None
    text: str | None = None  # in the note or the counterparty
    amount_min_minor: int | None = None
    amount_max_minor: int | None = None


def kind_of(transfer: Transfer, user_data: dict[str, Any]) -> str:
    kind = KIND_OF_CODE.get(transfer.code) or str(user_data.get("kind") or "other")
    return kind if kind in KIND_LABELS else "other"


def _text(user_data: dict[str, Any], key: str) -> str:
    value = user_data.get(key)
    return value if isinstance(value, str) else ""


def entry_of(transfer: Transfer, resolution: Transfer | None,
             mine: frozenset[uuid.UUID]) -> Entry:
    """One movement as the customer whose accounts are ``mine`` sees it."""
    assert transfer.pending_id is None, "an entry starts with a transfer, not a post or void"
    outgoing = transfer.debit_account_id in mine
    assert outgoing or transfer.credit_account_id in mine, "not the customer's movement"
    data = transfer.user_data or {}
    status: Status = "posted"
    amount = transfer.amount
    settled = None
    if transfer.flags & TransferFlags.PENDING:
        status = "pending"
        if resolution is not None:
            posted = bool(resolution.flags & TransferFlags.POST_PENDING)
            status = "posted" if posted else "voided"
            amount = resolution.amount if posted else transfer.amount
            settled = Resolution(resolution.id, status, resolution.amount,
                                 resolution.created_at, resolution.seq, resolution.hash.hex())
    return Entry(id=transfer.id, direction="out" if outgoing else "in",
                 kind=kind_of(transfer, data), amount_minor=amount, currency=transfer.ledger,
                 counterparty=_text(data, "to" if outgoing else "from"),
                 note=_text(data, "note"), status=status, created_at=transfer.created_at,
                 ref=_text(data, "ref"), code=transfer.code, seq=transfer.seq,
                 hash=transfer.hash.hex(), resolution=settled)


def _bank_zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(get_settings().bank_timezone)


def bank_midnight(day: dt.date) -> dt.datetime:
    """The start of ``day`` in the bank's time zone, in UTC."""
    return dt.datetime.combine(day, dt.time(), tzinfo=_bank_zone()).astimezone(dt.UTC)


def _clean_text(value: str | None, what: str) -> str | None:
    text = " ".join((value or "").split())
    if len(text) > TEXT_MAX_CHARS:
        raise InvalidFilter(f"The {what} is longer than {TEXT_MAX_CHARS} characters.")
    return text or None


def _activity_query(user_id: uuid.UUID, f: HistoryFilter, limit: int) -> ActivityQuery:
    unknown = sorted(set(f.kinds) - set(KINDS))
    if unknown:
        raise InvalidFilter(f"Unknown type {unknown[0]!r}.", kinds=list(KINDS))
    if f.date_from and f.date_to and f.date_from > f.date_to:
        raise InvalidFilter("The start date is after the end date.")
    if (f.amount_min_minor is not None and f.amount_max_minor is not None
            and f.amount_min_minor > f.amount_max_minor):
        raise InvalidFilter("The smallest amount is larger than the largest.")
    for amount in (f.amount_min_minor, f.amount_max_minor):
        if amount is not None and not 0 <= amount <= MAX_AMOUNT_MINOR:
            raise InvalidFilter("Amounts are zero or more, at most 2^63-1 minor units.")
    currency = wallets_service.supported(f.currency) if f.currency else None
    texts = []
    if counterparty := _clean_text(f.counterparty, "counterparty"):
        texts.append(TextMatch(counterparty, out_keys=("to",), in_keys=("from",)))
    if text := _clean_text(f.text, "search text"):
        texts.append(TextMatch(text, out_keys=("note", "to"), in_keys=("note", "from")))
    codes = frozenset().union(*(CODES_OF_KIND[k] for k in f.kinds)) if f.kinds else None
    return ActivityQuery(
        repository.wallet_accounts(user_id, currency), "entries", limit=limit, codes=codes,
        created_from=bank_midnight(f.date_from) if f.date_from else None,
        created_before=(bank_midnight(f.date_to + dt.timedelta(days=1)) if f.date_to
                        else None),
        amount_min=f.amount_min_minor, amount_max=f.amount_max_minor, texts=tuple(texts))


def _parse_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    if not CURSOR_RE.fullmatch(cursor):
        raise InvalidCursor("The cursor is not one this API returned.")
    return int(cursor)


async def list_entries(ledger: LedgerStore, user_id: uuid.UUID, *,
                       filters: HistoryFilter = HistoryFilter(), cursor: str | None = None,
                       limit: int = PAGE_SIZE_DEFAULT) -> EntryPage:
    """A page of the customer's movements, newest first; ``next_cursor`` reads on.

    Amount filters compare what was asked for (a hold's amount, even when less was posted).
    A page may be short, even empty, and still have a cursor: a rare filter reads the ledger
    a bounded slice at a time.
    """
    limit = max(1, min(limit, PAGE_SIZE_MAX))
    query = _activity_query(user_id, filters, limit)
    mine = frozenset(repository.wallet_accounts(user_id))
    before = _parse_cursor(cursor)
    items: list[Entry] = []
    for _ in range(SCAN_ROUNDS_MAX):
        page = await repository.activity(ledger, dataclasses.replace(
            query, before_seq=before, limit=limit - len(items)))
        items += [entry_of(t, page.related.get(t.id), mine) for t in page.transfers]
        before = page.next_before_seq
        if before is None or len(items) >= limit:
            break
    return EntryPage(items, str(before) if before is not None else None)


async def get_entry(ledger: LedgerStore, user_id: uuid.UUID, transfer_id: uuid.UUID) -> Entry:
    """One movement with its receipt details; the id of its post or void finds it too.
    Anything that did not touch the caller's accounts is not found."""
    transfer = await repository.lookup_transfer(ledger, transfer_id)
    if transfer is not None and transfer.pending_id is not None:
        transfer = await repository.lookup_transfer(ledger, transfer.pending_id)
    mine = frozenset(repository.wallet_accounts(user_id))
    if transfer is None or not {transfer.debit_account_id, transfer.credit_account_id} & mine:
        raise EntryNotFound()
    account = (transfer.debit_account_id if transfer.debit_account_id in mine
               else transfer.credit_account_id)
    resolution = await repository.entry_with_resolution(ledger, transfer, account)
    return entry_of(transfer, resolution, mine)


# -- statements ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Posting:
    """A change to a posted balance, signed from the customer's side (+ in, − out)."""

    transfer_id: uuid.UUID
    seq: int
    created_at: dt.datetime
    amount_minor: int
    kind: str
    counterparty: str
    note: str
    ref: str


@dataclass(frozen=True, slots=True)
class StatementLine:
    posting: Posting
    balance_minor: int  # the posted balance after this movement


@dataclass(frozen=True, slots=True)
class StatementSection:
    currency: str
    opening_minor: int
    lines: list[StatementLine]
    closing_minor: int
    money_in_minor: int
    money_out_minor: int  # positive: the total that left


@dataclass(frozen=True, slots=True)
class Statement:
    month: str  # YYYY-MM
    first_day: dt.date
    last_day: dt.date  # the month's last day, or today for the current month
    complete: bool  # False while the month is still running
    timezone: str
    generated_at: dt.datetime
    sections: list[StatementSection]


def build_section(currency: str, *, posted_now_minor: int, since_start: list[Posting],
                  end: dt.datetime) -> StatementSection:
    """A currency's part of a statement from its posted balance now and every posting since
    the period's start: opening = now − all of those, then the period's lines in ledger order.
    Pure, so its arithmetic is checked for any history (tests/history: hypothesis)."""
    ordered = sorted(since_start, key=lambda p: p.seq)
    opening = posted_now_minor - sum(p.amount_minor for p in ordered)
    in_period = [p for p in ordered if p.created_at < end]
    lines, balance = [], opening
    for p in in_period:
        balance += p.amount_minor
        lines.append(StatementLine(p, balance))
    money_in = sum(p.amount_minor for p in in_period if p.amount_minor > 0)
    money_out = -sum(p.amount_minor for p in in_period if p.amount_minor < 0)
    closing = opening + money_in - money_out
    assert closing == balance, "opening + movements != closing"
    after = sum(p.amount_minor for p in ordered if p.created_at >= end)
    assert closing + after == posted_now_minor, "the statement does not end at the balance"
    return StatementSection(currency, opening, lines, closing, money_in, money_out)


def parse_month(text: str) -> tuple[dt.date, dt.date]:
    """``YYYY-MM`` → its first and last day; months after this one are refused."""
    match = MONTH_RE.fullmatch(text or "")
    if not match or not 1 <= int(match[2]) <= 12 or int(match[1]) < FIRST_YEAR:
        raise InvalidPeriod("A statement period is a month written YYYY-MM, from 2000 on.")
    first = dt.date(int(match[1]), int(match[2]), 1)
    if first > wallets_service.bank_today():
        raise InvalidPeriod("That month has not started yet.")
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return first, following - dt.timedelta(days=1)


def recent_months(count: int = 12, *, today: dt.date | None = None) -> list[str]:
    """This month and the ones before it, newest first (the statements page lists them)."""
    day = (today or wallets_service.bank_today()).replace(day=1)
    months = []
    for _ in range(count):
        months.append(f"{day.year:04d}-{day.month:02d}")
        day = (day - dt.timedelta(days=1)).replace(day=1)
    return months


def _posting(transfer: Transfer, holds: dict[uuid.UUID, Transfer],
             mine: frozenset[uuid.UUID]) -> Posting:
    origin = holds.get(transfer.pending_id) if transfer.pending_id else transfer
    data = (origin or transfer).user_data or {}
    outgoing = transfer.debit_account_id in mine
    assert outgoing or transfer.credit_account_id in mine
    return Posting(transfer_id=transfer.id, seq=transfer.seq, created_at=transfer.created_at,
                   amount_minor=-transfer.amount if outgoing else transfer.amount,
                   kind=kind_of(transfer, data),
                   counterparty=_text(data, "to" if outgoing else "from"),
                   note=_text(data, "note"), ref=_text(data, "ref"))


async def statement(ledger: LedgerStore, user_id: uuid.UUID, month: str) -> Statement:
    """The customer's statement for a month of the bank's calendar, one section per currency
    held. Balances are posted balances (holds not yet posted are not in them)."""
    first, last = parse_month(month)
    start = bank_midnight(first)
    end = bank_midnight(last + dt.timedelta(days=1))
    ids = repository.wallet_accounts(user_id)
    mine = frozenset(ids)
    for _ in range(SNAPSHOT_TRIES):
        before = await repository.lookup_accounts(ledger, ids)
        transfers, holds = await repository.postings_since(ledger, ids, start)
        after = await repository.lookup_accounts(ledger, ids)
        # Posted debits and credits only grow: unchanged, nothing posted while we read.
        if {i: (a.debits_posted, a.credits_posted) for i, a in before.items()} == {
                i: (a.debits_posted, a.credits_posted) for i, a in after.items()}:
            break
    else:
        raise StatementBusy("Money kept moving while the statement was read; try again.")
    by_currency: dict[str, list[Posting]] = {a.ledger: [] for a in after.values()}
    for t in transfers:
        by_currency[t.ledger].append(_posting(t, holds, mine))
    held = [a for a in after.values() if a.created_at < end]  # opened by the period's end
    sections = [build_section(a.ledger, posted_now_minor=a.balance,
                              since_start=by_currency[a.ledger], end=end)
                for a in sorted(held, key=lambda a: _currency_order(a.ledger))]
    today = wallets_service.bank_today()
    return Statement(month=f"{first.year:04d}-{first.month:02d}", first_day=first,
                     last_day=min(last, today), complete=last < today,
                     timezone=get_settings().bank_timezone, generated_at=utcnow(),
                     sections=sections)


def _currency_order(currency: str) -> int:
    offered = wallets_service.SUPPORTED_CURRENCIES
    return offered.index(currency) if currency in offered else len(offered)
