"""Funding use cases: link bank accounts; top up and withdraw through the core bank.

A top-up or withdrawal moves money exactly once whatever happens (docs/money-movement.md):

1. ``start_movement`` decides (ownership, risk and step-up, limits) and commits the intent:
   a ``pending`` row whose id derives from the user's idempotency key and whose ledger
   transfer ids, bank idempotency key and bank reference derive from that id.
2. ``advance`` places the two-phase ledger hold (top-up: bank settlement → wallet, shown as
   incoming; withdrawal: wallet → bank settlement, taken from what can be spent), counts the
   bank attempt (committed), then instructs the bank.
3. The outcome — from the bank's answer, its webhook, the polling job or ``bankwallet
   reconcile``, in any order, any number of times — goes through ``apply_outcome``: posted on
   success, voided on failure, a reversal transfer when the bank reverses. Ledger ids make
   every step safe to repeat; a compare-and-set on ``status`` makes exactly one caller record
   the outcome and publish ``money.moved``.

On SQLite the ledger writes through its own connection and SQLite has one writer, so the
session is committed before every ledger call (``_before_ledger``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import unicodedata
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from schwifty import IBAN
from schwifty import exceptions as iban_errors
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.connectors.corebanking.base import (
    CoreBanking,
    EventType,
    InstructionResult,
    InstructionStatus,
    VerificationStatus,
    WebhookPayloadInvalid,
)
from bankwallet.connectors.corebanking.base import WebhookEvent as BankEvent
from bankwallet.core import audit, outbox
from bankwallet.core.crypto import get_keyring
from bankwallet.core.db import utcnow
from bankwallet.core.idempotency import IdempotencyKeyReused
from bankwallet.core.ids import derived_id, uuid7
from bankwallet.funding import repository
from bankwallet.funding.errors import (
    BankAccountAlreadyLinked,
    BankAccountLinkedElsewhere,
    BankAccountNameMismatch,
    BankAccountNotFound,
    BankAccountUnknownAtBank,
    BankUnavailable,
    FailureModeNotAllowed,
    FundingRefused,
    HolderNameRequired,
    InsufficientFunds,
    InvalidBankAccountName,
    InvalidBankAccountNumber,
    InvalidCursor,
    MovementNotFound,
    TooManyBankAccounts,
    TooManyLinkAttempts,
)
from bankwallet.funding.models import (
    EVENT_ID_MAX_CHARS,
    INSTRUCTION_ID_MAX_CHARS,
    NUMBER_CONTEXT,
    REASON_MAX_CHARS,
    REFERENCE_MAX_CHARS,
    BankAccount,
    LinkAttempt,
    Movement,
    WebhookEvent,
)
from bankwallet.funding.schemas import AMOUNT_MAX_MINOR
from bankwallet.identity import kyc, mfa
from bankwallet.identity import service as identity_service
from bankwallet.ledger import service as ledger_service
from bankwallet.ledger.store import LedgerStore
from bankwallet.ledger.types import Outcome, Result, TransferFlags, TransferIn
from bankwallet.risk import service as risk_service
from bankwallet.settings import get_settings
from bankwallet.wallets import service as wallets_service
from bankwallet.wallets.codes import KIND_OF_CODE, Code

if TYPE_CHECKING:
    from bankwallet.identity.models import User

log = logging.getLogger("bankwallet.funding")

TOPUP: Final = "topup"
WITHDRAWAL: Final = "withdrawal"
KINDS: Final = (TOPUP, WITHDRAWAL)
BANK_ACCOUNTS_MAX: Final = 10
LINK_FAILURES_MAX: Final = 5
LINK_FAILURE_WINDOW_S: Final = 3600
PAGE_MAX: Final = 100
# A movement the bank never acknowledged is re-sent (same idempotency key) for this long;
# after it, a bank that still has no such instruction means it was never sent: it fails.
RESEND_MAX_AGE_S: Final = 3600
CHECK_BACKOFF_MAX_S: Final = 600.0
REVERSAL_DECISIONS_MAX: Final = 3
NUMBER_INDEX_CONTEXT: Final = "funding.bank_account_number"
CRASH_ENV: Final = "BANKWALLET_FUNDING_CRASH_AFTER_BANK_CALL"  # tests only; never in prod

FINAL: Final = ("failed", "reversed")


# -- bank account numbers (pure) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountNumber:
    number: str  # normalised: upper case, no spaces or dashes
    kind: str  # iban | card
    country: str | None

    @property
    def last4(self) -> str:
        return self.number[-4:]


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check that bank card and many account numbers carry."""
    assert digits.isascii() and digits.isdigit()
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


