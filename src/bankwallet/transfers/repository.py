"""Queries of the transfers domain (the service decides, this reads and writes rows)."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Literal

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.core.errors import InvalidInput
from bankwallet.transfers.models import MoneyRequest, Split, Transfer

PAGE_MAX = 100
CURSOR_MAX_CHARS = 128

Direction = Literal["all", "sent", "received"]
Box = Literal["incoming", "outgoing"]


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"
    title = "This page cursor is not valid"


# -- cursors: (created_at, id) of the last row shown, newest first ---------------------------


def encode_cursor(created_at: dt.datetime, row_id: uuid.UUID) -> str:
    raw = f"{created_at.astimezone(dt.UTC).isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    if len(cursor) > CURSOR_MAX_CHARS:
        raise InvalidCursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, row_id = raw.partition("|")
        created_at = dt.datetime.fromisoformat(at)
        if created_at.tzinfo is None:
            raise ValueError("naive")
        return created_at, uuid.UUID(row_id)
    except ValueError:
        raise InvalidCursor() from None


def _before(model, cursor: str | None):
    if cursor is None:
        return True
    created_at, row_id = decode_cursor(cursor)
    return or_(model.created_at < created_at,
               and_(model.created_at == created_at, model.id < row_id))


def _page_size(limit: int) -> int:
    return max(1, min(limit, PAGE_MAX))


# -- transfers -------------------------------------------------------------------------------


def _visible_to(user_id: uuid.UUID):
    """The payer sees every attempt; the payee sees money that arrived."""
    return or_(Transfer.payer_user_id == user_id,
               and_(Transfer.payee_user_id == user_id, Transfer.status == "posted"))


async def visible_transfer(session: AsyncSession, user_id: uuid.UUID,
                           transfer_id: uuid.UUID) -> Transfer | None:
    return (await session.execute(select(Transfer).where(
        Transfer.id == transfer_id, _visible_to(user_id)))).scalar_one_or_none()


async def list_transfers(session: AsyncSession, user_id: uuid.UUID, *, direction: Direction,
                         cursor: str | None, limit: int) -> list[Transfer]:
    if direction == "sent":
        who = Transfer.payer_user_id == user_id
    elif direction == "received":
        who = and_(Transfer.payee_user_id == user_id, Transfer.status == "posted")
    else:
        who = _visible_to(user_id)
    rows = await session.execute(
        select(Transfer).where(who, _before(Transfer, cursor))
        .order_by(Transfer.created_at.desc(), Transfer.id.desc()).limit(_page_size(limit)))
    return list(rows.scalars())


async def finish_transfer(session: AsyncSession, transfer_id: uuid.UUID, *, status: str,
                          failure_code: str | None, finished_at: dt.datetime) -> bool:
    """Record the outcome unless someone (a retry, the healing job) already did."""
    result = await session.execute(
        update(Transfer).where(Transfer.id == transfer_id, Transfer.status == "pending")
        .values(status=status, failure_code=failure_code, finished_at=finished_at))
    return result.rowcount == 1


async def stale_pending_ids(session: AsyncSession, *, created_before: dt.datetime,
                            limit: int) -> list[uuid.UUID]:
    rows = await session.execute(
        select(Transfer.id).where(Transfer.status == "pending",
                                  Transfer.created_at < created_before)
        .order_by(Transfer.created_at).limit(limit))
    return list(rows.scalars())


# -- requests --------------------------------------------------------------------------------


async def get_request(session: AsyncSession, request_id: uuid.UUID) -> MoneyRequest | None:
    return await session.get(MoneyRequest, request_id, populate_existing=True)


async def list_requests(session: AsyncSession, user_id: uuid.UUID, *, box: Box,
                        status: str | None, cursor: str | None,
                        limit: int) -> list[MoneyRequest]:
    who = (MoneyRequest.payer_user_id == user_id if box == "incoming"
           else MoneyRequest.requester_user_id == user_id)
    query = select(MoneyRequest).where(who, _before(MoneyRequest, cursor))
    if status is not None:
        query = query.where(MoneyRequest.status == status)
    rows = await session.execute(
        query.order_by(MoneyRequest.created_at.desc(), MoneyRequest.id.desc())
        .limit(_page_size(limit)))
    return list(rows.scalars())


async def count_open_requests(session: AsyncSession, requester_id: uuid.UUID) -> int:
    return (await session.execute(
        select(func.count()).select_from(MoneyRequest).where(
            MoneyRequest.requester_user_id == requester_id,
            MoneyRequest.status.in_(("open", "paying"))))).scalar_one()


async def move_request(session: AsyncSession, request_id: uuid.UUID, *, from_status: str,
                       to_status: str, **values) -> bool:
    """A conditional state change: of two concurrent changes, exactly one wins."""
    result = await session.execute(
        update(MoneyRequest).where(MoneyRequest.id == request_id,
                                   MoneyRequest.status == from_status)
        .values(status=to_status, **values))
    return result.rowcount == 1


async def settle_request(session: AsyncSession, request_id: uuid.UUID,
                         transfer_id: uuid.UUID, *, paid: bool, at: dt.datetime) -> bool:
    """The payment of a request finished: paid, or open again for another try."""
    values = {"status": "paid", "decided_at": at} if paid else {"status": "open",
                                                                "transfer_id": None}
    result = await session.execute(
        update(MoneyRequest).where(MoneyRequest.id == request_id,
                                   MoneyRequest.status == "paying",
                                   MoneyRequest.transfer_id == transfer_id).values(**values))
    return result.rowcount == 1


# -- splits ----------------------------------------------------------------------------------


async def requests_of_split(session: AsyncSession, split_id: uuid.UUID) -> list[MoneyRequest]:
    rows = await session.execute(select(MoneyRequest).where(MoneyRequest.split_id == split_id)
                                 .order_by(MoneyRequest.split_position))
    return list(rows.scalars())


async def list_splits(session: AsyncSession, requester_id: uuid.UUID, *, cursor: str | None,
                      limit: int) -> list[Split]:
    rows = await session.execute(
        select(Split).where(Split.requester_user_id == requester_id, _before(Split, cursor))
        .order_by(Split.created_at.desc(), Split.id.desc()).limit(_page_size(limit)))
    return list(rows.scalars())
