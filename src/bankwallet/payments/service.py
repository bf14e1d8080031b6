"""Payments use cases: merchants and their API keys, payment intents and their state machine,
paying an intent from the wallet balance or with a saved card (through the card gateway),
capture, cancel, refunds, settlement, and the events every change publishes.

Every money movement follows ``docs/money-movement.md``: the domain row (charge, refund,
settlement) is recorded and committed with ledger transfer ids derived from its id (itself
derived from the idempotency key), then the ledger transfers are submitted (linked when there
are several legs), then the outcome is recorded with ``money.moved`` and the merchant's event
in one transaction. ``tasks.heal_once`` resubmits rows left in flight by a crash.

The state machine of a payment intent (Stripe's statuses)::

    requires_payment_method ─confirm(method)─▶ requires_action ─customer pays─▶ processing
    requires_confirmation  ─┘                   (wallet: the customer confirms at /pay/…)
    processing ─▶ succeeded (automatic capture) | requires_capture (manual) |
                  requires_payment_method (the payment failed: pay again)
    requires_capture ─capture─▶ processing ─▶ succeeded
    requires_payment_method | requires_confirmation | requires_action | requires_capture
        ─cancel─▶ canceled

The customer may pay straight from ``requires_payment_method`` or ``requires_confirmation``:
paying in the wallet is the confirmation. ``TRANSITIONS`` holds which statuses allow what.

A card payment goes through the same statuses with the gateway's answers: ``processing``
while it authorises, ``requires_action`` while the issuer's 3-D Secure page waits (then
``processing`` again), ``requires_payment_method`` with a ``card_error`` when it declines.
Capture, cancel and refunds of a card payment go through the gateway first (see "the customer
pays with a saved card").
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import logging
import re
import secrets
import string
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import iso18245
import pycountry
import schwifty
from schwifty.exceptions import SchwiftyException
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from bankwallet.cards import service as cards_service
from bankwallet.cards.errors import (
    CardCaptureRefused,
    CardDeclined,
    CardPaymentsNotConnected,
    CardProcessingError,
    CardRefundFailed,
    ExpiredCard,
    IncorrectCvc,
)
from bankwallet.connectors.gateway.base import (
    CardGateway,
    PaymentResult,
    PaymentStatus,
    RefundResult,
    RefundStatus,
    WebhookEvent,
    luhn_valid,
)
from bankwallet.core import audit, outbox
from bankwallet.core.crypto import get_keyring
from bankwallet.core.db import utcnow
from bankwallet.core.ids import derived_id, uuid7
from bankwallet.identity import mfa
from bankwallet.identity.service import Authenticated
from bankwallet.ledger import service as ledger_service
from bankwallet.ledger.store import LedgerStore
from bankwallet.ledger.types import (
    AccountFlags,
    AccountIn,
    Outcome,
    Result,
    TransferFlags,
    TransferIn,
)
from bankwallet.payments import objects, repository
from bankwallet.payments import qr as payments_qr
from bankwallet.payments.errors import (
    ApiKeyInvalid,
    ApiKeyNotFound,
    ApiKeyScopeMissing,
    CaptureExceedsCapturable,
    EventNotFound,
    InsufficientFunds,
    InvalidAmount,
    InvalidBankAccount,
    InvalidCity,
    InvalidCountry,
    InvalidMcc,
    InvalidMerchantName,
    InvalidMetadata,
    InvalidPaymentMethod,
    InvalidReturnUrl,
    InvalidScopes,
    MerchantBalanceInsufficient,
    MerchantNotFound,
    MerchantRoleRequired,
    PaymentFailed,
    PaymentIntentNotFound,
    PaymentMethodRequired,
    PaymentRefused,
    RefundExceedsCaptured,
    RefundNotFound,
    SettlementNothingToSettle,
    UnexpectedState,
)
from bankwallet.payments.models import (
    BANK_ACCOUNT_CONTEXT,
    ApiKey,
    Charge,
    Event,
    Merchant,
    MerchantUser,
    PaymentIntent,
    Refund,
    Settlement,
)
from bankwallet.risk import service as risk_service
from bankwallet.wallets import service as wallets_service
from bankwallet.wallets.codes import KIND_OF_CODE, Code

log = logging.getLogger("bankwallet.payments")

# -- bounds and the fee schedule -------------------------------------------------------------

NAME_MAX_CHARS: Final = 100
CITY_MAX_CHARS: Final = 64
DEFAULT_COUNTRY: Final = "CN"
AMOUNT_MIN_MINOR: Final = 1
AMOUNT_MAX_MINOR: Final = 10**12
DESCRIPTION_MAX_CHARS: Final = 500
NOTE_MAX_CHARS: Final = 140
METADATA_KEYS_MAX: Final = 50
METADATA_KEY_MAX_CHARS: Final = 40
METADATA_VALUE_MAX_CHARS: Final = 500
RETURN_URL_MAX_CHARS: Final = 2048
PAGE_MAX: Final = 100
MERCHANTS_PER_USER_MAX: Final = 20
API_KEYS_MAX: Final = 50
API_KEY_NAME_MAX_CHARS: Final = 64
API_KEY_RANDOM_CHARS: Final = 32
# The last-used time is written at most this often per key (one write per request would
# serialise every API call on SQLite).
API_KEY_TOUCH_EVERY_S: Final = 60
# A manual-capture authorisation holds the customer's money this long, then the ledger's
# expiry job releases it (Stripe's card authorisations last seven days too).
AUTHORIZATION_HOLD_S: Final = 7 * 24 * 3600
# A charge, refund or settlement still in flight this long after its last change is healed.
HEAL_AFTER_S: Final = 60

MERCHANT_ACCOUNT_KIND: Final = "merchant"
WALLET_METHOD: Final = "bankwallet_balance"
CARD_METHOD: Final = "card"
PAYMENT_METHODS: Final = (WALLET_METHOD, CARD_METHOD)
CAPTURE_METHODS: Final = ("automatic", "manual")
CANCELLATION_REASONS: Final = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
REFUND_REASONS: Final = ("duplicate", "fraudulent", "requested_by_customer")
ROLES: Final = ("owner",)
SCOPES: Final = ("payments:read", "payments:write", "refunds:read", "refunds:write",
                 "events:read")
KEY_KINDS: Final = {"secret": "sk_test_", "publishable": "pk_test_"}
_KEY_ALPHABET: Final = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """What the bank charges a merchant per payment: ``rate_ppm`` parts per million of the
    captured amount, rounded half up, at least ``min_minor``."""

    rate_ppm: int
    min_minor: int


# The one place the merchant fee is kept: 0.6 %, at least one minor unit.
FEE_SCHEDULE: Final = FeeSchedule(rate_ppm=6_000, min_minor=1)


def fee_for(amount_minor: int, schedule: FeeSchedule = FEE_SCHEDULE) -> int:
    assert amount_minor > 0
    fee = (amount_minor * schedule.rate_ppm + 500_000) // 1_000_000
    return min(amount_minor, max(schedule.min_minor, fee))


def fee_refunded_after(*, fee_minor: int, captured_minor: int, refunded_minor: int) -> int:
    """How much of the fee has been given back once ``refunded_minor`` of ``captured_minor``
    is refunded: the same share, rounded half up. Computed on the running total (not per
    refund), so partial refunds never drift and a full refund returns the whole fee."""
    assert 0 <= refunded_minor <= captured_minor and captured_minor > 0
    return (2 * fee_minor * refunded_minor + captured_minor) // (2 * captured_minor)


# -- the state machine -----------------------------------------------------------------------


class Status(enum.StrEnum):
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"


S = Status
# Which statuses each action starts from; anything else is ``UnexpectedState``.
TRANSITIONS: Final[dict[str, frozenset[Status]]] = {
    "confirm": frozenset({S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION}),
    "pay": frozenset({S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION, S.REQUIRES_ACTION}),
    "capture": frozenset({S.REQUIRES_CAPTURE}),
    "cancel": frozenset({S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION,
                         S.REQUIRES_ACTION, S.REQUIRES_CAPTURE}),
    "refund": frozenset({S.SUCCEEDED}),
}


def _check_transition(intent: PaymentIntent, action: str) -> None:
    if Status(intent.status) not in TRANSITIONS[action]:
        raise UnexpectedState(f"You cannot {action} this payment because it is "
                              f"{intent.status}.", status=intent.status)


# -- who acts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts for a merchant: a signed-in member (dashboard, our API) or an API key."""

    merchant: Merchant
    auth: Authenticated | None = None
    api_key: ApiKey | None = None

    @property
    def audit_actor(self) -> tuple[str, str]:
        if self.auth is not None:
            return "user", str(self.auth.user.id)
        assert self.api_key is not None
        return "system", f"api_key:{self.api_key.id}"


async def _audit(session: AsyncSession, actor: Actor, action: str, *, subject_type: str,
                 subject_id: str, data: dict | None = None) -> None:
    actor_type, actor_id = actor.audit_actor
    await audit.record(session, action=action, actor_type=actor_type, actor_id=actor_id,
                       subject_type=subject_type, subject_id=subject_id, data=data)


# -- validation (pure) -----------------------------------------------------------------------


def clean_text(text: str | None, *, max_chars: int, error: type[Exception],
               required: bool = True) -> str | None:
    value = " ".join((text or "").split())
    if not value:
        if required:
            raise error("This field is required.")
        return None
    if len(value) > max_chars or any(ord(c) < 0x20 for c in value):
        raise error(f"At most {max_chars} characters.")
    return value


def check_mcc(text: str) -> str:
    """A four-digit ISO 18245 merchant category code that the standard assigns."""
    code = text.strip()
    if not re.fullmatch(r"\d{4}", code, re.ASCII):
        raise InvalidMcc("A merchant category code is four digits, e.g. 5812.")
    try:
        iso18245.get_mcc(code)
    except (iso18245.MCCNotFound, iso18245.InvalidMCC) as exc:
        raise InvalidMcc(f"{code} is not an ISO 18245 merchant category code.") from exc
    return code


def mcc_description(code: str) -> str:
    try:
        return iso18245.get_mcc(code).iso_description
    except (iso18245.MCCNotFound, iso18245.InvalidMCC):
        return ""


def check_country(text: str | None) -> str:
    code = (text or DEFAULT_COUNTRY).strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", code) or pycountry.countries.get(alpha_2=code) is None:
        raise InvalidCountry("Give the two-letter ISO 3166 country code, e.g. CN.")
    return code


def parse_bank_account(text: str) -> tuple[str, str]:
    """``("iban", "DE89…")`` for an IBAN (checked by schwifty), ``("domestic", digits)`` for a
    16–19 digit account number with a Luhn check digit (China's bank card numbers)."""
    compact = re.sub(r"[\s-]", "", text or "").upper()
    if len(compact) >= 2 and compact[:2].isalpha():
        try:
            return "iban", schwifty.IBAN(compact).compact
        except (SchwiftyException, ValueError) as exc:
            raise InvalidBankAccount("This IBAN is not valid (check the digits).") from exc
    if compact.isascii() and compact.isdigit() and 16 <= len(compact) <= 19 \
            and luhn_valid(compact):
        return "domestic", compact
    raise InvalidBankAccount("Give an IBAN or a 16 to 19 digit account number.")


def mask_bank_account(last4: str) -> str:
    return f"····{last4}"


def check_amount(amount_minor: int) -> int:
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) \
            or not AMOUNT_MIN_MINOR <= amount_minor <= AMOUNT_MAX_MINOR:
        raise InvalidAmount(f"The amount is a whole number of minor units from "
                            f"{AMOUNT_MIN_MINOR} to {AMOUNT_MAX_MINOR}.")
    return amount_minor