_IBAN_ERRORS: Final = (
    (iban_errors.InvalidCountryCode, "iban_country", "The IBAN's country code is unknown."),
    (iban_errors.InvalidLength, "iban_length",
     "The IBAN is too long or too short for its country."),
    (iban_errors.InvalidChecksumDigits, "iban_checksum",
     "The IBAN has a typo (its check digits do not match)."),
)


def parse_account_number(text: str) -> AccountNumber:
    """An IBAN (checked with schwifty) or a 16-19 digit bank card / account number (checked
    with Luhn), spaces and dashes removed; ``InvalidBankAccountNumber`` naming the reason."""
    number = re.sub(r"[\s-]", "", text or "").upper()
    if number.isascii() and number.isdigit():
        if not 16 <= len(number) <= 19:
            raise InvalidBankAccountNumber("length", "A bank card or account number has 16 "
                                                     "to 19 digits.")
        if not luhn_ok(number):
            raise InvalidBankAccountNumber("luhn", "The number has a typo (its check digit is "
                                                   "wrong).")
        return AccountNumber(number, "card", None)
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{1,32}", number):
        raise InvalidBankAccountNumber("format", "Enter an IBAN or a 16-19 digit bank card or "
                                                 "account number.")
    try:
        iban = IBAN(number)
    except iban_errors.SchwiftyException as exc:
        for kind, reason, detail in _IBAN_ERRORS:
            if isinstance(exc, kind):
                raise InvalidBankAccountNumber(reason, detail) from None  # type: ignore[arg-type]
        raise InvalidBankAccountNumber("iban_format", "The IBAN does not have its country's "
                                                      "format.") from None
    return AccountNumber(iban.compact, "iban", iban.country_code)


def number_index(number: str) -> bytes:
    return get_keyring().blind_index(number, context=NUMBER_INDEX_CONTEXT)


def clean_name(text: str | None, *, default: str) -> str:
    name = " ".join(unicodedata.normalize("NFC", text or "").split())
    if not name:
        return default
    if len(name) > 64 or any(unicodedata.category(c).startswith("C") for c in name):
        raise InvalidBankAccountName()
    return name


def default_name(parsed: AccountNumber) -> str:
    return f"{parsed.country} ····{parsed.last4}" if parsed.country else f"····{parsed.last4}"


def bank_display(last4: str) -> str:
    """How the bank account appears in the ledger's ``user_data`` (docs/money-movement.md)."""
    return f"Bank account ····{last4}"


# -- bank accounts ---------------------------------------------------------------------------


async def list_bank_accounts(session: AsyncSession, user_id: uuid.UUID) -> list[BankAccount]:
    return list(await repository.linked_bank_accounts(session, user_id,
                                                      limit=BANK_ACCOUNTS_MAX))


async def get_bank_account(session: AsyncSession, user_id: uuid.UUID,
                           bank_account_id: uuid.UUID) -> BankAccount:
    """One of the user's linked bank accounts; anyone else's is 'not found'."""
    account = await repository.bank_account_of(session, user_id, bank_account_id)
    if account is None:
        raise BankAccountNotFound()
    return account


async def verified_legal_name(session: AsyncSession, user: User) -> str | None:
    if user.kyc_tier < 1:
        return None
    application = await kyc.latest_application(session, user.id)
    if application is None or application.status != "approved":
        return None
    return kyc.view(application).legal_name


async def _check_link_attempts(session: AsyncSession, user_id: uuid.UUID) -> None:
    now = utcnow()
    window = dt.timedelta(seconds=LINK_FAILURE_WINDOW_S)
    failures, oldest = await repository.link_failures_since(session, user_id, now - window)
    if failures >= LINK_FAILURES_MAX:
        assert oldest is not None
        raise TooManyLinkAttempts(max(1, int((oldest + window - now).total_seconds()) + 1))


async def _link_failed(session: AsyncSession, user_id: uuid.UUID, outcome: str) -> None:
    """Count the failure and commit it before the error is raised (the request rolls back)."""
    session.add(LinkAttempt(id=uuid7(), user_id=user_id, outcome=outcome, at=utcnow()))
    await audit.record(session, action="funding.bank_account.verification_failed",
                       actor_type="user", actor_id=str(user_id), subject_type="user",
                       subject_id=str(user_id), data={"outcome": outcome})
    await session.commit()


