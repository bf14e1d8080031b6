"""Card vault use cases: add a card (checked, verified by the gateway, tokenised), list,
remove, and follow a verification that needs 3-D Secure to its end.

Adding a card follows the money-movement pattern (docs/money-movement.md) though no money
moves: the intent (a ``verifying`` row with the encrypted number) is committed before the
gateway is asked, so a concurrent duplicate is refused by the unique blind index and a crash
leaves a row the reconciliation job settles. The gateway then tokenises the card (the security
code goes there and nowhere else: PCI DSS 3.3.2) and a zero-amount authorisation verifies it;
an authorised verification is voided at once. A card the issuer declines is wiped: only its
brand, last four digits and the reason stay.

The card number is stored only envelope-encrypted (3.5.1) and found by a keyed hash, shown as
its last four digits (3.4.1); no event, audit record, log line or error carries it.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from typing import Final

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.cards import repository, rules
from bankwallet.cards.errors import (
    CardAlreadyAdded,
    CardBrandUnsupported,
    CardDeclined,
    CardGatewayUnavailable,
    CardNotUsable,
    CardNotFound,
    CardPaymentsNotConnected,
    InvalidCardNumber,
    InvalidCvc,
    InvalidExpiry,
    TooManyCardAttempts,
    TooManyCards,
)
from bankwallet.cards.models import LIVE_STATUSES, Card
from bankwallet.connectors.gateway.base import (
    CardGateway,
    PaymentResult,
    PaymentStatus,
    TokenResult,
    WebhookEvent,
)
from bankwallet.core import audit, outbox
from bankwallet.core.crypto import get_keyring, register_encrypted_column
from bankwallet.core.db import Database, utcnow
from bankwallet.core.ids import uuid7
from bankwallet.identity import mfa
from bankwallet.identity.service import Authenticated, RequestInfo
from bankwallet.wallets import service as wallets_service

log = logging.getLogger("bankwallet.cards")

PAN_CONTEXT: Final = "cards_card.pan"
HOLDER_NAME_CONTEXT: Final = "cards_card.holder_name"
PAN_INDEX_CONTEXT: Final = "cards.pan"
MAX_LIVE_CARDS: Final = 10
# Card testing (trying stolen numbers until one passes) shows as many declined verifications.
FAILED_ADDS_PER_DAY: Final = 10
VERIFICATION_AMOUNT_MINOR: Final = 0  # a zero-amount authorisation only checks the card
VERIFYING_STALE_S: Final = 60  # the reconciliation job asks about verifications older than this
CHALLENGE_TTL_S: Final = 3600  # an unfinished 3-D Secure challenge is given up after this
RECONCILE_BATCH_MAX: Final = 100
PENDING_STATUSES: Final = ("verifying", "requires_action")

register_encrypted_column("cards_card", "pan_enc", context=PAN_CONTEXT)
register_encrypted_column("cards_card", "holder_name_enc", context=HOLDER_NAME_CONTEXT)

# The gateway's refusals of a card it was asked to tokenise, as our own errors.
_TOKEN_REFUSALS: Final = {"invalid_number": InvalidCardNumber,
                          "unsupported_brand": CardBrandUnsupported,
                          "invalid_expiry": InvalidExpiry, "invalid_cvc": InvalidCvc}


def pan_index(number: str) -> bytes:
    return get_keyring().blind_index(number, context=PAN_INDEX_CONTEXT)


def holder_name(card: Card) -> str | None:
    if card.holder_name_enc is None:
        return None
    return get_keyring().decrypt(card.holder_name_enc, context=HOLDER_NAME_CONTEXT).decode()


def card_number(card: Card) -> str | None:
    """The full number, for the rare caller that must have it (never shown, never logged)."""
    if card.pan_enc is None:
        return None
    return get_keyring().decrypt(card.pan_enc, context=PAN_CONTEXT).decode()


def _verify_key(card_id: uuid.UUID) -> str:
    return f"cards.verify.{card_id}"


def _void_key(card_id: uuid.UUID) -> str:
    return f"cards.verify-void.{card_id}"


async def _release(session: AsyncSession) -> None:
    """Commit before waiting on the gateway: on SQLite a pending write (a session's
    last-seen time) would otherwise hold the database's one write lock across its answer."""
    await session.commit()


# -- reading ---------------------------------------------------------------------------------


async def list_cards(session: AsyncSession, user_id: uuid.UUID) -> list[Card]:
    return await repository.live_cards(session, user_id)