def check_metadata(metadata: dict[str, Any] | None) -> dict[str, str]:
    """Stripe's rules: up to 50 keys of 40 characters, string values of 500; an empty value
    removes the key."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or len(metadata) > METADATA_KEYS_MAX:
        raise InvalidMetadata(f"Metadata is an object of at most {METADATA_KEYS_MAX} keys.")
    clean: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not 0 < len(key) <= METADATA_KEY_MAX_CHARS \
                or "[" in key or "]" in key:
            raise InvalidMetadata(f"Metadata keys are 1 to {METADATA_KEY_MAX_CHARS} characters.")
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise InvalidMetadata("Metadata values are strings.")
        text = str(value)
        if len(text) > METADATA_VALUE_MAX_CHARS:
            raise InvalidMetadata(f"Metadata values are at most {METADATA_VALUE_MAX_CHARS} "
                                  "characters.")
        if text:
            clean[key] = text
    return clean


def check_return_url(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if len(url) > RETURN_URL_MAX_CHARS or parts.scheme not in ("https", "http") \
            or not parts.netloc:
        raise InvalidReturnUrl("The return URL must be an http(s) URL.", param="return_url")
    return url


def check_payment_method_types(types: Sequence[str] | None) -> list[str]:
    chosen = list(dict.fromkeys(types or [WALLET_METHOD]))
    if not chosen or any(t not in PAYMENT_METHODS for t in chosen):
        raise InvalidPaymentMethod(f"Payment method types are {', '.join(PAYMENT_METHODS)}.",
                                   param="payment_method_types")
    return chosen


def normalise_payment_method(value: str | None) -> str | None:
    """Stripe clients name a payment method by id; ``pm_bankwallet_balance`` and ``pm_card_…``
    are read as our two methods."""
    if value is None or value == "":
        return None
    if value in (WALLET_METHOD, "pm_" + WALLET_METHOD):
        return WALLET_METHOD
    if value == CARD_METHOD or value.startswith("pm_card"):
        return CARD_METHOD
    raise InvalidPaymentMethod(f"No such payment method: {value!r}.", param="payment_method")


# -- merchants -------------------------------------------------------------------------------


def merchant_account_id(merchant_id: uuid.UUID, currency: str) -> uuid.UUID:
    return derived_id("payments.merchant_account", merchant_id, currency)


def merchant_owner_id(merchant_id: uuid.UUID) -> str:
    return f"merchant:{merchant_id}"


async def release_for_ledger(session: AsyncSession) -> None:
    """Make sure the request's session holds no write transaction before the ledger store
    writes. On SQLite the store writes on a connection of its own and the database has one
    writer: a session that has flushed anything (the login's or API key's last-seen time,
    flushed by the next query) holds the write lock, and the ledger would wait out the busy
    timeout and fail "database is locked". So on SQLite whatever the request has so far is
    committed here (callers make accounts before writing anything of their own, as the
    idempotency path commits before its claim). PostgreSQL locks rows, not the database:
    nothing to do there, and a caller's row locks are kept."""
    if session.bind.dialect.name == "sqlite" and session.in_transaction():
        await session.commit()


async def open_merchant_account(ledger: LedgerStore, merchant_id: uuid.UUID,
                                currency: str) -> uuid.UUID:
    """The merchant's account in ``currency`` and the bank's accounts in it (made once).
    Call before the request's session writes, after ``release_for_ledger``: on SQLite the
    ledger has its own connection."""
    currency = wallets_service.supported(currency)
    await ledger_service.open_accounts(ledger, [
        AccountIn(id=merchant_account_id(merchant_id, currency), ledger=currency,
                  kind=MERCHANT_ACCOUNT_KIND, owner_id=merchant_owner_id(merchant_id),
                  flags=int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)),
        *(AccountIn(id=wallets_service.system_account_id(kind, currency), ledger=currency,
                    kind=kind.value, owner_id="bank")
          for kind in wallets_service.SystemAccount)])
    return merchant_account_id(merchant_id, currency)


async def create_merchant(session: AsyncSession, ledger: LedgerStore, auth: Authenticated, *,
                          name: str, mcc: str, city: str, country: str | None,
                          bank_account: str) -> Merchant:
    clean_name = clean_text(name, max_chars=NAME_MAX_CHARS, error=InvalidMerchantName)
    clean_city = clean_text(city, max_chars=CITY_MAX_CHARS, error=InvalidCity)
    code = check_mcc(mcc)
    country_code = check_country(country)
    kind, number = parse_bank_account(bank_account)
    if len(await repository.merchants_of(session, auth.user.id,
                                         limit=MERCHANTS_PER_USER_MAX)) >= MERCHANTS_PER_USER_MAX:
        raise MerchantRoleRequired(f"At most {MERCHANTS_PER_USER_MAX} merchants per user.")
    merchant_id = uuid7()
    await release_for_ledger(session)
    await open_merchant_account(ledger, merchant_id, wallets_service.DEFAULT_CURRENCY)
    now = utcnow()
    merchant = Merchant(
        id=merchant_id, name=clean_name, mcc=code, city=clean_city, country=country_code,
        bank_account_enc=get_keyring().encrypt(number, context=BANK_ACCOUNT_CONTEXT),
        bank_account_kind=kind, bank_account_last4=number[-4:], status="active",
        created_by=auth.user.id, created_at=now, updated_at=now)
    session.add(merchant)
    await session.flush()
    session.add(MerchantUser(merchant_id=merchant_id, user_id=auth.user.id, role="owner",
                             created_at=now))
    await session.flush()
    await audit.record(session, action="payments.merchant.created", actor_type="user",
                       actor_id=str(auth.user.id), subject_type="merchant",
                       subject_id=str(merchant_id), data={"mcc": code, "country": country_code})
    return merchant


def bank_account_number(merchant: Merchant) -> str:
    """The settlement account in the clear: only for the instruction to the core bank."""
    return get_keyring().decrypt(merchant.bank_account_enc, context=BANK_ACCOUNT_CONTEXT).decode()


async def merchants_of(session: AsyncSession, user_id: uuid.UUID) -> list[tuple[Merchant, str]]:
    return await repository.merchants_of(session, user_id, limit=MERCHANTS_PER_USER_MAX)


async def merchant_for_user(session: AsyncSession, user_id: uuid.UUID, merchant_id: uuid.UUID,
                            *, write: bool = False) -> Merchant:
    """The merchant, if ``user_id`` acts for it; 404 otherwise (whether it exists is not told).
    ``write``: the user's role must allow changes (every role today: the owner)."""
    member = await repository.membership(session, merchant_id, user_id)
    if member is None:
        raise MerchantNotFound("No such merchant.")
    if write and member.role not in ROLES:
        raise MerchantRoleRequired()
    merchant = await session.get(Merchant, merchant_id)
    assert merchant is not None, "a membership without its merchant"
    return merchant


@dataclass(frozen=True, slots=True)
class MerchantBalance:
    currency: str
    available_minor: int
    posted_minor: int
    settling_minor: int  # held for settlements and not yet confirmed by the bank


async def merchant_balances(ledger: LedgerStore, merchant_id: uuid.UUID) -> list[MerchantBalance]:
    accounts = await ledger_service.accounts_of_owner(ledger, merchant_owner_id(merchant_id))
    found = [MerchantBalance(a.ledger, a.available, a.balance, a.debits_pending)
             for a in accounts if a.kind == MERCHANT_ACCOUNT_KIND]
    order = {c: i for i, c in enumerate(wallets_service.SUPPORTED_CURRENCIES)}
    return sorted(found, key=lambda b: order.get(b.currency, len(order)))


async def merchant_balance(ledger: LedgerStore, merchant_id: uuid.UUID,
                           currency: str) -> MerchantBalance:
    for balance in await merchant_balances(ledger, merchant_id):
        if balance.currency == currency:
            return balance
    return MerchantBalance(currency, 0, 0, 0)


# -- API keys --------------------------------------------------------------------------------


def hash_api_key(key: str) -> bytes:
    # Keys are 190 random bits: a plain SHA-256 cannot be brute-forced, and it survives the
    # rotation of the encryption keys.
    return hashlib.sha256(key.encode()).digest()


def new_api_key(kind: str) -> str:
    body = "".join(secrets.choice(_KEY_ALPHABET) for _ in range(API_KEY_RANDOM_CHARS))
    return KEY_KINDS[kind] + body


def check_scopes(scopes: Sequence[str] | None, kind: str) -> list[str]:
    if kind == "publishable":
        return []  # a publishable key reads one intent with its client secret, nothing else
    chosen = list(dict.fromkeys(scopes or SCOPES))
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown:
        raise InvalidScopes(f"Scopes are {', '.join(SCOPES)}.", unknown=unknown)
    return chosen


async def create_api_key(session: AsyncSession, auth: Authenticated, merchant: Merchant, *,
                         name: str, kind: str = "secret",
                         scopes: Sequence[str] | None = None) -> tuple[ApiKey, str]:
    """A new key, returned in the clear this once; only its hash is kept. A fresh second
    factor is needed: a key can move the merchant's money."""
    if kind not in KEY_KINDS:
        raise InvalidScopes("A key is secret or publishable.")
    chosen = check_scopes(scopes, kind)
    clean_name = clean_text(name, max_chars=API_KEY_NAME_MAX_CHARS, error=InvalidScopes,
                            required=False) or kind
    await mfa.ensure_recent_second_factor(session, auth)
    if len(await repository.api_keys(session, merchant.id, limit=API_KEYS_MAX)) >= API_KEYS_MAX:
        raise InvalidScopes(f"At most {API_KEYS_MAX} keys; revoke one first.")
    key = new_api_key(kind)
    row = ApiKey(id=uuid7(), merchant_id=merchant.id, kind=kind, key_hash=hash_api_key(key),
                 last4=key[-4:], name=clean_name, scopes=chosen, created_by=auth.user.id,
                 created_at=utcnow(), last_used_at=None, revoked_at=None)
    session.add(row)
    await session.flush()
    await audit.record(session, action="payments.api_key.created", actor_type="user",
                       actor_id=str(auth.user.id), subject_type="merchant",
                       subject_id=str(merchant.id),
                       data={"api_key_id": str(row.id), "kind": kind, "scopes": chosen})
    return row, key


async def list_api_keys(session: AsyncSession, merchant: Merchant) -> list[ApiKey]:
    return await repository.api_keys(session, merchant.id, limit=API_KEYS_MAX)


async def revoke_api_key(session: AsyncSession, auth: Authenticated, merchant: Merchant,
                         key_id: uuid.UUID) -> ApiKey:
    row = await session.get(ApiKey, key_id)
    if row is None or row.merchant_id != merchant.id:
        raise ApiKeyNotFound()
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.flush()
        await audit.record(session, action="payments.api_key.revoked", actor_type="user",
                           actor_id=str(auth.user.id), subject_type="merchant",
                           subject_id=str(merchant.id), data={"api_key_id": str(key_id)})
    return row


async def authenticate_api_key(session: AsyncSession, key: str | None) -> tuple[ApiKey, Merchant]:
    """The key and its merchant; 401 ``api_key_invalid`` for a missing, unknown or revoked key.
    The last-used time is written in a transaction of its own (never the request's)."""
    if not key or not key.startswith(tuple(KEY_KINDS.values())) or len(key) > 128:
        raise ApiKeyInvalid("Send a valid API key: Authorization: Bearer sk_test_…")
    row = await repository.api_key_by_hash(session, hash_api_key(key))
    if row is None or row.revoked_at is not None:
        raise ApiKeyInvalid("This API key is unknown or was revoked.")
    merchant = await session.get(Merchant, row.merchant_id)
    if merchant is None or merchant.status != "active":
        raise ApiKeyInvalid("This merchant cannot use the API.")
    now = utcnow()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() >= \
            API_KEY_TOUCH_EVERY_S:
        await session.commit()  # only reads so far: one pooled connection at a time
        async with AsyncSession(session.bind) as own:
            await own.execute(update(ApiKey).where(ApiKey.id == row.id)
                              .values(last_used_at=now))
            await own.commit()
        # The request's copy learns the value as committed, not as a change of its own: a
        # change would be flushed by the request's next query, and on SQLite that write lock
        # would make the ledger's own connection wait ("database is locked").
        set_committed_value(row, "last_used_at", now)
    return row, merchant


