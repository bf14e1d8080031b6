"""The ledger's JSON API: for operators and internal services, behind the ops token."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from bankwallet.core.security import require_ops_token
from bankwallet.ledger import service
from bankwallet.ledger.schemas import (
    AccountCreateList,
    AccountRead,
    TransferCreateList,
    TransferList,
    TransferRead,
    TransferResultList,
    TransferResultRead,
)
from bankwallet.ledger.store import LedgerStore
from bankwallet.ledger.types import AccountIn, TransferIn

router = APIRouter(prefix="/api/v1/ledger", tags=["ledger"],
                   dependencies=[Depends(require_ops_token)])


def get_ledger(request: Request) -> LedgerStore:
    return request.app.state.ledger


Ledger = Annotated[LedgerStore, Depends(get_ledger)]


@router.post("/accounts", status_code=201)
async def create_accounts(body: AccountCreateList, ledger: Ledger) -> dict[str, list[bool]]:
    created = await service.open_accounts(ledger, [
        AccountIn(id=a.id, ledger=a.ledger, kind=a.kind, flags=a.flags, owner_id=a.owner_id)
        for a in body.accounts])
    return {"created": created}


@router.get("/accounts/{account_id}")
async def read_account(account_id: uuid.UUID, ledger: Ledger) -> AccountRead:
    return AccountRead.of(await service.get_account(ledger, account_id))


@router.get("/accounts/{account_id}/transfers")
async def read_account_transfers(account_id: uuid.UUID, ledger: Ledger,
                                 cursor: Annotated[int | None, Query(ge=1)] = None,
                                 limit: Annotated[int, Query(ge=1, le=500)] = 50) -> TransferList:
    page, next_cursor = await service.account_history(ledger, account_id, before_seq=cursor,
                                                      limit=limit)
    return TransferList(items=[TransferRead.of(t) for t in page], next_cursor=next_cursor)


@router.post("/transfers")
async def create_transfers(body: TransferCreateList, ledger: Ledger) -> TransferResultList:
    outcomes = await service.submit(ledger, [
        TransferIn(id=t.id, debit_account_id=t.debit_account_id,
                   credit_account_id=t.credit_account_id, amount=t.amount, ledger=t.ledger,
                   code=t.code, flags=t.flags, pending_id=t.pending_id, timeout_s=t.timeout_s,
                   user_data=t.user_data) for t in body.transfers])
    return TransferResultList(results=[TransferResultRead.of(i, o)
                                       for i, o in enumerate(outcomes)])


@router.get("/transfers/{transfer_id}")
async def read_transfer(transfer_id: uuid.UUID, ledger: Ledger) -> TransferRead:
    return TransferRead.of(await service.get_transfer(ledger, transfer_id))
