"""JSON API: /api/v1/transfers, /api/v1/requests, /api/v1/splits, /api/v1/contact-card.

Money-moving POSTs (send, pay) need an ``Idempotency-Key``; creating a request or a split
takes one too when sent (a retried create then makes nothing twice).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.core import idempotency
from bankwallet.core.deps import DbSession
from bankwallet.identity import mfa
from bankwallet.identity.deps import Auth
from bankwallet.identity.errors import StepUpRequired
from bankwallet.transfers import repository, service
from bankwallet.transfers.schemas import (
    ContactCardRead,
    RequestCreate,
    RequestList,
    RequestRead,
    SplitCreate,
    SplitList,
    SplitRead,
    TransferCreate,
    TransferList,
    TransferRead,
)

router = APIRouter(tags=["transfers"])

Limit = Annotated[int, Query(ge=1, le=repository.PAGE_MAX)]
Cursor = Annotated[str | None, Query(max_length=repository.CURSOR_MAX_CHARS)]
RequestStatus = Literal["open", "paying", "paid", "declined", "cancelled"]


class _Undecided(Exception):
    """Carries an answer that must not be stored under the key: after stepping up, the same
    request with the same key must run, not replay "step up first"."""

    def __init__(self, error: StepUpRequired) -> None:
        super().__init__(error.code)
        self.error = error


async def _once(request: Request, session: AsyncSession, *, user_id: uuid.UUID,
                body: BaseModel | dict[str, Any], work: Callable[[], Awaitable[Any]],
                status: int) -> JSONResponse:
    async def guarded() -> Any:
        try:
            return await work()
        except StepUpRequired as exc:
            raise _Undecided(exc) from None

    try:
        return await idempotency.run(request, session, scope=service.idempotency_scope(user_id),
                                     body=body, work=guarded, status=status)
    except _Undecided as undecided:  # the claim was released; the key is free again
        raise undecided.error from None


# -- transfers -------------------------------------------------------------------------------


@router.post("/api/v1/transfers", status_code=201, response_model=TransferRead)
async def send(request: Request, body: TransferCreate, auth: Auth,
               session: DbSession) -> JSONResponse:
    """Send money to another customer. Needs an ``Idempotency-Key``."""
    me = auth.user.id
    key = idempotency.check_key(request.headers.get(idempotency.HEADER))

    async def work() -> TransferRead:
        row = await service.send(session, request.app.state.ledger, auth, key=key, to=body.to,
                                 amount_minor=body.amount_minor, currency=body.currency,
                                 note=body.note)
        return TransferRead.of(row, me)

    return await _once(request, session, user_id=me, body=body, work=work, status=201)


@router.get("/api/v1/transfers")
async def list_transfers(auth: Auth, session: DbSession,
                         direction: Literal["all", "sent", "received"] = "all",
                         cursor: Cursor = None, limit: Limit = 50) -> TransferList:
    me = auth.user.id
    rows = await service.list_transfers(session, me, direction=direction, cursor=cursor,
                                        limit=limit)
    return TransferList(items=[TransferRead.of(r, me) for r in rows],
                        next_cursor=_next(rows, limit))


@router.get("/api/v1/transfers/{transfer_id}")
async def get_transfer(transfer_id: uuid.UUID, auth: Auth, session: DbSession) -> TransferRead:
    me = auth.user.id
    return TransferRead.of(await service.get_transfer(session, me, transfer_id), me)


def _next(rows: list[Any], limit: int) -> str | None:
    return repository.encode_cursor(rows[-1].created_at, rows[-1].id) if len(rows) == limit \
        else None


# -- requests --------------------------------------------------------------------------------


@router.post("/api/v1/requests", status_code=201, response_model=RequestRead)
async def create_request(request: Request, body: RequestCreate, auth: Auth,
                         session: DbSession) -> Any:
    """Ask another customer for money."""
    me = auth.user.id

    async def work() -> RequestRead:
        row = await service.create_request(session, auth, payer=body.payer,
                                           amount_minor=body.amount_minor,
                                           currency=body.currency, note=body.note)
        return RequestRead.of(row, me)

    if idempotency.HEADER in request.headers:
        return await _once(request, session, user_id=me, body=body, work=work, status=201)
    return await work()


@router.get("/api/v1/requests")
async def list_requests(auth: Auth, session: DbSession,
                        box: Literal["incoming", "outgoing"] = "incoming",
                        status: RequestStatus | None = None, cursor: Cursor = None,
                        limit: Limit = 50) -> RequestList:
    """``incoming``: requests made to me; ``outgoing``: requests I made."""
    me = auth.user.id
    rows = await service.list_requests(session, me, box=box, status=status, cursor=cursor,
                                       limit=limit)
    return RequestList(items=[RequestRead.of(r, me) for r in rows],
                       next_cursor=_next(rows, limit))


@router.get("/api/v1/requests/{request_id}")
async def get_request(request_id: uuid.UUID, auth: Auth, session: DbSession) -> RequestRead:
    me = auth.user.id
    return RequestRead.of(await service.get_request(session, me, request_id), me)


@router.post("/api/v1/requests/{request_id}/pay", status_code=201, response_model=TransferRead)
async def pay_request(request: Request, request_id: uuid.UUID, auth: Auth,
                      session: DbSession) -> JSONResponse:
    """Pay a request made to me (once). Needs an ``Idempotency-Key``."""
    me = auth.user.id
    key = idempotency.check_key(request.headers.get(idempotency.HEADER))

    async def work() -> TransferRead:
        row = await service.pay_request(session, request.app.state.ledger, auth,
                                        request_id=request_id, key=key)
        return TransferRead.of(row, me)

    return await _once(request, session, user_id=me, body={"request_id": str(request_id)},
                       work=work, status=201)


@router.post("/api/v1/requests/{request_id}/decline")
async def decline_request(request_id: uuid.UUID, auth: Auth, session: DbSession) -> RequestRead:
    me = auth.user.id
    return RequestRead.of(await service.decline_request(session, auth, request_id), me)


@router.post("/api/v1/requests/{request_id}/cancel")
async def cancel_request(request_id: uuid.UUID, auth: Auth, session: DbSession) -> RequestRead:
    me = auth.user.id
    return RequestRead.of(await service.cancel_request(session, auth, request_id), me)


# -- split bills -----------------------------------------------------------------------------


@router.post("/api/v1/splits", status_code=201, response_model=SplitRead)
async def create_split(request: Request, body: SplitCreate, auth: Auth,
                       session: DbSession) -> Any:
    """Split a bill: one request per participant, equal shares or explicit ones."""
    me = auth.user.id

    async def work() -> SplitRead:
        view = await service.create_split(
            session, auth, total_minor=body.total_minor, currency=body.currency,
            note=body.note, participants=body.participants, include_me=body.include_me,
            shares=[(s.payer, s.amount_minor) for s in body.shares] if body.shares else None,
            my_share_minor=body.my_share_minor)
        return SplitRead.of(view, me)

    if idempotency.HEADER in request.headers:
        return await _once(request, session, user_id=me, body=body, work=work, status=201)
    return await work()


@router.get("/api/v1/splits")
async def list_splits(auth: Auth, session: DbSession, cursor: Cursor = None,
                      limit: Annotated[int, Query(ge=1, le=50)] = 20) -> SplitList:
    me = auth.user.id
    views = await service.list_splits(session, me, cursor=cursor, limit=limit)
    return SplitList(items=[SplitRead.of(v, me) for v in views],
                     next_cursor=_next([v.split for v in views], limit))


@router.get("/api/v1/splits/{split_id}")
async def get_split(split_id: uuid.UUID, auth: Auth, session: DbSession) -> SplitRead:
    me = auth.user.id
    return SplitRead.of(await service.get_split(session, me, split_id), me)


# -- my contact card -------------------------------------------------------------------------


@router.get("/api/v1/contact-card")
async def contact_card(auth: Auth) -> ContactCardRead:
    """My QR contact card: others scan or paste it to send me money."""
    payload = service.contact_card(auth.user.id)
    return ContactCardRead(wallet_id=auth.user.id, display=mfa.masked_login(auth.user),
                           payload=payload, svg=service.contact_card_svg(payload))