def require_scope(api_key: ApiKey, scope: str) -> None:
    assert scope in SCOPES, scope
    if scope not in (api_key.scopes or []):
        raise ApiKeyScopeMissing(f"This key lacks the {scope} scope.", scope=scope)


# -- events ----------------------------------------------------------------------------------

EVENT_TOPIC: Final = "payments.event"
EVENT_TYPES: Final = ("payment_intent.created", "payment_intent.requires_action",
                      "payment_intent.amount_capturable_updated", "payment_intent.succeeded",
                      "payment_intent.payment_failed", "payment_intent.canceled",
                      "charge.refunded")


async def emit(session: AsyncSession, merchant_id: uuid.UUID, type_: str, obj: dict[str, Any],
               *, idempotency_key: str | None = None) -> Event:
    """Record the merchant's event and publish it into the outbox (``tasks`` fans it out to
    the merchant's webhook endpoints), in the caller's transaction."""
    assert type_ in EVENT_TYPES, type_
    event = Event(id=uuid7(), merchant_id=merchant_id, type=type_, data={"object": obj},
                  api_version=objects.API_VERSION, idempotency_key=idempotency_key,
                  created_at=utcnow())
    session.add(event)
    await session.flush()
    await outbox.publish(session, EVENT_TOPIC, {"event_id": str(event.id),
                                                "merchant_id": str(merchant_id),
                                                "type": type_},
                         key=merchant_owner_id(merchant_id))
    return event


async def _emit_intent(session: AsyncSession, intent: PaymentIntent, type_: str, *,
                       charge: Charge | None = None) -> None:
    await emit(session, intent.merchant_id, type_, intent_object(intent, charge=charge))


