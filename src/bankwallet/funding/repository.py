"""Queries of the funding tables."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.core.db import utcnow
from bankwallet.funding.models import BankAccount, LinkAttempt, Movement, WebhookEvent


def insert_for(session: AsyncSession) -> Any:
    return pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert


# -- bank accounts ---------------------------------------------------------------------------


async def linked_bank_accounts(session: AsyncSession, user_id: uuid.UUID,
                               *, limit: int) -> Sequence[BankAccount]:
    return (await session.scalars(
        select(BankAccount).where(BankAccount.user_id == user_id,
                                  BankAccount.status == "linked")
        .order_by(BankAccount.created_at, BankAccount.id).limit(limit))).all()


async def count_linked(session: AsyncSession, user_id: uuid.UUID) -> int:
    return await session.scalar(
        select(func.count()).select_from(BankAccount)
        .where(BankAccount.user_id == user_id, BankAccount.status == "linked")) or 0


async def bank_account_of(session: AsyncSession, user_id: uuid.UUID, bank_account_id: uuid.UUID,
                          *, linked_only: bool = True) -> BankAccount | None:
    query = select(BankAccount).where(BankAccount.id == bank_account_id,
                                      BankAccount.user_id == user_id)
    if linked_only:
        query = query.where(BankAccount.status == "linked")
    return (await session.scalars(query)).one_or_none()


async def linked_by_index(session: AsyncSession, index: bytes) -> BankAccount | None:
    return (await session.scalars(
        select(BankAccount).where(BankAccount.number_claim == index))).one_or_none()


async def last4_of(session: AsyncSession, bank_account_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not bank_account_ids:
        return {}
    rows = await session.execute(select(BankAccount.id, BankAccount.last4)
                                 .where(BankAccount.id.in_(bank_account_ids)))
    return {row.id: row.last4 for row in rows}


async def link_failures_since(session: AsyncSession, user_id: uuid.UUID,
                              since: dt.datetime) -> tuple[int, dt.datetime | None]:
    """How many ownership checks failed since ``since``, and the oldest of them."""
    row = (await session.execute(
        select(func.count(), func.min(LinkAttempt.at))
        .where(LinkAttempt.user_id == user_id, LinkAttempt.at >= since))).one()
    return int(row[0] or 0), row[1]


# -- movements -------------------------------------------------------------------------------


async def movement(session: AsyncSession, movement_id: uuid.UUID, *,
                   for_update: bool = False) -> Movement | None:
    """The row as the database has it now (never a stale copy from the session)."""
    query = select(Movement).where(Movement.id == movement_id)
    if for_update:
        query = query.with_for_update()
    return (await session.scalars(
        query.execution_options(populate_existing=True))).one_or_none()


async def movement_of(session: AsyncSession, *, user_id: uuid.UUID, kind: str,
                      movement_id: uuid.UUID) -> Movement | None:
    return (await session.scalars(
        select(Movement).where(Movement.id == movement_id, Movement.user_id == user_id,
                               Movement.kind == kind)
        .execution_options(populate_existing=True))).one_or_none()


async def movement_by_reference(session: AsyncSession, reference: str) -> Movement | None:
    return (await session.scalars(
        select(Movement).where(Movement.reference == reference))).one_or_none()


async def movements_page(session: AsyncSession, *, user_id: uuid.UUID, kind: str,
                         before: Movement | None, limit: int) -> Sequence[Movement]:
    """Newest first. Ids derive from idempotency keys (not time-ordered), so the order is
    (created_at, id) and the cursor is the last row of the previous page."""
    query = select(Movement).where(Movement.user_id == user_id, Movement.kind == kind)
    if before is not None:
        query = query.where(
            (Movement.created_at < before.created_at)
            | ((Movement.created_at == before.created_at) & (Movement.id < before.id)))
    return (await session.scalars(
        query.order_by(Movement.created_at.desc(), Movement.id.desc()).limit(limit))).all()


async def due_movement_ids(session: AsyncSession, *, now: dt.datetime,
                           limit: int) -> list[uuid.UUID]:
    """Pending movements whose next check is due, oldest check first."""
    return list((await session.scalars(
        select(Movement.id).where(Movement.status == "pending", Movement.next_check_at <= now)
        .order_by(Movement.next_check_at).limit(limit))).all())


async def pending_movement_ids(session: AsyncSession, *, limit: int) -> list[uuid.UUID]:
    return list((await session.scalars(
        select(Movement.id).where(Movement.status == "pending")
        .order_by(Movement.created_at).limit(limit))).all())


async def movements_since(session: AsyncSession, since: dt.datetime, *,
                          limit: int) -> Sequence[Movement]:
    return (await session.scalars(
        select(Movement).where(Movement.created_at >= since)
        .order_by(Movement.created_at).limit(limit))).all()


async def transition(session: AsyncSession, movement_id: uuid.UUID, *, from_: tuple[str, ...],
                     to: str, **values: Any) -> bool:
    """Move ``status`` from one of ``from_`` to ``to`` (compare-and-set): of two processes
    applying the same outcome, exactly one wins and publishes it."""
    result = await session.execute(
        update(Movement).where(Movement.id == movement_id, Movement.status.in_(from_))
        .values(status=to, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


async def update_pending(session: AsyncSession, movement_id: uuid.UUID, **values: Any) -> None:
    """Change a movement's bookkeeping while it is still pending."""
    await session.execute(
        update(Movement).where(Movement.id == movement_id, Movement.status == "pending")
        .values(updated_at=utcnow(), **values).execution_options(synchronize_session=False))


