"""Pages: send money (form → review → result), requests and split bills, my contact card.

The pages call the same services as the JSON API. Money-moving forms carry a key made when
the form was shown (the review page, each request's pay button), so a double-submitted form
moves money once; a step-up answer sends the customer to ``/me/step-up`` and back.
"""

from __future__ import annotations

import uuid
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.core import idempotency
from bankwallet.core.deps import DbSession
from bankwallet.core.errors import BankwalletError, InvalidInput
from bankwallet.core.money import from_minor, to_minor
from bankwallet.identity import mfa
from bankwallet.identity.deps import Auth, optional_auth
from bankwallet.identity.errors import StepUpRequired
from bankwallet.transfers import service
from bankwallet.transfers.errors import TransferNotFound
from bankwallet.wallets import service as wallets_service
from bankwallet.web.csrf import safe_next
from bankwallet.web.templating import render

router = APIRouter(include_in_schema=False)

NO_STORE = {"Cache-Control": "no-store"}
SPLIT_FORM_ROWS = 6  # participant rows shown on the page (the API takes up to 20)
RECENT_MAX = 10
STYLESHEET = Path(__file__).resolve().parent / "templates" / "transfers" / "transfers.css"
Text = Annotated[str, Form(max_length=service.RECIPIENT_MAX_CHARS)]
Short = Annotated[str, Form(max_length=64)]
NoteText = Annotated[str, Form(max_length=2 * service.NOTE_MAX_CHARS)]


# -- helpers ---------------------------------------------------------------------------------


def _login_redirect(path: str) -> RedirectResponse:
    return RedirectResponse(f"/login?{urlencode({'next': safe_next(path)})}", status_code=303)


def _step_up_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/me/step-up?{urlencode({'next': safe_next(next_path)})}",
                            status_code=303)


def _send_path(**prefill: str | None) -> str:
    query = urlencode({k: v for k, v in prefill.items() if v})
    return f"/wallet/send?{query}" if query else "/wallet/send"


def _error(exc: BankwalletError) -> dict[str, Any]:
    return {"code": exc.code, **{k: v for k, v in exc.extra.items()
                                 if isinstance(v, (str, int))}}


def _amount_minor(text: str, currency: str) -> int:
    """Major units typed by a person ("12.34") as minor units, refused past the currency's
    decimals or at zero."""
    currency = wallets_service.supported(currency)
    return service.check_amount(to_minor(text, currency))


def _new_key() -> str:
    return uuid.uuid4().hex


@lru_cache(maxsize=1)
def _stylesheet() -> str:
    return STYLESHEET.read_text(encoding="utf-8")


@router.get("/wallet/assets/transfers.css")
async def stylesheet() -> Response:
    return Response(_stylesheet(), media_type="text/css",
                    headers={"Cache-Control": "public, max-age=3600"})


# -- send ------------------------------------------------------------------------------------


async def _send_page(request: Request, session: AsyncSession, auth: Any, *,
                     form: dict[str, str], error: dict[str, Any] | None = None,
                     status_code: int = 200) -> HTMLResponse:
    me = auth.user.id
    recent = await service.list_transfers(session, me, limit=RECENT_MAX)
    return render(request, "transfers/send.html", {
        "form": form, "error": error, "recent": recent, "me": me,
        "currencies": wallets_service.SUPPORTED_CURRENCIES,
        "balances": await wallets_service.balances(request.app.state.ledger, me),
    }, active="wallet", status_code=status_code, headers=NO_STORE)


@router.get("/wallet/send", response_class=HTMLResponse)
async def send_page(request: Request, session: DbSession, to: str = "", amount: str = "",
                    currency: str = wallets_service.DEFAULT_CURRENCY,
                    note: str = "") -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return _login_redirect("/wallet/send")
    form = {"to": to[:service.RECIPIENT_MAX_CHARS], "amount": amount[:32],
            "currency": currency[:3].upper(), "note": note[:service.NOTE_MAX_CHARS]}
    return await _send_page(request, session, auth, form=form)


@router.post("/wallet/send/review", response_class=HTMLResponse)
async def send_review(request: Request, auth: Auth, session: DbSession, to: Text, amount: Short,
                      currency: Short = wallets_service.DEFAULT_CURRENCY,
                      note: NoteText = "") -> Response:
    """Check the recipient and amount and show them back before any money moves."""
    form = {"to": to, "amount": amount, "currency": currency.upper(), "note": note}
    try:
        amount_minor = _amount_minor(amount, currency)
        clean = service.clean_note(note)
        recipient = await service.preview_recipient(session, auth, to)
        await service.check_risk(session, auth, action="p2p.send", amount_minor=amount_minor,
                                 currency=form["currency"])
    except StepUpRequired:
        await _undo(session, auth)
        return _step_up_redirect(_send_path(**form))
    except BankwalletError as exc:
        await _undo(session, auth)
        return await _send_page(request, session, auth, form=form, error=_error(exc),
                                status_code=exc.status)
    return render(request, "transfers/review.html", {
        "to": to, "recipient": recipient, "amount_minor": amount_minor,
        "currency": form["currency"], "note": clean, "key": _new_key(),
        "edit_url": _send_path(**form),
    }, active="wallet", headers=NO_STORE)