def intent_object(intent: PaymentIntent, *, charge: Charge | None = None,
                  expand: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Stripe's payment intent, with what a card charge adds: while 3-D Secure waits,
    ``next_action`` is the issuer's challenge page (which returns to the wallet), and the
    charge names the card by brand and last four digits only."""
    obj = objects.payment_intent(intent, charge=charge, expand=expand)
    if charge is None or charge.method != CARD_METHOD or charge.id != intent.latest_charge_id:
        return obj
    if intent.status == S.REQUIRES_ACTION and charge.status == "requires_action" \
            and charge.next_action_url:
        obj["next_action"] = {"type": "redirect_to_url",
                              "redirect_to_url": {"url": charge.next_action_url,
                                                  "return_url": intent.return_url}}
    if isinstance(obj.get("latest_charge"), dict):
        obj["latest_charge"]["payment_method_details"] = card_details(charge)
    return obj


def card_details(charge: Charge) -> dict[str, Any]:
    return {"type": CARD_METHOD, "card": {"brand": charge.card_brand,
                                          "last4": charge.card_last4}}


async def get_event(session: AsyncSession, merchant: Merchant, event_id: uuid.UUID) -> Event:
    event = await session.get(Event, event_id)
    if event is None or event.merchant_id != merchant.id:
        raise EventNotFound()
    return event


async def list_events(session: AsyncSession, merchant: Merchant, *, limit: int,
                      starting_after: uuid.UUID | None = None,
                      types: Sequence[str] = ()) -> tuple[list[Event], bool]:
    assert 1 <= limit <= PAGE_MAX
    after = await get_event(session, merchant, starting_after) if starting_after else None
    found = await repository.events(session, merchant.id, limit=limit + 1, after=after,
                                    types=types)
    return found[:limit], len(found) > limit


async def pending_webhooks(session: AsyncSession, events: Sequence[Event]) -> dict[uuid.UUID, int]:
    return await repository.pending_deliveries(session, [e.id for e in events])


# -- payment intents -------------------------------------------------------------------------


def intent_id_for_key(merchant_id: uuid.UUID, key: str | None) -> uuid.UUID:
    """The intent a create request makes: derived from its idempotency key, so a retry after a
    crash finds the same row; a fresh time-ordered id without one."""
    return derived_id("payments.intent", merchant_id, key) if key else uuid7()


async def create_intent(session: AsyncSession, ledger: LedgerStore, actor: Actor, *,
                        amount_minor: int, currency: str, capture_method: str = "automatic",
                        payment_method_types: Sequence[str] | None = None,
                        payment_method: str | None = None, description: str | None = None,
                        metadata: dict[str, Any] | None = None, return_url: str | None = None,
                        confirm: bool = False, intent_id: uuid.UUID | None = None,
                        idempotency_key: str | None = None) -> PaymentIntent:
    merchant = actor.merchant
    amount = check_amount(amount_minor)
    currency = wallets_service.supported(currency)
    if capture_method not in CAPTURE_METHODS:
        raise InvalidPaymentMethod("capture_method is automatic or manual.",
                                   param="capture_method")
    types = check_payment_method_types(payment_method_types)
    method = normalise_payment_method(payment_method)
    if method is not None and method not in types:
        raise InvalidPaymentMethod("The payment method is not one of payment_method_types.",
                                   param="payment_method")
    clean_description = clean_text(description, max_chars=DESCRIPTION_MAX_CHARS,
                                   error=InvalidMetadata, required=False)
    clean_metadata = check_metadata(metadata)
    url = check_return_url(return_url)
    intent_id = intent_id or uuid7()
    existing = await session.get(PaymentIntent, intent_id)
    if existing is not None:  # the same idempotency key after a crash: the same intent
        return existing
    await release_for_ledger(session)
    await open_merchant_account(ledger, merchant.id, currency)
    now = utcnow()
    intent = PaymentIntent(
        id=intent_id, merchant_id=merchant.id, amount_minor=amount, currency=currency,
        status=S.REQUIRES_CONFIRMATION if method else S.REQUIRES_PAYMENT_METHOD,
        capture_method=capture_method, payment_method_types=types, payment_method=method,
        description=clean_description, metadata_=clean_metadata, return_url=url,
        payer_user_id=None, latest_charge_id=None, amount_received_minor=0,
        amount_capturable_minor=0, amount_refunded_minor=0, fee_minor=0, fee_refunded_minor=0,
        last_payment_error=None, cancellation_reason=None, canceled_at=None, created_at=now,
        updated_at=now)
    session.add(intent)
    await session.flush()
    await emit(session, merchant.id, "payment_intent.created", objects.payment_intent(intent),
               idempotency_key=idempotency_key)
    if confirm:
        await _confirm(session, intent, method=method, return_url=None)
    return intent


async def get_intent(session: AsyncSession, merchant: Merchant,
                     intent_id: uuid.UUID | None) -> PaymentIntent:
    intent = await session.get(PaymentIntent, intent_id) if intent_id else None
    if intent is None or intent.merchant_id != merchant.id:
        raise PaymentIntentNotFound(param="intent")
    return intent


async def _locked_intent(session: AsyncSession, merchant: Merchant,
                         intent_id: uuid.UUID | None) -> PaymentIntent:
    intent = await repository.intent_locked(session, intent_id) if intent_id else None
    if intent is None or intent.merchant_id != merchant.id:
        raise PaymentIntentNotFound(param="intent")
    return intent


async def latest_charge(session: AsyncSession, intent: PaymentIntent) -> Charge | None:
    return await session.get(Charge, intent.latest_charge_id) if intent.latest_charge_id else None


async def list_intents(session: AsyncSession, merchant: Merchant, *, limit: int,
                       starting_after: uuid.UUID | None = None, statuses: Sequence[str] = (),
                       currency: str | None = None, created_from: dt.datetime | None = None,
                       created_before: dt.datetime | None = None
                       ) -> tuple[list[PaymentIntent], bool]:
    assert 1 <= limit <= PAGE_MAX
    after = await get_intent(session, merchant, starting_after) if starting_after else None
    found = await repository.intents(session, merchant.id, limit=limit + 1, after=after,
                                     statuses=statuses, currency=currency,
                                     created_from=created_from, created_before=created_before)
    return found[:limit], len(found) > limit


async def confirm_intent(session: AsyncSession, actor: Actor, intent_id: uuid.UUID | None, *,
                         payment_method: str | None = None,
                         return_url: str | None = None) -> PaymentIntent:
    """The merchant confirms: with the wallet balance the intent then waits for the customer
    (``requires_action``, ``next_action`` points at the wallet's pay page)."""
    intent = await _locked_intent(session, actor.merchant, intent_id)
    _check_transition(intent, "confirm")
    method = normalise_payment_method(payment_method) or intent.payment_method
    await _confirm(session, intent, method=method, return_url=check_return_url(return_url))
    return intent


async def _confirm(session: AsyncSession, intent: PaymentIntent, *, method: str | None,
                   return_url: str | None) -> None:
    if method is None:
        if len(intent.payment_method_types) != 1:
            raise PaymentMethodRequired("Give the payment method to confirm with.",
                                        param="payment_method")
        method = intent.payment_method_types[0]
    if method not in intent.payment_method_types:
        raise InvalidPaymentMethod("The payment method is not one of payment_method_types.",
                                   param="payment_method")
    if method == CARD_METHOD:
        await _confirm_with_card(session, intent)
    intent.payment_method = method
    intent.return_url = return_url or intent.return_url
    intent.status = S.REQUIRES_ACTION
    intent.updated_at = utcnow()
    await session.flush()
    await _emit_intent(session, intent, "payment_intent.requires_action")


async def _confirm_with_card(session: AsyncSession, intent: PaymentIntent) -> None:
    """A merchant confirming with ``card`` names no card: the merchant never sees the
    customer's cards. The intent waits for the customer (``requires_action``, the wallet's pay
    page), who picks one of their saved cards there (``pay_with_card``)."""
    del session, intent


async def cancel_intent(session: AsyncSession, ledger: LedgerStore, actor: Actor,
                        intent_id: uuid.UUID | None, *, reason: str | None = None,
                        gateway: CardGateway | None = None) -> PaymentIntent:
    """Cancel: a held payment's hold is released (a card's by a gateway void first)."""
    if reason is not None and reason not in CANCELLATION_REASONS:
        raise InvalidMetadata(f"cancellation_reason is one of {', '.join(CANCELLATION_REASONS)}.",
                              param="cancellation_reason")
    intent = await _locked_intent(session, actor.merchant, intent_id)
    charge = await latest_charge(session, intent)
    card = charge is not None and charge.method == CARD_METHOD
    if card and gateway is None and charge is not None \
            and charge.status in ("canceling", "authorized", "requires_action"):
        raise CardPaymentsNotConnected()
    if charge is not None and charge.status == "canceling":  # resumed after a crash
        if card:
            assert gateway is not None
            await void_card_charge(session, ledger, gateway, charge, intent)
        else:
            await submit_void(session, ledger, charge, intent)
        return intent
    _check_transition(intent, "cancel")
    if intent.status == S.REQUIRES_CAPTURE:
        assert charge is not None and charge.status == "authorized", "capture without a hold"
        charge.status = "canceling"
        charge.updated_at = intent.updated_at = utcnow()
        intent.status = S.PROCESSING
        intent.cancellation_reason = reason or "requested_by_customer"
        await session.commit()
        if card:
            assert gateway is not None
            await void_card_charge(session, ledger, gateway, charge, intent)
        else:
            await submit_void(session, ledger, charge, intent)
        return intent
    await _abandon_challenge(session, gateway, intent)
    _mark_canceled(intent, reason)
    await session.flush()
    await _emit_intent(session, intent, "payment_intent.canceled")
    return intent


def _mark_canceled(intent: PaymentIntent, reason: str | None) -> None:
    now = utcnow()
    intent.status = S.CANCELED
    intent.cancellation_reason = reason or intent.cancellation_reason or "requested_by_customer"
    intent.canceled_at = intent.updated_at = now
    intent.amount_capturable_minor = 0


# -- the customer pays from the wallet balance -----------------------------------------------


async def intent_for_customer(session: AsyncSession, user_id: uuid.UUID, handle: str, *,
                              lock: bool = False) -> PaymentIntent:
    """The intent behind ``handle``: its client secret (anyone holding it may see and pay
    it, as long as nobody else has), or its id once ``user_id`` paid it. 404 otherwise."""
    intent_id = objects.parse_client_secret(handle)
    by_secret = intent_id is not None
    if intent_id is None:
        intent_id = objects.parse_public_id("payment_intent", handle)
    if intent_id is None:
        raise PaymentIntentNotFound()
    intent = (await repository.intent_locked(session, intent_id) if lock
              else await session.get(PaymentIntent, intent_id))
    if intent is None:
        raise PaymentIntentNotFound()
    if intent.payer_user_id is not None and intent.payer_user_id != user_id:
        raise PaymentIntentNotFound()
    if not by_secret and intent.payer_user_id != user_id:
        raise PaymentIntentNotFound()
    return intent


async def pay_from_wallet(session: AsyncSession, ledger: LedgerStore, auth: Authenticated, *,
                          handle: str, key: str,
                          gateway: CardGateway | None = None) -> PaymentIntent:
    """The customer pays the intent from their balance in its currency: linked ledger
    transfers wallet → merchant (PAYMENT) and merchant → fees (PAYMENT_FEE), or one hold for a
    manual-capture intent. Raises ``InsufficientFunds`` (the intent stays payable). A card's
    3-D Secure challenge left unfinished is abandoned (voided at the gateway) first."""
    user = auth.user
    charge_id = derived_id("payments.charge", user.id, key)
    existing = await session.get(Charge, charge_id)
    intent = await intent_for_customer(session, user.id, handle, lock=True)
    if existing is not None:
        return await _resume_charge(session, ledger, existing, intent)
    _check_transition(intent, "pay")
    if WALLET_METHOD not in intent.payment_method_types:
        raise InvalidPaymentMethod("This payment cannot be paid from the wallet balance.")
    merchant = await _check_payer(session, auth, intent)
    await _abandon_challenge(session, gateway, intent)
    day = await wallets_service.reserve_outflow(session, user_id=user.id,
                                                amount_minor=intent.amount_minor,
                                                currency=intent.currency)
    charge = start_charge(session, intent, charge_id=charge_id, merchant=merchant, payer=user,
                          method=WALLET_METHOD, outflow_day=day)
    await session.commit()  # the intent is durable before money moves
    await submit_charge(session, ledger, charge, intent, raise_failure=True)
    return intent


def start_charge(session: AsyncSession, intent: PaymentIntent, *, charge_id: uuid.UUID,
                 merchant: Merchant, payer: Any, method: str, outflow_day: dt.date,
                 **card: Any) -> Charge:
    """The pending charge of one attempt to pay ``intent`` (its ledger ids derived from
    ``charge_id``), added to the session, and the intent moved to ``processing``. ``card``:
    the card columns of a card payment."""
    now = utcnow()
    charge = Charge(
        id=charge_id, intent_id=intent.id, merchant_id=merchant.id, payer_user_id=payer.id,
        method=method, capture_method=intent.capture_method,
        amount_minor=intent.amount_minor, amount_captured_minor=0,
        fee_minor=fee_for(intent.amount_minor) if intent.capture_method == "automatic" else 0,
        currency=intent.currency, status="pending",
        payment_transfer_id=derived_id("payments.charge.payment", charge_id),
        fee_transfer_id=derived_id("payments.charge.fee", charge_id),
        payer_display=mfa.masked_login(payer)[:140], merchant_display=merchant.name[:140],
        outflow_day=outflow_day, failure_code=None, failure_message=None, created_at=now,
        updated_at=now, **card)
    session.add(charge)
    intent.status = S.PROCESSING
    intent.payer_user_id = payer.id
    intent.latest_charge_id = charge_id
    intent.payment_method = method
    intent.last_payment_error = None
    intent.updated_at = now
    return charge


async def _check_payer(session: AsyncSession, auth: Authenticated,
                       intent: PaymentIntent) -> Merchant:
    """The merchant may take payments and risk lets this customer pay it (a fresh second
    factor when risk asks for one): the checks of every way to pay."""
    merchant = await session.get(Merchant, intent.merchant_id)
    assert merchant is not None
    if merchant.status != "active":
        raise PaymentRefused("This merchant cannot take payments.")
    assessment = await risk_service.assess(session, user_id=auth.user.id, action="payments.pay",
                                           amount_minor=intent.amount_minor,
                                           currency=intent.currency,
                                           counterparty=merchant_owner_id(merchant.id))
    if assessment.decision in (risk_service.Decision.DENY, risk_service.Decision.REVIEW):
        raise PaymentRefused("This payment cannot be made.", reasons=list(assessment.reasons))
    if assessment.decision == risk_service.Decision.STEP_UP:
        await mfa.ensure_recent_second_factor(session, auth)
    return merchant


async def _resume_charge(session: AsyncSession, ledger: LedgerStore, charge: Charge,
                         intent: PaymentIntent) -> PaymentIntent:
    """The same payment asked again (a retry after a crash): finish it, or answer as before."""
    if charge.intent_id != intent.id:
        raise UnexpectedState("This request was already used for another payment.",
                              status=intent.status)
    if charge.status == "pending":
        await submit_charge(session, ledger, charge, intent, raise_failure=True)
    elif charge.status == "failed":
        raise _charge_error(charge)
    return intent


def _user_data(kind_code: Code, ref: uuid.UUID, *, from_: str, to: str,
               note: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": KIND_OF_CODE[kind_code], "ref": str(ref), "from": from_,
                            "to": to}
    if note:
        data["note"] = note[:NOTE_MAX_CHARS]
    return data


def charge_transfers(charge: Charge, intent: PaymentIntent) -> list[TransferIn]:
    """The ledger transfers of a charge: a pure function of the row, so a retry resubmits
    exactly the same transfers."""
    # A card payment arrives from the gateway's clearing account (the processor owes it to
    # the bank); the rest is as from the wallet balance.
    source = (wallets_service.system_account_id(wallets_service.SystemAccount.GATEWAY_CLEARING,
                                                charge.currency)
              if charge.method == CARD_METHOD
              else wallets_service.wallet_account_id(charge.payer_user_id, charge.currency))
    code = Code.CARD_PAYMENT if charge.method == CARD_METHOD else Code.PAYMENT
    merchant = merchant_account_id(charge.merchant_id, charge.currency)
    payment = _user_data(code, charge.id, from_=charge.payer_display,
                         to=charge.merchant_display, note=intent.description)
    if charge.capture_method == "manual":
        return [TransferIn(id=charge.payment_transfer_id, debit_account_id=source,
                           credit_account_id=merchant, amount=charge.amount_minor,
                           ledger=charge.currency, code=code,
                           flags=int(TransferFlags.PENDING), timeout_s=AUTHORIZATION_HOLD_S,
                           user_data=payment)]
    return [
        TransferIn(id=charge.payment_transfer_id, debit_account_id=source,
                   credit_account_id=merchant, amount=charge.amount_minor,
                   ledger=charge.currency, code=code,
                   flags=int(TransferFlags.LINKED), user_data=payment),
        _fee_transfer(charge, charge.fee_minor),
    ]


def _fee_transfer(charge: Charge, fee_minor: int) -> TransferIn:
    return TransferIn(
        id=charge.fee_transfer_id,
        debit_account_id=merchant_account_id(charge.merchant_id, charge.currency),
        credit_account_id=wallets_service.system_account_id(
            wallets_service.SystemAccount.FEES, charge.currency),
        amount=fee_minor, ledger=charge.currency, code=Code.PAYMENT_FEE,
        user_data=_user_data(Code.PAYMENT_FEE, charge.id, from_=charge.merchant_display,
                             to="bankwallet", note="merchant fee"))


def capture_transfers(charge: Charge) -> list[TransferIn]:
    return [TransferIn(id=derived_id("payments.charge.capture", charge.id),
                       pending_id=charge.payment_transfer_id,
                       amount=charge.amount_captured_minor,
                       flags=int(TransferFlags.POST_PENDING | TransferFlags.LINKED)),
            _fee_transfer(charge, charge.fee_minor)]


def void_transfer(charge: Charge) -> TransferIn:
    return TransferIn(id=derived_id("payments.charge.void", charge.id),
                      pending_id=charge.payment_transfer_id,
                      flags=int(TransferFlags.VOID_PENDING))


def _failure(outcomes: Sequence[Outcome]) -> Outcome | None:
    """The transfer that failed a submission (not the linked ones it took down with it)."""
    failed = [o for o in outcomes if not o.ok]
    for outcome in failed:
        if outcome.result is not Result.LINKED_EVENT_FAILED:
            return outcome
    return failed[0] if failed else None


_CHARGE_FAILURES: Final = {
    Result.EXCEEDS_CREDITS: ("insufficient_funds", "Your balance is not enough for this payment."),
    Result.DEBIT_ACCOUNT_NOT_FOUND: ("insufficient_funds",
                                     "You have no balance in this currency."),
}


def _charge_error(charge: Charge) -> Exception:
    if charge.failure_code == "insufficient_funds":
        return InsufficientFunds(charge.failure_message or "Not enough money in this balance.",
                                 payment_intent=objects.public_id("payment_intent",
                                                                  charge.intent_id))
    return PaymentFailed(charge.failure_message or "The payment could not be made.",
                         reason=charge.failure_code)


async def submit_charge(session: AsyncSession, ledger: LedgerStore, charge: Charge,
                         intent: PaymentIntent, *, raise_failure: bool) -> None:
    outcomes = await ledger_service.submit(ledger, charge_transfers(charge, intent))
    failure = _failure(outcomes)
    now = utcnow()
    charge.updated_at = intent.updated_at = now
    if failure is None:
        await _charge_succeeded(session, charge, intent)
        return
    code, message = _CHARGE_FAILURES.get(failure.result,
                                         ("payment_failed", "The payment could not be made."))
    log.info("payment failed", extra={"charge_id": str(charge.id),
                                      "result": failure.result.value})
    charge.status = "failed"
    charge.failure_code, charge.failure_message = code, message
    await _release_outflow(session, charge)
    if intent.latest_charge_id == charge.id and intent.status == S.PROCESSING:
        intent.status = S.REQUIRES_PAYMENT_METHOD
        intent.payer_user_id = None  # someone else may pay it now
        intent.last_payment_error = {"type": "invalid_request_error", "code": code,
                                     "message": message, "payment_method": {"type": charge.method}}
    await session.flush()
    await _publish_money(session, charge, status="failed", amount_minor=charge.amount_minor,
                         transfer_id=charge.payment_transfer_id)
    await _emit_intent(session, intent, "payment_intent.payment_failed", charge=charge)
    if raise_failure:
        await session.commit()  # the decision is kept; the idempotency record replays it
        raise _charge_error(charge)


async def _charge_succeeded(session: AsyncSession, charge: Charge,
                            intent: PaymentIntent) -> None:
    if charge.capture_method == "manual":
        charge.status = "authorized"
        intent.status = S.REQUIRES_CAPTURE
        intent.amount_capturable_minor = charge.amount_minor
        await session.flush()
        await _emit_intent(session, intent, "payment_intent.amount_capturable_updated",
                           charge=charge)
        return
    charge.status = "succeeded"
    charge.amount_captured_minor = charge.amount_minor
    intent.status = S.SUCCEEDED
    intent.amount_received_minor = charge.amount_minor
    intent.fee_minor = charge.fee_minor
    await session.flush()
    await _publish_money(session, charge, status="posted", amount_minor=charge.amount_minor,
                         transfer_id=charge.payment_transfer_id)
    await _emit_intent(session, intent, "payment_intent.succeeded", charge=charge)


async def _release_outflow(session: AsyncSession, charge: Charge) -> None:
    """Give back the daily outflow a wallet payment counted (a card payment counts none: the
    wallet's limits are about the wallet's balance)."""
    if charge.method == WALLET_METHOD:
        await wallets_service.release_outflow(session, user_id=charge.payer_user_id,
                                              amount_minor=charge.amount_minor,
                                              currency=charge.currency, day=charge.outflow_day)


async def _publish_money(session: AsyncSession, charge: Charge, *, status: str,
                         amount_minor: int, transfer_id: uuid.UUID) -> None:
    await outbox.publish(session, "money.moved", {
        "kind": KIND_OF_CODE[Code.PAYMENT], "status": status, "ref": str(charge.id),
        "amount_minor": amount_minor, "currency": charge.currency,
        "ledger_transfer_id": str(transfer_id), "payer_user_id": str(charge.payer_user_id),
        "payee_user_id": None, "from": charge.payer_display, "to": charge.merchant_display,
    }, key=str(charge.payer_user_id))


# -- the customer pays with a saved card ------------------------------------------------------
#
# A card charge is recorded (``pending``) and committed before the gateway hears of it; the
# gateway's answer then moves it on (``settle_card_charge``), whoever brings the answer: the
# paying request, the customer back from 3-D Secure, a gateway webhook, or the healing job.
# The first to move it wins: each mover locks the intent and re-reads the charge. Every call
# to the gateway carries an idempotency key derived from the intent and the charge, so asking
# again after a crash or a timeout is safe.
#
#   pending ─▶ requires_action (3-D Secure) ─▶ …
#   pending ─authorised─▶ capturing (automatic: gateway capture, then the ledger posts)
#                       ─▶ posting (manual: the ledger holds) ─▶ authorized
#   pending | requires_action ─declined / failed─▶ failed (nothing moved)

CARD_CHALLENGE_TTL_S: Final = cards_service.CHALLENGE_TTL_S
CARD_SETTLING: Final = ("pending", "requires_action")
# Card charges still waiting on the gateway: asking it about them may move them on.
CARD_FOLLOWED: Final = (*CARD_SETTLING, "posting", "capturing", "canceling")

# The gateway's decline reasons as Stripe's error codes (the reason stays the decline_code).
_CARD_ERROR_CODES: Final = {"expired_card": "expired_card", "incorrect_cvc": "incorrect_cvc",
                            "processing_error": "processing_error"}
_CARD_MESSAGES: Final = {
    "insufficient_funds": "The card has insufficient funds.",
    "expired_card": "The card has expired.",
    "incorrect_cvc": "The card's security code is incorrect.",
    "processing_error": "The card payment could not be processed; please try again.",
    "authentication_failed": "The card's 3-D Secure check failed.",
}


def gateway_key(intent_id: uuid.UUID, operation: str, ref: uuid.UUID) -> str:
    """The gateway idempotency key of one operation on a payment intent."""
    return f"bankwallet.{objects.public_id('payment_intent', intent_id)}.{operation}.{ref.hex}"


def decline_code_of(reason: str | None, *, failed: bool) -> str:
    """The decline code of a declined or failed authorisation (a failure whatever its cause
    is a ``processing_error``: nothing was taken, try again)."""
    if failed:
        return "processing_error"
    return (reason or "generic_decline")[:64]


def card_error_code(decline_code: str) -> str:
    """Stripe's error code for a decline code: ``card_declined`` unless it has its own."""
    return _CARD_ERROR_CODES.get(decline_code, "card_declined")


def _card_charge_error(charge: Charge) -> Exception:
    decline_code = charge.failure_code or "generic_decline"
    code = card_error_code(decline_code)
    detail = charge.failure_message or _CARD_MESSAGES.get(decline_code, "")
    extra = {"decline_code": decline_code,
             "payment_intent": objects.public_id("payment_intent", charge.intent_id)}
    error: type[Exception] = {"expired_card": ExpiredCard, "incorrect_cvc": IncorrectCvc,
             "processing_error": CardProcessingError}.get(code, CardDeclined)
    return error(detail, **extra)


async def charge_by_gateway_payment(session: AsyncSession, payment_id: str) -> Charge | None:
    return (await session.scalars(
        select(Charge).where(Charge.gateway_payment_id == payment_id).limit(1))).first()


async def pay_with_card(session: AsyncSession, ledger: LedgerStore, gateway: CardGateway | None,
                        auth: Authenticated, *, handle: str, card_id: uuid.UUID, key: str,
                        return_url: str) -> PaymentIntent:
    """The customer pays the intent with one of their active saved cards: the gateway
    authorises the amount (and, for automatic capture, captures it); the money then reaches
    the merchant from the gateway clearing account with the fee as a linked transfer, as a
    wallet payment does. 3-D Secure leaves the intent ``requires_action`` with the challenge
    page as its ``next_action`` (back to ``return_url``). A decline raises the issuer's code
    (the intent stays payable); no answer leaves it ``processing`` until one comes."""
    if gateway is None:
        raise CardPaymentsNotConnected()
    user = auth.user
    charge_id = derived_id("payments.charge", user.id, key)
    existing = await session.get(Charge, charge_id)
    intent = await intent_for_customer(session, user.id, handle, lock=True)
    if existing is not None:
        if existing.intent_id != intent.id:
            raise UnexpectedState("This request was already used for another payment.",
                                  status=intent.status)
        if existing.status == "failed":
            raise _card_charge_error(existing) if existing.method == CARD_METHOD \
                else _charge_error(existing)
        return intent
    _check_transition(intent, "pay")
    if CARD_METHOD not in intent.payment_method_types:
        raise InvalidPaymentMethod("This payment cannot be paid by card.", param="card_id")
    card = await cards_service.card_for_payment(session, user.id, card_id)
    merchant = await _check_payer(session, auth, intent)
    await _abandon_challenge(session, gateway, intent)
    charge = start_charge(session, intent, charge_id=charge_id, merchant=merchant, payer=user,
                          method=CARD_METHOD, outflow_day=wallets_service.bank_today(),
                          card_id=card.id, card_brand=card.brand, card_last4=card.last4,
                          gateway_payment_id=None, next_action_url=None)
    token = card.gateway_token
    assert token is not None
    await session.flush()
    await audit.record(session, action="payments.card_payment.started", actor_type="user",
                       actor_id=str(user.id), subject_type="payment_intent",
                       subject_id=str(intent.id),
                       data={"card_id": str(card.id), "brand": card.brand, "last4": card.last4})
    await session.commit()  # the charge is durable before the gateway hears of it
    result = await gateway.authorize(
        gateway_key(intent.id, "authorize", charge_id), token=token,
        amount_minor=charge.amount_minor, currency=charge.currency,
        reference=objects.public_id("payment_intent", intent.id), return_url=return_url)
    await settle_card_charge(session, ledger, gateway, charge, result, raise_failure=True)
    return intent


async def settle_card_charge(session: AsyncSession, ledger: LedgerStore, gateway: CardGateway,
                             charge: Charge, result: PaymentResult, *,
                             raise_failure: bool = False) -> None:
    """Move a card charge that waits on the gateway (``pending`` or ``requires_action``) on
    by the gateway's word about its payment. A charge another caller moved already is left."""
    intent = await _lock_intent_of(session, charge)
    if charge.status not in CARD_SETTLING:
        return
    if result.payment_id and charge.gateway_payment_id is None:
        charge.gateway_payment_id = result.payment_id[:64]
    now = utcnow()
    charge.updated_at = now
    status = result.status
    if status is PaymentStatus.REQUIRES_ACTION:
        if charge.status == "requires_action":
            return
        charge.status = "requires_action"
        charge.next_action_url = result.next_action_url
        intent.status = S.REQUIRES_ACTION
        intent.updated_at = now
        await session.flush()
        await _emit_intent(session, intent, "payment_intent.requires_action", charge=charge)
        return
    if status in (PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED):
        charge.next_action_url = None
        intent.status = S.PROCESSING
        intent.updated_at = now
        if charge.capture_method == "manual":
            charge.status = "posting"
            await session.commit()
            await submit_charge(session, ledger, charge, intent, raise_failure=False)
            return
        charge.status = "capturing"
        charge.amount_captured_minor = charge.amount_minor
        await session.commit()
        await capture_card_charge(session, ledger, gateway, charge, intent,
                                  raise_failure=raise_failure)
        return
    if status in (PaymentStatus.DECLINED, PaymentStatus.FAILED, PaymentStatus.VOIDED):
        await _card_charge_failed(session, charge, intent, reason=result.reason,
                                  failed=status is PaymentStatus.FAILED)
        if raise_failure:
            await session.commit()  # the decline is kept; the idempotency record replays it
            raise _card_charge_error(charge)
        return
    # PENDING or UNKNOWN: no decision; the webhook, the customer's return or healing brings it.
    log.info("card payment undecided", extra={"charge_id": str(charge.id),
                                              "status": status.value})
    await session.flush()


async def _card_charge_failed(session: AsyncSession, charge: Charge, intent: PaymentIntent, *,
                              reason: str | None, failed: bool) -> None:
    decline_code = decline_code_of(reason, failed=failed)
    code = card_error_code(decline_code)
    message = _CARD_MESSAGES.get(decline_code,
                                 "The card issuer declined the payment; try another card.")
    charge.status = "failed"
    charge.next_action_url = None
    charge.failure_code = decline_code  # Stripe's charge.failure_code carries the reason
    charge.failure_message = message
    if intent.latest_charge_id == charge.id and intent.status in (S.PROCESSING,
                                                                   S.REQUIRES_ACTION):
        intent.status = S.REQUIRES_PAYMENT_METHOD
        intent.payer_user_id = None  # pay again, with another card or the balance
        intent.last_payment_error = {
            "type": "card_error", "code": code, "decline_code": decline_code,
            "message": message, "payment_method": card_details(charge)}
        intent.updated_at = utcnow()
    await session.flush()
    log.info("card payment declined", extra={"charge_id": str(charge.id), "code": code,
                                             "decline_code": decline_code})
    await _emit_intent(session, intent, "payment_intent.payment_failed", charge=charge)


async def capture_card_charge(session: AsyncSession, ledger: LedgerStore, gateway: CardGateway,
                              charge: Charge, intent: PaymentIntent, *,
                              raise_failure: bool) -> None:
    """A ``capturing`` card charge: the gateway takes the money (all of it, or the amount a
    manual capture asked for), then the ledger posts it to the merchant, fee linked. A
    capture the gateway refuses (the authorisation was voided) changes nothing here and is
    reported; no answer leaves the charge ``capturing`` for healing."""
    assert charge.status == "capturing" and charge.gateway_payment_id is not None
    manual = charge.capture_method == "manual"
    result = await gateway.capture(
        gateway_key(intent.id, "capture", charge.id), charge.gateway_payment_id,
        charge.amount_captured_minor if manual else None)
    await repository.intent_locked(session, intent.id)
    await session.refresh(charge)
    if charge.status != "capturing":  # a webhook about the capture finished it meanwhile
        return
    await finish_card_capture(session, ledger, charge, intent, result,
                              raise_failure=raise_failure)


async def finish_card_capture(session: AsyncSession, ledger: LedgerStore, charge: Charge,
                              intent: PaymentIntent, result: PaymentResult, *,
                              raise_failure: bool) -> None:
    """Record what the gateway said about a ``capturing`` card charge's capture."""
    manual = charge.capture_method == "manual"
    if result.error is None and result.status in (PaymentStatus.CAPTURED,
                                                  PaymentStatus.REFUNDED):
        if manual:
            await submit_capture(session, ledger, charge, intent, raise_failure=raise_failure)
        else:
            await submit_charge(session, ledger, charge, intent, raise_failure=raise_failure)
        return
    if result.error is None:  # no answer, or a status we do not know: ask again later
        log.warning("card capture undecided", extra={"charge_id": str(charge.id),
                                                     "status": result.status.value,
                                                     "reason": result.reason})
        return
    log.warning("card capture refused", extra={"charge_id": str(charge.id),
                                               "error": result.error,
                                               "status": result.status.value})
    if not manual:  # our own fresh authorisation could not be captured: the payment failed
        await _card_charge_failed(session, charge, intent, reason="processing_error",
                                  failed=True)
        if raise_failure:
            await session.commit()
            raise _card_charge_error(charge)
        return
    # Manual capture refused: put everything back as it was (still authorised here); the
    # gateway's webhook about a void, if that is why, cancels the intent.
    charge.status = "authorized"
    charge.amount_captured_minor = 0
    charge.fee_minor = 0
    charge.updated_at = intent.updated_at = utcnow()
    intent.status = S.REQUIRES_CAPTURE
    await session.flush()
    if raise_failure:
        await session.commit()
        raise CardCaptureRefused(
            "The card gateway refused the capture: the authorisation is "
            f"{result.status.value}.", gateway_status=result.status.value,
            gateway_code=result.error)


async def void_card_charge(session: AsyncSession, ledger: LedgerStore, gateway: CardGateway,
                           charge: Charge, intent: PaymentIntent) -> None:
    """A ``canceling`` card charge: the gateway releases the hold (void), then the ledger
    voids its own; no answer leaves the charge ``canceling`` for healing."""
    assert charge.status == "canceling" and charge.gateway_payment_id is not None
    result = await gateway.void(gateway_key(intent.id, "void", charge.id),
                                charge.gateway_payment_id)
    if result.status is PaymentStatus.VOIDED:
        await submit_void(session, ledger, charge, intent)
        return
    log.warning("card void undecided", extra={"charge_id": str(charge.id),
                                              "status": result.status.value,
                                              "error": result.error})


async def _abandon_challenge(session: AsyncSession, gateway: CardGateway | None,
                             intent: PaymentIntent) -> None:
    """Before the intent is paid another way: a card charge still waiting on 3-D Secure is
    voided at the gateway and given up (its challenge page then says so)."""
    charge = await latest_charge(session, intent)
    if charge is None or charge.method != CARD_METHOD or charge.status != "requires_action":
        return
    if gateway is None:
        raise UnexpectedState("A card payment of this intent waits for 3-D Secure.",
                              status=intent.status)
    if charge.gateway_payment_id:
        await gateway.void(gateway_key(intent.id, "void", charge.id), charge.gateway_payment_id)
    charge.status = "canceled"
    charge.next_action_url = None
    charge.updated_at = utcnow()
    await session.flush()


async def follow_card_payment(session: AsyncSession, ledger: LedgerStore,
                              gateway: CardGateway | None, *, user_id: uuid.UUID,
                              handle: str) -> PaymentIntent:
    """The customer is back from 3-D Secure (or looks again): ask the gateway how the
    intent's card charge stands and move it on. Returns the intent as it is then."""
    intent = await intent_for_customer(session, user_id, handle)
    charge = await latest_charge(session, intent)
    if gateway is None or charge is None or charge.method != CARD_METHOD \
            or charge.status not in CARD_FOLLOWED:
        return intent
    await follow_card_charge(session, ledger, gateway, charge)
    await session.refresh(intent)
    return intent


async def follow_card_charge(session: AsyncSession, ledger: LedgerStore, gateway: CardGateway,
                             charge: Charge, *, now: dt.datetime | None = None) -> None:
    """Ask the gateway about a card charge that waits on it and act on the answer: settle a
    pending or challenged charge, finish a capture or void in flight. A challenge left
    unfinished for ``CARD_CHALLENGE_TTL_S`` is voided and given up."""
    intent = await _lock_intent_of(session, charge)
    now = now or utcnow()
    if charge.status == "capturing":
        await session.commit()
        await capture_card_charge(session, ledger, gateway, charge, intent, raise_failure=False)
        return
    if charge.status == "canceling":
        await session.commit()
        await void_card_charge(session, ledger, gateway, charge, intent)
        return
    if charge.status == "posting":
        await session.commit()
        await submit_charge(session, ledger, charge, intent, raise_failure=False)
        return
    if charge.status not in CARD_SETTLING:
        return
    if charge.gateway_payment_id is None:
        if (now - charge.updated_at).total_seconds() > HEAL_AFTER_S:
            # The authorisation request died unanswered; the gateway knows it by its key.
            card = await session.get(cards_service.Card, charge.card_id) if charge.card_id \
                else None
            if card is None or not card.gateway_token:
                await _card_charge_failed(session, charge, intent, reason="processing_error",
                                          failed=True)
                return
            token = card.gateway_token
            await session.commit()
            result = await gateway.authorize(
                gateway_key(intent.id, "authorize", charge.id), token=token,
                amount_minor=charge.amount_minor, currency=charge.currency,
                reference=objects.public_id("payment_intent", intent.id))
            await settle_card_charge(session, ledger, gateway, charge, result)
        return
    payment_id = charge.gateway_payment_id
    stale_challenge = (charge.status == "requires_action"
                       and (now - charge.created_at).total_seconds() > CARD_CHALLENGE_TTL_S)
    await session.commit()  # nothing held while the gateway answers
    if stale_challenge:
        await gateway.void(gateway_key(intent.id, "void", charge.id), payment_id)
    result = await gateway.get_payment(payment_id)
    if result is None:
        result = PaymentResult(PaymentStatus.FAILED, payment_id, reason="processing_error")
    await settle_card_charge(session, ledger, gateway, charge, result)


async def apply_gateway_event(session: AsyncSession, ledger: LedgerStore, gateway: CardGateway,
                              event: WebhookEvent) -> bool:
    """A gateway webhook (already de-duplicated by ``cards.service.handle_gateway_event``)
    about a card payment of an intent: settle the charge it decides, or cancel the intent
    whose authorisation the gateway voided. False when no charge is about this payment."""
    charge = await charge_by_gateway_payment(session, event.payment_id)
    if charge is None:
        return False
    said = PaymentResult(event.status, event.payment_id, reason=event.reason,
                         amount_captured_minor=event.amount_captured_minor)
    if charge.status in CARD_SETTLING:
        await settle_card_charge(session, ledger, gateway, charge, said)
    elif charge.status == "capturing" and event.status is PaymentStatus.CAPTURED:
        # Our capture request went unanswered (or is still on its way): the webhook says.
        intent = await _lock_intent_of(session, charge)
        if charge.status == "capturing":
            await session.commit()
            await finish_card_capture(session, ledger, charge, intent, said,
                                      raise_failure=False)
    elif charge.status == "canceling" and event.status is PaymentStatus.VOIDED:
        intent = await _lock_intent_of(session, charge)
        if charge.status == "canceling":
            await session.commit()
            await submit_void(session, ledger, charge, intent)
    elif charge.status == "authorized" and event.status is PaymentStatus.VOIDED:
        intent = await _lock_intent_of(session, charge)
        if charge.status == "authorized":
            charge.status = "canceling"
            charge.updated_at = intent.updated_at = utcnow()
            intent.status = S.PROCESSING
            intent.cancellation_reason = intent.cancellation_reason or "abandoned"
            await session.commit()  # on SQLite the ledger writes on a connection of its own
            await submit_void(session, ledger, charge, intent)
    return True


async def _lock_intent_of(session: AsyncSession, charge: Charge) -> PaymentIntent:
    """Lock the charge's intent and read the charge again under that lock (a concurrent
    request or webhook may have moved it first)."""
    intent = await repository.intent_locked(session, charge.intent_id)
    assert intent is not None
    await session.refresh(charge)
    return intent


# -- capture and void (manual capture) --------------------------------------------------------


async def capture_intent(session: AsyncSession, ledger: LedgerStore, actor: Actor,
                         intent_id: uuid.UUID | None, *, amount_to_capture: int | None = None,
                         gateway: CardGateway | None = None) -> PaymentIntent:
    """Post the authorised hold (all of it, or less: the rest goes back to the customer) and
    take the fee on what was captured, as one linked chain. A card payment is captured at
    the gateway first (partly, when less is asked)."""
    intent = await _locked_intent(session, actor.merchant, intent_id)
    charge = await latest_charge(session, intent)
    card = charge is not None and charge.method == CARD_METHOD
    if card and gateway is None:
        raise CardPaymentsNotConnected()
    if charge is not None and charge.status == "capturing":  # resumed after a crash
        if card:
            assert gateway is not None
            await capture_card_charge(session, ledger, gateway, charge, intent,
                                      raise_failure=True)
        else:
            await submit_capture(session, ledger, charge, intent)
        return intent
    _check_transition(intent, "capture")
    assert charge is not None and charge.status == "authorized", "capture without a hold"
    amount = intent.amount_capturable_minor if amount_to_capture is None else amount_to_capture
    if isinstance(amount, bool) or not isinstance(amount, int) \
            or not 1 <= amount <= intent.amount_capturable_minor:
        raise CaptureExceedsCapturable(
            f"Capture between 1 and {intent.amount_capturable_minor}.",
            param="amount_to_capture")
    charge.status = "capturing"
    charge.amount_captured_minor = amount
    charge.fee_minor = fee_for(amount)
    charge.updated_at = intent.updated_at = utcnow()
    intent.status = S.PROCESSING
    await session.commit()
    if card:
        assert gateway is not None
        await capture_card_charge(session, ledger, gateway, charge, intent, raise_failure=True)
    else:
        await submit_capture(session, ledger, charge, intent)
    return intent


async def submit_capture(session: AsyncSession, ledger: LedgerStore, charge: Charge,
                          intent: PaymentIntent, *, raise_failure: bool = True) -> None:
    outcomes = await ledger_service.submit(ledger, capture_transfers(charge))
    failure = _failure(outcomes)
    charge.updated_at = intent.updated_at = utcnow()
    if failure is None:
        charge.status = "succeeded"
        intent.status = S.SUCCEEDED
        intent.amount_received_minor = charge.amount_captured_minor
        intent.amount_capturable_minor = 0
        intent.fee_minor = charge.fee_minor
        await session.flush()
        await _publish_money(session, charge, status="posted",
                             amount_minor=charge.amount_captured_minor,
                             transfer_id=capture_transfers(charge)[0].id)
        await _emit_intent(session, intent, "payment_intent.succeeded", charge=charge)
        return
    # The hold is gone (expired and voided by the ledger): the authorisation lapsed.
    assert failure.result in (Result.PENDING_TRANSFER_EXPIRED,
                              Result.PENDING_TRANSFER_ALREADY_VOIDED), failure.result
    await _charge_canceled(session, charge, intent, reason="automatic")
    if raise_failure:
        await session.commit()
        raise UnexpectedState("The authorisation expired before it was captured.",
                              status=intent.status)


async def submit_void(session: AsyncSession, ledger: LedgerStore, charge: Charge,
                       intent: PaymentIntent) -> None:
    (outcome,) = await ledger_service.submit(ledger, [void_transfer(charge)])
    assert outcome.ok or outcome.result in (Result.PENDING_TRANSFER_EXPIRED,
                                            Result.PENDING_TRANSFER_ALREADY_VOIDED), outcome.result
    await _charge_canceled(session, charge, intent, reason=intent.cancellation_reason)


async def _charge_canceled(session: AsyncSession, charge: Charge, intent: PaymentIntent, *,
                           reason: str | None) -> None:
    charge.status = "canceled"
    charge.amount_captured_minor = 0
    charge.fee_minor = 0
    charge.updated_at = utcnow()
    await _release_outflow(session, charge)
    _mark_canceled(intent, reason)
    await session.flush()
    await _publish_money(session, charge, status="failed", amount_minor=charge.amount_minor,
                         transfer_id=charge.payment_transfer_id)
    await _emit_intent(session, intent, "payment_intent.canceled", charge=charge)


# -- refunds ---------------------------------------------------------------------------------


def refund_id_for_key(merchant_id: uuid.UUID, key: str) -> uuid.UUID:
    return derived_id("payments.refund", merchant_id, key)


async def create_refund(session: AsyncSession, ledger: LedgerStore, actor: Actor, *,
                        intent_id: uuid.UUID | None, refund_id: uuid.UUID,
                        amount_minor: int | None = None, reason: str | None = None,
                        metadata: dict[str, Any] | None = None,
                        gateway: CardGateway | None = None) -> Refund:
    """Give back all or part of a captured payment, and the same share of the fee (see
    ``fee_refunded_after``): linked transfers fees → merchant (PAYMENT_FEE) and merchant →
    customer wallet (REFUND). Never more than captured less refunded. A card payment goes
    back to the card through the gateway (``submit_card_refund``)."""
    merchant = actor.merchant
    existing = await session.get(Refund, refund_id)
    if existing is not None:
        if existing.merchant_id != merchant.id:
            raise RefundNotFound()
        return await _resume_refund(session, ledger, existing, gateway=gateway)
    if reason is not None and reason not in REFUND_REASONS:
        raise InvalidMetadata(f"reason is one of {', '.join(REFUND_REASONS)}.", param="reason")
    clean_metadata = check_metadata(metadata)
    intent = await _locked_intent(session, merchant, intent_id)
    _check_transition(intent, "refund")
    refundable = intent.amount_received_minor - intent.amount_refunded_minor
    amount = refundable if amount_minor is None else amount_minor
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= refundable:
        raise RefundExceedsCaptured(refundable_minor=refundable, currency=intent.currency)
    await _assess_merchant_action(session, actor, "payments.refund", amount, intent.currency)
    charge = await latest_charge(session, intent)
    assert charge is not None and charge.status == "succeeded"
    if charge.method == CARD_METHOD and gateway is None:
        raise CardPaymentsNotConnected()
    fee_after = fee_refunded_after(fee_minor=intent.fee_minor,
                                   captured_minor=intent.amount_received_minor,
                                   refunded_minor=intent.amount_refunded_minor + amount)
    now = utcnow()
    refund = Refund(
        id=refund_id, intent_id=intent.id, charge_id=charge.id, merchant_id=merchant.id,
        payee_user_id=charge.payer_user_id, amount_minor=amount,
        fee_refund_minor=fee_after - intent.fee_refunded_minor, currency=intent.currency,
        status="pending", reason=reason, metadata_=clean_metadata,
        refund_transfer_id=derived_id("payments.refund.transfer", refund_id),
        fee_transfer_id=derived_id("payments.refund.fee", refund_id),
        payee_display=charge.payer_display, merchant_display=charge.merchant_display,
        failure_code=None, created_at=now, updated_at=now)
    session.add(refund)
    intent.amount_refunded_minor += amount
    intent.fee_refunded_minor = fee_after
    intent.updated_at = now
    await session.flush()
    await _audit(session, actor, "payments.refund.created", subject_type="payment_intent",
                 subject_id=str(intent.id), data={"refund_id": str(refund_id),
                                                  "amount_minor": amount})
    await session.commit()
    if charge.method == CARD_METHOD:
        assert gateway is not None
        await submit_card_refund(session, ledger, gateway, refund, raise_failure=True)
    else:
        await submit_refund(session, ledger, refund, raise_failure=True)
    return refund


async def _assess_merchant_action(session: AsyncSession, actor: Actor, action: str,
                                  amount_minor: int, currency: str) -> None:
    """Risk for money the merchant sends out. A member signed in steps up above the threshold;
    an API key is a machine credential and cannot, so only a refusal stops it."""
    user_id = actor.auth.user.id if actor.auth else actor.merchant.created_by
    assessment = await risk_service.assess(session, user_id=user_id, action=action,
                                           amount_minor=amount_minor, currency=currency,
                                           counterparty=merchant_owner_id(actor.merchant.id))
    if assessment.decision in (risk_service.Decision.DENY, risk_service.Decision.REVIEW):
        raise PaymentRefused("This cannot be done now.", reasons=list(assessment.reasons))
    if assessment.decision == risk_service.Decision.STEP_UP and actor.auth is not None:
        await mfa.ensure_recent_second_factor(session, actor.auth)


async def _resume_refund(session: AsyncSession, ledger: LedgerStore, refund: Refund, *,
                         gateway: CardGateway | None = None) -> Refund:
    card = refund.gateway_refund_id is not None or await _refund_is_card(session, refund)
    if card and refund.status in ("pending", "processing"):
        if gateway is None:
            raise CardPaymentsNotConnected()
        await submit_card_refund(session, ledger, gateway, refund, raise_failure=True)
    elif refund.status == "pending":
        await submit_refund(session, ledger, refund, raise_failure=True)
    elif refund.status == "failed":
        if card and refund.failure_code != "insufficient_funds":
            raise CardRefundFailed("The card gateway refused the refund.",
                                   reason=refund.failure_code)
        raise MerchantBalanceInsufficient("The merchant's balance did not cover the refund.")
    return refund


async def _refund_is_card(session: AsyncSession, refund: Refund) -> bool:
    charge = await session.get(Charge, refund.charge_id)
    return charge is not None and charge.method == CARD_METHOD


# A card refund: the merchant's money is held first (so the merchant's balance is known to
# cover it before the card is credited), the gateway refunds the card, then the hold posts
# (the money leaves for the gateway clearing account) or is voided (the gateway refused). The
# fee's share comes back at once in the same linked chain, as for a wallet refund, so it
# counts towards the hold; a refused refund takes it back.
#
#   pending ─hold─▶ processing ─gateway refunded─▶ succeeded (posted)
#                              ─gateway refused─▶ failed (voided)
#   pending ─the merchant's balance is short─▶ failed (nothing moved)


def card_refund_hold(refund: Refund) -> list[TransferIn]:
    """The fee share back to the merchant and the refund held on its way to the card (the
    gateway clearing account) until the gateway answers."""
    return _refund_legs(refund, wallets_service.system_account_id(
        wallets_service.SystemAccount.GATEWAY_CLEARING, refund.currency),
        flags=int(TransferFlags.PENDING), note="card refund")


def card_refund_resolution(refund: Refund, *, post: bool) -> list[TransferIn]:
    if post:
        return [TransferIn(id=derived_id("payments.refund.post", refund.id),
                           pending_id=refund.refund_transfer_id,
                           flags=int(TransferFlags.POST_PENDING))]
    legs = [TransferIn(id=derived_id("payments.refund.void", refund.id),
                       pending_id=refund.refund_transfer_id,
                       flags=int(TransferFlags.VOID_PENDING | (
                           TransferFlags.LINKED if refund.fee_refund_minor else 0)))]
    if refund.fee_refund_minor:  # the fee's share goes back to the bank
        legs.append(TransferIn(
            id=derived_id("payments.refund.fee.reversal", refund.id),
            debit_account_id=merchant_account_id(refund.merchant_id, refund.currency),
            credit_account_id=wallets_service.system_account_id(
                wallets_service.SystemAccount.FEES, refund.currency),
            amount=refund.fee_refund_minor, ledger=refund.currency, code=Code.PAYMENT_FEE,
            user_data=_user_data(Code.PAYMENT_FEE, refund.id, from_=refund.merchant_display,
                                 to="bankwallet", note="card refund refused: fee")))
    return legs


async def submit_card_refund(session: AsyncSession, ledger: LedgerStore, gateway: CardGateway,
                             refund: Refund, *, raise_failure: bool) -> None:
    """Carry a card refund on from where it stands (``pending`` or ``processing``); each step
    is idempotent (ledger ids, the gateway's key), so healing may call it again."""
    if refund.status == "pending":
        outcomes = await ledger_service.submit(ledger, card_refund_hold(refund))
        failure = _failure(outcomes)
        if failure is not None:
            await _card_refund_failed(session, refund, code=(
                "insufficient_funds" if failure.result is Result.EXCEEDS_CREDITS
                else failure.result.value))
            if raise_failure:
                await session.commit()
                raise MerchantBalanceInsufficient(
                    "The merchant's balance does not cover this refund.")
            return
        refund.status = "processing"
        refund.updated_at = utcnow()
        await session.commit()  # held: now the card may be credited
    if refund.status != "processing":
        return
    charge = await session.get(Charge, refund.charge_id)
    assert charge is not None and charge.gateway_payment_id is not None
    result = await gateway.refund(gateway_key(refund.intent_id, "refund", refund.id),
                                  charge.gateway_payment_id, refund.amount_minor)
    await _card_refund_answered(session, ledger, refund, result, raise_failure=raise_failure)


async def _card_refund_answered(session: AsyncSession, ledger: LedgerStore, refund: Refund,
                                result: RefundResult, *, raise_failure: bool) -> None:
    if result.status is RefundStatus.SUCCEEDED:
        outcomes = await ledger_service.submit(ledger, card_refund_resolution(refund, post=True))
        assert _failure(outcomes) is None, "a held card refund did not post"
        refund.gateway_refund_id = (result.refund_id or "")[:64] or None
        await _refund_succeeded(session, refund)
        return
    if result.status is RefundStatus.FAILED and not result.retryable:
        outcomes = await ledger_service.submit(ledger, card_refund_resolution(refund, post=False))
        assert _failure(outcomes) is None, "a held card refund could not be voided"
        await _card_refund_failed(session, refund, code=(result.reason or "refund_failed")[:64])
        if raise_failure:
            await session.commit()
            raise CardRefundFailed("The card gateway refused the refund.", reason=result.reason)
        return
    # No answer (or one we do not know): stays processing; healing asks again with the key.
    log.warning("card refund undecided", extra={"refund_id": str(refund.id),
                                                "status": result.status.value,
                                                "reason": result.reason})


async def _card_refund_failed(session: AsyncSession, refund: Refund, *, code: str) -> None:
    intent = await repository.intent_locked(session, refund.intent_id)
    assert intent is not None
    refund.status = "failed"
    refund.failure_code = code
    refund.updated_at = intent.updated_at = utcnow()
    intent.amount_refunded_minor -= refund.amount_minor
    intent.fee_refunded_minor -= refund.fee_refund_minor
    await session.flush()
    await _publish_refund(session, refund, status="failed")


def refund_transfers(refund: Refund) -> list[TransferIn]:
    """The fee share back to the merchant and the refund to the payer's wallet."""
    return _refund_legs(refund, wallets_service.wallet_account_id(refund.payee_user_id,
                                                                  refund.currency))


def _refund_legs(refund: Refund, credit_account_id: uuid.UUID, *, flags: int = 0,
                 note: str | None = None) -> list[TransferIn]:
    """The merchant's fee share first (linked: all or nothing), then the refund itself from
    the merchant to ``credit_account_id``."""
    merchant = merchant_account_id(refund.merchant_id, refund.currency)
    legs: list[TransferIn] = []
    if refund.fee_refund_minor:
        legs.append(TransferIn(
            id=refund.fee_transfer_id,
            debit_account_id=wallets_service.system_account_id(
                wallets_service.SystemAccount.FEES, refund.currency),
            credit_account_id=merchant, amount=refund.fee_refund_minor, ledger=refund.currency,
            code=Code.PAYMENT_FEE, flags=int(TransferFlags.LINKED),
            user_data=_user_data(Code.PAYMENT_FEE, refund.id, from_="bankwallet",
                                 to=refund.merchant_display, note="merchant fee refund")))
    legs.append(TransferIn(
        id=refund.refund_transfer_id, debit_account_id=merchant,
        credit_account_id=credit_account_id, amount=refund.amount_minor,
        ledger=refund.currency, code=Code.REFUND, flags=flags,
        user_data=_user_data(Code.REFUND, refund.id, from_=refund.merchant_display,
                             to=refund.payee_display, note=note)))
    return legs


async def submit_refund(session: AsyncSession, ledger: LedgerStore, refund: Refund, *,
                         raise_failure: bool) -> None:
    outcomes = await ledger_service.submit(ledger, refund_transfers(refund))
    failure = _failure(outcomes)
    if failure is None:
        await _refund_succeeded(session, refund)
        return
    intent = await repository.intent_locked(session, refund.intent_id)
    assert intent is not None
    refund.updated_at = intent.updated_at = utcnow()
    refund.status = "failed"
    refund.failure_code = "insufficient_funds" if failure.result is Result.EXCEEDS_CREDITS \
        else failure.result.value
    intent.amount_refunded_minor -= refund.amount_minor
    intent.fee_refunded_minor -= refund.fee_refund_minor
    await session.flush()
    await _publish_refund(session, refund, status="failed")
    if raise_failure:
        await session.commit()
        raise MerchantBalanceInsufficient("The merchant's balance does not cover this refund.")


async def _refund_succeeded(session: AsyncSession, refund: Refund) -> None:
    intent = await repository.intent_locked(session, refund.intent_id)
    assert intent is not None
    refund.updated_at = intent.updated_at = utcnow()
    charge = await session.get(Charge, refund.charge_id)
    assert charge is not None
    refund.status = "succeeded"
    await session.flush()
    await _publish_refund(session, refund, status="posted")
    charge_obj = objects.charge_object(charge, intent)
    if charge.method == CARD_METHOD:
        charge_obj["payment_method_details"] = card_details(charge)
    charge_obj["refunds"] = {"object": "list", "data": [objects.refund_object(refund)],
                             "has_more": False}
    await emit(session, intent.merchant_id, "charge.refunded", charge_obj)


async def _publish_refund(session: AsyncSession, refund: Refund, *, status: str) -> None:
    await outbox.publish(session, "money.moved", {
        "kind": KIND_OF_CODE[Code.REFUND], "status": status, "ref": str(refund.id),
        "amount_minor": refund.amount_minor, "currency": refund.currency,
        "ledger_transfer_id": str(refund.refund_transfer_id), "payer_user_id": None,
        "payee_user_id": str(refund.payee_user_id), "from": refund.merchant_display,
        "to": refund.payee_display,
    }, key=str(refund.payee_user_id))


async def get_refund(session: AsyncSession, merchant: Merchant,
                     refund_id: uuid.UUID | None) -> Refund:
    refund = await session.get(Refund, refund_id) if refund_id else None
    if refund is None or refund.merchant_id != merchant.id:
        raise RefundNotFound(param="refund")
    return refund


async def refunds_of(session: AsyncSession, intent: PaymentIntent) -> list[Refund]:
    return await repository.refunds_of(session, intent.id, limit=PAGE_MAX)


# -- settlement ------------------------------------------------------------------------------


def settlement_id_for_key(merchant_id: uuid.UUID, key: str) -> uuid.UUID:
    return derived_id("payments.settlement", merchant_id, key)


def settlement_hold(settlement: Settlement, merchant_name: str) -> TransferIn:
    return TransferIn(
        id=settlement.hold_transfer_id,
        debit_account_id=merchant_account_id(settlement.merchant_id, settlement.currency),
        credit_account_id=wallets_service.system_account_id(
            wallets_service.SystemAccount.BANK_SETTLEMENT, settlement.currency),
        amount=settlement.amount_minor, ledger=settlement.currency, code=Code.SETTLEMENT,
        flags=int(TransferFlags.PENDING),
        user_data=_user_data(Code.SETTLEMENT, settlement.id, from_=merchant_name[:140],
                             to=f"Bank account {mask_bank_account(settlement.bank_account_last4)}"))


def settlement_resolution(settlement: Settlement, *, post: bool) -> TransferIn:
    flag = TransferFlags.POST_PENDING if post else TransferFlags.VOID_PENDING
    return TransferIn(id=derived_id("payments.settlement." + ("post" if post else "void"),
                                    settlement.id),
                      pending_id=settlement.hold_transfer_id, flags=int(flag))


async def request_settlement(session: AsyncSession, ledger: LedgerStore, actor: Actor, *,
                             settlement_id: uuid.UUID, currency: str,
                             amount_minor: int | None = None) -> Settlement:
    """Pay the merchant's balance (all of it by default) out to its bank account: the money
    is held at once; ``tasks`` sends the credit to the core bank when one is configured and
    posts or voids the hold on its answer. Until then the settlement stays ``queued``."""
    assert actor.auth is not None, "settlements are asked for by a signed-in member"
    merchant = actor.merchant
    existing = await session.get(Settlement, settlement_id)
    if existing is not None:
        if existing.merchant_id != merchant.id:
            raise MerchantNotFound()
        if existing.status == "pending":
            await submit_settlement_hold(session, ledger, existing, merchant, raise_failure=True)
        return existing
    currency = wallets_service.supported(currency)
    balance = await merchant_balance(ledger, merchant.id, currency)
    amount = balance.available_minor if amount_minor is None else check_amount(amount_minor)
    if amount <= 0:
        raise SettlementNothingToSettle("The balance is empty.")
    if amount > balance.available_minor:
        raise MerchantBalanceInsufficient("The balance is less than this amount.",
                                          available_minor=balance.available_minor)
    await _assess_merchant_action(session, actor, "payments.settlement", amount, currency)
    now = utcnow()
    settlement = Settlement(
        id=settlement_id, merchant_id=merchant.id, amount_minor=amount, currency=currency,
        status="pending", hold_transfer_id=derived_id("payments.settlement.hold", settlement_id),
        bank_account_last4=merchant.bank_account_last4, instruction_id=None, failure_code=None,
        created_by=actor.auth.user.id, created_at=now, updated_at=now)
    session.add(settlement)
    await session.flush()
    await _audit(session, actor, "payments.settlement.requested", subject_type="merchant",
                 subject_id=str(merchant.id), data={"settlement_id": str(settlement_id),
                                                    "amount_minor": amount,
                                                    "currency": currency})
    await session.commit()
    await submit_settlement_hold(session, ledger, settlement, merchant, raise_failure=True)
    return settlement


async def submit_settlement_hold(session: AsyncSession, ledger: LedgerStore,
                                 settlement: Settlement, merchant: Merchant, *,
                                 raise_failure: bool) -> None:
    (outcome,) = await ledger_service.submit(ledger, [settlement_hold(settlement, merchant.name)])
    settlement.updated_at = utcnow()
    if outcome.ok:
        settlement.status = "queued"
        await session.flush()
        return
    settlement.status = "failed"
    settlement.failure_code = "insufficient_funds" if outcome.result is Result.EXCEEDS_CREDITS \
        else outcome.result.value
    await session.flush()
    if raise_failure:
        await session.commit()
        raise MerchantBalanceInsufficient("The balance does not cover this settlement.")


async def list_settlements(session: AsyncSession, merchant: Merchant) -> list[Settlement]:
    return await repository.settlements(session, merchant.id, limit=PAGE_MAX)


async def finish_settlement(session: AsyncSession, ledger: LedgerStore, settlement: Settlement,
                            *, succeeded: bool, reason: str | None = None) -> None:
    """The bank answered: post the hold (the money left) or void it (it stays)."""
    (outcome,) = await ledger_service.submit(ledger, [settlement_resolution(settlement,
                                                                            post=succeeded)])
    assert outcome.ok, outcome.result
    settlement.status = "succeeded" if succeeded else "failed"
    settlement.failure_code = None if succeeded else (reason or "bank_failed")
    settlement.updated_at = utcnow()
    await session.flush()
    merchant = await session.get(Merchant, settlement.merchant_id)
    assert merchant is not None
    await outbox.publish(session, "money.moved", {
        "kind": KIND_OF_CODE[Code.SETTLEMENT], "status": "posted" if succeeded else "failed",
        "ref": str(settlement.id), "amount_minor": settlement.amount_minor,
        "currency": settlement.currency,
        "ledger_transfer_id": str(settlement.hold_transfer_id), "payer_user_id": None,
        "payee_user_id": None, "from": merchant.name[:140],
        "to": f"Bank account {mask_bank_account(settlement.bank_account_last4)}",
    }, key=merchant_owner_id(merchant.id))


# -- QR codes ------------------------------------------------------------------------------


def merchant_qr(merchant: Merchant, intent: PaymentIntent | None = None):
    """The merchant's static code, or the dynamic code of ``intent`` (amount and reference)."""
    where = {"merchant_id": merchant.id, "name": merchant.name, "city": merchant.city,
             "mcc": merchant.mcc, "country": merchant.country}
    if intent is None:
        return payments_qr.static_qr(**where)
    assert intent.merchant_id == merchant.id, "an intent of another merchant"
    return payments_qr.dynamic_qr(**where, intent_id=intent.id,
                                  amount_minor=intent.amount_minor, currency=intent.currency)


async def resolve_qr(session: AsyncSession, payload: str
                     ) -> tuple[Merchant, PaymentIntent | None]:
    """The merchant (and, for a dynamic code, the payment intent) a scanned payload names.
    A payload that breaks a rule, is not ours, or names nothing we know raises a typed QR
    error naming the data object; nothing is written."""
    from bankwallet.qr import emvco
    from bankwallet.qr.errors import QrFieldInvalid

    qr = emvco.decode(payload.strip())
    merchant_id = payments_qr.bankwallet_merchant_id(qr)
    merchant = await session.get(Merchant, merchant_id)
    if merchant is None or merchant.status != "active":
        raise QrFieldInvalid("names no active bankwallet merchant", field="26.01",
                             field_name="Payment Network Specific")
    reference = qr.additional_data.reference_label if qr.additional_data else None
    if not qr.is_dynamic:
        return merchant, None
    if reference is None:
        raise QrFieldInvalid("is mandatory in a dynamic bankwallet code", field="62.05",
                             field_name="Reference Label")
    intent = await session.get(PaymentIntent, payments_qr.parse_intent_reference(reference))
    if intent is None or intent.merchant_id != merchant.id:
        raise QrFieldInvalid("names no payment of this merchant", field="62.05",
                             field_name="Reference Label")
    if qr.amount_minor != intent.amount_minor or qr.currency != intent.currency:
        raise QrFieldInvalid("does not match the payment's amount and currency", field="54",
                             field_name="Transaction Amount")
    return merchant, intent


async def intent_from_static_qr(session: AsyncSession, ledger: LedgerStore, *,
                                user_id: uuid.UUID, payload: str, amount_minor: int,
                                key: str) -> PaymentIntent:
    """A payment intent the customer made by scanning the merchant's static code and typing
    the amount, created on the merchant's behalf; ``key`` (made when the form was drawn)
    makes a retried form submission find the same intent."""
    merchant, intent = await resolve_qr(session, payload)
    if intent is not None:
        return intent
    return await create_intent(
        session, ledger, Actor(merchant=merchant), amount_minor=amount_minor,
        currency=payments_qr.QR_CURRENCY, metadata={"source": "static_qr"},
        intent_id=intent_id_for_key(merchant.id, f"qr:{user_id}:{key}"))
