"""The transactional outbox (bankwallet.core.outbox), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from bankwallet.core import outbox
from bankwallet.core.db import Database, utcnow
from bankwallet.core.logging import JsonFormatter
from bankwallet.core.outbox import Event, OutboxDelivery, OutboxEvent
from bankwallet.notifications import service as notifications
from bankwallet.notifications.models import NotificationMessage

# Values no other test writes, so finding them anywhere means they leaked.
CODE = "9183746502"
PHONE = "+8613912345678"


@pytest.fixture(autouse=True)
def registry() -> Iterator[None]:
    """Each test sees only the consumers it registers (the module-wide registry is global)."""
    saved = {topic: dict(consumers) for topic, consumers in outbox._REGISTRY.items()}
    outbox._REGISTRY.clear()
    yield
    outbox._REGISTRY.clear()
    outbox._REGISTRY.update(saved)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    yield database
    await database.dispose()


def new_topic() -> str:
    return f"test.t{uuid.uuid4().hex[:12]}"


async def publish(db: Database, topic: str, count: int = 1, **kwargs) -> list[uuid.UUID]:
    async with db.unit_of_work() as session:
        return [await outbox.publish(session, topic, {"n": n}, **kwargs) for n in range(count)]


async def event_row(db: Database, event_id: uuid.UUID) -> OutboxEvent:
    async with db.unit_of_work() as session:
        return await session.get(OutboxEvent, event_id)


async def make_due(db: Database, event_id: uuid.UUID) -> None:
    """Skip the backoff wait without sleeping."""
    async with db.unit_of_work() as session:
        await session.execute(update(OutboxEvent).where(OutboxEvent.id == event_id)
                              .values(next_attempt_at=utcnow() - dt.timedelta(seconds=1)))


async def test_rolled_back_publish_is_never_dispatched(db: Database) -> None:
    topic, calls = new_topic(), []

    @outbox.consumer(topic, name="record")
    async def record(session, event: Event) -> None:
        calls.append(event.id)

    with pytest.raises(RuntimeError):
        async with db.unit_of_work() as session:
            await outbox.publish(session, topic, {"a": 1})
            raise RuntimeError("the service failed after publishing")

    assert await outbox.dispatch_once(db) == 0
    assert calls == []
    async with db.unit_of_work() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxEvent)
                                    .where(OutboxEvent.topic == topic)) == 0


async def test_committed_events_reach_each_consumer_once(db: Database) -> None:
    topic = new_topic()
    seen: dict[str, list[Event]] = {"a": [], "b": []}

    @outbox.consumer(topic, name="a")
    async def a(session, event: Event) -> None:
        seen["a"].append(event)

    @outbox.consumer(topic, name="b")
    async def b(session, event: Event) -> None:
        seen["b"].append(event)

    ids = await publish(db, topic, 3, sensitive={"code": CODE}, key="user-1")
    assert await outbox.dispatch_once(db) == 6
    assert await outbox.dispatch_once(db) == 0  # nothing left: no consumer runs twice

    for name in ("a", "b"):
        assert [e.id for e in seen[name]] == ids  # in publishing order
        first = seen[name][0]
        assert (first.topic, first.payload, first.sensitive, first.key) == (
            topic, {"n": 0}, {"code": CODE}, "user-1")
        assert first.created_at.tzinfo is not None
    for event_id in ids:
        row = await event_row(db, event_id)
        assert row.dispatched_at is not None and row.last_error is None and row.attempts == 1
    async with db.unit_of_work() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxDelivery)
                                    .where(OutboxDelivery.event_id.in_(ids))) == 6


async def test_event_without_sensitive_values_gets_an_empty_dict(db: Database) -> None:
    topic, seen = new_topic(), []

    @outbox.consumer(topic, name="c")
    async def c(session, event: Event) -> None:
        seen.append(event.sensitive)

    (event_id,) = await publish(db, topic)
    await outbox.dispatch_once(db)
    assert seen == [{}]
    assert (await event_row(db, event_id)).sealed is None


async def test_topic_without_consumers_waits_for_one(db: Database) -> None:
    """A process that does not know a topic's consumers must not mark its events dispatched."""
    known, unknown = new_topic(), new_topic()

    @outbox.consumer(known, name="k")
    async def k(session, event: Event) -> None:
        pass

    (event_id,) = await publish(db, unknown)
    await outbox.dispatch_once(db)
    row = await event_row(db, event_id)
    assert row.dispatched_at is None and row.attempts == 0