async def update_movement(session: AsyncSession, movement_id: uuid.UUID, **values: Any) -> None:
    await session.execute(
        update(Movement).where(Movement.id == movement_id)
        .values(updated_at=utcnow(), **values).execution_options(synchronize_session=False))


# -- webhook events --------------------------------------------------------------------------


async def unprocessed_event_ids(session: AsyncSession, *, received_before: dt.datetime,
                                limit: int) -> list[str]:
    return list((await session.scalars(
        select(WebhookEvent.id).where(WebhookEvent.processed_at.is_(None),
                                      WebhookEvent.received_at <= received_before)
        .order_by(WebhookEvent.received_at).limit(limit))).all())


async def event(session: AsyncSession, event_id: str) -> WebhookEvent | None:
    return (await session.scalars(
        select(WebhookEvent).where(WebhookEvent.id == event_id)
        .execution_options(populate_existing=True))).one_or_none()


async def count_bank_attempt(session: AsyncSession, movement_id: uuid.UUID) -> None:
    await session.execute(
        update(Movement).where(Movement.id == movement_id)
        .values(bank_attempts=Movement.bank_attempts + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False))


async def decide_reversal(session: AsyncSession, movement_id: uuid.UUID, *, amount_minor: int,
                          transfer_id: uuid.UUID | None) -> None:
    """The first decision wins: a concurrent second one leaves it as it is."""
    await session.execute(
        update(Movement).where(Movement.id == movement_id,
                               Movement.reversal_amount_minor.is_(None))
        .values(reversal_amount_minor=amount_minor, reversal_transfer_id=transfer_id,
                updated_at=utcnow())
        .execution_options(synchronize_session=False))


async def forget_reversal(session: AsyncSession, movement_id: uuid.UUID,
                          transfer_id: uuid.UUID) -> None:
    """Drop a decision whose transfer the ledger refused (refused transfers are not stored)."""
    await session.execute(
        update(Movement).where(Movement.id == movement_id,
                               Movement.reversal_transfer_id == transfer_id)
        .values(reversal_amount_minor=None, reversal_transfer_id=None, updated_at=utcnow())
        .execution_options(synchronize_session=False))


async def event_done(session: AsyncSession, event_id: str, *, outcome: str,
                     movement_id: uuid.UUID | None) -> None:
    await session.execute(
        update(WebhookEvent).where(WebhookEvent.id == event_id)
        .values(processed_at=utcnow(), outcome=outcome, movement_id=movement_id)
        .execution_options(synchronize_session=False))
