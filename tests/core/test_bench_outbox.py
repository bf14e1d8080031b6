"""``bankwallet bench outbox`` end to end on a small load: both ways drain every event, every
message is written once, and the figures are the ones it measured (PostgreSQL)."""

from __future__ import annotations

import pytest

from bankwallet.bench.outbox import run_outbox_bench


@pytest.mark.postgres
@pytest.mark.parametrize("fresh_db_url", ["postgres"], indirect=True)
async def test_bench_outbox_drains_both_ways_and_checks_itself(fresh_db_url: str) -> None:
    said: list[str] = []
    result = await run_outbox_bench(fresh_db_url, events=120, users=3, limit=50,
                                    progress=said.append)
    assert result["all_dispatched"] is True and result["messages_written_once"] is True
    assert result["events"] == 120 and result["limit"] == 50
    for key in ("batched_cpu_ms_per_event", "one_at_a_time_cpu_ms_per_event",
                "batched_events_per_second", "one_at_a_time_events_per_second"):
        assert result[key] > 0
    assert result["speedup_cpu"] == round(result["one_at_a_time_cpu_ms_per_event"]
                                          / result["batched_cpu_ms_per_event"], 2)
    assert any("one at a time" in line for line in said)
    with pytest.raises(RuntimeError, match="PostgreSQL"):
        await run_outbox_bench("sqlite+aiosqlite:///x.db", events=1, users=2, limit=1,
                               progress=said.append)
