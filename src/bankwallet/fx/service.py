"""Exchange between a customer's own balances.

A **quote** fixes both amounts at the customer's rate (the mid rate less ``SPREAD_BPS``) for
``QUOTE_TTL_S`` seconds. **Executing** it moves money the way every domain does
(``docs/money-movement.md``): the quote is taken and the intent recorded and committed first
(with the daily outflow reserved and the balance cap checked), then two ledger legs are
submitted *linked*, so both apply or neither does:

- sell leg (``FX_SELL``): the customer's sell-currency wallet → the bank's ``FX_POSITION``
  in that currency;
- buy leg (``FX_BUY``): ``FX_POSITION`` in the buy currency → the customer's buy-currency
  wallet.

Then the outcome is recorded and ``money.moved`` published in one transaction. A crash in
between is healed by ``heal_pending``, which resubmits the same (derived) transfer ids.

Other domains value foreign amounts against the CNY limits with ``to_cny``.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN
from fractions import Fraction
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.connectors.rates.base import RateSource
from bankwallet.connectors.rates.static import StaticRateSource
from bankwallet.core import audit, outbox
from bankwallet.core.db import Database, utcnow
from bankwallet.core.errors import BankwalletError
from bankwallet.core.idempotency import IdempotencyKeyReused
from bankwallet.core.ids import derived_id, uuid7
from bankwallet.core.money import InvalidAmount, check_currency
from bankwallet.fx import pricing, repository
from bankwallet.fx.errors import (
    AmountRequired,
    AmountTooLarge,
    AmountTooSmall,
    ExchangeFailed,
    ExchangeNotFound,
    ExchangeRefused,
    InsufficientFunds,
    QuoteExpired,
    QuoteNotFound,
    QuoteUsed,
    RatesUnavailable,
    SameCurrency,
)
from bankwallet.fx.models import Exchange, Quote
from bankwallet.identity import kyc, mfa
from bankwallet.identity import service as identity_service
from bankwallet.ledger import service as ledger_service
from bankwallet.ledger.store import LedgerStore
from bankwallet.ledger.types import Outcome, Result, TransferFlags, TransferIn
from bankwallet.risk import service as risk_service
from bankwallet.wallets import service as wallets
from bankwallet.wallets.codes import KIND_OF_CODE, Code

log = logging.getLogger("bankwallet.fx")

QUOTE_TTL_S: Final = 30
SPREAD_BPS: Final = pricing.SPREAD_BPS
RATES_MAX_AGE_S: Final = 300  # older rates are not quoted on
AMOUNT_MAX_MINOR: Final = 10**15  # far above any limit; keeps every product inside BIGINT
PENDING_GRACE_S: Final = 60  # the healing job leaves younger pending exchanges alone
HEAL_BATCH_MAX: Final = 100
QUOTE_RETENTION_S: Final = 24 * 3600  # unused quotes are deleted this long after expiry
PURGE_BATCH_MAX: Final = 1000
LIST_PAGE_MAX: Final = 100
LIMITS_CURRENCY: Final = kyc.LIMITS_CURRENCY
BOARD_CURRENCY: Final = wallets.DEFAULT_CURRENCY
KIND: Final = KIND_OF_CODE[Code.FX_SELL]
assert KIND == KIND_OF_CODE[Code.FX_BUY]

# Injectable for tests and for a real feed: the clock quotes expire by, and the rate source.
clock: Callable[[], dt.datetime] = utcnow
_rates: RateSource = StaticRateSource()


def configure_rates(source: RateSource) -> None:
    global _rates
    _rates = source


def rate_source() -> RateSource:
    return _rates


# -- rates -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rates:
    base: str
    prices: dict[str, Fraction]  # base units per one unit of each currency; base itself 1
    as_of: dt.datetime
    source: str


@dataclass(frozen=True, slots=True)
class BoardRow:
    currency: str
    mid: str  # CNY per one unit
    customer_buys_at: str  # CNY the customer pays for one unit (rounded up)
    customer_sells_at: str  # CNY the customer gets for one unit (rounded down)


@dataclass(frozen=True, slots=True)
class Board:
    base: str
    as_of: dt.datetime
    source: str
    spread_bps: int
    quote_ttl_s: int
    rows: list[BoardRow]


async def current_rates(*, now: dt.datetime | None = None) -> Rates:
    """The source's mid rates as exact fractions, refused when missing or stale."""
    now = now or clock()
    result = await _rates.latest()
    if not result.ok:
        log.warning("exchange rates unavailable", extra={"reason": result.reason})
        raise RatesUnavailable()
    snapshot = result.snapshot
    assert snapshot is not None
    if (now - snapshot.as_of).total_seconds() > RATES_MAX_AGE_S:
        log.warning("exchange rates are stale", extra={"as_of": snapshot.as_of.isoformat()})
        raise RatesUnavailable("The exchange rates are out of date.")
    prices = {snapshot.base: Fraction(1)}
    prices.update({code: Fraction(value) for code, value in snapshot.mid.items()})
    missing = [c for c in wallets.SUPPORTED_CURRENCIES if c not in prices]
    if missing:
        log.warning("exchange rates miss currencies", extra={"missing": missing})
        raise RatesUnavailable()
    return Rates(snapshot.base, prices, snapshot.as_of, snapshot.source)


