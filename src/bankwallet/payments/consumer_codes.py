"""Consumer-presented payments (付款码): the customer shows a one-time code, the merchant's point
of sale charges it.

The code is 18 digits: the prefix ``81``, 15 random digits and a Luhn check digit (a typo is
caught at the till before any look-up). It is bound to the customer and their CNY balance,
lives ``CODE_TTL_S`` seconds, pays once, and a new code revokes the previous one. Only a keyed
blind index of the number is stored.

Why 15 random digits is enough (the brief asked for 60 bits; 18 decimal digits hold at most
59.8 bits, so with a prefix and a check digit ~49.8 bits remain): a guess must hit one of the
codes live in the same minute, and every merchant may send only ``MISSES_MAX`` unknown codes
per ``MISS_WINDOW_S`` before it is refused (``consumer_code_attempts_exceeded``). With a
million live codes one guess in 10⁹ hits; at 20 guesses per ten minutes per merchant that is
hundreds of thousands of years.

Charging a code creates a payment intent for the merchant (``payments.service.create_intent``:
its events and webhooks fire as for any intent) and pays it from the customer's balance with
the same charge row, ledger transfers (payment and fee, linked), limits (``reserve_outflow``)
and risk question as ``pay_from_wallet``. Nobody is there to answer a step-up, so a charge
the risk assessment would step up is refused (``consumer_code_confirmation_required``): the
customer pays that amount by scanning the merchant's code instead, where the wallet asks for
the second factor.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Final

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.connectors.gateway.base import luhn_valid
from bankwallet.core import audit
from bankwallet.core.crypto import get_keyring
from bankwallet.core.db import utcnow
from bankwallet.core.errors import BankwalletError, Conflict, Forbidden, InvalidInput, NotFound
from bankwallet.core.ids import derived_id, uuid7
from bankwallet.identity import service as identity_service
from bankwallet.ledger.store import LedgerStore
from bankwallet.payments import service
from bankwallet.payments.code_models import ConsumerCode, ConsumerCodeMiss
from bankwallet.payments.errors import InsufficientFunds, PaymentRefused
from bankwallet.payments.models import Merchant, PaymentIntent
from bankwallet.risk import service as risk_service
from bankwallet.wallets import service as wallets_service

log = logging.getLogger("bankwallet.payments.consumer_codes")

CODE_PREFIX: Final = "81"
CODE_DIGITS: Final = 18
RANDOM_DIGITS: Final = CODE_DIGITS - len(CODE_PREFIX) - 1
CODE_TTL_S: Final = 60
CODE_CURRENCY: Final = "CNY"
INDEX_CONTEXT: Final = "payments.consumer_code"
MISSES_MAX: Final = 20
# A page draws a code a minute; this bounds a runaway client (and the table's growth).
ISSUES_PER_WINDOW_MAX: Final = 12
ISSUE_WINDOW_S: Final = 60
MISS_WINDOW_S: Final = 600
# Codes (used, revoked, expired) are kept this long for the customer's page and support.
RETENTION_S: Final = 7 * 24 * 3600
METADATA_SOURCE: Final = "consumer_code"
_SEPARATORS: Final = re.compile(r"[\s-]")


# -- errors ----------------------------------------------------------------------------------


class ConsumerCodeInvalid(InvalidInput):
    code = "consumer_code_invalid"
    title = "Not a payment code"


class ConsumerCodeNotFound(NotFound):
    code = "consumer_code_not_found"
    title = "No such payment code"


class ConsumerCodeExpired(Conflict):
    code = "consumer_code_expired"
    title = "This payment code has expired; ask the customer for a new one"


class ConsumerCodeUsed(Conflict):
    code = "consumer_code_used"
    title = "This payment code was already used"


class ConsumerCodeCurrencyMismatch(InvalidInput):
    code = "consumer_code_currency_mismatch"
    title = "A payment code pays in CNY only"


class ConsumerCodeConfirmationRequired(Forbidden):
    code = "consumer_code_confirmation_required"
    title = "This amount needs the customer's confirmation in the wallet"


class ConsumerCodeAttemptsExceeded(BankwalletError):
    code = "consumer_code_attempts_exceeded"
    status = 429
    title = "Too many unknown payment codes; wait before trying again"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.extra.get("retry_after_s", MISS_WINDOW_S))}


class ConsumerCodeIssueLimited(BankwalletError):
    code = "consumer_code_issue_limited"
    status = 429
    title = "Too many new payment codes; wait a minute"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.extra.get("retry_after_s", ISSUE_WINDOW_S))}


# -- the number (pure) -----------------------------------------------------------------------


def _luhn_digit(body: str) -> str:
    total = 0
    for i, char in enumerate(reversed(body)):
        digit = int(char)
        if i % 2 == 0:  # doubled: the check digit will sit to the right of this one
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return str((10 - total % 10) % 10)


def new_code() -> str:
    body = CODE_PREFIX + "".join(str(secrets.randbelow(10)) for _ in range(RANDOM_DIGITS))
    code = body + _luhn_digit(body)
    assert len(code) == CODE_DIGITS and luhn_valid(code)
    return code


def parse_code(text: str | None) -> str:
    """The 18 digits of a typed or scanned code (spaces and dashes allowed), else
    ``ConsumerCodeInvalid``; nothing is looked up."""
    compact = _SEPARATORS.sub("", text or "")
    if len(compact) != CODE_DIGITS or not compact.isascii() or not compact.isdigit() \
            or not compact.startswith(CODE_PREFIX) or not luhn_valid(compact):
        raise ConsumerCodeInvalid(f"A payment code is {CODE_DIGITS} digits starting with "
                                  f"{CODE_PREFIX}; check the digits.", param="code")
    return compact


def grouped(code: str) -> str:
    """``81 2345 6789 0123 4567``: easier to read aloud and to type."""
    return " ".join([code[:2]] + [code[i:i + 4] for i in range(2, len(code), 4)])


def code_index(code: str) -> bytes:
    return get_keyring().blind_index(code, context=INDEX_CONTEXT)


# -- the customer's side ---------------------------------------------------------------------


class State(enum.StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    USED = "used"


def state_of(row: ConsumerCode, now: dt.datetime | None = None) -> State:
    if row.status == "active" and (now or utcnow()) >= row.expires_at:
        return State.EXPIRED
    return State(row.status)


async def issue(session: AsyncSession, *, user_id: uuid.UUID,
                currency: str = CODE_CURRENCY) -> tuple[ConsumerCode, str]:
    """A new code for the customer, returned in the clear this once; every code of theirs
    still active is revoked first (one live code per customer)."""
    if currency != CODE_CURRENCY:
        raise ConsumerCodeCurrencyMismatch()
    now = utcnow()
    recent = (await session.execute(select(func.count()).select_from(ConsumerCode).where(
        ConsumerCode.user_id == user_id,
        ConsumerCode.created_at > now - dt.timedelta(seconds=ISSUE_WINDOW_S)))).scalar_one()
    if recent >= ISSUES_PER_WINDOW_MAX:
        raise ConsumerCodeIssueLimited(retry_after_s=ISSUE_WINDOW_S)
    await session.execute(update(ConsumerCode)
                          .where(ConsumerCode.user_id == user_id, ConsumerCode.status == "active")
                          .values(status="revoked"))
    code = new_code()
    index = code_index(code)
    # 10¹⁵ numbers: a collision with a stored one is all but impossible; draw again if so.
    while (await session.execute(select(ConsumerCode.id).where(
            ConsumerCode.code_index == index))).first() is not None:
        code = new_code()
        index = code_index(code)
    row = ConsumerCode(id=uuid7(), user_id=user_id, currency=currency, code_index=index,
                       last4=code[-4:], status="active", created_at=now,
                       expires_at=now + dt.timedelta(seconds=CODE_TTL_S), used_at=None,
                       merchant_id=None, intent_id=None, amount_minor=None)
    session.add(row)
    await session.flush()
    return row, code


async def get_for_user(session: AsyncSession, user_id: uuid.UUID,
                       code_id: uuid.UUID | None) -> ConsumerCode:
    row = await session.get(ConsumerCode, code_id) if code_id else None
    if row is None or row.user_id != user_id:
        raise ConsumerCodeNotFound()
    return row


@dataclass(frozen=True, slots=True)
class Payment:
    """What a used code paid, for the customer's page."""

    intent: PaymentIntent
    merchant_name: str


