"""The audit log: every security event and staff action, append-only and hash-chained.

    from bankwallet.core import audit

    await audit.record(session, action="identity.login.succeeded", actor_type="user",
                       actor_id=str(user.id), subject_type="user", subject_id=str(user.id),
                       ip=info.ip, user_agent=info.user_agent)

An event is written in the caller's unit of work, so it commits (or rolls back) together with
the change it records. Like the ledger's transfers, events form one chain: each stores
``hash = sha256(previous hash ‖ canonical bytes)`` and a gap-free ``seq``, extended from the
one-row head (``core_audit_head``) under its lock, so the chain never forks or skips.

When an event joins the chain depends on the database. SQLite has one writer at a time anyway:
``record`` chains the event at once, in the caller's transaction. On PostgreSQL that would make
the head's row lock a queue every audited request waits in until it commits (it capped P2P
transfers at ~90/s, whatever the number of workers), so ``record`` only inserts the event and
``chain_pending`` chains committed events in commit-visible order, in batches: the background
job ``chain_forever`` runs it every ``AUDIT_CHAIN_INTERVAL_S``, and ``list_events`` and
``verify_chain`` run it first, so what they show is chained. Until then (well under a second)
an event has no ``seq`` or ``hash``: an event deleted in that window leaves no trace in the
chain, the price of not queueing every request behind one lock.

``verify_chain`` recomputes the chain and names every edited, deleted or inserted event. It
proves the rows were not changed one by one; an attacker who can rewrite the whole table and
the head can rebuild a consistent chain, which is why the head should also be exported
(e.g. in operations reports) to anchor it.

``data`` is small structured context, passed through ``bankwallet.core.logging.redact``:
keys that look secret are masked and card numbers are masked anywhere. Never put secrets or
personal data (an e-mail, a phone number) in it; put ids in ``subject_id``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import re
import struct
import uuid
from typing import Any, Final

import orjson
from sqlalchemy import (
    BigInteger,
    bindparam,
    Index,
    Integer,
    LargeBinary,
    String,
    Uuid,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from bankwallet.core.db import Base, JSONType, UTCDateTime, utcnow
from bankwallet.core.ids import uuid7
from bankwallet.core.logging import redact

log = logging.getLogger("bankwallet.audit")

GENESIS_HASH: Final = bytes(32)
HEAD_ID: Final = 1
ACTOR_TYPES: Final = frozenset({"user", "staff", "system"})
ACTION_RE: Final = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
ACTION_MAX_CHARS: Final = 64
ACTOR_ID_MAX_CHARS: Final = 64
SUBJECT_TYPE_MAX_CHARS: Final = 32
SUBJECT_ID_MAX_CHARS: Final = 128
IP_MAX_CHARS: Final = 64
USER_AGENT_MAX_CHARS: Final = 256
DATA_MAX_BYTES: Final = 4096
PAGE_MAX: Final = 200
VERIFY_PAGE: Final = 2000
VERIFY_MAX_PROBLEMS: Final = 50
CHAIN_BATCH: Final = 2000
AUDIT_CHAIN_INTERVAL_S: Final = 0.25


# -- tables ----------------------------------------------------------------------------------


class AuditEvent(Base):
    __tablename__ = "core_audit_event"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)  # uuid7
    # Position in the chain (the cursor) and the chain hash; empty until chained (PostgreSQL).
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor_type: Mapped[str] = mapped_column(String(16))  # user | staff | system
    actor_id: Mapped[str | None] = mapped_column(String(ACTOR_ID_MAX_CHARS))
    action: Mapped[str] = mapped_column(String(ACTION_MAX_CHARS))
    subject_type: Mapped[str | None] = mapped_column(String(SUBJECT_TYPE_MAX_CHARS))
    subject_id: Mapped[str | None] = mapped_column(String(SUBJECT_ID_MAX_CHARS))
    ip: Mapped[str | None] = mapped_column(String(IP_MAX_CHARS))
    user_agent: Mapped[str | None] = mapped_column(String(USER_AGENT_MAX_CHARS))
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # redacted
    hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))

    __table_args__ = (
        # The two ways the log is read: one object's history, one actor's actions, newest first.
        Index("ix_core_audit_event_subject_seq", "subject_type", "subject_id", "seq"),
        Index("ix_core_audit_event_actor_seq", "actor_id", "seq"),
        Index("ix_core_audit_event_unchained", "at", "id", postgresql_where=text("seq IS NULL"),
              sqlite_where=text("seq IS NULL")),
    )


class AuditHead(Base):
    """The head of the chain: one row (id 1), whose lock serialises writers."""

    __tablename__ = "core_audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


_events = AuditEvent.__table__
_head = AuditHead.__table__


# -- the chain -------------------------------------------------------------------------------


_FIXED = struct.Struct(">qq16s")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def canonical_bytes(event: Any) -> bytes:
    """Every field but the hash in a fixed layout: seq, time (µs), id, then the rest as a
    JSON array (strings and nulls are unambiguous there; object keys are sorted)."""
    rest = orjson.dumps([event.actor_type, event.actor_id, event.action, event.subject_type,
                         event.subject_id, event.ip, event.user_agent, event.data],
                        option=orjson.OPT_SORT_KEYS)
    return _FIXED.pack(event.seq, _epoch_micros(event.at), event.id.bytes) + rest


def chain_hash(prev_hash: bytes, event: Any) -> bytes:
    return hashlib.sha256(bytes(prev_hash) + canonical_bytes(event)).digest()


def _epoch_micros(value: dt.datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# -- writing ---------------------------------------------------------------------------------


class _Row:
    """The values of one event before insert (what ``canonical_bytes`` reads)."""

    __slots__ = ("id", "seq", "at", "actor_type", "actor_id", "action", "subject_type",
                 "subject_id", "ip", "user_agent", "data")

    def __init__(self, **values: Any) -> None:
        for key, value in values.items():
            setattr(self, key, value)

    def as_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.__slots__}


async def record(session: AsyncSession, *, action: str, actor_type: str = "system",
                 actor_id: str | None = None, subject_type: str | None = None,
                 subject_id: str | None = None, ip: str | None = None,
                 user_agent: str | None = None, data: dict | None = None) -> uuid.UUID:
    """Append an event in the caller's transaction; returns its id.

    Secrets in ``data`` are redacted; ``ip`` and ``user_agent`` (client-supplied) are cut to
    their column sizes. The other fields come from code, so a bad one is a programming error
    and raises ``ValueError`` (not an assert: an audit row must never be written wrong, even
    under ``python -O``).
    """
    row = _Row(id=uuid7(), seq=0, at=utcnow(), actor_type=actor_type,
               actor_id=_checked(actor_id, ACTOR_ID_MAX_CHARS, "actor_id"), action=action,
               subject_type=_checked(subject_type, SUBJECT_TYPE_MAX_CHARS, "subject_type"),
               subject_id=_checked(subject_id, SUBJECT_ID_MAX_CHARS, "subject_id"),
               ip=_cut(ip, IP_MAX_CHARS), user_agent=_cut(user_agent, USER_AGENT_MAX_CHARS),
               data=_clean_data(data))
    if actor_type not in ACTOR_TYPES:
        raise ValueError(f"actor_type must be one of {sorted(ACTOR_TYPES)}")
    if len(action) > ACTION_MAX_CHARS or not ACTION_RE.match(action):
        raise ValueError(f"action {action[:80]!r} must look like 'domain.object.verb'")
    if session.bind.dialect.name == "postgresql":  # chained after commit (module docstring)
        await session.execute(insert(_events).values(**row.as_dict() | {"seq": None},
                                                     hash=None))
        return row.id
    # SQLite: the head first; this update takes the database's write lock before anything is
    # read, so concurrent writers queue here (they would anyway).
    head = (await session.execute(
        update(_head).where(_head.c.id == HEAD_ID).values(seq=_head.c.seq + 1)
        .returning(_head.c.seq, _head.c.hash))).one_or_none()
    if head is None:
        raise RuntimeError("the audit chain head is missing; run `bankwallet migrate`")
    row.seq = head.seq
    digest = chain_hash(bytes(head.hash), row)
    await session.execute(insert(_events).values(**row.as_dict(), hash=digest))
    await session.execute(update(_head).where(_head.c.id == HEAD_ID).values(hash=digest))
    return row.id


Bind = AsyncSession | AsyncEngine | AsyncConnection


async def chain_pending(bind: Bind, *, batch: int = CHAIN_BATCH) -> int:
    """Give every event without a place in the chain its ``seq`` and ``hash``; returns how
    many. With an engine, each batch is its own transaction; with a session or connection it
    runs in the caller's (which then holds the head's lock until it ends)."""
    if isinstance(bind, AsyncEngine):
        total = 0
        while True:
            async with bind.begin() as conn:
                done = await _chain_batch(conn, batch)
            total += done
            if done < batch:
                return total
    total = 0
    while (done := await _chain_batch(bind, batch)) > 0:
        total += done
        if done < batch:
            break
    return total


async def _chain_batch(conn: AsyncSession | AsyncConnection, batch: int) -> int:
    # Cheap when there is nothing to do: no lock is taken.
    if (await conn.execute(select(_events.c.id).where(_events.c.seq.is_(None))
                           .limit(1))).first() is None:
        return 0
    # The head's row lock serialises chainers (other processes, other jobs).
    head = (await conn.execute(select(_head.c.seq, _head.c.hash).where(_head.c.id == HEAD_ID)
                               .with_for_update())).one_or_none()
    if head is None:
        raise RuntimeError("the audit chain head is missing; run `bankwallet migrate`")
    rows = (await conn.execute(select(_events).where(_events.c.seq.is_(None))
                               .order_by(_events.c.at, _events.c.id).limit(batch))).all()
    if not rows:
        return 0
    seq, prev = head.seq, bytes(head.hash)
    values = []
    for r in rows:
        seq += 1
        event = _Row(**{key: getattr(r, key) for key in _Row.__slots__ if key != "seq"}, seq=seq)
        prev = chain_hash(prev, event)
        values.append({"b_id": r.id, "b_seq": seq, "b_hash": prev})
    await conn.execute(update(_events).where(_events.c.id == bindparam("b_id"))
                       .values(seq=bindparam("b_seq"), hash=bindparam("b_hash")), values)
    await conn.execute(update(_head).where(_head.c.id == HEAD_ID).values(seq=seq, hash=prev))
    return len(rows)


async def chain_forever(engine: AsyncEngine, *,
                        interval_s: float = AUDIT_CHAIN_INTERVAL_S) -> None:
    """The background chainer of every server process (PostgreSQL; a no-op on SQLite)."""
    if engine.dialect.name != "postgresql":
        return
    while True:
        try:
            await chain_pending(engine)
        except Exception:  # the database is away: try again next round
            log.exception("audit chaining failed")
        await asyncio.sleep(interval_s)


def _checked(value: str | None, max_chars: int, name: str) -> str | None:
    if value is not None and (not value or len(value) > max_chars):
        raise ValueError(f"{name} must be 1-{max_chars} characters")
    return value


def _cut(value: str | None, max_chars: int) -> str | None:
    return value[:max_chars] if value else None


def data_json(data: dict | None) -> str | None:
    """An event's ``data`` as ``record`` stores it, in JSON: for a writer that inserts audit
    rows with its own SQL (the P2P fast path, PostgreSQL only, chained after commit)."""
    encoded = _clean_json(data)
    return None if encoded is None else encoded.decode()


def _clean_data(data: dict | None) -> dict[str, Any] | None:
    """Redacted, then through JSON once, so the hash covers exactly what reads back."""
    encoded = _clean_json(data)
    return None if encoded is None else orjson.loads(encoded)


def _clean_json(data: dict | None) -> bytes | None:
    if not data:
        return None
    encoded = orjson.dumps(_floats_as_text(redact(data)), default=str,
                           option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    if len(encoded) > DATA_MAX_BYTES:
        raise ValueError(f"audit data is larger than {DATA_MAX_BYTES} bytes; keep it small")
    if b"\\u0000" in encoded:  # PostgreSQL's JSONB cannot hold NUL
        encoded = encoded.replace(b"\\u0000", b"")
    return encoded


def _floats_as_text(value: Any) -> Any:
    # JSONB keeps numbers as decimals (1e16 reads back as the integer 10000000000000000), so
    # a float would not hash the same after a round trip; audit data has no use for floats.
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {k: _floats_as_text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_floats_as_text(v) for v in value]
    return value


# -- reading ---------------------------------------------------------------------------------


async def list_events(session: AsyncSession, *, subject_type: str | None = None,
                      subject_id: str | None = None, actor_id: str | None = None,
                      before_seq: int | None = None, limit: int = 50) -> list[AuditEvent]:
    """Events newest first; pass the last event's ``seq`` as ``before_seq`` for the next page.

    ``limit`` is clamped to 1..``PAGE_MAX``. Events not yet chained are chained first, in
    the caller's transaction.
    """
    await chain_pending(session)
    query = select(AuditEvent)
    if subject_type is not None:
        query = query.where(AuditEvent.subject_type == subject_type)
    if subject_id is not None:
        query = query.where(AuditEvent.subject_id == subject_id)
    if actor_id is not None:
        query = query.where(AuditEvent.actor_id == actor_id)
    if before_seq is not None:
        query = query.where(AuditEvent.seq < before_seq)
    query = query.order_by(AuditEvent.seq.desc()).limit(max(1, min(limit, PAGE_MAX)))
    return list((await session.execute(query)).scalars())


async def verify_chain(session_or_engine: AsyncSession | AsyncEngine | AsyncConnection, *,
                       max_problems: int = VERIFY_MAX_PROBLEMS) -> list[str]:
    """Recompute the chain; the problems found, empty when clean.

    After a bad event the check resumes from that event's stored hash, so each edited,
    deleted or inserted event is named once rather than everything after it.
    """
    await chain_pending(session_or_engine)
    if isinstance(session_or_engine, AsyncEngine):
        async with session_or_engine.connect() as conn:
            return await _verify(conn, max_problems)
    return await _verify(session_or_engine, max_problems)


async def _verify(conn: AsyncSession | AsyncConnection, max_problems: int) -> list[str]:
    problems: list[str] = []
    prev_hash, expected_seq, after = GENESIS_HASH, 1, 0
    while len(problems) < max_problems:
        rows = (await conn.execute(select(_events).where(_events.c.seq > after)
                                   .order_by(_events.c.seq).limit(VERIFY_PAGE))).all()
        if not rows:
            break
        for row in rows:
            if row.seq != expected_seq:
                problems.append(f"audit event {row.id} (seq {row.seq}): expected seq "
                                f"{expected_seq}; {row.seq - expected_seq} event(s) missing")
            elif chain_hash(prev_hash, row) != bytes(row.hash):
                problems.append(f"audit event {row.id} (seq {row.seq}): hash does not match "
                                "its contents or its predecessor")
            prev_hash, expected_seq, after = bytes(row.hash), row.seq + 1, row.seq
    head = (await conn.execute(select(_head).where(_head.c.id == HEAD_ID))).one_or_none()
    if head is None:
        problems.append("audit head: missing")
    elif head.seq != expected_seq - 1 or bytes(head.hash) != prev_hash:
        problems.append(f"audit head: at seq {head.seq}, but the last event is seq "
                        f"{expected_seq - 1} (events at the end were removed or added)")
    return problems[:max_problems]
