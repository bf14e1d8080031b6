"""The bare ceiling for ``bench http``: the same server stack (middleware, JSON parsing and
validation of a transfer body, a JSON answer) without auth or a database. Mounted only when
``BANKWALLET_BENCH_ENDPOINTS=true``."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from bankwallet.core.db import utcnow
from bankwallet.transfers.schemas import TransferCreate

router = APIRouter(include_in_schema=False)


@router.post("/bench/transfer-echo", status_code=201)
async def transfer_echo(body: TransferCreate) -> dict[str, object]:
    return {"id": str(uuid.uuid4()), "status": "posted", "amount_minor": body.amount_minor,
            "currency": body.currency, "to": body.to, "created_at": utcnow().isoformat()}
