"""Linked bank accounts, top-ups and withdrawals for API clients, and the core bank's
webhook (``POST /webhooks/corebanking``: no session, verified by its signature)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from bankwallet.connectors.corebanking.base import CoreBanking
from bankwallet.core import idempotency
from bankwallet.core.deps import DbSession
from bankwallet.funding import service
from bankwallet.funding.errors import BankNotConnected
from bankwallet.funding.schemas import (
    BankAccountCreate,
    BankAccountList,
    BankAccountRead,
    BankAccountUpdate,
    MovementCreate,
    MovementList,
    MovementRead,
    TopupCreate,
    WebhookAck,
    WithdrawalCreate,
)
from bankwallet.identity.deps import Auth

router = APIRouter(tags=["funding"])
PREFIX = "/api/v1"


def get_corebanking(request: Request) -> CoreBanking:
    """The connector ``funding.tasks.startup`` built from the settings (tests may replace
    ``app.state.corebanking``); 503 ``bank_not_connected`` when there is none."""
    bank = getattr(request.app.state, "corebanking", None)
    if bank is None:
        raise BankNotConnected("No core bank is configured (BANKWALLET_COREBANKING_URL).")
    return bank


Bank = Annotated[CoreBanking, Depends(get_corebanking)]
Cursor = Annotated[str | None, Query(max_length=64)]
Limit = Annotated[int, Query(ge=1, le=service.PAGE_MAX)]


# -- bank accounts ---------------------------------------------------------------------------


@router.get(f"{PREFIX}/bank-accounts")
async def list_bank_accounts(auth: Auth, session: DbSession) -> BankAccountList:
    accounts = await service.list_bank_accounts(session, auth.user.id)
    return BankAccountList(items=[BankAccountRead.of(a) for a in accounts])


@router.post(f"{PREFIX}/bank-accounts", status_code=201)
async def link_bank_account(body: BankAccountCreate, auth: Auth, session: DbSession,
                            bank: Bank) -> BankAccountRead:
    account = await service.link_bank_account(session, bank, auth.user, number=body.number,
                                               name=body.name, holder_name=body.holder_name)
    return BankAccountRead.of(account)


@router.get(f"{PREFIX}/bank-accounts/{{bank_account_id}}")
async def get_bank_account(bank_account_id: uuid.UUID, auth: Auth,
                           session: DbSession) -> BankAccountRead:
    return BankAccountRead.of(await service.get_bank_account(session, auth.user.id,
                                                             bank_account_id))


@router.patch(f"{PREFIX}/bank-accounts/{{bank_account_id}}")
async def rename_bank_account(bank_account_id: uuid.UUID, body: BankAccountUpdate, auth: Auth,
                              session: DbSession) -> BankAccountRead:
    account = await service.rename_bank_account(session, auth.user.id, bank_account_id,
                                                name=body.name)
    return BankAccountRead.of(account)


@router.delete(f"{PREFIX}/bank-accounts/{{bank_account_id}}", status_code=204)
async def remove_bank_account(bank_account_id: uuid.UUID, auth: Auth,
                              session: DbSession) -> Response:
    await service.remove_bank_account(session, auth.user.id, bank_account_id)
    return Response(status_code=204)


# -- top-ups and withdrawals -----------------------------------------------------------------


async def _start(request: Request, session: DbSession, auth: Auth, bank: CoreBanking, *,
                 kind: str, body: MovementCreate) -> Response:
    # Read-only and before the key is claimed: after the customer steps up, a retry with the
    # same key runs the movement instead of replaying "step up first".
    key = idempotency.check_key(request.headers.get(idempotency.HEADER))
    if not await service.movement_exists(session, kind, auth.user.id, key):
        await service.require_step_up_if_risky(session, auth, kind=kind,
                                               amount_minor=body.amount_minor,
                                               currency=body.currency.upper())

    async def work() -> MovementRead:
        movement = await service.start_movement(
            session, request.app.state.ledger, bank, auth, kind=kind,
            key=key, bank_account_id=body.bank_account_id,
            amount_minor=body.amount_minor, currency=body.currency,
            failure_mode=body.failure_mode)
        return await _read(session, movement)

    return await idempotency.run(request, session, scope=f"funding.{kind}:{auth.user.id}",
                                 body=body, work=work, status=201)


async def _read(session: DbSession, movement) -> MovementRead:
    last4 = await service.last4_of(session, [movement])
    return MovementRead.of(movement, last4.get(movement.bank_account_id, "????"))


async def _list(session: DbSession, auth: Auth, *, kind: str, cursor: str | None,
                limit: int) -> MovementList:
    page, next_cursor = await service.list_movements(session, auth.user.id, kind,
                                                     cursor=cursor, limit=limit)
    last4 = await service.last4_of(session, page)
    return MovementList(items=[MovementRead.of(m, last4.get(m.bank_account_id, "????"))
                               for m in page], next_cursor=next_cursor)


@router.post(f"{PREFIX}/topups", status_code=201, response_model=MovementRead)
async def create_topup(request: Request, body: TopupCreate, auth: Auth, session: DbSession,
                       bank: Bank) -> Response:
    """Top up the wallet from a linked bank account. Needs an ``Idempotency-Key``. Answers
    with the top-up: ``pending`` until the bank settles it, then ``succeeded`` or
    ``failed``."""
    return await _start(request, session, auth, bank, kind=service.TOPUP, body=body)


@router.get(f"{PREFIX}/topups")
async def list_topups(auth: Auth, session: DbSession, cursor: Cursor = None,
                      limit: Limit = 20) -> MovementList:
    return await _list(session, auth, kind=service.TOPUP, cursor=cursor, limit=limit)


@router.get(f"{PREFIX}/topups/{{topup_id}}")
async def get_topup(topup_id: uuid.UUID, auth: Auth, session: DbSession) -> MovementRead:
    return await _read(session, await service.get_movement(session, auth.user.id,
                                                           service.TOPUP, topup_id))


@router.post(f"{PREFIX}/withdrawals", status_code=201, response_model=MovementRead)
async def create_withdrawal(request: Request, body: WithdrawalCreate, auth: Auth,
                            session: DbSession, bank: Bank) -> Response:
    """Withdraw to a linked bank account. Needs an ``Idempotency-Key``. The amount is held at
    once; it leaves the wallet when the bank confirms, and comes back if it fails."""
    return await _start(request, session, auth, bank, kind=service.WITHDRAWAL, body=body)


@router.get(f"{PREFIX}/withdrawals")
async def list_withdrawals(auth: Auth, session: DbSession, cursor: Cursor = None,
                           limit: Limit = 20) -> MovementList:
    return await _list(session, auth, kind=service.WITHDRAWAL, cursor=cursor, limit=limit)


@router.get(f"{PREFIX}/withdrawals/{{withdrawal_id}}")
async def get_withdrawal(withdrawal_id: uuid.UUID, auth: Auth,
                         session: DbSession) -> MovementRead:
    return await _read(session, await service.get_movement(session, auth.user.id,
                                                           service.WITHDRAWAL, withdrawal_id))


# -- the core bank's webhook -----------------------------------------------------------------


@router.post("/webhooks/corebanking", include_in_schema=False)
async def corebanking_webhook(request: Request, session: DbSession, bank: Bank) -> WebhookAck:
    """A signed event from the bank; 400 when the signature or body is wrong (nothing
    changes), 200 once recorded (a redelivery answers ``duplicate``)."""
    event = bank.parse_webhook(await request.body(), request.headers)
    status = await service.receive_event(session, request.app.state.ledger, event)
    return WebhookAck(status=status)  # type: ignore[arg-type]