async def board(*, now: dt.datetime | None = None) -> Board:
    """Mid rates and the customer's prices of each currency in CNY, for the rates page."""
    rates = await current_rates(now=now)
    rows = []
    for currency in wallets.SUPPORTED_CURRENCIES:
        if currency == BOARD_CURRENCY:
            continue
        mid = pricing.cross_rate(rates.prices, currency, BOARD_CURRENCY)
        mid_text, buys_at, sells_at = pricing.customer_prices(mid)
        rows.append(BoardRow(currency, mid_text, buys_at, sells_at))
    return Board(BOARD_CURRENCY, rates.as_of, rates.source, SPREAD_BPS, QUOTE_TTL_S, rows)


async def to_cny(amount_minor: int, currency: str) -> int:
    """``amount_minor`` of ``currency`` in CNY fen at the current mid rate, rounded up: how
    much a foreign amount counts against the CNY limits (``kyc.TIER_LIMITS``)."""
    assert amount_minor >= 0
    currency = check_currency(currency)
    if currency == LIMITS_CURRENCY:
        return amount_minor
    rates = await current_rates()
    if currency not in rates.prices:
        raise wallets.CurrencyUnsupported(f"No exchange rate for {currency}.")
    return pricing.value_minor(amount_minor, currency=currency, target=LIMITS_CURRENCY,
                               prices=rates.prices)


# -- quotes ----------------------------------------------------------------------------------


async def create_quote(session: AsyncSession, *, user_id: uuid.UUID, sell_currency: str,
                       buy_currency: str, sell_amount_minor: int | None = None,
                       buy_amount_minor: int | None = None,
                       now: dt.datetime | None = None) -> Quote:
    """Price selling exactly ``sell_amount_minor`` or buying exactly ``buy_amount_minor``."""
    sell, buy = wallets.supported(sell_currency), wallets.supported(buy_currency)
    if sell == buy:
        raise SameCurrency("Choose two different currencies.")
    if (sell_amount_minor is None) == (buy_amount_minor is None):
        raise AmountRequired("Give exactly one of sell_amount_minor and buy_amount_minor.")
    amount = sell_amount_minor if sell_amount_minor is not None else buy_amount_minor
    assert amount is not None
    if amount <= 0:
        raise InvalidAmount("The amount must be greater than zero.")
    if amount > AMOUNT_MAX_MINOR:
        raise AmountTooLarge()
    now = now or clock()
    rates = await current_rates(now=now)
    mid = pricing.cross_rate(rates.prices, sell, buy)
    try:
        priced = (pricing.price_sell(amount, sell=sell, buy=buy, mid=mid)
                  if sell_amount_minor is not None
                  else pricing.price_buy(amount, sell=sell, buy=buy, mid=mid))
    except pricing.PricingError as exc:
        if exc.reason == "too_small":
            raise AmountTooSmall(f"Selling this little {sell} buys less than one minor unit "
                                 f"of {buy}.", sell_currency=sell, buy_currency=buy) from None
        raise AmountTooLarge() from None
    quote = Quote(
        id=uuid7(), user_id=user_id, sell_currency=sell, sell_amount_minor=priced.sell_minor,
        buy_currency=buy, buy_amount_minor=priced.buy_minor,
        rate=pricing.rate_text(priced.rate),
        mid_rate=pricing.rate_text(mid, rounding=ROUND_HALF_EVEN), spread_bps=SPREAD_BPS,
        limits_value_minor=pricing.value_minor(priced.sell_minor, currency=sell,
                                               target=LIMITS_CURRENCY, prices=rates.prices),
        rates_source=rates.source[:32], rates_as_of=rates.as_of, created_at=now,
        expires_at=now + dt.timedelta(seconds=QUOTE_TTL_S), used_at=None, exchange_id=None)
    session.add(quote)
    await session.flush()
    return quote


