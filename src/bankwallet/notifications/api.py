"""The in-app inbox for API clients."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from bankwallet.core.deps import DbSession
from bankwallet.identity.deps import current_user_id
from bankwallet.notifications import service
from bankwallet.notifications.schemas import MessageList, MessageRead

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])
UserId = Annotated[uuid.UUID, Depends(current_user_id)]


@router.get("")
async def list_notifications(
        session: DbSession, user_id: UserId,
        cursor: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=service.PAGE_SIZE_MAX)] = service.PAGE_SIZE_DEFAULT,
) -> MessageList:
    page = await service.list_messages(session, user_id=user_id, cursor=cursor, limit=limit)
    return MessageList(items=[MessageRead.model_validate(m) for m in page.items],
                       next_cursor=page.next_cursor)


@router.post("/{message_id}/read")
async def mark_read(message_id: uuid.UUID, session: DbSession, user_id: UserId) -> MessageRead:
    message = await service.mark_read(session, user_id=user_id, message_id=message_id)
    return MessageRead.model_validate(message)