async def get_card(session: AsyncSession, user_id: uuid.UUID, card_id: uuid.UUID) -> Card:
    """The user's live card; another user's (or a removed) card is not found, alike."""
    card = await repository.live_card(session, user_id, card_id)
    if card is None:
        raise CardNotFound()
    return card


def is_expired(card: Card, *, today: dt.date | None = None) -> bool:
    return rules.is_expired(card.exp_month, card.exp_year, today=today or utcnow().date())


# -- adding ----------------------------------------------------------------------------------


async def add_card(session: AsyncSession, auth: Authenticated, gateway: CardGateway | None, *,
                   number: str, exp_month: int, exp_year: int, cvc: str, holder_name: str,
                   return_url: Callable[[uuid.UUID], str], info: RequestInfo) -> Card:
    """Check, record, tokenise and verify a card; returns it ``active`` or, when the issuer
    asks for 3-D Secure, ``requires_action`` with its ``challenge_url``. Needs a second factor
    proven in the last few minutes."""
    await mfa.ensure_recent_second_factor(session, auth)
    checked = rules.check_card(number=number, exp_month=exp_month, exp_year=exp_year, cvc=cvc,
                               holder_name=holder_name, today=utcnow().date())
    if gateway is None:
        raise CardPaymentsNotConnected()
    card = await _record_intent(session, auth.user.id, checked)
    await session.commit()  # the intent is durable before the gateway hears of the card

    token = await gateway.tokenize(number=checked.number, exp_month=checked.exp_month,
                                   exp_year=checked.exp_year, cvc=checked.cvc,
                                   holder_name=checked.holder_name)
    if not token.ok:
        await _fail(session, card, reason=token.error or "tokenize_failed", info=info)
        await session.commit()
        raise _token_refusal(token)
    card.gateway_token, card.funding = token.token, token.funding.value
    result = await gateway.authorize(
        _verify_key(card.id), token=token.token or "", amount_minor=VERIFICATION_AMOUNT_MINOR,
        currency=wallets_service.DEFAULT_CURRENCY, reference=str(card.id),
        return_url=return_url(card.id))
    if result.status is PaymentStatus.UNKNOWN or result.payment_id is None:
        # No answer: the zero-amount authorisation may or may not exist; it holds nothing.
        await _fail(session, card, reason=result.reason or "gateway_no_answer", info=info)
        await session.commit()
        raise CardGatewayUnavailable()
    card.verification_payment_id = result.payment_id
    await _settle(session, gateway, card, result, info=info, raise_on_failure=True)
    if card.status == "failed":  # a webhook about the verification got there first
        raise CardDeclined(_decline_detail(card.failure_reason),
                           decline_code=card.failure_reason or "declined")
    return card


async def _record_intent(session: AsyncSession, user_id: uuid.UUID,
                         checked: rules.CheckedCard) -> Card:
    index = pan_index(checked.number)
    if await repository.live_with_index(session, user_id, index) is not None:
        raise CardAlreadyAdded()
    if await repository.count_live(session, user_id) >= MAX_LIVE_CARDS:
        raise TooManyCards(f"A wallet holds at most {MAX_LIVE_CARDS} cards.")
    keyring, now = get_keyring(), utcnow()
    if await repository.count_failed_since(
            session, user_id, now - dt.timedelta(days=1)) >= FAILED_ADDS_PER_DAY:
        raise TooManyCardAttempts()
    card = Card(id=uuid7(), user_id=user_id, status="verifying", brand=checked.brand.value,
                funding="unknown", last4=checked.last4, exp_month=checked.exp_month,
                exp_year=checked.exp_year,
                pan_enc=keyring.encrypt(checked.number, context=PAN_CONTEXT),
                pan_index=index,
                holder_name_enc=keyring.encrypt(checked.holder_name,
                                                context=HOLDER_NAME_CONTEXT),
                gateway_token=None, verification_payment_id=None, challenge_url=None,
                failure_reason=None, created_at=now, updated_at=now, verified_at=None,
                removed_at=None)
    session.add(card)
    try:
        await session.flush()
    except IntegrityError:  # the same card, added at the same moment by another request
        await session.rollback()
        raise CardAlreadyAdded() from None
    return card


def _token_refusal(token: TokenResult) -> Exception:
    refusal = _TOKEN_REFUSALS.get(token.error or "")
    return refusal() if refusal else CardGatewayUnavailable()


# -- following a verification to its end -----------------------------------------------------


