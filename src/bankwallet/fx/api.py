"""Exchange rates, quotes and exchanges between the customer's own balances."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from bankwallet.core import idempotency
from bankwallet.core.deps import DbSession
from bankwallet.fx import service
from bankwallet.fx.schemas import (
    ExchangeCreate,
    ExchangeList,
    ExchangeRead,
    QuoteCreate,
    QuoteRead,
    RatesRead,
)
from bankwallet.identity.deps import Auth

router = APIRouter(prefix="/api/v1/fx", tags=["fx"])


@router.get("/rates")
async def rates() -> RatesRead:
    """Mid rates with their time, and what the customer pays and gets per unit (public)."""
    return RatesRead.of(await service.board())


@router.post("/quotes", status_code=201)
async def create_quote(body: QuoteCreate, auth: Auth, session: DbSession) -> QuoteRead:
    """A price for selling or buying an exact amount, valid for ``quote_ttl_s`` seconds."""
    quote = await service.create_quote(
        session, user_id=auth.user.id, sell_currency=body.sell_currency,
        buy_currency=body.buy_currency, sell_amount_minor=body.sell_amount_minor,
        buy_amount_minor=body.buy_amount_minor)
    return QuoteRead.of(quote)


@router.get("/quotes/{quote_id}")
async def read_quote(quote_id: uuid.UUID, auth: Auth, session: DbSession) -> QuoteRead:
    return QuoteRead.of(await service.get_quote(session, user_id=auth.user.id,
                                                quote_id=quote_id))


@router.post("/exchanges", status_code=201, response_model=ExchangeRead)
async def create_exchange(request: Request, body: ExchangeCreate, auth: Auth,
                          session: DbSession) -> JSONResponse:
    """Exchange at a quote (needs ``Idempotency-Key``): both legs move, or neither."""
    key = idempotency.check_key(request.headers.get(idempotency.HEADER))

    async def work() -> ExchangeRead:
        return ExchangeRead.of(await service.execute(
            session, request.app.state.ledger, auth, quote_id=body.quote_id,
            idempotency_key=key))

    return await idempotency.run(request, session, scope=f"fx.exchange:{auth.user.id}",
                                 body=body, work=work, status=201)


@router.get("/exchanges")
async def list_exchanges(auth: Auth, session: DbSession,
                         limit: Annotated[int, Query(ge=1, le=service.LIST_PAGE_MAX)] = 20,
                         before: uuid.UUID | None = None) -> ExchangeList:
    items = await service.list_exchanges(session, user_id=auth.user.id, limit=limit,
                                         before=before)
    return ExchangeList(items=[ExchangeRead.of(e) for e in items],
                        next_before=items[-1].id if len(items) == limit else None)


@router.get("/exchanges/{exchange_id}")
async def read_exchange(exchange_id: uuid.UUID, auth: Auth, session: DbSession) -> ExchangeRead:
    return ExchangeRead.of(await service.get_exchange(session, user_id=auth.user.id,
                                                      exchange_id=exchange_id))