async def payment_of(session: AsyncSession, row: ConsumerCode) -> Payment | None:
    if row.intent_id is None:
        return None
    intent = await session.get(PaymentIntent, row.intent_id)
    assert intent is not None, "a used code without its payment"
    merchant = await session.get(Merchant, intent.merchant_id)
    assert merchant is not None
    return Payment(intent, merchant.name)


async def purge(session: AsyncSession, *, now: dt.datetime | None = None) -> int:
    """Forget codes past the retention (a periodic job may call this)."""
    cutoff = (now or utcnow()) - dt.timedelta(seconds=RETENTION_S)
    result = await session.execute(delete(ConsumerCode).where(ConsumerCode.expires_at < cutoff))
    return result.rowcount or 0


# -- the merchant's side ---------------------------------------------------------------------


def intent_id_for_key(merchant_id: uuid.UUID, key: str) -> uuid.UUID:
    return derived_id("payments.consumer_code.intent", merchant_id, key)


async def charge(session: AsyncSession, ledger: LedgerStore, actor: service.Actor, *,
                 code_text: str, amount_minor: int, key: str,
                 currency: str = CODE_CURRENCY,
                 description: str | None = None) -> PaymentIntent:
    """Charge the customer's code ``amount_minor`` for ``actor.merchant``; ``key`` (the
    request's idempotency key) names the payment, so a retry finds it instead of paying
    again. Every refusal before the money moves leaves everything as it was; a refusal by the
    ledger (a race for the balance) leaves the code used and the intent failed."""
    merchant = actor.merchant
    intent_id = intent_id_for_key(merchant.id, key)
    existing = await session.get(PaymentIntent, intent_id)
    if existing is not None:
        return await _resume(session, ledger, existing)
    code = parse_code(code_text)
    amount = service.check_amount(amount_minor)
    if currency.upper() != CODE_CURRENCY:
        raise ConsumerCodeCurrencyMismatch(param="currency")
    if merchant.status != "active":
        raise PaymentRefused("This merchant cannot take payments.")
    await _check_misses(session, merchant.id)
    row = (await session.execute(select(ConsumerCode).where(
        ConsumerCode.code_index == code_index(code)).with_for_update())).scalar_one_or_none()
    if row is None:
        await _count_miss(session, merchant.id)
        raise ConsumerCodeNotFound("No such payment code; ask the customer to show it again.",
                                   param="code")
    state = state_of(row)
    if state is State.USED:
        raise ConsumerCodeUsed(param="code")
    if state is not State.ACTIVE:
        raise ConsumerCodeExpired(param="code")
    user = await identity_service.get_user(session, row.user_id)
    assert user is not None, "a code without its customer"
    if user.status != "active":
        raise PaymentRefused("This customer cannot pay now.")
    await _assess(session, row.user_id, merchant, amount)
    available = (await wallets_service.balance(ledger, row.user_id, CODE_CURRENCY)).available_minor
    if available < amount:
        raise InsufficientFunds("The customer's balance is not enough for this payment.",
                                param="amount_minor")
    intent = await service.create_intent(
        session, ledger, actor, amount_minor=amount, currency=CODE_CURRENCY,
        payment_method_types=[service.WALLET_METHOD], description=description,
        metadata={"source": METADATA_SOURCE, "code_last4": row.last4},
        intent_id=intent_id, idempotency_key=key)
    now = utcnow()
    # Spend the code with a guarded write: on PostgreSQL the row lock already serialises
    # charges of one code; on SQLite (no row locks) this is what lets only one through.
    spent = await session.execute(
        update(ConsumerCode).where(ConsumerCode.id == row.id, ConsumerCode.status == "active")
        .values(status=State.USED.value, used_at=now, merchant_id=merchant.id,
                intent_id=intent.id, amount_minor=amount))
    if spent.rowcount != 1:
        raise ConsumerCodeUsed(param="code")
    day = await wallets_service.reserve_outflow(session, user_id=row.user_id,
                                                amount_minor=amount, currency=CODE_CURRENCY)
    charge_row = service.start_charge(
        session, intent, charge_id=derived_id("payments.charge.consumer_code", row.id),
        merchant=merchant, payer=user, method=service.WALLET_METHOD, outflow_day=day)
    await session.flush()
    actor_type, actor_id = actor.audit_actor
    await audit.record(session, action="payments.consumer_code.charged", actor_type=actor_type,
                       actor_id=actor_id, subject_type="payment_intent",
                       subject_id=str(intent.id),
                       data={"consumer_code_id": str(row.id), "amount_minor": amount})
    await session.commit()  # the code is spent and the intent durable before money moves
    await service.submit_charge(session, ledger, charge_row, intent, raise_failure=True)
    return intent


