"""The crypto wallet's background job: follow outgoing transactions until they are final.

Every pass re-broadcasts transactions that were signed but never reached the network (a crash
or a timeout between recording and sending) and looks up the receipt of those that did. The
status page also looks the receipt up when it is opened, so the job only keeps things moving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from fastapi import FastAPI

from bankwallet.chains import service
from bankwallet.core.db import Database

log = logging.getLogger("bankwallet.chains")


def startup(app: FastAPI, *, run_workers: bool) -> list[Coroutine[Any, Any, None]]:
    if not run_workers:
        return []
    config = service.ChainConfig.from_settings(app.state.settings)
    if not config.urls:
        return []
    return [track_forever(app.state.db, config,
                          interval_s=app.state.settings.chain_track_interval_s)]


async def track_once(db: Database, config: service.ChainConfig) -> int:
    """One pass; each transaction in a unit of work of its own, so no write (on SQLite, the
    one write lock) is held while another transaction waits for the network."""
    async with db.sessionmaker() as session:
        ids = await service.open_transaction_ids(session)
    for tx_id in ids:
        async with db.unit_of_work() as session:
            await service.refresh_by_id(session, tx_id, config=config)
    return len(ids)


async def track_forever(db: Database, config: service.ChainConfig, *, interval_s: float) -> None:
    while True:
        try:
            await track_once(db, config)
        except asyncio.CancelledError:
            raise
        except Exception:  # one bad pass must not stop the job; the next one retries
            log.exception("chains: tracking transactions failed")
        await asyncio.sleep(interval_s)
