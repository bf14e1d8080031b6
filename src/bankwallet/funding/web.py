"""Pages: linked bank accounts (``/me/bank-accounts``), top up (``/wallet/topup``) and withdraw
(``/wallet/withdraw``), each movement's status page refreshed by HTMX until it settles.

The forms carry a one-time token that is the movement's idempotency key: a double-submitted
form is one movement. Without a configured bank the pages say so and offer nothing to press.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bankwallet.connectors.corebanking.base import CoreBanking
from bankwallet.core import idempotency
from bankwallet.core.deps import DbSession
from bankwallet.core.errors import BankwalletError
from bankwallet.core.money import InvalidAmount, from_minor, to_minor
from bankwallet.funding import service
from bankwallet.funding.errors import BankAccountNotFound, BankNotConnected
from bankwallet.funding.schemas import masked
from bankwallet.identity.deps import Auth, optional_auth
from bankwallet.identity.errors import StepUpRequired
from bankwallet.identity.service import Authenticated
from bankwallet.wallets import service as wallets_service
from bankwallet.web.templating import render

router = APIRouter(include_in_schema=False)
Field = Annotated[str, Form(max_length=256)]
NO_STORE = {"Cache-Control": "no-store"}
PATHS = {service.TOPUP: ("/wallet/topup", "/wallet/topups"),
         service.WITHDRAWAL: ("/wallet/withdraw", "/wallet/withdrawals")}


def _bank(request: Request) -> CoreBanking | None:
    return getattr(request.app.state, "corebanking", None)


async def _rollback(session: DbSession, auth: Authenticated) -> None:
    """Nothing a failed attempt wrote may commit; the caller's user is read again."""
    await session.rollback()
    await session.refresh(auth.user)