async def link_bank_account(session: AsyncSession, bank: CoreBanking,
                            user: User, *, number: str, name: str | None,
                            holder_name: str | None) -> BankAccount:
    """Link a bank account once the bank confirms it is the user's (in their verified legal
    name when they have one, else the name they give). Raises tier 1 to tier 2."""
    parsed = parse_account_number(number)
    label = clean_name(name, default=default_name(parsed))
    await _check_link_attempts(session, user.id)
    index = number_index(parsed.number)
    existing = await repository.linked_by_index(session, index)
    if existing is not None:
        raise (BankAccountAlreadyLinked() if existing.user_id == user.id
               else BankAccountLinkedElsewhere())
    if await repository.count_linked(session, user.id) >= BANK_ACCOUNTS_MAX:
        raise TooManyBankAccounts(f"At most {BANK_ACCOUNTS_MAX} bank accounts can be linked.")
    legal_name = await verified_legal_name(session, user)
    holder = legal_name or " ".join((holder_name or "").split())
    if not holder:
        raise HolderNameRequired()
    result = await bank.verify_account(parsed.number, holder)
    if result.status is VerificationStatus.UNKNOWN:
        raise BankUnavailable()
    if result.status is VerificationStatus.NAME_MISMATCH:
        await _link_failed(session, user.id, "name_mismatch")
        raise BankAccountNameMismatch("The bank says this account is in another name.")
    if result.status is VerificationStatus.NOT_FOUND:
        await _link_failed(session, user.id, "not_found")
        raise BankAccountUnknownAtBank()
    assert result.verified
    now = utcnow()
    account = BankAccount(
        id=uuid7(), user_id=user.id, name=label, kind=parsed.kind, country=parsed.country,
        last4=parsed.last4,
        number_enc=get_keyring().encrypt(parsed.number, context=NUMBER_CONTEXT),
        number_index=index, number_claim=index, status="linked", verified_at=now,
        created_at=now, removed_at=None)
    session.add(account)
    try:
        await session.flush()
    except IntegrityError:  # linked by someone else a moment ago; the request rolls back
        raise BankAccountLinkedElsewhere() from None
    await audit.record(session, action="funding.bank_account.linked", actor_type="user",
                       actor_id=str(user.id), subject_type="bank_account",
                       subject_id=str(account.id),
                       data={"kind": parsed.kind, "last4": parsed.last4,
                             "verified_name": "legal" if legal_name else "given"})
    await outbox.publish(session, "bank_account.linked",
                         {"user_id": str(user.id), "bank_account_id": str(account.id)},
                         key=str(user.id))
    if legal_name and user.kyc_tier == 1:
        await kyc.grant_tier(session, user.id, 2,
                             reason="bank account verified in the verified legal name")
    return account


async def rename_bank_account(session: AsyncSession, user_id: uuid.UUID,
                              bank_account_id: uuid.UUID, *, name: str) -> BankAccount:
    account = await get_bank_account(session, user_id, bank_account_id)
    account.name = clean_name(name, default=account.name)
    await session.flush()
    await audit.record(session, action="funding.bank_account.renamed", actor_type="user",
                       actor_id=str(user_id), subject_type="bank_account",
                       subject_id=str(account.id))
    return account


async def remove_bank_account(session: AsyncSession, user_id: uuid.UUID,
                              bank_account_id: uuid.UUID) -> None:
    """Unlink it. Movements in progress finish (the row keeps the number they need)."""
    account = await get_bank_account(session, user_id, bank_account_id)
    account.status, account.number_claim, account.removed_at = "removed", None, utcnow()
    await session.flush()
    await audit.record(session, action="funding.bank_account.removed", actor_type="user",
                       actor_id=str(user_id), subject_type="bank_account",
                       subject_id=str(account.id))
    await outbox.publish(session, "bank_account.removed",
                         {"user_id": str(user_id), "bank_account_id": str(account.id)},
                         key=str(user_id))


# -- movements: ids and ledger transfers (pure) ----------------------------------------------


def movement_id(kind: str, user_id: uuid.UUID, key: str) -> uuid.UUID:
    """Derived from the idempotency key: a retry after a crash finds the same row."""
    assert kind in KINDS
    return derived_id(f"funding.{kind}", user_id, key)


async def movement_exists(session: AsyncSession, kind: str, user_id: uuid.UUID,
                          key: str) -> bool:
    return await repository.movement(session, movement_id(kind, user_id, key)) is not None


def bank_idempotency_key(m: Movement) -> str:
    return f"bw-{derived_id('funding.bank', m.id)}"


def reference_of(kind: str, mid: uuid.UUID) -> str:
    return f"bankwallet-{kind}-{mid}"


def _code(m: Movement) -> Code:
    return Code.TOPUP if m.kind == TOPUP else Code.WITHDRAWAL


def _reversal_code(m: Movement) -> Code:
    return Code.TOPUP_REVERSAL if m.kind == TOPUP else Code.WITHDRAWAL_RETURN


def _user_data(m: Movement, code: Code, *, reverse: bool = False) -> dict[str, str]:
    source, target = ((m.to_display, m.from_display) if reverse
                      else (m.from_display, m.to_display))
    return {"kind": KIND_OF_CODE[code], "ref": str(m.id), "from": source, "to": target}


