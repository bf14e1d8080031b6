"""The core-bank connector of the process, and the job that asks the bank about movements
whose outcome has not arrived (a webhook lost, late or never sent; an answer that timed out;
a process that died between two steps)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Coroutine
from typing import Any, Final

from fastapi import FastAPI

from bankwallet.connectors.corebanking.base import CoreBanking
from bankwallet.core.db import Database, utcnow
from bankwallet.funding import repository, service
from bankwallet.ledger.store import LedgerStore
from bankwallet.settings import Settings

log = logging.getLogger("bankwallet.funding")

POLL_BATCH_MAX: Final = 100


class CoreBankingConfigurationError(RuntimeError):
    """The settings name a bank but not how to trust it; the message names the setting."""


def build_corebanking(settings: Settings) -> CoreBanking | None:
    """The connector the settings describe, or None when no bank is configured (development:
    the funding pages then say the bank is not connected)."""
    if settings.corebanking_url is None:
        return None
    if not settings.corebanking_url.startswith(("http://", "https://")):
        raise CoreBankingConfigurationError("BANKWALLET_COREBANKING_URL must be http(s).")
    if settings.corebanking_secret is None:
        if settings.env == "prod":
            raise CoreBankingConfigurationError(
                "BANKWALLET_COREBANKING_SECRET is required to verify the bank's webhooks.")
        log.error("BANKWALLET_COREBANKING_URL is set without BANKWALLET_COREBANKING_SECRET: "
                  "the bank is not connected")
        return None
    from bankwallet.connectors.corebanking.sandbox import SandboxCoreBanking

    secrets = [s.strip() for s in settings.corebanking_secret.get_secret_value().split(",")
               if s.strip()]
    return SandboxCoreBanking(settings.corebanking_url, secrets,
                              timeout_s=settings.corebanking_timeout_s,
                              sandbox_delay_s=settings.corebanking_sandbox_delay_s,
                              webhook_tolerance_s=settings.corebanking_webhook_tolerance_s)


def startup(app: FastAPI, *, run_workers: bool) -> list[Coroutine[Any, Any, None]]:
    settings: Settings = app.state.settings
    bank = build_corebanking(settings)
    app.state.corebanking = bank
    jobs: list[Coroutine[Any, Any, None]] = []
    if bank is not None:
        jobs.append(_close_at_shutdown(bank))
    if run_workers:
        jobs.append(poll_forever(app, interval_s=settings.corebanking_poll_interval_s,
                                 stale_after_s=settings.corebanking_poll_after_s))
    return jobs


async def _close_at_shutdown(bank: CoreBanking) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        close = getattr(bank, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()


async def poll_forever(app: FastAPI, *, interval_s: float, stale_after_s: float) -> None:
    """Until cancelled: every ``interval_s``, check what is due (the bank may be added to
    ``app.state`` later, as tests do)."""
    while True:
        bank = getattr(app.state, "corebanking", None)
        if bank is not None:
            try:
                await poll_once(app.state.db, app.state.ledger, bank,
                                stale_after_s=stale_after_s)
            except Exception:
                log.exception("funding poll round failed")
        await asyncio.sleep(interval_s)


async def poll_once(db: Database, ledger: LedgerStore, bank: CoreBanking, *,
                    stale_after_s: float = 60.0, now: dt.datetime | None = None,
                    limit: int = POLL_BATCH_MAX) -> int:
    """Check every pending movement that is due, and re-apply webhook events whose
    processing was interrupted; returns how many movements were checked. One movement's
    failure is logged and never stops the others."""
    assert 0 < limit <= POLL_BATCH_MAX
    now = now or utcnow()
    async with db.unit_of_work() as session:
        due = await repository.due_movement_ids(session, now=now, limit=limit)
        stale_before = now - dt.timedelta(seconds=max(1.0, stale_after_s))
        events = await repository.unprocessed_event_ids(session, received_before=stale_before,
                                                        limit=limit)
    for movement_id in due:
        try:
            async with db.unit_of_work() as session:
                await service.check_movement(session, ledger, bank, movement_id)
        except Exception:
            log.exception("checking a funding movement failed",
                          extra={"movement_id": str(movement_id)})
    for event_id in events:
        try:
            async with db.unit_of_work() as session:
                await service.reapply_event(session, ledger, event_id)
        except Exception:
            log.exception("re-applying a bank event failed", extra={"event_id": event_id})
    return len(due)