def _login(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/login?{urlencode({'next': next_path})}", status_code=303)


# -- bank accounts ---------------------------------------------------------------------------


async def _accounts_page(request: Request, session: DbSession, auth: Authenticated, *,
                         error: BankwalletError | None = None, form: dict | None = None,
                         linked: bool = False) -> HTMLResponse:
    if error is not None:
        await _rollback(session, auth)
    return render(request, "funding/bank_accounts.html", {
        "accounts": await service.list_bank_accounts(session, auth.user.id),
        "connected": _bank(request) is not None,
        "verified_name": await service.verified_legal_name(session, auth.user) is not None,
        "error": error.code if error else None,
        "reason": error.extra.get("reason") if error else None,
        "form": form or {"number": "", "name": "", "holder_name": ""},
        "linked": linked, "masked": masked,
    }, active="me", status_code=error.status if error else 200, headers=NO_STORE)


@router.get("/me/bank-accounts", response_class=HTMLResponse)
async def bank_accounts_page(request: Request, session: DbSession, linked: str | None = None
                             ) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return _login("/me/bank-accounts")
    return await _accounts_page(request, session, auth, linked=linked == "1")


@router.post("/me/bank-accounts")
async def link_bank_account(request: Request, auth: Auth, session: DbSession, number: Field,
                            name: Field = "", holder_name: Field = "") -> Response:
    form = {"number": number, "name": name, "holder_name": holder_name}
    bank = _bank(request)
    try:
        if bank is None:
            raise BankNotConnected()
        await service.link_bank_account(session, bank, auth.user, number=number,
                                        name=name or None, holder_name=holder_name or None)
    except BankwalletError as exc:
        return await _accounts_page(request, session, auth, error=exc, form=form)
    return RedirectResponse("/me/bank-accounts?linked=1", status_code=303)


@router.post("/me/bank-accounts/{bank_account_id}/rename")
async def rename_bank_account(request: Request, bank_account_id: uuid.UUID, auth: Auth,
                              session: DbSession, name: Field) -> Response:
    try:
        await service.rename_bank_account(session, auth.user.id, bank_account_id, name=name)
    except BankwalletError as exc:
        return await _accounts_page(request, session, auth, error=exc)
    return RedirectResponse("/me/bank-accounts", status_code=303)


@router.post("/me/bank-accounts/{bank_account_id}/remove")
async def remove_bank_account(request: Request, bank_account_id: uuid.UUID, auth: Auth,
                              session: DbSession) -> Response:
    try:
        await service.remove_bank_account(session, auth.user.id, bank_account_id)
    except BankwalletError as exc:
        return await _accounts_page(request, session, auth, error=exc)
    return RedirectResponse("/me/bank-accounts", status_code=303)


# -- top up and withdraw ---------------------------------------------------------------------


async def _form_page(request: Request, session: DbSession, auth: Authenticated, *, kind: str,
                     error: BankwalletError | None = None, form: dict | None = None
                     ) -> HTMLResponse:
    if error is not None:
        await _rollback(session, auth)
    currency = (form or {}).get("currency") or wallets_service.DEFAULT_CURRENCY
    if currency not in wallets_service.SUPPORTED_CURRENCIES:
        currency = wallets_service.DEFAULT_CURRENCY
    balance = await wallets_service.balance(request.app.state.ledger, auth.user.id, currency)
    return render(request, "funding/movement_form.html", {
        "kind": kind, "action": PATHS[kind][0],
        "accounts": await service.list_bank_accounts(session, auth.user.id),
        "connected": _bank(request) is not None,
        "currencies": wallets_service.SUPPORTED_CURRENCIES, "balance": balance,
        # A new token per form shown: submitting this form twice is one movement.
        "token": secrets.token_urlsafe(18),
        "error": error.code if error else None,
        "detail": error.extra if error else {},
        "form": form or {"bank_account_id": "", "amount": "", "currency": currency},
        "masked": masked,
    }, active="wallet", status_code=error.status if error else 200, headers=NO_STORE)


async def _form(request: Request, session: DbSession, kind: str) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return _login(PATHS[kind][0])
    return await _form_page(request, session, auth, kind=kind)


async def _submit(request: Request, session: DbSession, auth: Authenticated, *, kind: str,
                  bank_account_id: str, amount: str, currency: str, token: str) -> Response:
    form = {"bank_account_id": bank_account_id, "amount": amount, "currency": currency}
    bank = _bank(request)
    try:
        if bank is None:
            raise BankNotConnected()
        key = idempotency.check_key(token)
        try:
            account_id = uuid.UUID(bank_account_id)
        except ValueError:
            raise BankAccountNotFound() from None
        code = wallets_service.supported(currency)
        amount_minor = to_minor(amount, code)
        if amount_minor <= 0:
            raise InvalidAmount("Enter an amount above zero.")
        movement = await service.start_movement(
            session, request.app.state.ledger, bank, auth, kind=kind, key=key,
            bank_account_id=account_id, amount_minor=amount_minor, currency=code)
    except StepUpRequired:
        await _rollback(session, auth)
        return RedirectResponse(f"/me/step-up?{urlencode({'next': PATHS[kind][0]})}",
                                status_code=303)
    except BankwalletError as exc:
        return await _form_page(request, session, auth, kind=kind, error=exc, form=form)
    return RedirectResponse(f"{PATHS[kind][1]}/{movement.id}", status_code=303)


@router.get("/wallet/topup", response_class=HTMLResponse)
async def topup_page(request: Request, session: DbSession) -> Response:
    return await _form(request, session, service.TOPUP)


@router.post("/wallet/topup")
async def topup(request: Request, auth: Auth, session: DbSession, bank_account_id: Field,
                amount: Field, token: Field, currency: Field = "CNY") -> Response:
    return await _submit(request, session, auth, kind=service.TOPUP,
                         bank_account_id=bank_account_id, amount=amount, currency=currency,
                         token=token)


@router.get("/wallet/withdraw", response_class=HTMLResponse)
async def withdraw_page(request: Request, session: DbSession) -> Response:
    return await _form(request, session, service.WITHDRAWAL)


@router.post("/wallet/withdraw")
async def withdraw(request: Request, auth: Auth, session: DbSession, bank_account_id: Field,
                   amount: Field, token: Field, currency: Field = "CNY") -> Response:
    return await _submit(request, session, auth, kind=service.WITHDRAWAL,
                         bank_account_id=bank_account_id, amount=amount, currency=currency,
                         token=token)


# -- a movement's status ---------------------------------------------------------------------


async def _status(request: Request, session: DbSession, kind: str, movement_id: uuid.UUID, *,
                  template: str) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return _login(f"{PATHS[kind][1]}/{movement_id}")
    movement = await service.get_movement(session, auth.user.id, kind, movement_id)
    last4 = (await service.last4_of(session, [movement])).get(movement.bank_account_id, "")
    return render(request, template, {
        "m": movement, "bank_account": masked(last4), "base": PATHS[kind][1],
        "amount_text": from_minor(movement.amount_minor, movement.currency),
    }, active="wallet", headers=NO_STORE)


@router.get("/wallet/topups/{movement_id}", response_class=HTMLResponse)
async def topup_status_page(request: Request, session: DbSession,
                            movement_id: uuid.UUID) -> Response:
    return await _status(request, session, service.TOPUP, movement_id,
                         template="funding/movement.html")


@router.get("/wallet/topups/{movement_id}/status", response_class=HTMLResponse)
async def topup_status(request: Request, session: DbSession, movement_id: uuid.UUID) -> Response:
    return await _status(request, session, service.TOPUP, movement_id,
                         template="funding/_movement_status.html")


@router.get("/wallet/withdrawals/{movement_id}", response_class=HTMLResponse)
async def withdrawal_status_page(request: Request, session: DbSession,
                                 movement_id: uuid.UUID) -> Response:
    return await _status(request, session, service.WITHDRAWAL, movement_id,
                         template="funding/movement.html")


@router.get("/wallet/withdrawals/{movement_id}/status", response_class=HTMLResponse)
async def withdrawal_status(request: Request, session: DbSession,
                            movement_id: uuid.UUID) -> Response:
    return await _status(request, session, service.WITHDRAWAL, movement_id,
                         template="funding/_movement_status.html")
