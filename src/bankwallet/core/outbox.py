"""The transactional outbox: domain events published in the writer's transaction, delivered
to consumers after commit, each consumer at most once per event.

    from bankwallet.core import outbox

    # in a service, inside the request's unit of work
    await outbox.publish(session, "transfer.posted", {"transfer_id": str(t.id)}, key=user_id)

    # in another domain's tasks.py
    @outbox.consumer("transfer.posted", name="loyalty.award")
    async def award(session: AsyncSession, event: outbox.Event) -> None: ...

An event is written only if the publisher's transaction commits. The dispatcher claims due
events (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; one statement on SQLite, whose writers are
serialised), leases them, and runs each consumer in a unit of work of its own that also
inserts the ``(event_id, consumer)`` delivery row: the consumer's database effects commit
together with that row or not at all, so they happen exactly once even with crashes or two
dispatchers. Effects outside the database (an e-mail) are at least once; they repeat only when
a commit fails after the send, or a lease expires mid-consumer.

On PostgreSQL a round's events share that unit of work per consumer (each event in a
savepoint), and a consumer registered with ``batch_consumer`` gets them all in one call:
a busy topic (``money.moved``: every transfer) costs a few statements per round instead of
several per event.

Secrets (an OTP code, a phone number) go in ``sensitive``: stored only encrypted (``sealed``),
handed to consumers decrypted, and scrubbed from ``last_error`` and the logs.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import random
import re
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    Uuid,
    delete,
    event as sa_event,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from bankwallet.core.crypto import get_keyring, register_encrypted_column
from bankwallet.core.db import Base, Database, JSONType, UTCDateTime, utcnow
from bankwallet.core.ids import uuid7
from bankwallet.core.logging import redact_text

log = logging.getLogger("bankwallet.outbox")

SEALED_CONTEXT: Final = "core_outbox.payload"
TOPIC_RE: Final = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
TOPIC_MAX_CHARS: Final = 64
KEY_MAX_CHARS: Final = 128
CONSUMER_NAME_MAX_CHARS: Final = 64
PAYLOAD_MAX_BYTES: Final = 64 * 1024
LAST_ERROR_MAX_CHARS: Final = 500

DISPATCH_LIMIT_MAX: Final = 1000
MAX_ATTEMPTS: Final = 10
BACKOFF_BASE_S: Final = 2.0
BACKOFF_MAX_S: Final = 900.0
# A claimed event is not offered to another dispatcher for this long; past it, a crashed
# dispatcher's events come back. Longer than one consumer may run.
LEASE_S: Final = 120.0
CONSUMER_TIMEOUT_S: Final = 60.0
IDLE_MAX_S: Final = 30.0
ROUND_GATHER_S: Final = 0.02  # after a wake, the wait for more events to join the round
SAVEPOINT: Final = text("SAVEPOINT outbox_event")
ROLLBACK_TO_SAVEPOINT: Final = text("ROLLBACK TO SAVEPOINT outbox_event")
RELEASE_SAVEPOINT: Final = text("RELEASE SAVEPOINT outbox_event")  # the longest a failing dispatcher waits before trying again
assert CONSUMER_TIMEOUT_S < LEASE_S


# -- tables ----------------------------------------------------------------------------------


class OutboxEvent(Base):
    __tablename__ = "core_outbox_event"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)  # uuid7: time-ordered
    topic: Mapped[str] = mapped_column(String(TOPIC_MAX_CHARS))
    key: Mapped[str | None] = mapped_column(String(KEY_MAX_CHARS))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)  # never secrets
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary)  # `sensitive`, encrypted
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        # Only undispatched events are scanned, so the index stays small as history grows.
        Index("ix_core_outbox_event_due", "next_attempt_at",
              postgresql_where=text("dispatched_at IS NULL"),
              sqlite_where=text("dispatched_at IS NULL")),
    )


class OutboxDelivery(Base):
    """One row per (event, consumer) that ran and committed: what makes consumers idempotent."""

    __tablename__ = "core_outbox_delivery"

    event_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("core_outbox_event.id", ondelete="CASCADE"), primary_key=True)
    consumer: Mapped[str] = mapped_column(String(CONSUMER_NAME_MAX_CHARS), primary_key=True)
    delivered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


register_encrypted_column(OutboxEvent.__tablename__, "sealed", context=SEALED_CONTEXT)


# -- events and consumers --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    id: uuid.UUID
    topic: str
    payload: dict[str, Any]
    sensitive: dict[str, Any]  # decrypted; {} when the event has none
    key: str | None
    created_at: dt.datetime


Handler = Callable[[AsyncSession, Event], Awaitable[None]]


# A batch handler's answer: the events it could not handle, each with its error, their
# effects already undone by the handler; the rest are delivered.
Failures = dict[uuid.UUID, BaseException]
BatchHandler = Callable[[AsyncSession, list[Event]], Awaitable[Failures]]


@dataclass(frozen=True, slots=True)
class _Consumer:
    topic: str
    name: str
    handler: Callable[..., Awaitable[Any]]
    batch: bool = False  # handler(session, events) -> Failures


# topic -> consumer name -> consumer. Filled at import time by the domains' tasks modules.
_REGISTRY: dict[str, dict[str, _Consumer]] = {}


def consumer(topic: str, *, name: str) -> Callable[[Handler], Handler]:
    """Register ``async def handler(session, event)`` for ``topic`` under a stable ``name``.

    The name is stored with each delivery: renaming a consumer makes it run again for every
    undispatched event. The handler must not commit; it runs in its own unit of work.
    """
    return _registrar(topic, name, batch=False)


def batch_consumer(topic: str, *, name: str) -> Callable[[BatchHandler], BatchHandler]:
    """Register ``async def handler(session, events) -> Failures`` for ``topic``: on
    PostgreSQL a dispatch round hands it all its events of the topic in one unit of work, for
    consumers whose per-event cost is mostly round trips (look-ups, inserts) that a set of
    events shares. It returns the events it could not handle, having undone their effects
    itself; if it raises, nothing of the batch commits and each event is delivered again on
    its own (``[event]``), so its effects outside the database must be for events it then
    reports handled, or be safe to repeat. Elsewhere it is called with one event at a time.
    """
    return _registrar(topic, name, batch=True)


def _registrar(topic: str, name: str, *, batch: bool) -> Callable[[Any], Any]:
    assert TOPIC_RE.fullmatch(topic) and len(topic) <= TOPIC_MAX_CHARS, topic
    assert 0 < len(name) <= CONSUMER_NAME_MAX_CHARS, name

    def register(handler: Any) -> Any:
        assert asyncio.iscoroutinefunction(handler), "a consumer is an async function"
        existing = _REGISTRY.get(topic, {}).get(name)
        assert existing is None or existing.handler.__qualname__ == handler.__qualname__, (
            f"two consumers named {name!r} for {topic!r}")
        _REGISTRY.setdefault(topic, {})[name] = _Consumer(topic, name, handler, batch=batch)
        return handler

    return register


async def _run(registered: _Consumer, session: AsyncSession, event: Event) -> None:
    """One event through a consumer of either kind."""
    if not registered.batch:
        await registered.handler(session, event)
        return
    failures = await registered.handler(session, [event])
    if event.id in failures:
        raise failures[event.id]


def consumers_of(topic: str) -> list[str]:
    return sorted(_REGISTRY.get(topic, {}))


# -- publishing ------------------------------------------------------------------------------


async def publish(session: AsyncSession, topic: str, payload: dict, *,
                  sensitive: dict | None = None, key: str | None = None) -> uuid.UUID:
    """Add an event to the caller's transaction; it is delivered only if that commits."""
    encoded = payload_json(topic, payload, key=key)
    sealed = None
    if sensitive:
        sealed = get_keyring().encrypt(orjson.dumps(sensitive), context=SEALED_CONTEXT)
    now = utcnow()
    event_id = uuid7()
    session.add(OutboxEvent(id=event_id, topic=topic, key=key, payload=orjson.loads(encoded),
                            sealed=sealed, created_at=now, attempts=0, next_attempt_at=now,
                            dispatched_at=None, last_error=None))
    await session.flush()
    if _WAKERS and not session.info.get("outbox_wake"):
        session.info["outbox_wake"] = True
        sa_event.listen(session.sync_session, "after_commit", _wake_dispatchers, once=True)
    return event_id


