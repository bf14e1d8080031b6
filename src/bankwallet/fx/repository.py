"""The fx domain's queries."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.fx.models import Exchange, Quote


async def lock_quote(session: AsyncSession, quote_id: uuid.UUID) -> Quote | None:
    """The quote, row-locked on PostgreSQL (SQLite serialises writers anyway), read fresh."""
    return (await session.execute(
        select(Quote).where(Quote.id == quote_id).with_for_update()
        .execution_options(populate_existing=True))).scalar_one_or_none()


async def mark_quote_used(session: AsyncSession, quote_id: uuid.UUID, *,
                          exchange_id: uuid.UUID, now: dt.datetime) -> bool:
    """Take the quote for ``exchange_id`` unless something else already took it."""
    result = await session.execute(
        update(Quote).where(Quote.id == quote_id, Quote.used_at.is_(None))
        .values(used_at=now, exchange_id=exchange_id)
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


async def get_exchange(session: AsyncSession, exchange_id: uuid.UUID, *,
                       lock: bool = False) -> Exchange | None:
    query = select(Exchange).where(Exchange.id == exchange_id).execution_options(
        populate_existing=True)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def set_outcome(session: AsyncSession, exchange_id: uuid.UUID, *, status: str,
                      reason: str | None, now: dt.datetime) -> bool:
    """Record the outcome once: only a pending exchange moves to posted or failed."""
    result = await session.execute(
        update(Exchange).where(Exchange.id == exchange_id, Exchange.status == "pending")
        .values(status=status, failure_reason=reason, decided_at=now)
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


async def list_exchanges(session: AsyncSession, user_id: uuid.UUID, *, limit: int,
                         before: uuid.UUID | None = None) -> list[Exchange]:
    query = select(Exchange).where(Exchange.user_id == user_id)
    if before is not None:
        cursor = await session.get(Exchange, before)
        if cursor is None or cursor.user_id != user_id:
            return []
        query = query.where((Exchange.created_at < cursor.created_at)
                            | ((Exchange.created_at == cursor.created_at)
                               & (Exchange.id < cursor.id)))
    return list((await session.execute(
        query.order_by(Exchange.created_at.desc(), Exchange.id.desc()).limit(limit))
    ).scalars())


async def stale_pending(session: AsyncSession, *, created_before: dt.datetime,
                        limit: int) -> list[uuid.UUID]:
    return list((await session.execute(
        select(Exchange.id).where(Exchange.status == "pending",
                                  Exchange.created_at < created_before)
        .order_by(Exchange.created_at).limit(limit))).scalars())


async def purge_unused_quotes(session: AsyncSession, *, expired_before: dt.datetime,
                              limit: int) -> int:
    """Delete quotes nobody used, long expired (bounded per call)."""
    doomed = (select(Quote.id).where(Quote.used_at.is_(None), Quote.expires_at < expired_before)
              .order_by(Quote.expires_at).limit(limit))
    result = await session.execute(
        delete(Quote).where(Quote.id.in_(doomed.scalar_subquery()))
        .execution_options(synchronize_session=False))
    return result.rowcount or 0