def _hold_accounts(m: Movement) -> tuple[uuid.UUID, uuid.UUID]:
    """(debit, credit) of the hold: money comes from the bank or goes to it."""
    wallet = wallets_service.wallet_account_id(m.user_id, m.currency)
    bank = wallets_service.system_account_id(wallets_service.SystemAccount.BANK_SETTLEMENT,
                                             m.currency)
    return (bank, wallet) if m.kind == TOPUP else (wallet, bank)


def hold_transfer(m: Movement) -> TransferIn:
    # No timeout: a hold waits for the bank's outcome however late; nothing expires silently.
    debit, credit = _hold_accounts(m)
    return TransferIn(id=m.hold_transfer_id, debit_account_id=debit, credit_account_id=credit,
                      amount=m.amount_minor, ledger=m.currency, code=int(_code(m)),
                      flags=int(TransferFlags.PENDING), user_data=_user_data(m, _code(m)))


def post_transfer(m: Movement) -> TransferIn:
    return TransferIn(id=m.post_transfer_id, pending_id=m.hold_transfer_id,
                      flags=int(TransferFlags.POST_PENDING), user_data=_user_data(m, _code(m)))


def void_transfer(m: Movement) -> TransferIn:
    return TransferIn(id=m.void_transfer_id, pending_id=m.hold_transfer_id,
                      flags=int(TransferFlags.VOID_PENDING), user_data=_user_data(m, _code(m)))


def reversal_transfer(m: Movement) -> TransferIn:
    assert m.reversal_transfer_id is not None and m.reversal_amount_minor
    debit, credit = _hold_accounts(m)
    code = _reversal_code(m)
    return TransferIn(id=m.reversal_transfer_id, debit_account_id=credit,
                      credit_account_id=debit, amount=m.reversal_amount_minor,
                      ledger=m.currency, code=int(code),
                      user_data=_user_data(m, code, reverse=True))


def _moved_event(m: Movement, status: str, transfer_id: uuid.UUID) -> dict[str, object]:
    """``money.moved`` as docs/money-movement.md describes it."""
    user = str(m.user_id)
    return {"kind": m.kind, "status": status, "ref": str(m.id), "amount_minor": m.amount_minor,
            "currency": m.currency, "ledger_transfer_id": str(transfer_id),
            "payer_user_id": user if m.kind == WITHDRAWAL else None,
            "payee_user_id": user if m.kind == TOPUP else None,
            "from": m.from_display, "to": m.to_display}


def _check_delay_s(checks: int) -> float:
    after_s = get_settings().corebanking_poll_after_s
    return min(CHECK_BACKOFF_MAX_S, max(after_s, 1.0) * 2 ** min(checks, 10))


# -- movements: starting one -----------------------------------------------------------------


async def require_step_up_if_risky(session: AsyncSession, auth: identity_service.Authenticated,
                                   *, kind: str, amount_minor: int, currency: str,
                                   counterparty: str | None = None) -> None:
    """Ask the risk service; above the threshold a fresh second factor is needed. Read-only,
    so routes call it before claiming the idempotency key (a retry after the step-up must
    not replay the refusal)."""
    assessment = await risk_service.assess(session, user_id=auth.user.id, action=kind,
                                           amount_minor=amount_minor, currency=currency,
                                           counterparty=counterparty)
    if assessment.decision in (risk_service.Decision.DENY, risk_service.Decision.REVIEW):
        raise FundingRefused()
    if assessment.decision is risk_service.Decision.STEP_UP:
        await mfa.ensure_recent_second_factor(session, auth)