def payload_json(topic: str, payload: dict, *, key: str | None = None) -> bytes:
    """The payload as stored, after the checks ``publish`` makes (also for a writer that
    inserts events with its own SQL: the P2P fast path, which then calls ``wake``)."""
    assert TOPIC_RE.fullmatch(topic) and len(topic) <= TOPIC_MAX_CHARS, topic
    assert key is None or len(key) <= KEY_MAX_CHARS
    # Validates that the payload is JSON (datetimes, UUIDs become strings) and bounded.
    encoded = orjson.dumps(payload)
    assert len(encoded) <= PAYLOAD_MAX_BYTES, f"outbox payload over {PAYLOAD_MAX_BYTES} bytes"
    return encoded


def wake() -> None:
    """Tell this process's dispatchers that events were committed."""
    for loop, wake_event in list(_WAKERS):
        if not loop.is_closed():
            loop.call_soon_threadsafe(wake_event.set)


# In-process dispatchers waiting for work: a commit with events wakes them at once, so an OTP
# leaves without waiting for the next poll.
_WAKERS: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()


def _wake_dispatchers(session: Any) -> None:
    session.info.pop("outbox_wake", None)
    wake()


# -- dispatching -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Round:
    claimed: int = 0
    delivered: int = 0
    failures: list[str] = field(default_factory=list)


