"""Background jobs of the ledger."""

from __future__ import annotations

import asyncio
import logging

from bankwallet.ledger import service
from bankwallet.ledger.store import LedgerStore

log = logging.getLogger("bankwallet.ledger")


async def expire_holds_forever(ledger: LedgerStore, *, interval_s: float) -> None:
    """Void expired holds every ``interval_s``; a failed round is logged and retried."""
    while True:
        try:
            while await service.expire_holds(ledger) == service.EXPIRY_BATCH_MAX:
                pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("hold expiry round failed")
        await asyncio.sleep(interval_s)
