"""Payments queries. Locks are row locks on PostgreSQL (``FOR UPDATE``); SQLite serialises
writers, so there they are plain reads."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.payments.models import (
    ApiKey,
    Charge,
    Event,
    Merchant,
    MerchantUser,
    PaymentIntent,
    Refund,
    Settlement,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)


async def membership(session: AsyncSession, merchant_id: uuid.UUID,
                     user_id: uuid.UUID) -> MerchantUser | None:
    return await session.get(MerchantUser, (merchant_id, user_id))


async def merchants_of(session: AsyncSession, user_id: uuid.UUID, *,
                       limit: int) -> list[tuple[Merchant, str]]:
    rows = await session.execute(
        select(Merchant, MerchantUser.role).join(MerchantUser,
                                                 MerchantUser.merchant_id == Merchant.id)
        .where(MerchantUser.user_id == user_id).order_by(Merchant.created_at, Merchant.id)
        .limit(limit))
    return [(m, role) for m, role in rows.all()]


async def api_key_by_hash(session: AsyncSession, key_hash: bytes) -> ApiKey | None:
    return (await session.execute(
        select(ApiKey).where(ApiKey.key_hash == key_hash))).scalar_one_or_none()


async def api_keys(session: AsyncSession, merchant_id: uuid.UUID, *, limit: int) -> list[ApiKey]:
    return list((await session.scalars(
        select(ApiKey).where(ApiKey.merchant_id == merchant_id)
        .order_by(ApiKey.created_at.desc(), ApiKey.id.desc()).limit(limit))).all())


async def intent_locked(session: AsyncSession, intent_id: uuid.UUID) -> PaymentIntent | None:
    statement = select(PaymentIntent).where(PaymentIntent.id == intent_id)
    if session.bind.dialect.name == "postgresql":
        statement = statement.with_for_update()
    return (await session.execute(
        statement.execution_options(populate_existing=True))).scalar_one_or_none()


async def intents(session: AsyncSession, merchant_id: uuid.UUID, *, limit: int,
                  after: PaymentIntent | None = None, statuses: Sequence[str] = (),
                  currency: str | None = None, created_from: dt.datetime | None = None,
                  created_before: dt.datetime | None = None) -> list[PaymentIntent]:
    """Newest first; ``after`` is the cursor (the last intent of the previous page)."""
    conditions = [PaymentIntent.merchant_id == merchant_id]
    if after is not None:
        conditions.append(or_(PaymentIntent.created_at < after.created_at,
                              and_(PaymentIntent.created_at == after.created_at,
                                   PaymentIntent.id < after.id)))
    if statuses:
        conditions.append(PaymentIntent.status.in_(list(statuses)))
    if currency:
        conditions.append(PaymentIntent.currency == currency)
    if created_from is not None:
        conditions.append(PaymentIntent.created_at >= created_from)
    if created_before is not None:
        conditions.append(PaymentIntent.created_at < created_before)
    return list((await session.scalars(
        select(PaymentIntent).where(*conditions)
        .order_by(PaymentIntent.created_at.desc(), PaymentIntent.id.desc())
        .limit(limit))).all())


async def refunds_of(session: AsyncSession, intent_id: uuid.UUID, *, limit: int) -> list[Refund]:
    return list((await session.scalars(
        select(Refund).where(Refund.intent_id == intent_id)
        .order_by(Refund.created_at.desc(), Refund.id.desc()).limit(limit))).all())


async def stale(session: AsyncSession, model: type, statuses: Sequence[str], *,
                before: dt.datetime, limit: int) -> list:
    """Rows of ``model`` still in one of ``statuses`` since before ``before`` (healing)."""
    return list((await session.scalars(
        select(model).where(model.status.in_(list(statuses)), model.updated_at < before)
        .order_by(model.updated_at).limit(limit))).all())


async def settlements(session: AsyncSession, merchant_id: uuid.UUID, *,
                      limit: int) -> list[Settlement]:
    return list((await session.scalars(
        select(Settlement).where(Settlement.merchant_id == merchant_id)
        .order_by(Settlement.created_at.desc(), Settlement.id.desc()).limit(limit))).all())


async def events(session: AsyncSession, merchant_id: uuid.UUID, *, limit: int,
                 after: Event | None = None, types: Sequence[str] = ()) -> list[Event]:
    conditions = [Event.merchant_id == merchant_id]
    if after is not None:
        conditions.append(or_(Event.created_at < after.created_at,
                              and_(Event.created_at == after.created_at, Event.id < after.id)))
    if types:
        conditions.append(Event.type.in_(list(types)))
    return list((await session.scalars(
        select(Event).where(*conditions).order_by(Event.created_at.desc(), Event.id.desc())
        .limit(limit))).all())


async def pending_deliveries(session: AsyncSession, event_ids: Sequence[uuid.UUID]
                             ) -> dict[uuid.UUID, int]:
    if not event_ids:
        return {}
    rows = await session.execute(
        select(WebhookDelivery.event_id, func.count()).where(
            WebhookDelivery.event_id.in_(list(event_ids)), WebhookDelivery.status == "pending")
        .group_by(WebhookDelivery.event_id))
    return {event_id: count for event_id, count in rows.all()}


async def endpoints(session: AsyncSession, merchant_id: uuid.UUID, *,
                    limit: int, enabled_only: bool = False) -> list[WebhookEndpoint]:
    conditions = [WebhookEndpoint.merchant_id == merchant_id]
    if enabled_only:
        conditions.append(WebhookEndpoint.status == "enabled")
    return list((await session.scalars(
        select(WebhookEndpoint).where(*conditions)
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id).limit(limit))).all())


async def deliveries(session: AsyncSession, merchant_id: uuid.UUID, *, limit: int,
                     endpoint_id: uuid.UUID | None = None
                     ) -> list[tuple[WebhookDelivery, Event, WebhookEndpoint]]:
    conditions = [WebhookDelivery.merchant_id == merchant_id]
    if endpoint_id is not None:
        conditions.append(WebhookDelivery.endpoint_id == endpoint_id)
    rows = await session.execute(
        select(WebhookDelivery, Event, WebhookEndpoint)
        .join(Event, Event.id == WebhookDelivery.event_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(*conditions)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(limit))
    return [(d, e, w) for d, e, w in rows.all()]


async def attempts_of(session: AsyncSession, delivery_ids: Sequence[uuid.UUID], *,
                      limit: int) -> list[WebhookAttempt]:
    if not delivery_ids:
        return []
    return list((await session.scalars(
        select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(list(delivery_ids)))
        .order_by(WebhookAttempt.created_at.desc(), WebhookAttempt.id.desc())
        .limit(limit))).all())


async def due_deliveries(session: AsyncSession, *, now: dt.datetime,
                         limit: int) -> list[uuid.UUID]:
    statement = (select(WebhookDelivery.id)
                 .where(WebhookDelivery.status == "pending",
                        WebhookDelivery.next_attempt_at <= now)
                 .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit))
    if session.bind.dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    return list((await session.scalars(statement)).all())


async def charges_of(session: AsyncSession, charge_ids: Sequence[uuid.UUID]
                     ) -> dict[uuid.UUID, Charge]:
    if not charge_ids:
        return {}
    rows = await session.scalars(select(Charge).where(Charge.id.in_(list(charge_ids))))
    return {c.id: c for c in rows.all()}