async def dispatch_once(db: Database, *, limit: int = 100, max_attempts: int = MAX_ATTEMPTS,
                        backoff_base_s: float = BACKOFF_BASE_S,
                        backoff_max_s: float = BACKOFF_MAX_S, batched: bool = True) -> int:
    """Deliver up to ``limit`` due events to their consumers; returns the deliveries made.
    ``batched=False`` takes one event at a time everywhere (``bench outbox``'s baseline)."""
    result = await _dispatch_round(db, limit=limit, max_attempts=max_attempts,
                                   backoff_base_s=backoff_base_s, backoff_max_s=backoff_max_s,
                                   batched=batched)
    return result.delivered


async def dispatch_forever(db: Database, *, interval_s: float, limit: int = 100,
                           max_attempts: int = MAX_ATTEMPTS) -> None:
    """Dispatch until cancelled: at once while there is a backlog or after a local commit
    with events, else every ``interval_s``. A failed round (the database is away) is logged
    and retried, waiting longer after each failure in a row, up to ``IDLE_MAX_S``."""
    wake = asyncio.Event()
    waker = (asyncio.get_running_loop(), wake)
    _WAKERS.add(waker)
    failures = 0
    try:
        while True:
            wake.clear()
            claimed = 0
            try:
                claimed = (await _dispatch_round(
                    db, limit=limit, max_attempts=max_attempts, backoff_base_s=BACKOFF_BASE_S,
                    backoff_max_s=BACKOFF_MAX_S)).claimed
                failures = 0
            except Exception:
                failures += 1
                log.exception("outbox dispatch round failed", extra={"failures": failures})
            if claimed >= limit:
                continue
            wait_s = max(interval_s, min(interval_s * 2 ** min(failures, 16), IDLE_MAX_S))
            try:
                await asyncio.wait_for(wake.wait(), timeout=wait_s)
            except TimeoutError:
                continue
            # Woken by a commit: let the next few commits' events join this round. A round
            # costs a handful of statements whatever it carries; at a wake per commit, busy
            # processes would pay them for every event or two.
            await asyncio.sleep(ROUND_GATHER_S)
    finally:
        _WAKERS.discard(waker)


async def _dispatch_round(db: Database, *, limit: int, max_attempts: int, backoff_base_s: float,
                          backoff_max_s: float, batched: bool = True) -> _Round:
    assert 0 < limit <= DISPATCH_LIMIT_MAX, limit
    assert max_attempts >= 1
    result = _Round()
    topics = sorted(_REGISTRY)
    if not topics:
        return result
    rows = await _claim(db, topics=topics, limit=limit, max_attempts=max_attempts)
    result.claimed = len(rows)
    # Publishing order, as far as the clock tells it (UUIDv7 is ordered by millisecond only).
    rows.sort(key=lambda r: (r.created_at, r.id))
    if batched and db.dialect == "postgresql" and len(rows) > 1:
        try:
            await _dispatch_batch(db, rows, result, max_attempts=max_attempts,
                                  backoff_base_s=backoff_base_s, backoff_max_s=backoff_max_s)
            return result
        except Exception:
            # What committed is recorded in its delivery rows (and counted); one event at a
            # time does the rest, skipping what is done.
            log.exception("outbox batch dispatch failed", extra={"events": len(rows)})
    for row in rows:
        try:
            await _dispatch_event(db, row, result, max_attempts=max_attempts,
                                  backoff_base_s=backoff_base_s, backoff_max_s=backoff_max_s)
        except Exception:  # the database failed us, not a consumer: the lease brings it back
            log.exception("outbox event dispatch failed",
                          extra={"event_id": str(row.id), "topic": row.topic})
    return result