async def test_failing_consumer_retries_with_backoff_and_blocks_no_one(db: Database) -> None:
    topic, other_topic = new_topic(), new_topic()
    calls: Counter[str] = Counter()

    @outbox.consumer(topic, name="steady")
    async def steady(session, event: Event) -> None:
        calls["steady"] += 1

    @outbox.consumer(topic, name="flaky")
    async def flaky(session, event: Event) -> None:
        calls["flaky"] += 1
        if calls["flaky"] <= 2:
            raise ConnectionError("provider down")

    @outbox.consumer(other_topic, name="other")
    async def other(session, event: Event) -> None:
        calls["other"] += 1

    (event_id,) = await publish(db, topic)
    (other_id,) = await publish(db, other_topic)

    started = utcnow()
    assert await outbox.dispatch_once(db) == 2  # steady and other; flaky failed
    row = await event_row(db, event_id)
    assert row.dispatched_at is None and row.attempts == 1
    assert row.last_error == "flaky: ConnectionError: provider down"
    wait_s = (row.next_attempt_at - started).total_seconds()
    assert outbox.BACKOFF_BASE_S * 0.9 <= wait_s <= outbox.BACKOFF_BASE_S * 1.25 + 5
    assert (await event_row(db, other_id)).dispatched_at is not None

    assert await outbox.dispatch_once(db) == 0  # not due yet
    assert calls["flaky"] == 1

    await make_due(db, event_id)
    started = utcnow()
    assert await outbox.dispatch_once(db) == 0
    row = await event_row(db, event_id)
    assert row.attempts == 2
    wait_s = (row.next_attempt_at - started).total_seconds()
    assert outbox.BACKOFF_BASE_S * 2 * 0.9 <= wait_s <= outbox.BACKOFF_BASE_S * 2 * 1.25 + 5

    await make_due(db, event_id)
    assert await outbox.dispatch_once(db) == 1
    row = await event_row(db, event_id)
    assert row.dispatched_at is not None and row.last_error is None and row.attempts == 3
    assert calls == {"steady": 1, "flaky": 3, "other": 1}  # steady never ran again


async def test_backoff_grows_exponentially_up_to_a_bound() -> None:
    delays = [outbox.backoff_delay_s(n, base_s=1, max_s=60) for n in range(1, 12)]
    for attempt, delay in enumerate(delays, start=1):
        expected = min(2 ** (attempt - 1), 60)
        assert expected <= delay <= expected * 1.25
    assert outbox.backoff_delay_s(10_000, base_s=1, max_s=60) <= 75


async def test_gives_up_after_max_attempts_and_keeps_the_error(
        db: Database, caplog: pytest.LogCaptureFixture) -> None:
    topic = new_topic()
    calls = []

    @outbox.consumer(topic, name="broken")
    async def broken(session, event: Event) -> None:
        calls.append(event.id)
        raise ValueError("bad data")

    (event_id,) = await publish(db, topic)
    caplog.set_level(logging.WARNING, logger="bankwallet.outbox")
    for _ in range(4):
        await outbox.dispatch_once(db, max_attempts=3, backoff_base_s=0)
    assert len(calls) == 3
    row = await event_row(db, event_id)
    assert row.dispatched_at is None and row.attempts == 3
    assert row.last_error == "broken: ValueError: bad data"
    assert [r.message for r in caplog.records].count("outbox event gave up") == 1


async def test_consumer_effect_and_delivery_commit_together(db: Database) -> None:
    """A consumer that fails after writing leaves nothing behind; its retry writes once."""
    topic, user_id, attempts = new_topic(), uuid.uuid4().hex, []

    @outbox.consumer(topic, name="inbox")
    async def inbox(session, event: Event) -> None:
        attempts.append(1)
        await notifications.add_message(session, user_id=user_id, kind="test",
                                        title="t", body=str(event.id))
        if len(attempts) == 1:
            raise RuntimeError("crash after the write")

    await publish(db, topic)
    await outbox.dispatch_once(db, backoff_base_s=0)
    assert await count_messages(db, user_id) == 0
    await outbox.dispatch_once(db, backoff_base_s=0)
    await outbox.dispatch_once(db, backoff_base_s=0)
    assert await count_messages(db, user_id) == 1
    assert len(attempts) == 2