async def start_movement(session: AsyncSession, ledger: LedgerStore, bank: CoreBanking,
                         auth: identity_service.Authenticated, *, kind: str, key: str,
                         bank_account_id: uuid.UUID, amount_minor: int, currency: str,
                         failure_mode: str | None = None) -> Movement:
    """Top up from, or withdraw to, one of the user's linked bank accounts. The same ``key``
    always means the same movement: a retry continues it rather than starting another."""
    assert kind in KINDS and amount_minor > 0
    user = auth.user
    mid = movement_id(kind, user.id, key)
    existing = await repository.movement(session, mid)
    if existing is not None:
        if (existing.bank_account_id, existing.amount_minor, existing.currency) != (
                bank_account_id, amount_minor, currency.upper()):
            raise IdempotencyKeyReused()
        return await _continue(session, ledger, bank, existing)
    currency = wallets_service.supported(currency)
    if failure_mode is not None and get_settings().env == "prod":
        raise FailureModeNotAllowed()
    account = await get_bank_account(session, user.id, bank_account_id)
    await require_step_up_if_risky(session, auth, kind=kind, amount_minor=amount_minor,
                                   currency=currency, counterparty=str(account.id))
    day = None
    if kind == TOPUP:
        await wallets_service.check_inflow(session, ledger, user_id=user.id,
                                           amount_minor=amount_minor, currency=currency)
    else:
        day = await wallets_service.reserve_outflow(session, user_id=user.id,
                                                    amount_minor=amount_minor,
                                                    currency=currency)
    owner, other = mfa.masked_login(user), bank_display(account.last4)
    now = utcnow()
    m = Movement(
        id=mid, kind=kind, user_id=user.id, bank_account_id=account.id,
        amount_minor=amount_minor, currency=currency, status="pending", bank_status="none",
        reference=reference_of(kind, mid), instruction_id=None, bank_attempts=0,
        failure_mode=failure_mode, failure_reason=None,
        hold_transfer_id=derived_id("funding.hold", mid),
        post_transfer_id=derived_id("funding.post", mid),
        void_transfer_id=derived_id("funding.void", mid),
        reversal_transfer_id=None, reversal_amount_minor=None, shortfall_minor=0,
        outflow_day=day, from_display=other if kind == TOPUP else owner,
        to_display=owner if kind == TOPUP else other, created_at=now, updated_at=now,
        settled_at=None, next_check_at=now + dt.timedelta(seconds=_check_delay_s(0)), checks=0)
    session.add(m)
    try:
        await session.flush()
    except IntegrityError:  # the same key, submitted twice at once: the other one won
        await session.rollback()
        found = await repository.movement(session, mid)
        assert found is not None
        return await _continue(session, ledger, bank, found)
    await audit.record(session, action=f"funding.{kind}.requested", actor_type="user",
                       actor_id=str(user.id), subject_type=kind, subject_id=str(mid),
                       data={"amount_minor": amount_minor, "currency": currency})
    await session.commit()  # the intent is durable before any money moves
    return await _continue(session, ledger, bank, m)


async def _continue(session: AsyncSession, ledger: LedgerStore, bank: CoreBanking,
                    m: Movement) -> Movement:
    if m.status == "pending" and m.instruction_id is None and m.bank_status in ("none",
                                                                                "unknown"):
        await advance(session, ledger, bank, m.id)
    found = await repository.movement(session, m.id)
    assert found is not None
    if found.status == "failed" and found.failure_reason == "insufficient_funds" \
            and found.bank_attempts == 0:
        raise InsufficientFunds(movement_id=str(found.id))
    return found


async def _before_ledger(session: AsyncSession) -> None:
    """Nothing of ours may hold SQLite's write lock while the ledger writes."""
    await session.commit()


async def _submit(session: AsyncSession, ledger: LedgerStore,
                  transfers: list[TransferIn]) -> list[Outcome]:
    await _before_ledger(session)
    return await ledger_service.submit(ledger, transfers)


async def advance(session: AsyncSession, ledger: LedgerStore, bank: CoreBanking,
                  mid: uuid.UUID) -> None:
    """Place the hold and instruct the bank (same idempotency key every time: the bank
    answers a repeat with its first answer)."""
    await _before_ledger(session)
    m = await repository.movement(session, mid)
    if m is None or m.status != "pending":
        return
    await wallets_service.open_wallet(ledger, m.user_id, m.currency)
    (held,) = await _submit(session, ledger, [hold_transfer(m)])
    if not held.ok:
        if m.bank_attempts == 0:  # the bank was never asked: nothing moved anywhere
            reason = ("insufficient_funds" if held.result is Result.EXCEEDS_CREDITS
                      else f"ledger_{held.result.value}")
            await _fail(session, m.id, reason=reason, transfer_id=m.hold_transfer_id)
            await session.commit()  # decided: a retry or the typed error replays it
            return
        log.error("a funding hold could not be placed after the bank was asked",
                  extra={"movement_id": str(m.id), "result": held.result.value})
        return
    await repository.count_bank_attempt(session, m.id)
    await session.commit()  # counted before the call: after a crash it reads "maybe sent"
    m = await repository.movement(session, mid)
    if m is None or m.status != "pending":  # settled meanwhile (a webhook, the poller)
        return
    number = await _number_of(session, m)
    send = bank.debit if m.kind == TOPUP else bank.credit
    result = await send(bank_idempotency_key(m), number, m.amount_minor, m.currency,
                        m.reference, failure_mode=m.failure_mode)
    _crash_point()
    await record_result(session, ledger, m, result)


def _crash_point() -> None:
    """Failure injection for the crash tests: exit hard between "the bank moved money" and
    "the ledger knows", as a power cut would. Ignored in production."""
    if os.environ.get(CRASH_ENV) == "1" and get_settings().env != "prod":
        os._exit(137)


