"""The card vault's queries."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.cards.models import LIVE_STATUSES, Card, GatewayEvent
from bankwallet.core.db import utcnow

CARDS_PAGE_MAX = 50  # a wallet holds at most MAX_LIVE_CARDS; this bounds the query anyway


async def live_cards(session: AsyncSession, user_id: uuid.UUID) -> list[Card]:
    rows = await session.scalars(
        select(Card).where(Card.user_id == user_id, Card.status.in_(LIVE_STATUSES))
        .order_by(Card.created_at, Card.id).limit(CARDS_PAGE_MAX))
    return list(rows)


async def count_live(session: AsyncSession, user_id: uuid.UUID) -> int:
    return (await session.execute(
        select(func.count()).select_from(Card)
        .where(Card.user_id == user_id, Card.status.in_(LIVE_STATUSES)))).scalar_one()


async def count_failed_since(session: AsyncSession, user_id: uuid.UUID,
                             since: dt.datetime) -> int:
    return (await session.execute(
        select(func.count()).select_from(Card)
        .where(Card.user_id == user_id, Card.status == "failed",
               Card.created_at >= since))).scalar_one()


async def live_with_index(session: AsyncSession, user_id: uuid.UUID, pan_index: bytes) -> Card | None:
    return (await session.scalars(
        select(Card).where(Card.user_id == user_id, Card.pan_index == pan_index))).first()


async def live_card(session: AsyncSession, user_id: uuid.UUID, card_id: uuid.UUID) -> Card | None:
    """The user's card, if it is theirs and not failed or removed."""
    card = await session.get(Card, card_id)
    if card is None or card.user_id != user_id or card.status not in LIVE_STATUSES:
        return None
    return card


async def by_verification_payment(session: AsyncSession, payment_id: str) -> Card | None:
    return (await session.scalars(
        select(Card).where(Card.verification_payment_id == payment_id))).first()


async def stale_pending(session: AsyncSession, *, updated_before: dt.datetime,
                        limit: int) -> list[uuid.UUID]:
    rows = await session.scalars(
        select(Card.id).where(Card.status.in_(("verifying", "requires_action")),
                              Card.updated_at < updated_before)
        .order_by(Card.updated_at).limit(limit))
    return list(rows)


async def record_event(session: AsyncSession, *, event_id: str, event_type: str,
                       payment_id: str) -> bool:
    """Remember a webhook event; False when it was handled before (a duplicate delivery)."""
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    result = await session.execute(insert(GatewayEvent).values(
        id=event_id, type=event_type[:32], payment_id=payment_id,
        received_at=utcnow()).on_conflict_do_nothing())
    return result.rowcount == 1