async def _settle(session: AsyncSession, gateway: CardGateway, card: Card,
                  result: PaymentResult, *, info: RequestInfo | None,
                  raise_on_failure: bool) -> None:
    """Move a verifying card on by what the gateway says about its verification. The request
    that added it, the customer coming back from 3-D Secure, a webhook and the reconciliation
    job may all get here: the first to move the card wins (``_move``)."""
    status = result.status
    if status is PaymentStatus.AUTHORIZED:
        voided = await gateway.void(_void_key(card.id), result.payment_id or "")
        if voided.status is not PaymentStatus.VOIDED:
            # The zero-amount hold holds nothing and lapses on its own; the card is good.
            log.warning("card verification not voided", extra={
                "card_id": str(card.id), "status": voided.status.value,
                "error": voided.error or voided.reason})
        await _activate(session, card, info=info)
    elif status is PaymentStatus.REQUIRES_ACTION:
        if card.status == "verifying":
            await _move(session, card, "requires_action", challenge_url=result.next_action_url)
    elif status in (PaymentStatus.DECLINED, PaymentStatus.FAILED, PaymentStatus.VOIDED):
        failed = await _fail(session, card, reason=result.reason or status.value, info=info)
        if raise_on_failure and failed:
            await session.commit()  # the refusal is recorded before it is reported
            if status is PaymentStatus.FAILED:
                raise CardGatewayUnavailable()
            raise CardDeclined(_decline_detail(result.reason),
                               decline_code=result.reason or "declined")
    # PENDING or UNKNOWN: stay verifying; the reconciliation job asks again.


async def _move(session: AsyncSession, card: Card, status: str, *,
                from_statuses: tuple[str, ...] = PENDING_STATUSES, **values: object) -> bool:
    """Move the card to ``status`` if it is still in one of ``from_statuses``, in one
    conditional write (of two concurrent movers one wins); False, and the card re-read, when
    another got there first."""
    moved = await session.execute(
        update(Card).where(Card.id == card.id, Card.status.in_(from_statuses))
        .values(status=status, updated_at=utcnow(), **values))
    if moved.rowcount != 1:
        await session.refresh(card)
        return False
    return True


def _decline_detail(reason: str | None) -> str:
    return {"insufficient_funds": "The card has insufficient funds.",
            "expired_card": "The card has expired.",
            "incorrect_cvc": "The security code is incorrect.",
            "authentication_failed": "The card's 3-D Secure check failed."
            }.get(reason or "", "The card issuer declined the card; try another card.")


async def _activate(session: AsyncSession, card: Card, *, info: RequestInfo | None) -> None:
    if not await _move(session, card, "active", verified_at=utcnow(), challenge_url=None):
        return
    await audit.record(session, action="cards.card.added", actor_type="user",
                       actor_id=str(card.user_id), subject_type="card", subject_id=str(card.id),
                       ip=info.ip if info else None,
                       user_agent=info.user_agent if info else None,
                       data={"brand": card.brand, "last4": card.last4})
    await outbox.publish(session, "card.added", _event(card), key=str(card.user_id))


async def _fail(session: AsyncSession, card: Card, *, reason: str,
                info: RequestInfo | None) -> bool:
    """A verification that ended without a usable card: wipe it, keep the reason."""
    if not await _move(session, card, "failed", failure_reason=reason[:64], **_WIPED):
        return False
    await audit.record(session, action="cards.card.verification_failed", actor_type="user",
                       actor_id=str(card.user_id), subject_type="card", subject_id=str(card.id),
                       ip=info.ip if info else None,
                       user_agent=info.user_agent if info else None,
                       data={"brand": card.brand, "last4": card.last4, "reason": reason[:64]})
    return True


# What history keeps of a failed or removed card: brand, last four, expiry. Not the number,
# its index, the holder's name or the token.
_WIPED: Final[dict[str, None]] = {"pan_enc": None, "pan_index": None, "holder_name_enc": None,
                                  "gateway_token": None, "challenge_url": None}


def _event(card: Card) -> dict[str, str]:
    return {"card_id": str(card.id), "user_id": str(card.user_id), "brand": card.brand,
            "last4": card.last4, "funding": card.funding}


async def refresh(session: AsyncSession, gateway: CardGateway | None, *, user_id: uuid.UUID,
                  card_id: uuid.UUID, info: RequestInfo | None = None) -> Card:
    """Ask the gateway how the card's verification ended (after 3-D Secure, the customer
    comes back here); a card no longer verifying is returned as it is."""
    card = await get_card(session, user_id, card_id)
    if card.status not in PENDING_STATUSES or gateway is None:
        return card
    await _follow(session, gateway, card, info=info)
    return card