async def _number_of(session: AsyncSession, m: Movement) -> str:
    account = await session.get(BankAccount, m.bank_account_id)
    assert account is not None, "a movement's bank account row is never deleted"
    return get_keyring().decrypt(account.number_enc, context=NUMBER_CONTEXT).decode()


# -- movements: the bank's answer ------------------------------------------------------------


async def record_result(session: AsyncSession, ledger: LedgerStore, m: Movement,
                        result: InstructionResult) -> None:
    """What the bank answered (to an instruction or a question about one)."""
    status = result.status
    if status is InstructionStatus.FAILED and result.retryable and m.bank_attempts > 1:
        # This attempt never reached the bank, but an earlier one may have: ask again later.
        status = InstructionStatus.UNKNOWN
    if result.instruction_id and m.instruction_id is None:
        await repository.update_movement(session, m.id, instruction_id=result.instruction_id)
        await session.commit()
    if status in (InstructionStatus.PENDING, InstructionStatus.UNKNOWN):
        await repository.update_pending(
            session, m.id, bank_status=status.value, checks=m.checks + 1,
            next_check_at=utcnow() + dt.timedelta(seconds=_check_delay_s(m.checks)))
        return
    await apply_outcome(session, ledger, m.id, status, reason=result.reason)


async def apply_outcome(session: AsyncSession, ledger: LedgerStore, mid: uuid.UUID,
                        status: InstructionStatus, *, reason: str | None = None) -> str:
    """Apply the bank's final word on a movement; safe to call any number of times, in any
    order. Returns ``applied``, ``already`` or ``inconsistent`` (logged: operations look)."""
    assert status in (InstructionStatus.SUCCEEDED, InstructionStatus.FAILED,
                      InstructionStatus.REVERSED)
    # No row lock is held across the ledger calls (SQLite's writer would wait on itself):
    # ledger ids make each step idempotent and ``transition`` lets one caller record it.
    await _before_ledger(session)
    m = await repository.movement(session, mid)
    assert m is not None
    if status is InstructionStatus.SUCCEEDED:
        return await _succeed(session, ledger, m)
    if status is InstructionStatus.FAILED:
        if m.status != "pending":
            return _inconsistent(m, "failed") if m.status == "succeeded" else "already"
        (voided,) = await _submit(session, ledger, [void_transfer(m)])
        if not voided.ok and voided.result is not Result.PENDING_TRANSFER_NOT_FOUND:
            return _inconsistent(m, f"void_{voided.result.value}")
        won = await _fail(session, m.id, reason=_reason(reason), transfer_id=m.void_transfer_id,
                          bank_status="failed")
        return "applied" if won else "already"
    return await _reverse(session, ledger, m, reason=reason)


async def _audit_outcome(session: AsyncSession, m: Movement, status: str,
                         **data: object) -> None:
    await audit.record(session, action=f"funding.{m.kind}.{status}", actor_type="system",
                       subject_type=m.kind, subject_id=str(m.id),
                       data={"user_id": str(m.user_id), "amount_minor": m.amount_minor,
                             "currency": m.currency, **data})


def _reason(reason: str | None) -> str:
    return (reason or "declined")[:REASON_MAX_CHARS]


def _inconsistent(m: Movement, what: str) -> str:
    log.error("the bank's outcome contradicts the movement's state",
              extra={"movement_id": str(m.id), "status": m.status, "outcome": what})
    return "inconsistent"


async def _post(session: AsyncSession, ledger: LedgerStore, m: Movement) -> bool:
    _, posted = await _submit(session, ledger, [hold_transfer(m), post_transfer(m)])
    if not posted.ok:
        _inconsistent(m, f"post_{posted.result.value}")
        return False
    return True


async def _succeed(session: AsyncSession, ledger: LedgerStore, m: Movement) -> str:
    if m.status != "pending":
        return _inconsistent(m, "succeeded") if m.status == "failed" else "already"
    if not await _post(session, ledger, m):
        return "inconsistent"
    now = utcnow()
    if not await repository.transition(session, m.id, from_=("pending",), to="succeeded",
                                       bank_status="succeeded", settled_at=now):
        return "already"
    await _audit_outcome(session, m, "succeeded")
    await outbox.publish(session, "money.moved", _moved_event(m, "posted", m.post_transfer_id),
                         key=str(m.user_id))
    await outbox.publish(session, f"{m.kind}.settled",
                         {"id": str(m.id), "user_id": str(m.user_id),
                          "amount_minor": m.amount_minor, "currency": m.currency},
                         key=str(m.user_id))
    return "applied"


