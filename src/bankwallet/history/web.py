"""The history pages of the web client: the transaction list with its filters (HTMX "load
more"), a movement's printable receipt, the statements, and the notification preferences."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bankwallet.core.deps import DbSession
from bankwallet.core.errors import BankwalletError
from bankwallet.core.money import InvalidAmount, from_minor, to_minor
from bankwallet.history import service
from bankwallet.history.errors import InvalidFilter
from bankwallet.identity.deps import Auth, optional_auth
from bankwallet.notifications import money as money_notifications
from bankwallet.wallets import service as wallets_service
from bankwallet.web.templating import render

router = APIRouter(include_in_schema=False)
ASSETS_DIR: Final = Path(__file__).resolve().parent / "templates" / "history"
ASSETS: Final = {"history.css": "text/css", "history.js": "text/javascript"}
FormText = Annotated[str | None, Query(max_length=service.TEXT_MAX_CHARS)]
# Pages with a customer's movements: no shared cache may keep them.
PRIVATE = {"Cache-Control": "private, no-cache"}


@lru_cache(maxsize=len(ASSETS))
def asset_url(name: str) -> str:
    digest = hashlib.sha256((ASSETS_DIR / name).read_bytes()).hexdigest()[:12]
    return f"/wallet/assets/{name}?v={digest}"


@router.get("/wallet/assets/{name}")
async def asset(name: str) -> Response:
    """The history pages' own stylesheet (print layout) and script (the print button)."""
    if name not in ASSETS:
        return Response(status_code=404)
    return Response((ASSETS_DIR / name).read_bytes(), media_type=ASSETS[name],
                    headers={"Cache-Control": "public, max-age=31536000, immutable"})


