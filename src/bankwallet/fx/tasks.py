"""The fx domain's background job: heal exchanges a crash left pending, and drop old quotes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Final

from fastapi import FastAPI

from bankwallet.core.db import Database
from bankwallet.fx import service
from bankwallet.ledger.store import LedgerStore

log = logging.getLogger("bankwallet.fx")

HEAL_INTERVAL_S: Final = 15.0


def startup(app: FastAPI, *, run_workers: bool) -> list[Coroutine[Any, Any, None]]:
    if not run_workers:
        return []
    return [heal_forever(app.state.db, app.state.ledger, interval_s=HEAL_INTERVAL_S)]


async def heal_forever(db: Database, ledger: LedgerStore, *, interval_s: float) -> None:
    while True:
        try:
            await service.heal_pending(db, ledger)
            await service.purge_quotes(db)
        except Exception:  # the database is away: try again next round
            log.exception("fx healing round failed")
        await asyncio.sleep(interval_s)