async def get_quote(session: AsyncSession, *, user_id: uuid.UUID, quote_id: uuid.UUID) -> Quote:
    """The caller's own quote; anyone else's does not exist (404, not 403)."""
    quote = await session.get(Quote, quote_id)
    if quote is None or quote.user_id != user_id:
        raise QuoteNotFound()
    return quote


# -- exchanges -------------------------------------------------------------------------------


def exchange_id_for(user_id: uuid.UUID, idempotency_key: str) -> uuid.UUID:
    return derived_id("fx.exchange", user_id, idempotency_key)


async def execute(session: AsyncSession, ledger: LedgerStore,
                  auth: identity_service.Authenticated, *, quote_id: uuid.UUID,
                  idempotency_key: str, now: dt.datetime | None = None) -> Exchange:
    """Exchange at the quote. The same key again returns (or finishes) the same exchange."""
    now = now or clock()
    user_id = auth.user.id
    exchange_id = exchange_id_for(user_id, idempotency_key)
    quote = await repository.lock_quote(session, quote_id)
    if quote is None or quote.user_id != user_id:
        raise QuoteNotFound()
    if quote.used_at is not None:
        return await _resume(session, ledger, quote, exchange_id)
    if await repository.get_exchange(session, exchange_id) is not None:
        raise IdempotencyKeyReused("This Idempotency-Key already exchanged another quote.")
    if now >= quote.expires_at:
        raise QuoteExpired("Ask for a new quote.", expired_at=quote.expires_at.isoformat())
    available = (await wallets.balance(ledger, user_id, quote.sell_currency)).available_minor
    if available < quote.sell_amount_minor:
        raise InsufficientFunds(f"Your {quote.sell_currency} balance is too low.",
                                currency=quote.sell_currency, available_minor=available)
    await _assess(session, auth, quote)
    if not await repository.mark_quote_used(session, quote.id, exchange_id=exchange_id,
                                            now=now):
        taken = await repository.lock_quote(session, quote.id)
        assert taken is not None and taken.used_at is not None
        return await _resume(session, ledger, taken, exchange_id)
    day = await wallets.reserve_outflow(session, user_id=user_id,
                                        amount_minor=quote.limits_value_minor,
                                        currency=LIMITS_CURRENCY)
    await wallets.check_inflow(session, ledger, user_id=user_id,
                               amount_minor=quote.buy_amount_minor, currency=quote.buy_currency)
    session.add(Exchange(
        id=exchange_id, user_id=user_id, quote_id=quote.id, sell_currency=quote.sell_currency,
        sell_amount_minor=quote.sell_amount_minor, buy_currency=quote.buy_currency,
        buy_amount_minor=quote.buy_amount_minor, rate=quote.rate,
        sell_transfer_id=derived_id("fx.exchange.sell", exchange_id),
        buy_transfer_id=derived_id("fx.exchange.buy", exchange_id), status="pending",
        failure_reason=None, outflow_minor=quote.limits_value_minor, outflow_day=day,
        created_at=now, decided_at=None))
    await session.flush()
    # The intent is durable before money moves (the one place a service commits; on SQLite
    # the ledger writes through its own connection and needs the write lock free).
    await session.commit()
    await wallets.open_wallet(ledger, user_id, quote.buy_currency)
    return await settle(session, ledger, exchange_id)


