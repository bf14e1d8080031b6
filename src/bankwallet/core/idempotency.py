"""``Idempotency-Key`` with Stripe's semantics for every POST that moves money.

The same key with the same request gives the same response (replayed, with
``Idempotent-Replayed: true``); the same key with another request is 409
``idempotency_key_reused``; while the first request is still running a second one gets 409
``idempotency_request_in_progress``. Keys are scoped (per user, per merchant), kept for
``RETENTION_S``.

How it stays exactly-once:
1. ``claim`` inserts the key as *started* in a transaction of its own, before the request
   writes anything, so a concurrent duplicate sees it at once.
2. The work runs in the request's unit of work; ``run`` stores the response in that same
   transaction, so "done" commits exactly when the work does.
3. If the work fails, the claim is released and a retry runs it again. If the process dies,
   the claim goes stale after ``STALE_AFTER_S`` and a retry takes it over. Services derive
   their ledger transfer ids from the key, so running the work twice moves money once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Integer, LargeBinary, String, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from bankwallet.core.db import Base, JSONType, UTCDateTime, utcnow
from bankwallet.core.errors import BankwalletError, Conflict, InvalidInput

HEADER = "Idempotency-Key"
KEY_MAX_CHARS = 255
STALE_AFTER_S = 60
RETENTION_S = 24 * 3600


class IdempotencyKey(Base):
    __tablename__ = "core_idempotency_key"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_MAX_CHARS), primary_key=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32))
    state: Mapped[str] = mapped_column(String(8))  # started | done
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[Any] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    locked_until: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class IdempotencyKeyMissing(InvalidInput):
    code = "idempotency_key_missing"
    status = 400
    title = f"Send an {HEADER} header with every request that moves money"


class IdempotencyKeyInvalid(InvalidInput):
    code = "idempotency_key_invalid"
    status = 400
    title = f"The {HEADER} must be 1 to {KEY_MAX_CHARS} printable ASCII characters"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"
    title = f"This {HEADER} was used for a different request"


class IdempotencyRequestInProgress(Conflict):
    code = "idempotency_request_in_progress"
    title = f"A request with this {HEADER} is still being processed; retry shortly"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


@dataclass(frozen=True, slots=True)
class Claim:
    scope: str
    key: str
    replay: tuple[int, Any] | None  # the stored response of a finished request


def check_key(key: str | None) -> str:
    if key is None:
        raise IdempotencyKeyMissing()
    if not 1 <= len(key) <= KEY_MAX_CHARS or not all(0x20 < ord(c) < 0x7F for c in key):
        raise IdempotencyKeyInvalid()
    return key


def fingerprint(method: str, path: str, body: Any) -> bytes:
    """The request's identity: method, path and its canonical JSON body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).digest()


def _insert(dialect: str):
    return pg_insert if dialect == "postgresql" else sqlite_insert


async def claim(session: AsyncSession, *, scope: str, key: str, fingerprint: bytes) -> Claim:
    """Claim ``key`` in a transaction of its own (call before the request writes anything)."""
    now = utcnow()
    async with AsyncSession(session.bind, expire_on_commit=False) as own:
        inserted = await own.execute(
            _insert(own.bind.dialect.name)(IdempotencyKey).values(
                scope=scope, key=key, fingerprint=fingerprint, state="started",
                response_status=None, response_body=None, created_at=now,
                locked_until=now + dt.timedelta(seconds=STALE_AFTER_S))
            .on_conflict_do_nothing())
        if inserted.rowcount == 1:
            await own.commit()
            return Claim(scope, key, None)
        row = (await own.execute(select(IdempotencyKey).where(
            IdempotencyKey.scope == scope, IdempotencyKey.key == key))).scalar_one()
        if row.fingerprint != fingerprint:
            raise IdempotencyKeyReused()
        if row.state == "done":
            return Claim(scope, key, (row.response_status, row.response_body))
        if row.locked_until > now:
            raise IdempotencyRequestInProgress()
        # The first attempt died: take its claim over (one taker wins).
        taken = await own.execute(
            update(IdempotencyKey).where(IdempotencyKey.scope == scope, IdempotencyKey.key == key,
                                         IdempotencyKey.state == "started",
                                         IdempotencyKey.locked_until == row.locked_until)
            .values(locked_until=now + dt.timedelta(seconds=STALE_AFTER_S)))
        if taken.rowcount != 1:
            raise IdempotencyRequestInProgress()
        await own.commit()
        return Claim(scope, key, None)


async def complete(session: AsyncSession, claim_: Claim, *, status: int, body: Any) -> None:
    """Store the response in the request's own transaction (it commits with the work)."""
    await session.execute(
        update(IdempotencyKey).where(IdempotencyKey.scope == claim_.scope,
                                     IdempotencyKey.key == claim_.key)
        .values(state="done", response_status=status, response_body=body))


async def release(session: AsyncSession, claim_: Claim) -> None:
    """Give the key back after a failed attempt, so a retry runs the work again. The request's
    transaction is rolled back first (on SQLite it would hold the write lock)."""
    await session.rollback()
    async with AsyncSession(session.bind) as own:
        await own.execute(delete(IdempotencyKey).where(
            IdempotencyKey.scope == claim_.scope, IdempotencyKey.key == claim_.key,
            IdempotencyKey.state == "started"))
        await own.commit()


def _jsonable(result: Any) -> Any:
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    return result


async def run(request: Request, session: AsyncSession, *, scope: str, body: Any,
              work: Callable[[], Awaitable[Any]], status: int = 200) -> JSONResponse:
    """Run ``work`` once per ``Idempotency-Key`` and answer with its (stored) result.

    A ``BankwalletError`` from the work is stored and replayed like a success: the request
    was decided (e.g. insufficient funds), and retrying it must not decide differently later.
    Errors that decide nothing (``decides = False``: a step-up is needed first) release the
    key instead, so the same request runs once the customer has confirmed.
    """
    key = check_key(request.headers.get(HEADER))
    # The request has only read so far (who is asking): end that transaction so its pooled
    # connection goes back before the claim takes one. A request then never holds two
    # connections at once, so a full pool cannot deadlock on requests waiting for a second.
    await session.commit()
    claimed = await claim(session, scope=scope, key=key,
                          fingerprint=fingerprint(request.method, request.url.path,
                                                  _jsonable(body)))
    if claimed.replay is not None:
        replay_status, replay_body = claimed.replay
        return JSONResponse(replay_body, status_code=replay_status,
                            headers={"Idempotent-Replayed": "true"},
                            media_type=("application/problem+json" if replay_status >= 400
                                        else "application/json"))
    try:
        result = _jsonable(await work())
    except BankwalletError as exc:
        if not exc.decides:  # e.g. "confirm it is you first": the retry must run again
            await release(session, claimed)
            raise
        # The request's transaction rolls back (nothing the failed work did may commit), so
        # the decision is stored in a transaction of its own.
        await session.rollback()
        async with AsyncSession(session.bind) as own:
            await complete(own, claimed, status=exc.status,
                           body=exc.to_problem(request.url.path))
            await own.commit()
        raise
    except BaseException:
        await release(session, claimed)
        raise
    await complete(session, claimed, status=status, body=result)
    return JSONResponse(result, status_code=status)


async def purge_expired(session: AsyncSession, *, now: dt.datetime | None = None,
                        retention_s: int = RETENTION_S) -> int:
    cutoff = (now or utcnow()) - dt.timedelta(seconds=retention_s)
    result = await session.execute(delete(IdempotencyKey).where(
        IdempotencyKey.created_at < cutoff, IdempotencyKey.state == "done"))
    return result.rowcount or 0