def _login(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/login?{urlencode({'next': next_path})}", status_code=303)


# -- the list --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FilterForm:
    """The filter form as typed (strings), to show back; ``parse`` makes the service's."""

    date_from: str = ""
    date_to: str = ""
    kind: str = ""
    currency: str = ""
    counterparty: str = ""
    q: str = ""
    amount_min: str = ""
    amount_max: str = ""

    def query(self, **extra: str) -> str:
        fields = {k: getattr(self, k) for k in self.__slots__ if getattr(self, k)}
        return urlencode({**fields, **extra})

    @property
    def active(self) -> bool:
        return any(getattr(self, k) for k in self.__slots__)

    def parse(self) -> service.HistoryFilter:
        currency = self.currency or None
        digits_currency = currency if currency in wallets_service.SUPPORTED_CURRENCIES \
            else wallets_service.DEFAULT_CURRENCY
        return service.HistoryFilter(
            date_from=_date(self.date_from), date_to=_date(self.date_to),
            kinds=(self.kind,) if self.kind else (), currency=currency,
            counterparty=self.counterparty or None, text=self.q or None,
            amount_min_minor=_amount(self.amount_min, digits_currency),
            amount_max_minor=_amount(self.amount_max, digits_currency))


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        raise InvalidFilter("Dates are written YYYY-MM-DD.") from None


def _amount(text: str, currency: str) -> int | None:
    try:
        return to_minor(text, currency) if text else None
    except InvalidAmount as exc:
        raise InvalidFilter(exc.detail) from None


@router.get("/wallet/history", response_class=HTMLResponse)
async def history_page(
        request: Request, session: DbSession, date_from: FormText = None,
        date_to: FormText = None, kind: FormText = None, currency: FormText = None,
        counterparty: FormText = None, q: FormText = None, amount_min: FormText = None,
        amount_max: FormText = None,
        cursor: Annotated[str | None, Query(max_length=32)] = None) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return _login("/wallet/history")
    form = FilterForm(date_from=date_from or "", date_to=date_to or "", kind=kind or "",
                      currency=currency or "", counterparty=counterparty or "", q=q or "",
                      amount_min=amount_min or "", amount_max=amount_max or "")
    partial = request.headers.get("hx-request") == "true" and cursor is not None
    error, page = None, service.EntryPage([], None)
    try:
        page = await service.list_entries(request.app.state.ledger, auth.user.id,
                                          filters=form.parse(), cursor=cursor)
    except BankwalletError as exc:
        error = exc
    context = {"form": form, "page": page, "error": error.code if error else None,
               "error_detail": error.detail if error else None, "kinds": service.KINDS,
               "kind_labels": service.KIND_LABELS, "status_labels": service.STATUS_LABELS,
               "currencies": wallets_service.SUPPORTED_CURRENCIES, "bank_tz": _bank_tz(request),
               "more_url": (f"/wallet/history?{form.query(cursor=page.next_cursor)}"
                            if page.next_cursor else None),
               "asset_url": asset_url, "continued": cursor is not None}
    status = error.status if error else 200
    template = "history/_entries.html" if partial and not error else "history/list.html"
    return render(request, template, context, active="wallet", status_code=status,
                  headers=PRIVATE)


def _bank_tz(request: Request) -> str:
    return request.app.state.settings.bank_timezone


# -- a receipt -------------------------------------------------------------------------------


@router.get("/wallet/history/{transfer_id}", response_class=HTMLResponse)
async def receipt_page(request: Request, transfer_id: str, session: DbSession) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return _login(f"/wallet/history/{transfer_id}")
    try:
        entry = await service.get_entry(request.app.state.ledger, auth.user.id,
                                        uuid.UUID(transfer_id))
    except (ValueError, BankwalletError):
        return render(request, "history/receipt.html", {"entry": None, "asset_url": asset_url},
                      active="wallet", status_code=404, headers=PRIVATE)
    return render(request, "history/receipt.html",
                  {"entry": entry, "kind_labels": service.KIND_LABELS,
                   "status_labels": service.STATUS_LABELS, "bank_tz": _bank_tz(request),
                   "asset_url": asset_url}, active="wallet", headers=PRIVATE)


# -- statements ------------------------------------------------------------------------------


@router.get("/wallet/statements", response_class=HTMLResponse)
async def statements_page(request: Request, session: DbSession) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return _login("/wallet/statements")
    months = [(m, dt.date.fromisoformat(f"{m}-01")) for m in service.recent_months()]
    return render(request, "history/statements.html", {"months": months, "asset_url": asset_url},
                  active="wallet", headers=PRIVATE)


# -- notification preferences ----------------------------------------------------------------

THRESHOLD_CURRENCY: Final = wallets_service.DEFAULT_CURRENCY


async def _preferences_page(request: Request, session: DbSession, user_id: uuid.UUID, *,
                            saved: bool = False, error: str | None = None,
                            threshold_text: str | None = None,
                            status_code: int = 200) -> HTMLResponse:
    preferences = await money_notifications.get_preferences(session, user_id)
    threshold = threshold_text if threshold_text is not None else from_minor(
        preferences.sms_money_out_min_minor, THRESHOLD_CURRENCY)
    return render(request, "history/notifications.html",
                  {"preferences": preferences, "threshold": threshold,
                   "threshold_currency": THRESHOLD_CURRENCY, "saved": saved, "error": error,
                   "asset_url": asset_url}, active="me", status_code=status_code)


@router.get("/me/notifications", response_class=HTMLResponse)
async def notifications_page(request: Request, session: DbSession,
                             saved: bool = False) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return _login("/me/notifications")
    return await _preferences_page(request, session, auth.user.id, saved=saved)


Checkbox = Annotated[str | None, Form(max_length=8)]


@router.post("/me/notifications")
async def save_notifications(
        request: Request, auth: Auth, session: DbSession,
        sms_money_out_min: Annotated[str, Form(max_length=32)] = "",
        sms_withdrawals: Checkbox = None, sms_money_out: Checkbox = None,
        sms_money_in: Checkbox = None, email: Checkbox = None) -> Response:
    try:
        threshold = to_minor(sms_money_out_min or "0", THRESHOLD_CURRENCY)
        await money_notifications.set_preferences(session, auth.user.id,
                                                  money_notifications.MoneyPreferences(
            sms_withdrawals=bool(sms_withdrawals), sms_money_out=bool(sms_money_out),
            sms_money_out_min_minor=threshold, sms_money_in=bool(sms_money_in),
            email=bool(email)))
    except BankwalletError as exc:
        return await _preferences_page(request, session, auth.user.id, error=exc.code,
                                       threshold_text=sms_money_out_min,
                                       status_code=exc.status)
    return RedirectResponse("/me/notifications?saved=true", status_code=303)
