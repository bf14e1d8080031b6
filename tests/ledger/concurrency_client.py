"""A ledger client process for the concurrency tests: submits its share of a plan (with
duplicates) from many concurrent tasks and writes every outcome to a JSON file.

usage: python concurrency_client.py DATABASE_URL PLAN_JSON CLIENT_INDEX OUT_JSON [TASKS]
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

from bankwallet.core.db import make_engine
from bankwallet.ledger.store import SqlLedgerStore
from bankwallet.ledger.types import TransferIn


def transfer_in(d: dict) -> TransferIn:
    def u(key: str) -> uuid.UUID | None:
        return uuid.UUID(d[key]) if d.get(key) else None

    return TransferIn(id=uuid.UUID(d["id"]), debit_account_id=u("debit"),
                      credit_account_id=u("credit"), amount=d.get("amount"),
                      ledger=d.get("ledger"), code=d.get("code", 0), flags=d.get("flags", 0),
                      pending_id=u("pending_id"), timeout_s=d.get("timeout_s", 0))


async def run(url: str, plan_path: str, index: int, out_path: str, tasks: int) -> None:
    plan = json.loads(open(plan_path).read())
    calls = [[transfer_in(plan["transfers"][i]) for i in call] for call in plan["clients"][index]]
    engine = make_engine(url, pool_size=4)
    store = SqlLedgerStore(engine, batch_max=256)
    outcomes: list[tuple[str, str]] = []
    queue = list(reversed(calls))

    async def worker() -> None:
        while queue:
            call = queue.pop()
            for t, o in zip(call, await store.create_transfers(call), strict=True):
                outcomes.append((str(t.id), o.result.value))

    try:
        await asyncio.gather(*(worker() for _ in range(tasks)))
    finally:
        await store.close()
        await engine.dispose()
    with open(out_path, "w") as out:
        json.dump(outcomes, out)


if __name__ == "__main__":
    url, plan_path, index, out_path = sys.argv[1:5]
    tasks = int(sys.argv[5]) if len(sys.argv) > 5 else 16
    asyncio.run(run(url, plan_path, int(index), out_path, tasks))
