"""Background job of the transfers domain: settle transfers left ``pending`` by a crash
between recording the intent and recording the outcome (docs/money-movement.md, step 5)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from fastapi import FastAPI

from bankwallet.transfers import service


def startup(app: FastAPI, *, run_workers: bool) -> list[Coroutine[Any, Any, None]]:
    if not run_workers:
        return []
    return [service.heal_forever(app.state.db, app.state.ledger)]
