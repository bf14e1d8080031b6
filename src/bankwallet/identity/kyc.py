"""KYC tiers, the limits each tier allows, and identity-verification applications.

Tiers:

- 0 — a verified phone number or e-mail address (every signed-up user);
- 1 — identity verified: legal name, national id (China's resident identity number) and
  birth date, reviewed by staff (risk, operations or admin);
- 2 — a linked bank account in the verified name; the funding domain calls
  ``grant_tier(session, user_id, 2, reason=...)``.

Money-moving services ask one question before they move money::

    await kyc.check_limits(session, user_id=user.id, amount_minor=amount, currency="CNY",
                           outflow_today_minor=spent_today, balance_after_minor=after)

which raises ``LimitExceeded`` (422 ``limit_exceeded``) naming the limit and what is left.
The limits live in ``TIER_LIMITS`` and nowhere else.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Final, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.core import audit, outbox
from bankwallet.core.crypto import get_keyring, register_encrypted_column
from bankwallet.core.db import utcnow
from bankwallet.core.errors import BankwalletError, Conflict, InvalidInput, NotFound
from bankwallet.core.ids import uuid7
from bankwallet.core.money import check_currency
from bankwallet.identity.models import KycApplication, User

LIMITS_CURRENCY: Final = "CNY"
MAX_TIER: Final = 2
LEGAL_NAME_MAX_CHARS: Final = 64
REASON_MAX_CHARS: Final = 500
QUEUE_PAGE_MAX: Final = 100
STATUSES: Final = ("pending", "approved", "rejected")

_NAME_CONTEXT: Final = "identity_kyc_application.legal_name"
_ID_CONTEXT: Final = "identity_kyc_application.national_id"
_BIRTH_CONTEXT: Final = "identity_kyc_application.birth_date"
_ID_INDEX_CONTEXT: Final = "identity.national_id"

register_encrypted_column("identity_kyc_application", "legal_name_enc", context=_NAME_CONTEXT)
register_encrypted_column("identity_kyc_application", "national_id_enc", context=_ID_CONTEXT)
register_encrypted_column("identity_kyc_application", "birth_date_enc", context=_BIRTH_CONTEXT)


# -- limits --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    """What one tier allows, in minor units of ``LIMITS_CURRENCY``."""

    single_minor: int  # one payment
    daily_minor: int  # money out per calendar day
    balance_minor: int  # the wallet's balance cap
    currency: str = LIMITS_CURRENCY


# The one place the limits are kept (CNY fen).
TIER_LIMITS: Final[dict[int, Limits]] = {
    0: Limits(single_minor=500_00, daily_minor=1_000_00, balance_minor=2_000_00),
    1: Limits(single_minor=50_000_00, daily_minor=100_000_00, balance_minor=200_000_00),
    2: Limits(single_minor=200_000_00, daily_minor=500_000_00, balance_minor=1_000_000_00),
}
assert set(TIER_LIMITS) == set(range(MAX_TIER + 1))


def limits_for(tier: int) -> Limits:
    assert tier in TIER_LIMITS, f"unknown KYC tier {tier}"
    return TIER_LIMITS[tier]


class LimitExceeded(BankwalletError):
    code = "limit_exceeded"
    status = 422
    title = "This is over your limit"

    def __init__(self, limit: Literal["single", "daily", "balance"], *, limit_minor: int,
                 remaining_minor: int, currency: str, tier: int) -> None:
        super().__init__(f"Over the {limit} limit of your verification level.", limit=limit,
                         limit_minor=limit_minor, remaining_minor=remaining_minor,
                         currency=currency, tier=tier)


class LimitCurrencyUnsupported(InvalidInput):
    code = "limit_currency_unsupported"
    title = "Limits are not defined for this currency"


def evaluate_limits(limits: Limits, *, tier: int, amount_minor: int, outflow_today_minor: int,
                    balance_after_minor: int, outflow: bool = True) -> None:
    """The pure rule behind ``check_limits``."""
    assert amount_minor > 0 and outflow_today_minor >= 0
    if outflow:
        if amount_minor > limits.single_minor:
            raise LimitExceeded("single", limit_minor=limits.single_minor,
                                remaining_minor=limits.single_minor,
                                currency=limits.currency, tier=tier)
        if outflow_today_minor + amount_minor > limits.daily_minor:
            raise LimitExceeded("daily", limit_minor=limits.daily_minor,
                                remaining_minor=max(0, limits.daily_minor - outflow_today_minor),
                                currency=limits.currency, tier=tier)
    # Money going out never makes a balance "too high" (a wallet above the cap after a
    # downgrade may still spend), so the cap is checked only for money coming in.
    elif balance_after_minor > limits.balance_minor:
        before = balance_after_minor - amount_minor
        raise LimitExceeded("balance", limit_minor=limits.balance_minor,
                            remaining_minor=max(0, limits.balance_minor - before),
                            currency=limits.currency, tier=tier)


async def check_limits(session: AsyncSession, *, user_id: uuid.UUID, amount_minor: int,
                       currency: str, outflow_today_minor: int, balance_after_minor: int,
                       outflow: bool = True) -> None:
    """Raise ``LimitExceeded`` unless the user's tier allows this movement.

    ``outflow=True`` (payments, transfers out, withdrawals) checks the single-payment and daily
    limits; ``outflow=False`` (top-ups, money received) checks the balance cap.
    """
    if check_currency(currency) != LIMITS_CURRENCY:
        raise LimitCurrencyUnsupported(f"Wallet limits are set in {LIMITS_CURRENCY} only.")
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    evaluate_limits(limits_for(user.kyc_tier), tier=user.kyc_tier, amount_minor=amount_minor,
                    outflow_today_minor=outflow_today_minor,
                    balance_after_minor=balance_after_minor, outflow=outflow)


# -- China's resident identity number (GB 11643-1999) -----------------------------------------

NationalIdReason = Literal["length", "format", "region", "birth_date", "birth_date_mismatch",
                           "checksum"]
_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS: Final = "10X98765432"  # indexed by (Σ weight·digit) mod 11
_ID_RE: Final = re.compile(r"^\d{17}[\dX]$", re.ASCII)
# First digit of the administrative division code: 1-6 regions of the mainland, 7 Taiwan,
# 8 Hong Kong / Macao (residence permits); 0 and 9 are not issued.
_REGION_FIRST_DIGITS: Final = frozenset("12345678")
BIRTH_YEAR_MIN: Final = 1900


class InvalidNationalId(InvalidInput):
    code = "invalid_national_id"
    title = "Not a valid resident identity number"

    def __init__(self, reason: NationalIdReason, detail: str) -> None:
        super().__init__(detail, reason=reason)
        self.reason = reason


def check_digit(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits ("X" stands for 10)."""
    assert len(first17) == 17 and first17.isdigit()
    return _CHECK_CHARS[sum(w * int(d) for w, d in zip(_WEIGHTS, first17, strict=True)) % 11]


