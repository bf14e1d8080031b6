"""Statement arithmetic for any history: opening + movements = closing, and the balances
agree with the ledger's, whatever the order of times and ledger positions."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bankwallet.history import service
from bankwallet.history.errors import InvalidPeriod

BASE = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
amounts = st.integers(min_value=-10**9, max_value=10**9).filter(bool)
moves = st.lists(st.tuples(amounts, st.integers(min_value=0, max_value=24 * 90)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(moves=moves, start_h=st.integers(min_value=0, max_value=24 * 90),
       length_h=st.integers(min_value=1, max_value=24 * 40), seqs=st.randoms())
def test_opening_plus_movements_is_closing(moves, start_h, length_h, seqs) -> None:
    order = list(range(1, len(moves) + 1))
    seqs.shuffle(order)  # a ledger position need not follow the clock
    postings = [service.Posting(uuid.uuid4(), seq, BASE + dt.timedelta(hours=h), amount, "p2p",
                                "x", "", "") for seq, (amount, h) in zip(order, moves, strict=True)]
    start = BASE + dt.timedelta(hours=start_h)
    end = start + dt.timedelta(hours=length_h)
    now = sum(p.amount_minor for p in postings)
    section = service.build_section("CNY", posted_now_minor=now,
                                    since_start=[p for p in postings if p.created_at >= start],
                                    end=end)
    assert section.opening_minor == sum(p.amount_minor for p in postings if p.created_at < start)
    assert section.closing_minor == sum(p.amount_minor for p in postings if p.created_at < end)
    in_period = sorted((p for p in postings if start <= p.created_at < end), key=lambda p: p.seq)
    assert [line.posting for line in section.lines] == in_period
    balance = section.opening_minor
    for line in section.lines:
        balance += line.posting.amount_minor
        assert line.balance_minor == balance
    assert balance == section.closing_minor
    assert section.opening_minor + section.money_in_minor - section.money_out_minor == \
        section.closing_minor
    assert section.money_in_minor >= 0 and section.money_out_minor >= 0


def test_months_are_the_bank_calendar() -> None:
    assert service.parse_month("2024-02") == (dt.date(2024, 2, 1), dt.date(2024, 2, 29))
    assert service.parse_month("2025-12") == (dt.date(2025, 12, 1), dt.date(2025, 12, 31))
    # Midnight in Shanghai is 16:00 UTC the day before.
    assert service.bank_midnight(dt.date(2025, 3, 1)) == dt.datetime(2025, 2, 28, 16,
                                                                     tzinfo=dt.UTC)
    assert service.recent_months(3, today=dt.date(2025, 1, 31)) == ["2025-01", "2024-12",
                                                                    "2024-11"]
    for bad in ("2025-13", "2025-00", "1999-01", "2025-1", "", "2025-01-01", "２０２５-01"):
        with pytest.raises(InvalidPeriod):
            service.parse_month(bad)