async def test_one_events_failure_in_a_round_undoes_that_event_alone(db: Database) -> None:
    """Many events in one round (on PostgreSQL one unit of work per consumer, a savepoint
    per event): the events whose consumer failed after writing leave nothing behind and come
    back; the others' effects and deliveries stand, and nothing runs twice."""
    topic, user_id = new_topic(), uuid.uuid4().hex
    calls: Counter[int] = Counter()

    @outbox.consumer(topic, name="inbox")
    async def inbox(session, event: Event) -> None:
        n = event.payload["n"]
        calls[n] += 1
        await notifications.add_message(session, user_id=user_id, kind="test", title="t",
                                        body=str(n))
        if n % 3 == 1 and calls[n] == 1:
            raise RuntimeError(f"crash after writing {n}")

    ids = await publish(db, topic, 9)
    assert await outbox.dispatch_once(db, backoff_base_s=0) == 6
    assert await count_messages(db, user_id) == 6
    for n, event_id in enumerate(ids):
        row = await event_row(db, event_id)
        if n % 3 == 1:
            assert row.dispatched_at is None and row.last_error == \
                f"inbox: RuntimeError: crash after writing {n}"
        else:
            assert row.dispatched_at is not None and row.last_error is None
    for n in (1, 4, 7):
        await make_due(db, ids[n])
    assert await outbox.dispatch_once(db) == 3
    async with db.unit_of_work() as session:
        bodies = (await session.scalars(select(NotificationMessage.body).where(
            NotificationMessage.user_id == user_id))).all()
    assert sorted(bodies) == [str(n) for n in range(9)]
    assert calls == {n: 2 if n % 3 == 1 else 1 for n in range(9)}


async def test_a_batch_consumer_gets_a_round_at_once_and_its_failures_come_back(
        db: Database) -> None:
    """A batch consumer (PostgreSQL: one call per round; SQLite: one per event) writes for
    many events at once; the events it reports failed, their effects undone by it, come back
    alone; when it raises, each event is delivered on its own and nothing runs twice."""
    topic, user_id = new_topic(), uuid.uuid4().hex
    calls: list[list[int]] = []
    fail_once: set[int] = {2, 5}
    raise_once = [True]

    @outbox.batch_consumer(topic, name="inbox")
    async def inbox(session, events: list[Event]) -> outbox.Failures:
        numbers = [e.payload["n"] for e in events]
        calls.append(numbers)
        if len(events) > 1 and 7 in numbers and raise_once[0]:
            raise_once[0] = False
            raise ConnectionError("database hiccup mid-batch")
        failures: outbox.Failures = {}
        for e in events:
            n = e.payload["n"]
            if n in fail_once:
                fail_once.discard(n)
                failures[e.id] = RuntimeError(f"provider refused {n}")
            else:
                await notifications.add_message(session, user_id=user_id, kind="test",
                                                title="t", body=str(n))
        return failures

    ids = await publish(db, topic, 7)
    assert await outbox.dispatch_once(db, backoff_base_s=0) == 5
    if db.dialect == "postgresql":
        assert calls == [list(range(7))]  # the whole round in one call
    else:
        assert calls == [[n] for n in range(7)]
    for n in (2, 5):
        row = await event_row(db, ids[n])
        assert row.dispatched_at is None and row.last_error == \
            f"inbox: RuntimeError: provider refused {n}"
        await make_due(db, ids[n])
    await publish(db, topic, 1)  # a new event (its n is 0 again)
    calls.clear()
    assert await outbox.dispatch_once(db) == 3
    async with db.unit_of_work() as session:
        bodies = (await session.scalars(select(NotificationMessage.body).where(
            NotificationMessage.user_id == user_id))).all()
    assert sorted(bodies) == sorted([str(n) for n in range(7)] + ["0"])

    # A batch that raises: each event again on its own, each written once.
    calls.clear()
    async with db.unit_of_work() as session:
        seven = [await outbox.publish(session, topic, {"n": n}) for n in (7, 8)]
    assert await outbox.dispatch_once(db) == 2
    async with db.unit_of_work() as session:
        bodies = (await session.scalars(select(NotificationMessage.body).where(
            NotificationMessage.user_id == user_id))).all()
    assert sorted(bodies).count("7") == 1 and sorted(bodies).count("8") == 1
    for event_id in seven:
        assert (await event_row(db, event_id)).dispatched_at is not None
    if db.dialect == "postgresql":
        assert calls == [[7, 8], [7], [8]]


async def count_messages(db: Database, user_id: str) -> int:
    async with db.unit_of_work() as session:
        return await session.scalar(select(func.count()).select_from(NotificationMessage)
                                    .where(NotificationMessage.user_id == user_id))


async def test_two_dispatchers_at_once_deliver_each_event_once(db_url: str) -> None:
    topic, user_id = new_topic(), uuid.uuid4().hex
    calls: Counter[str] = Counter()

    @outbox.consumer(topic, name="inbox")
    async def inbox(session, event: Event) -> None:
        calls[str(event.id)] += 1
        await asyncio.sleep(0)  # let the other dispatcher in
        await notifications.add_message(session, user_id=user_id, kind="test", title="t",
                                        body=str(event.id))

    first, second = Database(db_url), Database(db_url)
    try:
        ids = await publish(first, topic, 60)

        async def drain(db: Database) -> int:
            total = 0
            while delivered := await outbox.dispatch_once(db, limit=7):
                total += delivered
            return total

        totals = await asyncio.gather(drain(first), drain(second), drain(first))
        assert sum(totals) == 60
        assert set(calls) == {str(i) for i in ids} and set(calls.values()) == {1}
        async with first.unit_of_work() as session:
            bodies = (await session.scalars(select(NotificationMessage.body).where(
                NotificationMessage.user_id == user_id))).all()
            assert sorted(bodies) == sorted(str(i) for i in ids)
            assert await session.scalar(select(func.count()).select_from(OutboxEvent).where(
                OutboxEvent.topic == topic, OutboxEvent.dispatched_at.is_(None))) == 0
    finally:
        await first.dispose()
        await second.dispose()