@router.post("/wallet/send")
async def send(request: Request, auth: Auth, session: DbSession, to: Text, amount_minor: Short,
               currency: Short, key: Short, note: NoteText = "") -> Response:
    form = {"to": to, "currency": currency.upper(), "note": note, "amount": ""}
    try:
        minor = int(amount_minor) if amount_minor.isdigit() else 0
        form["amount"] = from_minor(minor, wallets_service.supported(currency))
        row = await service.send(session, request.app.state.ledger, auth,
                                 key=idempotency.check_key(key), to=to, amount_minor=minor,
                                 currency=currency, note=note)
    except StepUpRequired:
        await _undo(session, auth)
        return _step_up_redirect(_send_path(**form))
    except BankwalletError as exc:
        await _undo(session, auth)
        return await _send_page(request, session, auth, form=form, error=_error(exc),
                                status_code=exc.status)
    return RedirectResponse(f"/wallet/transfers/{row.id}", status_code=303)


async def _undo(session: AsyncSession, auth: Any) -> None:
    """Roll back what a refused action wrote (the unit of work would commit it with the error
    page), then load the caller again: a rollback expires every loaded object."""
    await session.rollback()
    await session.refresh(auth.user)
    await session.refresh(auth.session)


@router.get("/wallet/transfers/{transfer_id}", response_class=HTMLResponse)
async def transfer_page(request: Request, session: DbSession, transfer_id: uuid.UUID) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return _login_redirect(f"/wallet/transfers/{transfer_id}")
    try:
        row = await service.get_transfer(session, auth.user.id, transfer_id)
    except TransferNotFound as exc:
        return render(request, "transfers/missing.html", {"error": _error(exc)},
                      active="wallet", status_code=404, headers=NO_STORE)
    return render(request, "transfers/result.html", {"t": row, "me": auth.user.id},
                  active="wallet", headers=NO_STORE)


# -- requests and split bills ----------------------------------------------------------------


async def _requests_page(request: Request, session: AsyncSession, auth: Any, *,
                         error: dict[str, Any] | None = None, form: dict[str, Any] | None = None,
                         done: str | None = None, status_code: int = 200) -> HTMLResponse:
    me = auth.user.id
    incoming = await service.list_requests(session, me, box="incoming", limit=50)
    outgoing = await service.list_requests(session, me, box="outgoing", limit=50)
    return render(request, "transfers/requests.html", {
        "incoming_open": [r for r in incoming if r.status == "open"],
        "incoming_done": [r for r in incoming if r.status != "open"][:RECENT_MAX],
        "outgoing": [r for r in outgoing if r.split_id is None],
        "splits": await service.list_splits(session, me, limit=RECENT_MAX),
        "keys": {r.id: _new_key() for r in incoming if r.status == "open"},
        "currencies": wallets_service.SUPPORTED_CURRENCIES, "rows": SPLIT_FORM_ROWS,
        "form": form or {}, "error": error, "done": done,
    }, active="wallet", status_code=status_code, headers=NO_STORE)


@router.get("/wallet/requests", response_class=HTMLResponse)
async def requests_page(request: Request, session: DbSession, done: str | None = None
                        ) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return _login_redirect("/wallet/requests")
    return await _requests_page(request, session, auth,
                                done=done if done in ("created", "paid", "declined",
                                                      "cancelled") else None)


@router.post("/wallet/requests")
async def create_request(request: Request, auth: Auth, session: DbSession, payer: Text,
                         amount: Short, currency: Short = wallets_service.DEFAULT_CURRENCY,
                         note: NoteText = "") -> Response:
    form = {"payer": payer, "amount": amount, "currency": currency.upper(), "note": note}
    try:
        await service.create_request(session, auth, payer=payer,
                                     amount_minor=_amount_minor(amount, currency),
                                     currency=currency, note=note)
    except BankwalletError as exc:
        await _undo(session, auth)
        return await _requests_page(request, session, auth, error={**_error(exc),
                                                                   "form": "request"},
                                    form=form, status_code=exc.status)
    return RedirectResponse("/wallet/requests?done=created", status_code=303)


