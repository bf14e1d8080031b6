"""core.batching.Batcher: callers that arrive while a batch is in flight share the next one;
every caller gets its own result or its own error, in order, whatever the batch sizes."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bankwallet.core.batching import Batcher


class Squares:
    """A batch function that records the batches it saw and can be held at a gate."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        await self.gate.wait()
        return [ValueError(f"odd {n}") if n < 0 else n * n for n in items]


async def test_a_lone_call_goes_at_once_and_arrivals_share_the_next_batch() -> None:
    run = Squares()
    batcher = Batcher(run, in_flight=1)
    assert await batcher(3) == 9
    assert run.batches == [[3]]
    run.gate.clear()  # the next batch is held in flight
    first = asyncio.create_task(batcher(1))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(batcher(n)) for n in range(2, 7)]
    await asyncio.sleep(0)
    run.gate.set()
    assert await asyncio.gather(first, *rest) == [1, 4, 9, 16, 25, 36]
    assert run.batches[1:] == [[1], [2, 3, 4, 5, 6]]
    assert (batcher.batches, batcher.items) == (3, 7)


async def test_an_item_error_is_its_callers_alone_a_batch_error_everyones() -> None:
    run = Squares()
    batcher = Batcher(run, in_flight=1)
    run.gate.clear()
    calls = [asyncio.create_task(batcher(n)) for n in (2, -1, 3)]
    await asyncio.sleep(0)
    run.gate.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert results[0] == 4 and results[2] == 9
    assert isinstance(results[1], ValueError) and str(results[1]) == "odd -1"

    async def broken(items: list[int]) -> list[int]:
        raise ConnectionError("database gone")

    failing = Batcher(broken)
    calls = [asyncio.create_task(failing(n)) for n in range(3)]
    for outcome in await asyncio.gather(*calls, return_exceptions=True):
        assert isinstance(outcome, ConnectionError)

    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    with pytest.raises(RuntimeError, match="results for"):
        await Batcher(short)(1)


async def test_batches_are_bounded_and_in_flight_at_most_as_allowed() -> None:
    live = peak = 0

    async def run(items: list[int]) -> list[int]:
        nonlocal live, peak
        live += 1
        peak = max(peak, live)
        await asyncio.sleep(0.001)
        live -= 1
        return items

    batcher = Batcher(run, in_flight=2, max_items=5)
    assert await asyncio.gather(*(batcher(n) for n in range(40))) == list(range(40))
    assert peak == 2 and batcher.items == 40 and batcher.batches >= 8


async def test_close_cancels_what_is_waiting() -> None:
    run = Squares()
    run.gate.clear()
    batcher = Batcher(run, in_flight=1)
    calls = [asyncio.create_task(batcher(n)) for n in range(3)]
    await asyncio.sleep(0)
    await batcher.close()
    for outcome in await asyncio.gather(*calls, return_exceptions=True):
        assert isinstance(outcome, asyncio.CancelledError)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 50), st.integers(0, 3)), max_size=60),
       st.integers(1, 3), st.integers(1, 8))
def test_every_caller_gets_its_own_answer(calls: list[tuple[int, int]], in_flight: int,
                                          max_items: int) -> None:
    async def run(items: list[int]) -> list[int | BaseException]:
        await asyncio.sleep(0)
        return [ValueError(n) if n < 0 else n * n for n in items]

    async def go() -> None:
        batcher = Batcher(run, in_flight=in_flight, max_items=max_items)

        async def one(n: int, delay: int) -> int:
            for _ in range(delay):
                await asyncio.sleep(0)
            return await batcher(n)

        results = await asyncio.gather(*(one(n, d) for n, d in calls), return_exceptions=True)
        for (n, _), result in zip(calls, results, strict=True):
            if n < 0:
                assert isinstance(result, ValueError) and result.args == (n,)
            else:
                assert result == n * n
        assert batcher.items == len(calls)

    asyncio.run(go())