async def _resume(session: AsyncSession, ledger: LedgerStore,
                  intent: PaymentIntent) -> PaymentIntent:
    """The same charge asked again (a retry, maybe after a crash): finish it or answer alike."""
    charge_row = await service.latest_charge(session, intent)
    if charge_row is None:  # crashed between the intent and the charge: nothing was spent
        raise ConsumerCodeExpired("This charge did not complete; ask for a new code.")
    if charge_row.status == "pending":
        await service.submit_charge(session, ledger, charge_row, intent, raise_failure=True)
    elif charge_row.status == "failed":
        raise InsufficientFunds(charge_row.failure_message or "Not enough money.") \
            if charge_row.failure_code == "insufficient_funds" \
            else PaymentRefused(charge_row.failure_message or "The payment could not be made.")
    return intent


async def _assess(session: AsyncSession, user_id: uuid.UUID, merchant: Merchant,
                  amount_minor: int) -> None:
    assessment = await risk_service.assess(session, user_id=user_id,
                                           action="payments.consumer_code",
                                           amount_minor=amount_minor, currency=CODE_CURRENCY,
                                           counterparty=service.merchant_owner_id(merchant.id))
    if assessment.decision in (risk_service.Decision.DENY, risk_service.Decision.REVIEW):
        raise PaymentRefused("This payment cannot be made.", reasons=list(assessment.reasons))
    if assessment.decision == risk_service.Decision.STEP_UP:
        raise ConsumerCodeConfirmationRequired(
            "Above this amount the customer confirms in the wallet: ask them to scan your "
            "payment QR code instead.", threshold_minor=risk_service.STEP_UP_THRESHOLD_MINOR,
            currency=CODE_CURRENCY)


