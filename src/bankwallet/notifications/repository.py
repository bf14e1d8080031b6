"""Queries of the notifications tables."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.notifications.models import DevMessage, NotificationMessage


async def messages_page(session: AsyncSession, *, user_id: str, before_id: uuid.UUID | None,
                        limit: int) -> Sequence[NotificationMessage]:
    """Newest first; ids are UUIDv7, so id order is creation order."""
    query = select(NotificationMessage).where(NotificationMessage.user_id == user_id)
    if before_id is not None:
        query = query.where(NotificationMessage.id < before_id)
    query = query.order_by(NotificationMessage.id.desc()).limit(limit)
    return (await session.scalars(query)).all()


async def message_of(session: AsyncSession, *, user_id: str,
                     message_id: uuid.UUID) -> NotificationMessage | None:
    return (await session.scalars(
        select(NotificationMessage).where(NotificationMessage.id == message_id,
                                          NotificationMessage.user_id == user_id)
        .with_for_update())).one_or_none()


async def unread_count(session: AsyncSession, *, user_id: str) -> int:
    return await session.scalar(
        select(func.count()).select_from(NotificationMessage)
        .where(NotificationMessage.user_id == user_id, NotificationMessage.read_at.is_(None))
    ) or 0


async def latest_dev_messages(session: AsyncSession, *, limit: int) -> Sequence[DevMessage]:
    return (await session.scalars(
        select(DevMessage).order_by(DevMessage.created_at.desc(), DevMessage.id.desc())
        .limit(limit))).all()
