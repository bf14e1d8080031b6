"""The fx API's shapes. Amounts are integer minor units plus an ISO 4217 code."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from bankwallet.fx import service
from bankwallet.fx.models import Exchange, Quote

CurrencyIn = Annotated[str, StringConstraints(min_length=3, max_length=3)]
AmountIn = Annotated[StrictInt, Field(gt=0, le=service.AMOUNT_MAX_MINOR)]


class RateRead(BaseModel):
    currency: str
    mid: str  # CNY per one unit, exact decimal text
    customer_buys_at: str  # CNY the customer pays for one unit
    customer_sells_at: str  # CNY the customer receives for one unit


class RatesRead(BaseModel):
    base: str
    as_of: dt.datetime
    source: str
    spread_bps: int
    quote_ttl_s: int
    rates: list[RateRead]

    @classmethod
    def of(cls, board: service.Board) -> RatesRead:
        return cls(base=board.base, as_of=board.as_of, source=board.source,
                   spread_bps=board.spread_bps, quote_ttl_s=board.quote_ttl_s,
                   rates=[RateRead(currency=r.currency, mid=r.mid,
                                   customer_buys_at=r.customer_buys_at,
                                   customer_sells_at=r.customer_sells_at) for r in board.rows])


class QuoteCreate(BaseModel):
    """Sell exactly ``sell_amount_minor``, or buy exactly ``buy_amount_minor`` (one of them)."""

    model_config = ConfigDict(extra="forbid")
    sell_currency: CurrencyIn
    buy_currency: CurrencyIn
    sell_amount_minor: AmountIn | None = None
    buy_amount_minor: AmountIn | None = None


class QuoteRead(BaseModel):
    id: uuid.UUID
    sell_currency: str
    sell_amount_minor: int
    buy_currency: str
    buy_amount_minor: int
    rate: str  # buy per one sell, the customer's (mid less the spread)
    mid_rate: str
    spread_bps: int
    rates_as_of: dt.datetime
    created_at: dt.datetime
    expires_at: dt.datetime
    used: bool

    @classmethod
    def of(cls, q: Quote) -> QuoteRead:
        return cls(id=q.id, sell_currency=q.sell_currency, sell_amount_minor=q.sell_amount_minor,
                   buy_currency=q.buy_currency, buy_amount_minor=q.buy_amount_minor,
                   rate=q.rate, mid_rate=q.mid_rate, spread_bps=q.spread_bps,
                   rates_as_of=q.rates_as_of, created_at=q.created_at, expires_at=q.expires_at,
                   used=q.used_at is not None)


class ExchangeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quote_id: uuid.UUID


class ExchangeRead(BaseModel):
    id: uuid.UUID
    quote_id: uuid.UUID
    status: str  # pending | posted | failed
    sell_currency: str
    sell_amount_minor: int
    buy_currency: str
    buy_amount_minor: int
    rate: str
    failure_reason: str | None
    created_at: dt.datetime
    decided_at: dt.datetime | None

    @classmethod
    def of(cls, e: Exchange) -> ExchangeRead:
        return cls(id=e.id, quote_id=e.quote_id, status=e.status, sell_currency=e.sell_currency,
                   sell_amount_minor=e.sell_amount_minor, buy_currency=e.buy_currency,
                   buy_amount_minor=e.buy_amount_minor, rate=e.rate,
                   failure_reason=e.failure_reason, created_at=e.created_at,
                   decided_at=e.decided_at)


class ExchangeList(BaseModel):
    items: list[ExchangeRead]
    next_before: uuid.UUID | None  # pass as ?before= for the next page; null at the end