async def _fail(session: AsyncSession, mid: uuid.UUID, *, reason: str, transfer_id: uuid.UUID,
                bank_status: str | None = None) -> bool:
    """Record a failure (the hold is voided or was never placed); a withdrawal gives its
    daily outflow back."""
    m = await repository.movement(session, mid)
    assert m is not None
    values: dict[str, object] = {"failure_reason": reason, "settled_at": utcnow()}
    if bank_status is not None:
        values["bank_status"] = bank_status
    if not await repository.transition(session, mid, from_=("pending",), to="failed", **values):
        return False
    if m.kind == WITHDRAWAL and m.outflow_day is not None:
        await wallets_service.release_outflow(session, user_id=m.user_id,
                                              amount_minor=m.amount_minor,
                                              currency=m.currency, day=m.outflow_day)
    await _audit_outcome(session, m, "failed", reason=reason)
    await outbox.publish(session, "money.moved", _moved_event(m, "failed", transfer_id),
                         key=str(m.user_id))
    return True


async def _reverse(session: AsyncSession, ledger: LedgerStore, m: Movement, *,
                   reason: str | None) -> str:
    """The bank moved the money back. A hold still pending is posted first (a reversal can
    overtake its success), then the reversal transfer gives back what the wallet holds; what
    it no longer holds is recorded as a shortfall for operations."""
    if m.status in FINAL:
        return _inconsistent(m, "reversed") if m.status == "failed" else "already"
    if not await _post(session, ledger, m):
        return "inconsistent"
    for _ in range(REVERSAL_DECISIONS_MAX):
        m = await _decide_reversal(session, ledger, m)
        if not m.reversal_amount_minor:
            break
        (reversed_,) = await _submit(session, ledger, [reversal_transfer(m)])
        if reversed_.ok:
            break
        if reversed_.result is not Result.EXCEEDS_CREDITS:
            return _inconsistent(m, f"reversal_{reversed_.result.value}")
        # The wallet spent the money between the decision and the transfer: decide again
        # (a refused transfer is never stored, so its id may be replaced).
        assert m.reversal_transfer_id is not None
        await repository.forget_reversal(session, m.id, m.reversal_transfer_id)
        await session.commit()
        m = await repository.movement(session, m.id)  # type: ignore[assignment]
    else:
        return _inconsistent(m, "reversal_undecided")
    shortfall = m.amount_minor - (m.reversal_amount_minor or 0)
    if not await repository.transition(
            session, m.id, from_=("pending", "succeeded"), to="reversed",
            bank_status="reversed", shortfall_minor=shortfall,
            failure_reason=(reason or "reversed")[:REASON_MAX_CHARS],
            settled_at=m.settled_at or utcnow()):
        return "already"
    await _audit_outcome(session, m, "reversed", shortfall_minor=shortfall)
    await outbox.publish(session, "money.moved",
                         _moved_event(m, "reversed", m.reversal_transfer_id
                                      or m.post_transfer_id), key=str(m.user_id))
    if shortfall:
        log.warning("a reversed top-up left a shortfall",
                    extra={"movement_id": str(m.id), "shortfall_minor": shortfall})
        await audit.record(session, action="funding.shortfall", actor_type="system",
                           subject_type=m.kind, subject_id=str(m.id),
                           data={"user_id": str(m.user_id), "shortfall_minor": shortfall,
                                 "currency": m.currency})
        await outbox.publish(session, "funding.shortfall",
                             {"movement_id": str(m.id), "user_id": str(m.user_id),
                              "shortfall_minor": shortfall, "currency": m.currency},
                             key=str(m.user_id))
    return "applied"


async def _decide_reversal(session: AsyncSession, ledger: LedgerStore, m: Movement) -> Movement:
    """The reversal's amount and id, committed before the transfer is submitted: a crash in
    between resubmits exactly the decided transfer, never a second one."""
    if m.reversal_amount_minor is not None:
        return m
    amount = m.amount_minor
    if m.kind == TOPUP:  # the money came into the wallet: it may have been spent since
        held = await wallets_service.balance(ledger, m.user_id, m.currency)
        amount = max(0, min(amount, held.available_minor))
    await repository.decide_reversal(
        session, m.id, amount_minor=amount,
        transfer_id=derived_id("funding.reversal", m.id, amount) if amount else None)
    await session.commit()
    found = await repository.movement(session, m.id)
    assert found is not None
    return found


# -- checking on pending movements (the polling job and reconciliation) ----------------------