def parse_national_id(text: str, *, birth_date: dt.date | None = None,
                      today: dt.date | None = None) -> str:
    """The normalised 18-character number (upper-case X), or ``InvalidNationalId``."""
    value = re.sub(r"[\s-]", "", text or "").upper()
    if len(value) != 18:
        raise InvalidNationalId("length", "A resident identity number has 18 characters.")
    if not _ID_RE.match(value):
        raise InvalidNationalId("format", "Use 17 digits followed by a digit or X.")
    if value[0] not in _REGION_FIRST_DIGITS:
        raise InvalidNationalId("region", "The number does not start with a region code.")
    born = _birth_date_in(value)
    today = today or utcnow().date()
    if born is None or born.year < BIRTH_YEAR_MIN or born > today:
        raise InvalidNationalId("birth_date", "The birth date inside the number is not valid.")
    if birth_date is not None and born != birth_date:
        raise InvalidNationalId("birth_date_mismatch",
                                "The birth date does not match the identity number.")
    if check_digit(value[:17]) != value[17]:
        raise InvalidNationalId("checksum", "The number has a typo (the check digit is wrong).")
    return value


def _birth_date_in(value: str) -> dt.date | None:
    try:
        return dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return None


def mask_national_id(value: str) -> str:
    """Region and check digit only, as printed on receipts: ``110105**********5X``."""
    return f"{value[:6]}{'*' * 10}{value[16:]}"


# -- applications --------------------------------------------------------------------------


class InvalidLegalName(InvalidInput):
    code = "invalid_legal_name"
    title = "Enter your name as on your identity card"


class KycAlreadyVerified(Conflict):
    code = "kyc_already_verified"
    title = "Your identity is already verified"


class KycApplicationPending(Conflict):
    code = "kyc_application_pending"
    title = "An application is already being reviewed"


class NationalIdInUse(Conflict):
    code = "national_id_in_use"
    title = "This identity number is registered to another account"


class KycAlreadyDecided(Conflict):
    code = "kyc_already_decided"
    title = "This application has been decided already"


class ReasonRequired(InvalidInput):
    code = "reason_required"
    title = "Give a reason"