@router.post("/wallet/splits")
async def create_split(request: Request, auth: Auth, session: DbSession) -> Response:
    data = await request.form()
    text = {k: v for k, v in data.items() if isinstance(v, str)}
    currency = text.get("currency", wallets_service.DEFAULT_CURRENCY)[:3].upper()
    form = {k: v[:service.RECIPIENT_MAX_CHARS] for k, v in text.items()
            if k != "csrf_token"}
    try:
        view = await service.create_split(session, auth, **_split_arguments(text, currency))
    except BankwalletError as exc:
        await _undo(session, auth)
        return await _requests_page(request, session, auth,
                                    error={**_error(exc), "form": "split"}, form=form,
                                    status_code=exc.status)
    return RedirectResponse(f"/wallet/splits/{view.split.id}", status_code=303)


def _split_arguments(text: dict[str, str], currency: str) -> dict[str, Any]:
    """The split form (rows of participant and optional amount) as ``create_split``'s
    arguments: any amount typed makes it an explicit split."""
    rows = []
    for i in range(service.SPLIT_PARTICIPANTS_MAX):
        who = text.get(f"participant_{i}", "").strip()
        amount = text.get(f"amount_{i}", "").strip()
        if who or amount:
            rows.append((who, amount))
    if any(not who for who, _ in rows):
        raise InvalidInput("Each amount needs a person.")
    total = _amount_minor(text.get("total", ""), currency)
    note = text.get("note") or None
    include_me = text.get("include_me") == "on"
    if any(amount for _, amount in rows):
        if not all(amount for _, amount in rows):
            raise InvalidInput("Give every person an amount, or none for an equal split.")
        my_share = text.get("my_share", "").strip()
        return {"total_minor": total, "currency": currency, "note": note,
                "shares": [(who, _amount_minor(a, currency)) for who, a in rows],
                "my_share_minor": to_minor(my_share, currency) if my_share else 0}
    return {"total_minor": total, "currency": currency, "note": note,
            "participants": [who for who, _ in rows], "include_me": include_me}


@router.get("/wallet/splits/{split_id}", response_class=HTMLResponse)
async def split_page(request: Request, session: DbSession, split_id: uuid.UUID) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return _login_redirect(f"/wallet/splits/{split_id}")
    try:
        view = await service.get_split(session, auth.user.id, split_id)
    except BankwalletError as exc:
        return render(request, "transfers/missing.html", {"error": _error(exc)},
                      active="wallet", status_code=exc.status, headers=NO_STORE)
    return render(request, "transfers/split.html", {"view": view}, active="wallet",
                  headers=NO_STORE)


@router.post("/wallet/requests/{request_id}/pay")
async def pay_request(request: Request, request_id: uuid.UUID, auth: Auth, session: DbSession,
                      key: Short) -> Response:
    try:
        row = await service.pay_request(session, request.app.state.ledger, auth,
                                        request_id=request_id, key=idempotency.check_key(key))
    except StepUpRequired:
        await _undo(session, auth)
        return _step_up_redirect("/wallet/requests")
    except BankwalletError as exc:
        await _undo(session, auth)
        return await _requests_page(request, session, auth, error=_error(exc),
                                    status_code=exc.status)
    return RedirectResponse(f"/wallet/transfers/{row.id}", status_code=303)


@router.post("/wallet/requests/{request_id}/decline")
async def decline_request(request: Request, request_id: uuid.UUID, auth: Auth,
                          session: DbSession) -> Response:
    return await _close(request, session, auth, request_id, service.decline_request,
                        "declined")


@router.post("/wallet/requests/{request_id}/cancel")
async def cancel_request(request: Request, request_id: uuid.UUID, auth: Auth,
                         session: DbSession) -> Response:
    return await _close(request, session, auth, request_id, service.cancel_request,
                        "cancelled")


async def _close(request: Request, session: AsyncSession, auth: Any, request_id: uuid.UUID,
                 action: Any, done: str) -> Response:
    try:
        await action(session, auth, request_id)
    except BankwalletError as exc:
        await _undo(session, auth)
        return await _requests_page(request, session, auth, error=_error(exc),
                                    status_code=exc.status)
    return RedirectResponse(f"/wallet/requests?done={done}", status_code=303)


# -- receive: my contact card ----------------------------------------------------------------


@router.get("/wallet/receive", response_class=HTMLResponse)
async def receive_page(request: Request, session: DbSession) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return _login_redirect("/wallet/receive")
    payload = service.contact_card(auth.user.id)
    return render(request, "transfers/receive.html", {
        "payload": payload, "svg": service.contact_card_svg(payload),
        "display": mfa.masked_login(auth.user), "wallet_id": auth.user.id,
    }, active="wallet", headers=NO_STORE)
