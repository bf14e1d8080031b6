"""Micro-batching: callers that arrive while a batch is in flight share the next one.

One round trip for many callers instead of one each: the database sees one statement and
one commit, the client pays one send and one receive. Under no load a caller's batch leaves
at once (a batch of one); under load batches grow to what arrived during the last one, so
waiting never adds more than one batch's time.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """``await batcher(item)`` runs ``run`` on a batch of items and returns this item's
    result. ``run`` returns one result per item, in order; a result that is an exception is
    raised to that item's caller alone, an exception ``run`` raises to every caller of the
    batch. At most ``in_flight`` batches run at once, each of at most ``max_items``."""

    def __init__(self, run: Callable[[list[Item]], Awaitable[Sequence[Result | BaseException]]],
                 *, in_flight: int = 2, max_items: int = 256) -> None:
        assert in_flight >= 1 and max_items >= 1
        self._run = run
        self._in_flight = in_flight
        self._max_items = max_items
        self._queue: collections.deque[tuple[Item, asyncio.Future[Result]]] = (
            collections.deque())
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.items = 0

    async def __call__(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._running < self._in_flight:
            self._running += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                take = min(len(self._queue), self._max_items)
                batch = [self._queue.popleft() for _ in range(take)]
                self.batches += 1
                self.items += take
                try:
                    results = await self._run([item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"{len(results)} results for {len(batch)} items")
                except asyncio.CancelledError:
                    for _, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue  # its caller was cancelled
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._running -= 1

    async def close(self) -> None:
        """Cancels the batches in flight; their callers see CancelledError."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        while self._queue:
            _, future = self._queue.popleft()
            if not future.done():
                future.cancel()