class KycTierOrder(Conflict):
    code = "kyc_tier_order"
    title = "The previous verification level is needed first"


@dataclass(frozen=True, slots=True)
class ApplicationView:
    """An application with its personal data decrypted (for its owner and reviewers)."""

    id: uuid.UUID
    user_id: uuid.UUID
    status: str
    legal_name: str
    national_id_masked: str
    birth_date: dt.date
    submitted_at: dt.datetime
    decided_at: dt.datetime | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class KycStatus:
    tier: int
    limits: Limits
    application: ApplicationView | None


def clean_legal_name(text: str) -> str:
    """NFC, inner whitespace collapsed; letters (any script), spaces, and · ' - . only."""
    name = " ".join(unicodedata.normalize("NFC", text or "").split())
    if not name or len(name) > LEGAL_NAME_MAX_CHARS:
        raise InvalidLegalName(f"Enter 1-{LEGAL_NAME_MAX_CHARS} characters.")
    if not all(c.isalpha() or c in " ·'-." for c in name):
        raise InvalidLegalName("Use letters only, as printed on your identity card.")
    return name


def clean_reason(text: str | None, *, required: bool) -> str | None:
    reason = " ".join((text or "").split())[:REASON_MAX_CHARS] or None
    if required and reason is None:
        raise ReasonRequired("Say why, so the customer and the auditors know.")
    return reason


def national_id_index(value: str) -> bytes:
    return get_keyring().blind_index(value, context=_ID_INDEX_CONTEXT)


def view(application: KycApplication) -> ApplicationView:
    keyring = get_keyring()
    national_id = keyring.decrypt(application.national_id_enc, context=_ID_CONTEXT).decode()
    return ApplicationView(
        id=application.id, user_id=application.user_id, status=application.status,
        legal_name=keyring.decrypt(application.legal_name_enc, context=_NAME_CONTEXT).decode(),
        national_id_masked=mask_national_id(national_id),
        birth_date=dt.date.fromisoformat(
            keyring.decrypt(application.birth_date_enc, context=_BIRTH_CONTEXT).decode()),
        submitted_at=application.submitted_at, decided_at=application.decided_at,
        reason=application.reason)


async def latest_application(session: AsyncSession, user_id: uuid.UUID) -> KycApplication | None:
    return (await session.execute(
        select(KycApplication).where(KycApplication.user_id == user_id)
        .order_by(KycApplication.submitted_at.desc(), KycApplication.id.desc()).limit(1))
    ).scalar_one_or_none()


async def status_of(session: AsyncSession, user: User) -> KycStatus:
    latest = await latest_application(session, user.id)
    return KycStatus(user.kyc_tier, limits_for(user.kyc_tier),
                     view(latest) if latest is not None else None)


async def own_application(session: AsyncSession, user: User,
                          application_id: uuid.UUID) -> ApplicationView:
    """One of the user's own applications; anyone else's is 'not found'."""
    application = await session.get(KycApplication, application_id)
    if application is None or application.user_id != user.id:
        raise NotFound("No such application.")
    return view(application)


async def submit_application(session: AsyncSession, user: User, *, legal_name: str,
                             national_id: str, birth_date: dt.date,
                             ip: str | None = None, user_agent: str | None = None
                             ) -> ApplicationView:
    """Ask for tier 1. Everything is checked before anything is written."""
    name = clean_legal_name(legal_name)
    number = parse_national_id(national_id, birth_date=birth_date)
    if user.kyc_tier >= 1:
        raise KycAlreadyVerified()
    latest = await latest_application(session, user.id)
    if latest is not None and latest.status == "pending":
        raise KycApplicationPending()
    index = national_id_index(number)
    if await _held_by_another(session, index, user.id):
        raise NationalIdInUse()
    keyring = get_keyring()
    application = KycApplication(
        id=uuid7(), user_id=user.id, status="pending",
        legal_name_enc=keyring.encrypt(name, context=_NAME_CONTEXT),
        national_id_enc=keyring.encrypt(number, context=_ID_CONTEXT),
        national_id_index=index, national_id_claim=None,
        birth_date_enc=keyring.encrypt(birth_date.isoformat(), context=_BIRTH_CONTEXT),
        submitted_at=utcnow(), decided_at=None, decided_by=None, reason=None)
    session.add(application)
    await session.flush()
    await audit.record(session, action="identity.kyc.submitted", actor_type="user",
                       actor_id=str(user.id), subject_type="kyc_application",
                       subject_id=str(application.id), ip=ip, user_agent=user_agent,
                       data={"user_id": str(user.id)})
    await outbox.publish(session, "kyc.application_submitted",
                         {"application_id": str(application.id), "user_id": str(user.id)},
                         key=str(user.id))
    return view(application)


