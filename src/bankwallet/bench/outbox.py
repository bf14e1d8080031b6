"""``bankwallet bench outbox``: the outbox dispatcher on the busiest topic, ``money.moved``
(every transfer), batched against one event at a time, measured in one run.

A scratch PostgreSQL database beside the one given (dropped afterwards), migrated; customers;
``events`` P2P ``money.moved`` events between them, published the way the transfers publish
them. Then the dispatcher drains them, as the server's does, with ``dispatch_once`` rounds of
``limit`` events: once batched (PostgreSQL: one unit of work per consumer per round, the money
notifications as a batch consumer), and, for a second set of the same events, one event at a
time (the SQLite path, and the fallback). It reports CPU milliseconds and wall-clock events per
second for both, and checks that every event was dispatched and every message written once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from bankwallet.bench.ledger import _scratch_database
from bankwallet.core.migrate import upgrade

Progress = Callable[[str], None]


async def run_outbox_bench(url: str, *, events: int, users: int, limit: int,
                           progress: Progress) -> dict[str, Any]:
    if not url.startswith("postgresql"):
        raise RuntimeError("bench outbox runs on PostgreSQL (--database-url postgresql+asyncpg://…)")
    scratch, cleanup = await _scratch_database(url)
    try:
        await asyncio.to_thread(upgrade, scratch)
        return await _measure(scratch, events=events, users=users, limit=limit,
                              progress=progress)
    finally:
        await cleanup()


async def _measure(url: str, *, events: int, users: int, limit: int,
                   progress: Progress) -> dict[str, Any]:
    from sqlalchemy import func, select

    from bankwallet.core import outbox
    from bankwallet.core.db import Database
    from bankwallet.identity import service as identity_service
    from bankwallet.notifications import tasks as notification_tasks  # registers the consumer
    from bankwallet.notifications.models import NotificationMessage
    from bankwallet.settings import get_settings

    notification_tasks.configure(get_settings())
    db = Database(url)
    try:
        progress(f"creating {users} customers")
        async with db.unit_of_work() as session:
            people = [await identity_service.create_user(
                session, login_text=f"bench-{n}-{uuid.uuid4().hex[:6]}@example.com",
                password="Bench-Harbour-" + uuid.uuid4().hex[:12]) for n in range(users)]
        ids = [person.id for person in people]

        async def publish() -> None:
            async with db.unit_of_work() as session:
                for n in range(events):
                    payer, payee = ids[n % users], ids[(n * 7 + 1) % users]
                    if payer == payee:
                        payee = ids[(n + 1) % users]
                    await outbox.publish(session, "money.moved", {
                        "kind": "p2p", "status": "posted", "ref": str(uuid.uuid4()),
                        "amount_minor": 100 + n % 9_900, "currency": "CNY",
                        "ledger_transfer_id": str(uuid.uuid4()), "payer_user_id": str(payer),
                        "payee_user_id": str(payee), "from": "a***@example.com",
                        "to": "b***@example.com"}, key=str(payer))

        async def drain(batched: bool) -> dict[str, float]:
            cpu, wall, delivered = time.process_time(), time.perf_counter(), 0
            while made := await outbox.dispatch_once(db, limit=limit, batched=batched):
                delivered += made
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            return {"delivered": delivered, "cpu_ms_per_event": round(1000 * cpu / events, 3),
                    "events_per_second": round(events / wall, 1)}

        results = {}
        for label, batched in (("batched", True), ("one_at_a_time", False)):
            progress(f"publishing {events} money.moved events")
            await publish()
            progress(f"dispatching them {label.replace('_', ' ')}")
            results[label] = await drain(batched)
        async with db.unit_of_work() as session:
            left = (await session.execute(select(func.count()).select_from(
                outbox.OutboxEvent).where(outbox.OutboxEvent.dispatched_at.is_(None)))
            ).scalar_one()
            messages = (await session.execute(select(func.count()).select_from(
                NotificationMessage))).scalar_one()
    finally:
        await db.dispose()
    batched_, single = results["batched"], results["one_at_a_time"]
    return {"events": events, "users": users, "limit": limit,
            "batched_cpu_ms_per_event": batched_["cpu_ms_per_event"],
            "one_at_a_time_cpu_ms_per_event": single["cpu_ms_per_event"],
            "batched_events_per_second": batched_["events_per_second"],
            "one_at_a_time_events_per_second": single["events_per_second"],
            "speedup_cpu": round(single["cpu_ms_per_event"]
                                 / max(batched_["cpu_ms_per_event"], 1e-9), 2),
            "all_dispatched": left == 0
            and batched_["delivered"] == single["delivered"] == events,
            "messages_written_once": messages == 2 * 2 * events}