async def check_movement(session: AsyncSession, ledger: LedgerStore, bank: CoreBanking,
                         mid: uuid.UUID) -> None:
    """Ask the bank about a pending movement and apply what it says; never gives up on a
    movement the bank may have acted on."""
    m = await repository.movement(session, mid)
    if m is None or m.status != "pending":
        return
    if m.instruction_id is None and m.bank_attempts == 0:
        await advance(session, ledger, bank, mid)  # the intent committed, then a crash
        return
    result: InstructionResult | None
    if m.instruction_id is not None:
        result = await bank.get_instruction(m.instruction_id)
    else:
        result = None
    if result is None:
        result = await bank.find_by_reference(m.reference)
    if result is None:
        age_s = (utcnow() - m.created_at).total_seconds()
        if age_s < RESEND_MAX_AGE_S:
            await advance(session, ledger, bank, mid)  # never reached the bank: send again
        else:
            await apply_outcome(session, ledger, mid, InstructionStatus.FAILED,
                                reason="not_sent")
        return
    await record_result(session, ledger, m, result)


# -- webhooks --------------------------------------------------------------------------------


async def receive_event(session: AsyncSession, ledger: LedgerStore, event: BankEvent) -> str:
    """A verified bank event: recorded by id first (a redelivery has no second effect), then
    applied. Returns ``applied``, ``duplicate`` or ``ignored``."""
    if (not 0 < len(event.id) <= EVENT_ID_MAX_CHARS
            or not 0 < len(event.instruction_id) <= INSTRUCTION_ID_MAX_CHARS
            or not 0 < len(event.reference) <= REFERENCE_MAX_CHARS
            or len(event.currency) != 3 or not 0 < event.amount_minor <= AMOUNT_MAX_MINOR):
        raise WebhookPayloadInvalid("The bank event's fields are out of bounds.")
    now = utcnow()
    async with AsyncSession(session.bind) as own:  # seen at once by a concurrent redelivery
        inserted = await own.execute(repository.insert_for(own)(WebhookEvent).values(
            id=event.id, type=event.type.value, instruction_id=event.instruction_id,
            reference=event.reference, amount_minor=event.amount_minor,
            currency=event.currency, reason=event.reason[:REASON_MAX_CHARS] if event.reason else None,
            movement_id=None, outcome=None, received_at=now, processed_at=None)
            .on_conflict_do_nothing())
        await own.commit()
    row = await repository.event(session, event.id)
    assert row is not None
    if inserted.rowcount != 1 and row.processed_at is not None:
        return "duplicate"
    return await apply_event(session, ledger, row)


async def apply_event(session: AsyncSession, ledger: LedgerStore, row: WebhookEvent) -> str:
    event_type = EventType(row.type)
    m = await repository.movement_by_reference(session, row.reference)
    outcome = "applied"
    if m is None:
        log.warning("a bank event about no movement of ours",
                    extra={"event_id": row.id, "type": row.type})
        outcome = "unknown"
    elif (event_type.kind.value != ("debit" if m.kind == TOPUP else "credit")
          or row.amount_minor != m.amount_minor or row.currency != m.currency):
        log.error("a bank event does not match its movement",
                  extra={"event_id": row.id, "movement_id": str(m.id)})
        outcome = "mismatch"
    else:
        if m.instruction_id is None:
            await repository.update_movement(session, m.id, instruction_id=row.instruction_id)
        await apply_outcome(session, ledger, m.id, event_type.status, reason=row.reason)
    await repository.event_done(session, row.id, outcome=outcome,
                                movement_id=m.id if m is not None else None)
    return "applied" if outcome == "applied" else "ignored"


async def reapply_event(session: AsyncSession, ledger: LedgerStore, event_id: str) -> None:
    """An event whose processing was interrupted (the process died mid-way)."""
    row = await repository.event(session, event_id)
    if row is not None and row.processed_at is None:
        await apply_event(session, ledger, row)


# -- reads -----------------------------------------------------------------------------------


async def get_movement(session: AsyncSession, user_id: uuid.UUID, kind: str,
                       mid: uuid.UUID) -> Movement:
    m = await repository.movement_of(session, user_id=user_id, kind=kind, movement_id=mid)
    if m is None:
        raise MovementNotFound()
    return m


async def list_movements(session: AsyncSession, user_id: uuid.UUID, kind: str, *,
                         cursor: str | None, limit: int) -> tuple[list[Movement], str | None]:
    before = None
    if cursor:
        try:
            before = await repository.movement_of(session, user_id=user_id, kind=kind,
                                                  movement_id=uuid.UUID(cursor))
        except ValueError:
            before = None
        if before is None:
            raise InvalidCursor()
    limit = max(1, min(limit, PAGE_MAX))
    page = list(await repository.movements_page(session, user_id=user_id, kind=kind,
                                                before=before, limit=limit + 1))
    more = len(page) > limit
    page = page[:limit]
    return page, (str(page[-1].id) if more and page else None)


async def last4_of(session: AsyncSession, movements: list[Movement]) -> dict[uuid.UUID, str]:
    return await repository.last4_of(session, {m.bank_account_id for m in movements})