async def _claim(db: Database, *, topics: list[str], limit: int, max_attempts: int) -> list[Any]:
    """Lease due events to this dispatcher and count the attempt, in one statement.

    Only topics with a consumer in this process are claimed: a process that forgot to import
    a domain's consumers must not mark that domain's events dispatched.
    """
    now = utcnow()
    due = (select(OutboxEvent.id)
           .where(OutboxEvent.dispatched_at.is_(None), OutboxEvent.next_attempt_at <= now,
                  OutboxEvent.attempts < max_attempts, OutboxEvent.topic.in_(topics))
           .order_by(OutboxEvent.next_attempt_at, OutboxEvent.id)
           .limit(limit))
    if db.dialect == "postgresql":
        # Another dispatcher's claimed rows are skipped, not waited for.
        due = due.with_for_update(skip_locked=True)
    claim = (update(OutboxEvent)
             .where(OutboxEvent.id.in_(due.scalar_subquery()))
             .values(attempts=OutboxEvent.attempts + 1,
                     next_attempt_at=now + dt.timedelta(seconds=LEASE_S))
             .returning(OutboxEvent.id, OutboxEvent.topic, OutboxEvent.key,
                        OutboxEvent.payload, OutboxEvent.sealed, OutboxEvent.created_at,
                        OutboxEvent.attempts)
             .execution_options(synchronize_session=False))
    async with db.unit_of_work() as session:
        return list((await session.execute(claim)).all())


async def _dispatch_event(db: Database, row: Any, result: _Round, *, max_attempts: int,
                          backoff_base_s: float, backoff_max_s: float) -> None:
    consumers = _REGISTRY.get(row.topic, {})
    errors: list[str] = []
    sensitive = _sensitive_of(row, errors)
    if not errors:
        async with db.unit_of_work() as session:
            done = set((await session.scalars(
                select(OutboxDelivery.consumer)
                .where(OutboxDelivery.event_id == row.id))).all())
        secrets = _secret_strings(sensitive)
        for name, registered in sorted(consumers.items()):
            if name in done:
                continue
            event = _event_of(row, sensitive)
            try:
                if await _deliver(db, event, registered):
                    result.delivered += 1
            except Exception as exc:
                _consumer_failed(errors, row, name, exc, secrets)
    await _finish(db, row, errors, max_attempts=max_attempts, backoff_base_s=backoff_base_s,
                  backoff_max_s=backoff_max_s)
    result.failures += errors


async def _dispatch_batch(db: Database, rows: list[Any], result: _Round, *, max_attempts: int,
                          backoff_base_s: float, backoff_max_s: float) -> None:
    """PostgreSQL: a round's events in one unit of work per consumer instead of three per
    event. A consumer runs each event in a savepoint of its own, so one event's failure
    undoes that event's effects and delivery row alone, as one unit of work per event would;
    a batch consumer gets all its events in one call and reports (and undoes) its failures
    itself. Effects outside the database are at least once, as always (here, a failed
    commit repeats the round's sends, not one event's)."""
    errors: dict[uuid.UUID, list[str]] = {row.id: [] for row in rows}
    sensitive = {row.id: _sensitive_of(row, errors[row.id]) for row in rows}
    ready = [row for row in rows if not errors[row.id]]
    async with db.unit_of_work() as session:
        done = {(event_id, consumer) for event_id, consumer in (await session.execute(
            select(OutboxDelivery.event_id, OutboxDelivery.consumer)
            .where(OutboxDelivery.event_id.in_([row.id for row in ready])))).all()}
    wanted: dict[tuple[str, str], list[Any]] = {}
    for row in ready:
        for name in _REGISTRY.get(row.topic, {}):
            if (row.id, name) not in done:
                wanted.setdefault((name, row.topic), []).append(row)
    for (name, topic), events in sorted(wanted.items()):
        result.delivered += await _deliver_batch(db, events, _REGISTRY[topic][name],
                                                 sensitive, errors)
    succeeded = [row.id for row in rows if not errors[row.id]]
    if succeeded:
        now = utcnow()
        async with db.unit_of_work() as session:
            await session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(succeeded))
                                  .values(**_dispatched(now))
                                  .execution_options(synchronize_session=False))
    for row in rows:
        if errors[row.id]:
            await _finish(db, row, errors[row.id], max_attempts=max_attempts,
                          backoff_base_s=backoff_base_s, backoff_max_s=backoff_max_s)
            result.failures += errors[row.id]