async def _assess(session: AsyncSession, auth: identity_service.Authenticated,
                  quote: Quote) -> None:
    assessment = await risk_service.assess(session, user_id=auth.user.id, action="fx.exchange",
                                           amount_minor=quote.limits_value_minor,
                                           currency=LIMITS_CURRENCY)
    if assessment.decision is risk_service.Decision.STEP_UP:
        await mfa.ensure_recent_second_factor(session, auth)
    elif assessment.decision is not risk_service.Decision.ALLOW:
        # An exchange between the customer's own balances is not worth holding for review.
        raise ExchangeRefused(decision=assessment.decision.value)


async def _resume(session: AsyncSession, ledger: LedgerStore, quote: Quote,
                  exchange_id: uuid.UUID) -> Exchange:
    """The quote is taken: by this key (a retry: answer it, finishing it if needed) or not."""
    if quote.exchange_id != exchange_id:
        raise QuoteUsed("Ask for a new quote.")
    exchange = await repository.get_exchange(session, exchange_id)
    assert exchange is not None, "a used quote names its exchange"
    if exchange.status == "pending":
        await wallets.open_wallet(ledger, exchange.user_id, exchange.buy_currency)
        return await settle(session, ledger, exchange_id)
    return _final(exchange)


def legs(exchange: Exchange) -> list[TransferIn]:
    """The two linked ledger transfers of an exchange, built only from its row."""
    user_data = {"kind": KIND, "ref": str(exchange.id),
                 "from": f"{exchange.sell_currency} balance",
                 "to": f"{exchange.buy_currency} balance", "rate": exchange.rate}
    position = wallets.SystemAccount.FX_POSITION
    return [
        TransferIn(id=exchange.sell_transfer_id,
                   debit_account_id=wallets.wallet_account_id(exchange.user_id,
                                                              exchange.sell_currency),
                   credit_account_id=wallets.system_account_id(position, exchange.sell_currency),
                   amount=exchange.sell_amount_minor, ledger=exchange.sell_currency,
                   code=Code.FX_SELL, flags=TransferFlags.LINKED, user_data=user_data),
        TransferIn(id=exchange.buy_transfer_id,
                   debit_account_id=wallets.system_account_id(position, exchange.buy_currency),
                   credit_account_id=wallets.wallet_account_id(exchange.user_id,
                                                               exchange.buy_currency),
                   amount=exchange.buy_amount_minor, ledger=exchange.buy_currency,
                   code=Code.FX_BUY, flags=TransferFlags.NONE, user_data=user_data),
    ]


def _failure(outcomes: Sequence[Outcome]) -> str | None:
    """None when every leg applied, else the ledger's reason (the leg that broke the chain)."""
    if all(o.ok for o in outcomes):
        return None
    causes = [o.result for o in outcomes if not o.ok and o.result is not Result.LINKED_EVENT_FAILED]
    return (causes[0] if causes else Result.LINKED_EVENT_FAILED).value


async def settle(session: AsyncSession, ledger: LedgerStore, exchange_id: uuid.UUID
                 ) -> Exchange:
    """Submit a pending exchange's legs (again: resubmitting the same ids is safe) and record
    the outcome once. The row is locked meanwhile on PostgreSQL, so a retry and the healing
    job never decide one exchange twice. A failure is committed, then raised."""
    exchange = await repository.get_exchange(session, exchange_id, lock=True)
    assert exchange is not None
    if exchange.status != "pending":
        return _final(exchange)
    outcomes = await ledger_service.submit(ledger, legs(exchange))
    reason = _failure(outcomes)
    status = "posted" if reason is None else "failed"
    if await repository.set_outcome(session, exchange.id, status=status, reason=reason,
                                    now=utcnow()):
        if reason is not None:
            await wallets.release_outflow(session, user_id=exchange.user_id,
                                          amount_minor=exchange.outflow_minor,
                                          currency=LIMITS_CURRENCY, day=exchange.outflow_day)
        await _record(session, exchange, status=status, reason=reason)
    exchange = await repository.get_exchange(session, exchange.id)
    assert exchange is not None and exchange.status != "pending"
    if exchange.status == "failed":
        await session.commit()  # the refusal stands even though the request fails
    return _final(exchange)


def _final(exchange: Exchange) -> Exchange:
    if exchange.status == "posted":
        return exchange
    assert exchange.status == "failed", exchange.status
    raise _failure_error(exchange)