async def test_same_consumer_twice_at_once_has_one_effect(db_url: str) -> None:
    """What happens when a lease runs out while a consumer is still running: the other
    dispatcher's run of the same consumer leaves no second effect."""
    topic, user_id, calls = new_topic(), uuid.uuid4().hex, []

    @outbox.consumer(topic, name="slow")
    async def slow(session, event: Event) -> None:
        calls.append(1)
        await notifications.add_message(session, user_id=user_id, kind="test", title="t",
                                        body="once")
        await asyncio.sleep(0.05)

    first, second = Database(db_url), Database(db_url)
    try:
        (event_id,) = await publish(first, topic)
        event = Event(id=event_id, topic=topic, payload={}, sensitive={}, key=None,
                      created_at=utcnow())
        registered = outbox._REGISTRY[topic]["slow"]
        results = await asyncio.gather(outbox._deliver(first, event, registered),
                                       outbox._deliver(second, event, registered))
        assert sorted(results) == [False, True]
        assert await count_messages(first, user_id) == 1
        if first.dialect == "postgresql":
            assert len(calls) == 1  # the second waited on the delivery key and skipped
    finally:
        await first.dispose()
        await second.dispose()


async def test_publish_wakes_a_waiting_dispatcher(db: Database) -> None:
    topic, delivered = new_topic(), asyncio.Event()

    @outbox.consumer(topic, name="w")
    async def w(session, event: Event) -> None:
        delivered.set()

    task = asyncio.create_task(outbox.dispatch_forever(db, interval_s=30))
    try:
        await asyncio.sleep(0.1)  # the dispatcher is now waiting out its 30 s interval
        await publish(db, topic)
        await asyncio.wait_for(delivered.wait(), timeout=5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_sensitive_values_are_never_stored_or_logged_in_clear(
        db: Database, db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    topic, seen = new_topic(), []

    @outbox.consumer(topic, name="leaky")
    async def leaky(session, event: Event) -> None:
        seen.append(event.sensitive)
        # A provider error that echoes what it was given, as real ones do.
        raise RuntimeError(f"refused {event.sensitive['destination']} "
                           f"({event.sensitive['destination'].lstrip('+')}) for {CODE}")

    caplog.set_level(logging.DEBUG)
    (event_id,) = await publish(db, topic, sensitive={"destination": PHONE, "code": CODE})
    await outbox.dispatch_once(db)
    assert seen == [{"destination": PHONE, "code": CODE}]

    row = await event_row(db, event_id)
    assert row.last_error.startswith("leaky: RuntimeError: refused [REDACTED]")
    logged = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert "outbox consumer failed" in logged

    dump = await dump_tables(db, ["core_outbox_event", "core_outbox_delivery"])
    assert event_id.hex in dump.replace("-", "")  # the dump does hold the event
    haystacks = [dump, logged]
    if db.dialect == "sqlite":  # the file itself, write-ahead log included
        path = Path(db_url.split("///", 1)[1])
        haystacks += [p.read_bytes().decode("latin-1")
                      for p in (path, path.with_name(path.name + "-wal")) if p.exists()]
    for haystack in haystacks:
        for secret in (CODE, PHONE, PHONE.lstrip("+")):
            assert secret not in haystack


async def dump_tables(db: Database, tables: list[str]) -> str:
    rows = []
    async with db.engine.connect() as conn:
        for table in tables:
            result = await conn.execute(text(f"SELECT * FROM {table}"))  # noqa: S608
            rows += [repr(tuple(row)) for row in result]
            if db.dialect == "postgresql":
                result = await conn.execute(text(f"SELECT t::text FROM {table} t"))
                rows += [row[0] for row in result]
    return "\n".join(rows)


async def test_publish_refuses_what_is_not_an_event(db: Database) -> None:
    async with db.unit_of_work() as session:
        with pytest.raises(AssertionError):
            await outbox.publish(session, "NoDots", {})
        with pytest.raises(AssertionError):
            await outbox.publish(session, "test.big", {"x": "y" * outbox.PAYLOAD_MAX_BYTES})
        with pytest.raises(TypeError):
            await outbox.publish(session, "test.bad", {"x": object()})
        await session.rollback()
