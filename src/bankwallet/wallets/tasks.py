"""Every new customer gets a wallet in the default currency."""

from __future__ import annotations

import uuid
from collections.abc import Coroutine
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.core import outbox
from bankwallet.ledger.store import LedgerStore
from bankwallet.wallets import service

_ledger: LedgerStore | None = None


def startup(app: FastAPI, *, run_workers: bool) -> list[Coroutine[Any, Any, None]]:
    global _ledger
    _ledger = app.state.ledger
    return []


@outbox.consumer("user.registered", name="wallets.open_default")
async def open_default_wallet(session: AsyncSession, event: outbox.Event) -> None:
    del session  # the ledger is its own system of record
    assert _ledger is not None, "wallets.tasks.startup was not called"
    await service.open_wallet(_ledger, uuid.UUID(event.payload["user_id"]))