def _failure_error(exchange: Exchange) -> BankwalletError:
    if exchange.failure_reason == Result.EXCEEDS_CREDITS.value:
        return InsufficientFunds(f"Your {exchange.sell_currency} balance is too low.",
                                 currency=exchange.sell_currency, exchange_id=str(exchange.id))
    return ExchangeFailed(reason=exchange.failure_reason, exchange_id=str(exchange.id))


async def _record(session: AsyncSession, exchange: Exchange, *, status: str,
                  reason: str | None) -> None:
    """``money.moved`` and the audit record, in the outcome's transaction."""
    display_from = f"{exchange.sell_currency} balance"
    display_to = f"{exchange.buy_currency} balance"
    await outbox.publish(session, "money.moved", {
        "kind": KIND, "status": status, "ref": str(exchange.id),
        "amount_minor": exchange.sell_amount_minor, "currency": exchange.sell_currency,
        "ledger_transfer_id": str(exchange.sell_transfer_id),
        "payer_user_id": str(exchange.user_id), "payee_user_id": str(exchange.user_id),
        "from": display_from, "to": display_to,
        # An exchange has a second amount: what came in.
        "buy_amount_minor": exchange.buy_amount_minor, "buy_currency": exchange.buy_currency,
        "buy_ledger_transfer_id": str(exchange.buy_transfer_id), "rate": exchange.rate,
    }, key=str(exchange.user_id))
    await audit.record(session, action=f"fx.exchange.{status}", actor_type="user",
                       actor_id=str(exchange.user_id), subject_type="fx_exchange",
                       subject_id=str(exchange.id),
                       data={"sell_currency": exchange.sell_currency,
                             "sell_amount_minor": exchange.sell_amount_minor,
                             "buy_currency": exchange.buy_currency,
                             "buy_amount_minor": exchange.buy_amount_minor,
                             "rate": exchange.rate, "reason": reason})


async def get_exchange(session: AsyncSession, *, user_id: uuid.UUID,
                       exchange_id: uuid.UUID) -> Exchange:
    exchange = await session.get(Exchange, exchange_id)
    if exchange is None or exchange.user_id != user_id:
        raise ExchangeNotFound()
    return exchange


async def list_exchanges(session: AsyncSession, *, user_id: uuid.UUID, limit: int = 20,
                         before: uuid.UUID | None = None) -> list[Exchange]:
    """The caller's exchanges, newest first; ``before`` is the last id of the previous page."""
    assert 0 < limit <= LIST_PAGE_MAX
    return await repository.list_exchanges(session, user_id, limit=limit, before=before)


async def open_balance(ledger: LedgerStore, *, user_id: uuid.UUID, currency: str) -> str:
    """Hold another currency (opening one twice is harmless)."""
    currency = wallets.supported(currency)
    await wallets.open_wallet(ledger, user_id, currency)
    return currency


# -- healing ---------------------------------------------------------------------------------


async def heal_pending(db: Database, ledger: LedgerStore, *, now: dt.datetime | None = None,
                       limit: int = HEAL_BATCH_MAX) -> int:
    """Finish exchanges left pending by a crash between intent and outcome; returns how many
    were decided. Each in a unit of work of its own, so one stuck row never blocks the rest."""
    assert 0 < limit <= HEAL_BATCH_MAX
    now = now or clock()
    async with db.unit_of_work() as session:
        pending = await repository.stale_pending(
            session, created_before=now - dt.timedelta(seconds=PENDING_GRACE_S), limit=limit)
    decided = 0
    for exchange_id in pending:
        try:
            async with db.unit_of_work() as session:
                exchange = await repository.get_exchange(session, exchange_id)
                assert exchange is not None
                await wallets.open_wallet(ledger, exchange.user_id, exchange.buy_currency)
                await settle(session, ledger, exchange_id)
        except BankwalletError:
            pass  # decided: failed, and recorded as such
        except Exception:
            log.exception("could not heal a pending exchange",
                          extra={"exchange_id": str(exchange_id)})
            continue
        decided += 1
    return decided


async def purge_quotes(db: Database, *, now: dt.datetime | None = None) -> int:
    now = now or clock()
    async with db.unit_of_work() as session:
        return await repository.purge_unused_quotes(
            session, expired_before=now - dt.timedelta(seconds=QUOTE_RETENTION_S),
            limit=PURGE_BATCH_MAX)
