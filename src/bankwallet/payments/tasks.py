"""Payments' background work: the outbox consumer that fans each merchant event out to its
webhook endpoints, the webhook delivery loop, the settlement job (the core bank's credit) and
the healing job (money movements a crash left in flight)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Coroutine
from typing import Any, Final

from fastapi import FastAPI
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.connectors.corebanking.base import (
    CoreBanking,
    InstructionResult,
    InstructionStatus,
)
from bankwallet.connectors.gateway.base import CardGateway
from bankwallet.core import outbox
from bankwallet.core.db import Database, utcnow
from bankwallet.ledger.store import LedgerStore
from bankwallet.payments import consumer_codes, repository, service, webhooks
from bankwallet.payments.models import Charge, Merchant, Refund, Settlement

log = logging.getLogger("bankwallet.payments.tasks")

DELIVERY_POLL_S: Final = 1.0
HEAL_INTERVAL_S: Final = 15.0
HEAL_BATCH_MAX: Final = 100
SETTLEMENT_BATCH_MAX: Final = 50
# Charges left in flight that healing finishes: a wallet charge's ledger work, or a card
# charge waiting on the gateway (3-D Secure, an unanswered authorisation, capture or void).
CHARGE_HEALED: Final = ("pending", "requires_action", "posting", "capturing", "canceling")

_wake: asyncio.Event | None = None


def startup(app: FastAPI, *, run_workers: bool) -> list[Coroutine[Any, Any, None]]:
    if not run_workers:
        return []
    return [deliver_forever(app), heal_forever(app)]


@outbox.consumer(service.EVENT_TOPIC, name="payments.webhooks.fan_out")
async def fan_out(session: AsyncSession, event: outbox.Event) -> None:
    added = await webhooks.fan_out(session, uuid.UUID(event.payload["event_id"]))
    if added and _wake is not None:
        loop, wake = asyncio.get_running_loop(), _wake
        sa_event.listen(session.sync_session, "after_commit",
                        lambda _s: loop.call_soon_threadsafe(wake.set), once=True)


async def deliver_forever(app: FastAPI) -> None:
    """Deliver due webhooks: at once after a fan-out in this process, else every second."""
    global _wake
    _wake = wake = asyncio.Event()
    while True:
        wake.clear()
        tried = 0
        try:
            tried = await webhooks.deliver_due(app.state.db)
        except Exception:
            log.exception("webhook delivery round failed")
        if tried >= webhooks.BATCH_MAX:
            continue
        try:
            await asyncio.wait_for(wake.wait(), timeout=DELIVERY_POLL_S)
        except TimeoutError:
            pass


async def heal_forever(app: FastAPI) -> None:
    while True:
        try:
            await heal_once(app.state.db, app.state.ledger,
                            bank=getattr(app.state, "corebanking", None),
                            gateway=getattr(app.state, "card_gateway", None))
        except Exception:
            log.exception("payments healing round failed")
        try:  # spent and expired payment codes are kept a while for support, then forgotten
            async with app.state.db.unit_of_work() as session:
                await consumer_codes.purge(session)
        except Exception:
            log.exception("payment code purge failed")
        await asyncio.sleep(HEAL_INTERVAL_S)


# -- healing ---------------------------------------------------------------------------------


async def heal_once(db: Database, ledger: LedgerStore, *, now: dt.datetime | None = None,
                    bank: CoreBanking | None = None, gateway: CardGateway | None = None) -> int:
    """Finish every movement left in flight for ``service.HEAL_AFTER_S``: resubmit its ledger
    ids (the ledger answers ``exists`` for what already happened) and record the outcome.
    Card charges and refunds are asked about at the card gateway (the reconcile path of
    payments no webhook settled: a lost webhook, a customer who never came back from 3-D
    Secure). Then hand queued settlements to the core bank. Returns the rows it finished."""
    now = now or utcnow()
    before = now - dt.timedelta(seconds=service.HEAL_AFTER_S)
    async with db.sessionmaker() as session:
        charges = await repository.stale(session, Charge, CHARGE_HEALED, before=before,
                                         limit=HEAL_BATCH_MAX)
        refunds = await repository.stale(session, Refund, ("pending", "processing"),
                                         before=before, limit=HEAL_BATCH_MAX)
        settlements = await repository.stale(session, Settlement, ("pending",), before=before,
                                             limit=HEAL_BATCH_MAX)
    healed = 0
    for charge in charges:
        if charge.method == service.CARD_METHOD:
            healed += await _heal_card_charge(db, ledger, gateway, charge.id, now=now)
        else:
            healed += await _heal_charge(db, ledger, charge.id)
    for refund in refunds:
        healed += await _heal_refund(db, ledger, refund.id, gateway=gateway)
    for settlement in settlements:
        healed += await _heal_settlement(db, ledger, settlement.id)
    if bank is not None:
        healed += await process_settlements(db, ledger, bank, now=now)
    return healed


async def _heal_charge(db: Database, ledger: LedgerStore, charge_id: uuid.UUID) -> int:
    async with db.unit_of_work() as session:
        charge = await session.get(Charge, charge_id)
        assert charge is not None
        intent = await repository.intent_locked(session, charge.intent_id)
        assert intent is not None
        await session.refresh(charge)
        if charge.status == "pending":
            await service.submit_charge(session, ledger, charge, intent, raise_failure=False)
        elif charge.status == "capturing":
            await service.submit_capture(session, ledger, charge, intent, raise_failure=False)
        elif charge.status == "canceling":
            await service.submit_void(session, ledger, charge, intent)
        else:
            return 0
    log.info("payments healed a charge", extra={"charge_id": str(charge_id)})
    return 1


async def _heal_card_charge(db: Database, ledger: LedgerStore, gateway: CardGateway | None,
                            charge_id: uuid.UUID, *, now: dt.datetime) -> int:
    if gateway is None:
        return 0
    async with db.unit_of_work() as session:
        charge = await session.get(Charge, charge_id)
        assert charge is not None
        before = charge.status
        await service.follow_card_charge(session, ledger, gateway, charge, now=now)
        await session.refresh(charge)
        if charge.status == before:
            return 0
    log.info("payments healed a card charge", extra={"charge_id": str(charge_id)})
    return 1


async def _heal_refund(db: Database, ledger: LedgerStore, refund_id: uuid.UUID, *,
                       gateway: CardGateway | None = None) -> int:
    async with db.unit_of_work() as session:
        refund = await session.get(Refund, refund_id)
        assert refund is not None
        charge = await session.get(Charge, refund.charge_id)
        assert charge is not None
        if charge.method == service.CARD_METHOD:
            if gateway is None or refund.status not in ("pending", "processing"):
                return 0
            await service.submit_card_refund(session, ledger, gateway, refund,
                                             raise_failure=False)
        elif refund.status != "pending":
            return 0
        else:
            await service.submit_refund(session, ledger, refund, raise_failure=False)
    log.info("payments healed a refund", extra={"refund_id": str(refund_id)})
    return 1


async def _heal_settlement(db: Database, ledger: LedgerStore, settlement_id: uuid.UUID) -> int:
    async with db.unit_of_work() as session:
        settlement = await session.get(Settlement, settlement_id)
        assert settlement is not None
        if settlement.status != "pending":
            return 0
        merchant = await session.get(Merchant, settlement.merchant_id)
        assert merchant is not None
        await service.submit_settlement_hold(session, ledger, settlement, merchant,
                                             raise_failure=False)
    return 1


# -- settlement with the core bank -----------------------------------------------------------


def settlement_reference(settlement_id: uuid.UUID) -> str:
    return f"bankwallet settlement {settlement_id}"


async def process_settlements(db: Database, ledger: LedgerStore, bank: CoreBanking, *,
                              now: dt.datetime | None = None) -> int:
    """Send queued settlements to the bank (a credit to the merchant's bank account) and ask
    again about those it has not answered for ``HEAL_AFTER_S``. Returns the settlements that
    reached a final state."""
    now = now or utcnow()
    async with db.sessionmaker() as session:
        queued = await repository.stale(session, Settlement, ("queued",), before=now,
                                        limit=SETTLEMENT_BATCH_MAX)
        waiting = await repository.stale(
            session, Settlement, ("submitted",),
            before=now - dt.timedelta(seconds=service.HEAL_AFTER_S), limit=SETTLEMENT_BATCH_MAX)
    finished = 0
    for settlement in queued:
        finished += await _send_settlement(db, ledger, bank, settlement.id)
    for settlement in waiting:
        finished += await _poll_settlement(db, ledger, bank, settlement.id)
    return finished


async def _send_settlement(db: Database, ledger: LedgerStore, bank: CoreBanking,
                           settlement_id: uuid.UUID) -> int:
    async with db.unit_of_work() as session:
        settlement = await session.get(Settlement, settlement_id)
        assert settlement is not None
        if settlement.status != "queued":
            return 0
        merchant = await session.get(Merchant, settlement.merchant_id)
        assert merchant is not None
        number = service.bank_account_number(merchant)
        settlement.status = "submitted"  # committed before the bank is asked
        settlement.updated_at = utcnow()
        amount, currency = settlement.amount_minor, settlement.currency
    result = await bank.credit(f"settlement:{settlement_id}", number, amount, currency,
                               settlement_reference(settlement_id))
    return await _apply(db, ledger, settlement_id, result)


async def _poll_settlement(db: Database, ledger: LedgerStore, bank: CoreBanking,
                           settlement_id: uuid.UUID) -> int:
    async with db.sessionmaker() as session:
        settlement = await session.get(Settlement, settlement_id)
        assert settlement is not None
        merchant = await session.get(Merchant, settlement.merchant_id)
        assert merchant is not None
    result = await bank.find_by_reference(settlement_reference(settlement_id))
    if result is None:  # the bank never got it: send again, with the same idempotency key
        result = await bank.credit(f"settlement:{settlement_id}",
                                   service.bank_account_number(merchant),
                                   settlement.amount_minor, settlement.currency,
                                   settlement_reference(settlement_id))
    return await _apply(db, ledger, settlement_id, result)


async def _apply(db: Database, ledger: LedgerStore, settlement_id: uuid.UUID,
                 result: InstructionResult) -> int:
    async with db.unit_of_work() as session:
        settlement = await session.get(Settlement, settlement_id)
        assert settlement is not None
        if settlement.status != "submitted":
            return 0
        if result.instruction_id:
            settlement.instruction_id = result.instruction_id[:64]
        settlement.updated_at = utcnow()
        if result.status is InstructionStatus.SUCCEEDED:
            await service.finish_settlement(session, ledger, settlement, succeeded=True)
            return 1
        if result.status in (InstructionStatus.FAILED, InstructionStatus.REVERSED):
            await service.finish_settlement(session, ledger, settlement, succeeded=False,
                                            reason=result.reason)
            return 1
    return 0  # pending or unknown: asked again later