async def _check_misses(session: AsyncSession, merchant_id: uuid.UUID) -> None:
    row = await session.get(ConsumerCodeMiss, merchant_id)
    if row is None:
        return
    elapsed = (utcnow() - row.window_started_at).total_seconds()
    if elapsed < MISS_WINDOW_S and row.misses >= MISSES_MAX:
        raise ConsumerCodeAttemptsExceeded(retry_after_s=int(MISS_WINDOW_S - elapsed) + 1)


async def _count_miss(session: AsyncSession, merchant_id: uuid.UUID) -> None:
    """Count an unknown code in a transaction of its own: the request's rolls back with its
    error, and the count must stay."""
    now = utcnow()
    log.info("unknown consumer code", extra={"merchant_id": str(merchant_id)})
    await session.rollback()  # only the code lock so far: give it back before writing
    async with AsyncSession(session.bind) as own:
        insert = pg_insert if own.bind.dialect.name == "postgresql" else sqlite_insert
        await own.execute(insert(ConsumerCodeMiss).values(
            merchant_id=merchant_id, window_started_at=now, misses=0).on_conflict_do_nothing())
        row = (await own.execute(select(ConsumerCodeMiss).where(
            ConsumerCodeMiss.merchant_id == merchant_id).with_for_update())).scalar_one()
        if (now - row.window_started_at).total_seconds() >= MISS_WINDOW_S:
            row.window_started_at, row.misses = now, 1
        else:
            row.misses += 1
        await own.commit()