async def _deliver_batch(db: Database, rows: list[Any], registered: _Consumer,
                         sensitive: dict[uuid.UUID, dict[str, Any]],
                         errors: dict[uuid.UUID, list[str]]) -> int:
    """One consumer over many events in one unit of work: the delivery rows first (a
    concurrent dispatcher's duplicates wait on them, then skip), then the events — all at
    once for a batch consumer, else each in a savepoint; the delivery rows of the events
    that failed are taken back. Returns the deliveries made."""
    async with db.unit_of_work() as session:
        now = utcnow()
        # Rows as parameters (one cached statement), not as VALUES (one statement per size).
        owned = set((await session.execute(
            pg_insert(OutboxDelivery).on_conflict_do_nothing()
            .returning(OutboxDelivery.event_id),
            [{"event_id": row.id, "consumer": registered.name, "delivered_at": now}
             for row in rows])).scalars().all())
        mine = [row for row in rows if row.id in owned]  # the others: delivered elsewhere
        run = _run_as_batch if registered.batch else _run_each
        failures = await run(session, registered, mine, sensitive)
        for row in mine:
            if row.id in failures:
                _consumer_failed(errors[row.id], row, registered.name, failures[row.id],
                                 _secret_strings(sensitive[row.id]))
        if failures:
            await session.execute(delete(OutboxDelivery).where(
                OutboxDelivery.event_id.in_(list(failures)),
                OutboxDelivery.consumer == registered.name))
    return len(mine) - len(failures)


async def _run_as_batch(session: AsyncSession, registered: _Consumer, rows: list[Any],
                        sensitive: dict[uuid.UUID, dict[str, Any]]) -> Failures:
    events = [_event_of(row, sensitive[row.id]) for row in rows]
    async with asyncio.timeout(CONSUMER_TIMEOUT_S):
        failures: Failures = await registered.handler(session, events)
    return {row.id: failures[row.id] for row in rows if row.id in failures}


async def _run_each(session: AsyncSession, registered: _Consumer, rows: list[Any],
                    sensitive: dict[uuid.UUID, dict[str, Any]]) -> Failures:
    """Each event in a savepoint of one fixed name (not the ORM's numbered ones: numbered
    names are new statements for the driver's prepared-statement cache, and a round's worth
    of them evicts everything else from it)."""
    failures: Failures = {}
    for row in rows:
        await session.flush()
        await session.execute(SAVEPOINT)
        try:
            async with asyncio.timeout(CONSUMER_TIMEOUT_S):
                await registered.handler(session, _event_of(row, sensitive[row.id]))
                await session.flush()
        except Exception as exc:
            await session.execute(ROLLBACK_TO_SAVEPOINT)
            session.expunge_all()  # what the ORM holds may be what was just undone
            failures[row.id] = exc
        else:
            await session.execute(RELEASE_SAVEPOINT)
    return failures


def _event_of(row: Any, sensitive: dict[str, Any]) -> Event:
    """A claimed row as the event a consumer gets (copies: a consumer cannot change what the
    next consumer sees)."""
    return Event(id=row.id, topic=row.topic, payload=copy.deepcopy(row.payload),
                 sensitive=copy.deepcopy(sensitive), key=row.key, created_at=row.created_at)


def _consumer_failed(errors: list[str], row: Any, name: str, exc: BaseException,
                     secrets: list[str]) -> None:
    message = _scrub(_describe(exc), secrets)
    errors.append(f"{name}: {message}")
    log.warning("outbox consumer failed", extra={
        "event_id": str(row.id), "topic": row.topic, "consumer": name,
        "attempt": row.attempts, "error": message,
        "trace": _scrub("".join(traceback.format_exception(exc)), secrets)})


class _AlreadyDelivered(Exception):
    pass


