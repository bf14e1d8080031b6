"""Request-scoped dependencies shared by every domain's routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession


async def _db_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.db.unit_of_work() as session:
        yield session


# scope="function": the unit of work commits *before* the response is sent, so a failed
# commit becomes an error response instead of a 200 for work that was rolled back.
DbSession = Annotated[AsyncSession, Depends(_db_session, scope="function")]


def client_info(request: Request):
    from bankwallet.identity.service import RequestInfo

    return RequestInfo(ip=request.client.host if request.client else None,
                       user_agent=request.headers.get("user-agent"))
