"""Balances and the accounts behind them, and the daily-outflow counter the limits need.

A customer holds one ledger account per currency, id ``wallet_account_id(user, currency)``
(deterministic: any domain finds it without a look-up, and opening it twice is harmless).
The bank's own accounts per currency have ids from ``system_account_id(kind, currency)``.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
import zoneinfo
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.core.db import utcnow
from bankwallet.core.errors import InvalidInput
from bankwallet.core.ids import derived_id
from bankwallet.core.money import check_currency
from bankwallet.identity import kyc
from bankwallet.ledger import service as ledger_service
from bankwallet.ledger.store import LedgerStore
from bankwallet.ledger.types import AccountFlags, AccountIn
from bankwallet.settings import get_settings
from bankwallet.wallets.models import DailyOutflow

DEFAULT_CURRENCY = "CNY"
SUPPORTED_CURRENCIES: tuple[str, ...] = ("CNY", "USD", "EUR", "HKD")
WALLET_KIND = "customer_wallet"


class SystemAccount(enum.StrEnum):
    """The bank's side of each movement (no balance flags: they may go either way)."""

    BANK_SETTLEMENT = "bank_settlement"  # money at the bank's core banking (top-up, withdrawal)
    GATEWAY_CLEARING = "gateway_clearing"  # card payments on their way from the processor
    FEES = "fees"  # the bank's fee income
    FX_POSITION = "fx_position"  # the bank's currency position from exchanges


class CurrencyUnsupported(InvalidInput):
    code = "currency_unsupported"
    title = "This currency is not offered"


@dataclass(frozen=True, slots=True)
class Balance:
    currency: str
    available_minor: int  # what can be spent now: posted, less holds on the way out
    posted_minor: int
    incoming_minor: int  # top-ups the bank has not confirmed yet
    outgoing_minor: int  # held for withdrawals and payments in progress


def wallet_account_id(user_id: uuid.UUID, currency: str) -> uuid.UUID:
    return derived_id("wallets.account", user_id, currency)


def system_account_id(kind: SystemAccount, currency: str) -> uuid.UUID:
    return derived_id("wallets.system", kind.value, currency)


def supported(currency: str) -> str:
    code = check_currency(currency)
    if code not in SUPPORTED_CURRENCIES:
        raise CurrencyUnsupported(f"Balances are offered in {', '.join(SUPPORTED_CURRENCIES)}.")
    return code


async def open_wallet(ledger: LedgerStore, user_id: uuid.UUID,
                      currency: str = DEFAULT_CURRENCY) -> uuid.UUID:
    """The customer's account in ``currency`` (and the bank's accounts in it), made once."""
    currency = supported(currency)
    await ledger_service.open_accounts(ledger, [
        AccountIn(id=wallet_account_id(user_id, currency), ledger=currency, kind=WALLET_KIND,
                  owner_id=str(user_id), flags=int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)),
        *(AccountIn(id=system_account_id(kind, currency), ledger=currency, kind=kind.value,
                    owner_id="bank") for kind in SystemAccount)])
    return wallet_account_id(user_id, currency)


def _balance(account) -> Balance:
    return Balance(currency=account.ledger,
                   available_minor=account.credits_posted - account.debits_posted
                   - account.debits_pending,
                   posted_minor=account.credits_posted - account.debits_posted,
                   incoming_minor=account.credits_pending,
                   outgoing_minor=account.debits_pending)


async def balances(ledger: LedgerStore, user_id: uuid.UUID) -> list[Balance]:
    """Every balance the customer holds, the default currency first."""
    ids = [wallet_account_id(user_id, c) for c in SUPPORTED_CURRENCIES]
    found = await ledger.lookup_accounts(ids)
    return [_balance(found[i]) for i in ids if i in found]


async def balance(ledger: LedgerStore, user_id: uuid.UUID, currency: str) -> Balance:
    account = (await ledger.lookup_accounts([wallet_account_id(user_id, currency)])).get(
        wallet_account_id(user_id, currency))
    return _balance(account) if account else Balance(currency, 0, 0, 0, 0)


# -- limits ----------------------------------------------------------------------------------


def bank_today(now: dt.datetime | None = None) -> dt.date:
    """Today in the bank's time zone: daily limits reset at its midnight, not UTC's."""
    zone = zoneinfo.ZoneInfo(get_settings().bank_timezone)
    return (now or utcnow()).astimezone(zone).date()


def _insert(session: AsyncSession):
    return pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert


async def reserve_outflow(session: AsyncSession, *, user_id: uuid.UUID, amount_minor: int,
                          currency: str, day: dt.date | None = None) -> dt.date:
    """Check the single and daily limits and count this outflow, under a lock on the user's
    counter row (concurrent outflows of one user queue here). Returns the day counted, for
    ``release_outflow`` if the movement fails. Limits are kept in CNY (``kyc.TIER_LIMITS``);
    other currencies are counted in their own units until exchange rates feed the check."""
    day = day or bank_today()
    await session.execute(_insert(session)(DailyOutflow).values(
        user_id=user_id, day=day, currency=currency, amount_minor=0).on_conflict_do_nothing())
    counter = (await session.execute(
        select(DailyOutflow).where(DailyOutflow.user_id == user_id, DailyOutflow.day == day,
                                   DailyOutflow.currency == currency)
        .with_for_update())).scalar_one()
    if currency == kyc.LIMITS_CURRENCY:
        await kyc.check_limits(session, user_id=user_id, amount_minor=amount_minor,
                               currency=currency, outflow_today_minor=counter.amount_minor,
                               balance_after_minor=0, outflow=True)
    counter.amount_minor += amount_minor
    await session.flush()
    return day


async def release_outflow(session: AsyncSession, *, user_id: uuid.UUID, amount_minor: int,
                          currency: str, day: dt.date) -> None:
    """Give back an outflow that did not happen (declined, voided)."""
    await session.execute(
        update(DailyOutflow).where(DailyOutflow.user_id == user_id, DailyOutflow.day == day,
                                   DailyOutflow.currency == currency)
        .values(amount_minor=DailyOutflow.amount_minor - amount_minor))


async def check_inflow(session: AsyncSession, ledger: LedgerStore, *, user_id: uuid.UUID,
                       amount_minor: int, currency: str) -> None:
    """The balance cap of the user's tier, for money coming in (top-up, money received)."""
    if currency != kyc.LIMITS_CURRENCY:
        return
    now = await balance(ledger, user_id, currency)
    await kyc.check_limits(session, user_id=user_id, amount_minor=amount_minor,
                           currency=currency, outflow_today_minor=0,
                           balance_after_minor=now.posted_minor + now.incoming_minor
                           + amount_minor, outflow=False)