async def _deliver(db: Database, event: Event, registered: _Consumer) -> bool:
    """Run one consumer and record its delivery in one unit of work; False if another
    dispatcher already delivered it."""
    delivery = OutboxDelivery(event_id=event.id, consumer=registered.name,
                              delivered_at=utcnow())
    # PostgreSQL: insert the delivery row first, so a concurrent duplicate waits on its key and
    # then skips, instead of running the consumer twice. SQLite: insert it last, because its
    # first write takes the database-wide write lock, which must not be held while the
    # consumer talks to the outside world; the unique key still undoes a duplicate's effects.
    record_first = db.dialect == "postgresql"
    try:
        async with db.unit_of_work() as session:
            if record_first:
                await _record(session, delivery)
            async with asyncio.timeout(CONSUMER_TIMEOUT_S):
                await _run(registered, session, event)
            if not record_first:
                await _record(session, delivery)
    except _AlreadyDelivered:
        return False
    return True


async def _record(session: AsyncSession, delivery: OutboxDelivery) -> None:
    session.add(delivery)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise _AlreadyDelivered() from exc


async def _finish(db: Database, row: Any, errors: list[str], *, max_attempts: int,
                  backoff_base_s: float, backoff_max_s: float) -> None:
    now = utcnow()
    if not errors:
        values = _dispatched(now)
    else:
        delay_s = backoff_delay_s(row.attempts, base_s=backoff_base_s, max_s=backoff_max_s)
        values = {"next_attempt_at": now + dt.timedelta(seconds=delay_s),
                  "last_error": "; ".join(errors)[:LAST_ERROR_MAX_CHARS]}
        if row.attempts >= max_attempts:
            log.error("outbox event gave up", extra={
                "event_id": str(row.id), "topic": row.topic, "attempts": row.attempts,
                "error": values["last_error"]})
    async with db.unit_of_work() as session:
        await session.execute(update(OutboxEvent).where(OutboxEvent.id == row.id)
                              .values(**values).execution_options(synchronize_session=False))


def _dispatched(now: dt.datetime) -> dict[str, Any]:
    """An event every consumer has had: its columns' new values."""
    return {"dispatched_at": now, "last_error": None, "next_attempt_at": now}


def backoff_delay_s(attempt: int, *, base_s: float = BACKOFF_BASE_S,
                    max_s: float = BACKOFF_MAX_S) -> float:
    """Exponential backoff with up to 25 % jitter, so failed events do not retry in step."""
    assert attempt >= 1
    delay_s = min(base_s * 2 ** min(attempt - 1, 32), max_s)
    return delay_s * (1 + 0.25 * random.random())


def _sensitive_of(row: Any, errors: list[str]) -> dict[str, Any]:
    """A claimed event's decrypted sensitive values; {} and an error noted when they cannot
    be decrypted (a missing or rotated-away key: retried, an operator can fix it)."""
    try:
        return _unseal(row.sealed)
    except Exception as exc:
        errors.append(f"unseal: {type(exc).__name__}")
        log.warning("outbox event cannot be decrypted", extra={
            "event_id": str(row.id), "topic": row.topic, "error": type(exc).__name__})
        return {}


def _unseal(sealed: bytes | None) -> dict[str, Any]:
    if sealed is None:
        return {}
    value = orjson.loads(get_keyring().decrypt(sealed, context=SEALED_CONTEXT))
    assert isinstance(value, dict)
    return value


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"TimeoutError: consumer ran over {CONSUMER_TIMEOUT_S:g} s"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _secret_strings(value: Any) -> list[str]:
    """Every scalar inside ``sensitive``, as text, longest first (so no partial leaks)."""
    found: list[str] = []
    if isinstance(value, dict):
        for item in value.values():
            found += _secret_strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            found += _secret_strings(item)
    elif value is not None and not isinstance(value, bool):
        text_value = str(value)
        if text_value:
            found.append(text_value)
    return sorted(set(found), key=len, reverse=True)


def _scrub(message: str, secrets: list[str]) -> str:
    for secret in secrets:
        # Servers echo addresses lower-cased and phone numbers without their "+".
        variants = {secret, secret.lower(), secret.removeprefix("+")}
        for variant in sorted(variants, key=len, reverse=True):
            if len(variant) >= 2:
                message = message.replace(variant, "[REDACTED]")
    return redact_text(message)


__all__ = ["Event", "OutboxDelivery", "OutboxEvent", "backoff_delay_s", "consumer",
           "consumers_of", "dispatch_forever", "dispatch_once", "publish"]
