"""The card gateway connector of the app (``app.state.card_gateway``: None when
``BANKWALLET_GATEWAY_URL`` is unset) and the job that settles card verifications no webhook
settled."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Final

from fastapi import FastAPI

from bankwallet.cards import service
from bankwallet.connectors.gateway.base import CardGateway
from bankwallet.connectors.gateway.sandbox import SandboxCardGateway
from bankwallet.core.db import Database
from bankwallet.settings import Settings

log = logging.getLogger("bankwallet.cards.tasks")

RECONCILE_INTERVAL_S: Final = 30.0


def build_gateway(settings: Settings) -> SandboxCardGateway | None:
    """The gateway the settings name. The sandbox is the only provider so far; a real
    processor adds its module under ``connectors/gateway`` and a setting to choose it."""
    url = (settings.gateway_url or "").strip()
    if not url:
        return None
    secret = settings.gateway_secret.get_secret_value() if settings.gateway_secret else ""
    if not secret:
        raise ValueError("BANKWALLET_GATEWAY_SECRET is required with BANKWALLET_GATEWAY_URL")
    return SandboxCardGateway(url, secret)


def startup(app: FastAPI, *, run_workers: bool) -> list[Coroutine[Any, Any, None]]:
    gateway = build_gateway(app.state.settings)
    app.state.card_gateway = gateway
    if gateway is None:
        return []
    jobs = [_close_at_shutdown(gateway)]
    if run_workers:
        jobs.append(reconcile_forever(app.state.db, gateway, interval_s=RECONCILE_INTERVAL_S))
    return jobs


async def _close_at_shutdown(gateway: SandboxCardGateway) -> None:
    """Holds the gateway's connections until the app stops (its jobs are cancelled then)."""
    try:
        await asyncio.Event().wait()
    finally:
        await gateway.aclose()


async def reconcile_forever(db: Database, gateway: CardGateway, *, interval_s: float) -> None:
    while True:
        try:
            await service.reconcile(db, gateway)
        except Exception:  # the database or the gateway is away: try again next round
            log.exception("card verification reconciliation failed")
        await asyncio.sleep(interval_s)