async def _held_by_another(session: AsyncSession, index: bytes, user_id: uuid.UUID, *,
                           statuses: tuple[str, ...] = ("pending", "approved")) -> bool:
    """Whether another user has an application in ``statuses`` with this number."""
    row = (await session.execute(
        select(KycApplication.id).where(KycApplication.national_id_index == index,
                                        KycApplication.user_id != user_id,
                                        KycApplication.status.in_(statuses))
        .limit(1))).first()
    return row is not None


async def list_applications(session: AsyncSession, *, status: str = "pending",
                            before_id: uuid.UUID | None = None,
                            limit: int = 50) -> list[ApplicationView]:
    """Oldest first for the pending queue (first come, first served), newest first otherwise.
    Callers check the reader's role (``staff``)."""
    assert status in STATUSES
    oldest_first = status == "pending"
    query = select(KycApplication).where(KycApplication.status == status)
    if before_id is not None:
        query = query.where(KycApplication.id > before_id if oldest_first
                            else KycApplication.id < before_id)
    order = KycApplication.id.asc() if oldest_first else KycApplication.id.desc()
    rows = await session.execute(query.order_by(order).limit(max(1, min(limit, QUEUE_PAGE_MAX))))
    return [view(a) for a in rows.scalars()]


async def get_application(session: AsyncSession, application_id: uuid.UUID) -> KycApplication:
    application = await session.get(KycApplication, application_id)
    if application is None:
        raise NotFound("No such application.")
    return application


async def decide_application(session: AsyncSession, *, reviewer: User,
                             application_id: uuid.UUID, approve: bool,
                             reason: str | None) -> ApplicationView:
    """Approve (tier 1) or reject (a reason is required). Callers check the reviewer's role
    (``staff.decide_kyc`` does); a reviewer never decides their own application."""
    from bankwallet.core.errors import Forbidden

    reason = clean_reason(reason, required=not approve)
    application = await get_application(session, application_id)
    if application.user_id == reviewer.id:
        raise Forbidden("Nobody reviews their own application.")
    if application.status != "pending":
        raise KycAlreadyDecided()
    if approve and await _held_by_another(session, application.national_id_index,
                                          application.user_id, statuses=("approved",)):
        raise NationalIdInUse()
    now = utcnow()
    application.status = "approved" if approve else "rejected"
    application.decided_at, application.decided_by, application.reason = now, reviewer.id, reason
    if approve:
        application.national_id_claim = application.national_id_index
        try:
            await session.flush()
        except IntegrityError:  # a concurrent approval won; the request's work rolls back
            raise NationalIdInUse() from None
    await audit.record(session, action=f"identity.kyc.{application.status}", actor_type="staff",
                       actor_id=str(reviewer.id), subject_type="kyc_application",
                       subject_id=str(application.id),
                       data={"user_id": str(application.user_id), "reason": reason})
    await outbox.publish(session, "kyc.application_decided",
                         {"application_id": str(application.id),
                          "user_id": str(application.user_id), "status": application.status},
                         key=str(application.user_id))
    if approve:
        await grant_tier(session, application.user_id, 1, reason="identity verified",
                         actor_id=reviewer.id)
    return view(application)


async def grant_tier(session: AsyncSession, user_id: uuid.UUID, tier: int, *, reason: str,
                     actor_id: uuid.UUID | None = None) -> int:
    """Raise a user to ``tier`` (never lowers it); returns the user's tier afterwards.

    Tier 2 (a linked bank account) needs tier 1 first: the bank account must be in the name
    that was verified. Publishes ``kyc.tier_changed`` when the tier changes.
    """
    assert 1 <= tier <= MAX_TIER, f"unknown KYC tier {tier}"
    user = await session.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound("No such user.")
    if user.kyc_tier >= tier:
        return user.kyc_tier
    if user.kyc_tier < tier - 1:
        raise KycTierOrder(f"Tier {tier} needs tier {tier - 1} first.")
    previous, user.kyc_tier = user.kyc_tier, tier
    await session.flush()
    await audit.record(session, action="identity.kyc.tier_changed",
                       actor_type="staff" if actor_id else "system",
                       actor_id=str(actor_id) if actor_id else None, subject_type="user",
                       subject_id=str(user.id),
                       data={"from": previous, "to": tier, "reason": reason[:200]})
    await outbox.publish(session, "kyc.tier_changed",
                         {"user_id": str(user.id), "from_tier": previous, "to_tier": tier},
                         key=str(user.id))
    return tier