async def _follow(session: AsyncSession, gateway: CardGateway, card: Card, *,
                  info: RequestInfo | None) -> None:
    if card.verification_payment_id is None:
        # The request adding it may still be waiting on the gateway; past that, it died.
        if (utcnow() - card.updated_at).total_seconds() > VERIFYING_STALE_S:
            await _fail(session, card, reason="gateway_no_answer", info=info)
        return
    await _release(session)
    result = await gateway.get_payment(card.verification_payment_id)
    if result is None:
        await _fail(session, card, reason="payment_not_found", info=info)
        return
    await _settle(session, gateway, card, result, info=info, raise_on_failure=False)


async def handle_gateway_event(session: AsyncSession, gateway: CardGateway,
                               event: WebhookEvent) -> bool:
    """Apply a verified webhook once (by event id); False for a duplicate. Events about
    payments that are not card verifications are left to the payments that made them."""
    if not await repository.record_event(session, event_id=event.id, event_type=event.type,
                                         payment_id=event.payment_id):
        return False
    card = await repository.by_verification_payment(session, event.payment_id)
    if card is None:
        return True
    if card.status in PENDING_STATUSES:
        await _settle(session, gateway, card, PaymentResult(
            event.status, event.payment_id, reason=event.reason), info=None,
            raise_on_failure=False)
    elif card.status == "removed" and event.status is PaymentStatus.AUTHORIZED:
        await gateway.void(_void_key(card.id), event.payment_id)  # removed mid-challenge
    return True


async def reconcile(db: Database, gateway: CardGateway, *, limit: int = RECONCILE_BATCH_MAX,
                    now: dt.datetime | None = None) -> int:
    """Settle verifications that no webhook or returning customer settled: ask the gateway
    about each one quiet for ``VERIFYING_STALE_S``; give up challenges older than
    ``CHALLENGE_TTL_S``. Each card in a unit of work of its own; returns how many changed."""
    assert 0 < limit <= RECONCILE_BATCH_MAX
    now = now or utcnow()
    async with db.unit_of_work() as session:
        ids = await repository.stale_pending(
            session, updated_before=now - dt.timedelta(seconds=VERIFYING_STALE_S), limit=limit)
    changed = 0
    for card_id in ids:
        async with db.unit_of_work() as session:
            card = await session.get(Card, card_id)
            if card is None or card.status not in PENDING_STATUSES:
                continue
            if (card.status == "requires_action"
                    and (now - card.created_at).total_seconds() > CHALLENGE_TTL_S):
                if card.verification_payment_id:
                    await gateway.void(_void_key(card.id), card.verification_payment_id)
                await _fail(session, card, reason="challenge_expired", info=None)
            else:
                await _follow(session, gateway, card, info=None)
            changed += card.status not in PENDING_STATUSES
    return changed


# -- removing --------------------------------------------------------------------------------


async def remove_card(session: AsyncSession, auth: Authenticated,
                      gateway: CardGateway | None, card_id: uuid.UUID, *,
                      info: RequestInfo) -> None:
    """Remove the caller's card: its number, name and token are wiped at once."""
    card = await get_card(session, auth.user.id, card_id)
    if card.status == "requires_action" and card.verification_payment_id and gateway:
        await _release(session)
        await gateway.void(_void_key(card.id), card.verification_payment_id)
    if not await _move(session, card, "removed", from_statuses=LIVE_STATUSES,
                       removed_at=utcnow(), **_WIPED):
        raise CardNotFound()  # removed (or failed) meanwhile
    await audit.record(session, action="cards.card.removed", actor_type="user",
                       actor_id=str(auth.user.id), subject_type="card", subject_id=str(card.id),
                       ip=info.ip, user_agent=info.user_agent,
                       data={"brand": card.brand, "last4": card.last4})
    await outbox.publish(session, "card.removed", _event(card), key=str(card.user_id))


# -- paying with a card ----------------------------------------------------------------------


async def card_for_payment(session: AsyncSession, user_id: uuid.UUID,
                           card_id: uuid.UUID) -> Card:
    """The user's card, ready to pay: active, not expired, with its gateway token. Another
    user's card is not found, as any card that is not theirs."""
    card = await get_card(session, user_id, card_id)
    if card.status != "active" or not card.gateway_token:
        raise CardNotUsable("Finish adding this card first.", card_status=card.status)
    if is_expired(card):
        raise CardNotUsable("This card has expired; add a new one.", card_status="expired")
    return card


async def usable_cards(session: AsyncSession, user_id: uuid.UUID) -> list[Card]:
    """The user's cards that can pay now, in the order they were added."""
    return [c for c in await repository.live_cards(session, user_id)
            if c.status == "active" and c.gateway_token and not is_expired(c)]
