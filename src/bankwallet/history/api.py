"""Transaction history, receipts and statements for API clients; and the money-notification
preferences (the notifications domain's routers are mounted by name in ``app.py``, which this
work does not change, so its preference routes ride along here; they only call
``notifications.money``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from bankwallet.core import i18n
from bankwallet.core.deps import DbSession
from bankwallet.core.money import MAX_AMOUNT_MINOR
from bankwallet.history import documents, service
from bankwallet.history.schemas import (
    EntryList,
    EntryRead,
    MoneyPreferencesRead,
    MoneyPreferencesUpdate,
    ReceiptRead,
)
from bankwallet.identity import mfa
from bankwallet.identity.deps import Auth
from bankwallet.identity.service import Authenticated
from bankwallet.notifications import money as money_notifications

router = APIRouter(prefix="/api/v1")
SearchText = Annotated[str | None, Query(max_length=service.TEXT_MAX_CHARS)]
# Files with a customer's movements: no cache may keep them.
NO_STORE = {"Cache-Control": "no-store"}


def history_filter(
        date_from: dt.date | None = None, date_to: dt.date | None = None,
        kind: Annotated[list[str] | None, Query(max_length=len(service.KINDS))] = None,
        currency: Annotated[str | None, Query(max_length=3)] = None,
        counterparty: SearchText = None, q: SearchText = None,
        amount_min_minor: Annotated[int | None, Query(ge=0, le=MAX_AMOUNT_MINOR)] = None,
        amount_max_minor: Annotated[int | None, Query(ge=0, le=MAX_AMOUNT_MINOR)] = None,
) -> service.HistoryFilter:
    """Dates are days in the bank's time zone (inclusive); ``kind`` may repeat; ``q`` looks in
    the note and the counterparty."""
    return service.HistoryFilter(date_from=date_from, date_to=date_to, kinds=tuple(kind or ()),
                                 currency=currency, counterparty=counterparty, text=q,
                                 amount_min_minor=amount_min_minor,
                                 amount_max_minor=amount_max_minor)


@router.get("/history", tags=["history"])
async def list_history(
        request: Request, auth: Auth,
        filters: Annotated[service.HistoryFilter, Depends(history_filter)],
        cursor: Annotated[str | None, Query(max_length=32)] = None,
        limit: Annotated[int, Query(ge=1, le=service.PAGE_SIZE_MAX)] = service.PAGE_SIZE_DEFAULT,
) -> EntryList:
    """Everything the caller's wallet accounts took part in, newest first."""
    page = await service.list_entries(request.app.state.ledger, auth.user.id, filters=filters,
                                      cursor=cursor, limit=limit)
    return EntryList(items=[EntryRead.of(e) for e in page.items], next_cursor=page.next_cursor)


@router.get("/history/{transfer_id}", tags=["history"])
async def read_history_entry(request: Request, transfer_id: uuid.UUID, auth: Auth) -> ReceiptRead:
    """One movement's receipt: 404 unless it touched the caller's accounts."""
    return ReceiptRead.of(await service.get_entry(request.app.state.ledger, auth.user.id,
                                                  transfer_id))


def statement_locale(request: Request, auth: Authenticated) -> str:
    """The language chosen in the client (cookie, then Accept-Language), else the user's."""
    return i18n.negotiate(cookie=request.cookies.get(i18n.LANG_COOKIE),
                          accept_language=request.headers.get("accept-language"),
                          default=i18n.supported(auth.user.locale)
                          or request.app.state.settings.default_locale)


def bank_name(request: Request) -> str:
    # The name customers know the service by (also the passkey prompt's), until the settings
    # carry the bank's own.
    settings = request.app.state.settings
    return getattr(settings, "bank_name", None) or settings.webauthn_rp_name


def _attachment(content: bytes, media_type: str, name: str) -> Response:
    return Response(content, media_type=media_type,
                    headers={**NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/statements/{month}.csv", tags=["history"])
async def statement_csv(request: Request, month: str, auth: Auth) -> Response:
    """The month's statement (``YYYY-MM``, the bank's calendar) as CSV: a header row, then per
    currency its opening balance, every movement with the balance after it, and its closing
    balance. UTF-8 with a byte-order mark, so spreadsheets read Chinese."""
    statement = await service.statement(request.app.state.ledger, auth.user.id, month)
    content = documents.statement_csv(statement, locale=statement_locale(request, auth))
    return _attachment(content, "text/csv; charset=utf-8", documents.filename(statement, "csv"))


@router.get("/statements/{month}.pdf", tags=["history"])
async def statement_pdf(request: Request, month: str, auth: Auth) -> Response:
    """The month's statement as a printable PDF with the bank's name, the customer's masked
    login, the period and page numbers."""
    statement = await service.statement(request.app.state.ledger, auth.user.id, month)
    content = await asyncio.to_thread(
        documents.statement_pdf, statement, locale=statement_locale(request, auth),
        bank_name=bank_name(request), customer=mfa.masked_login(auth.user))
    return _attachment(content, "application/pdf", documents.filename(statement, "pdf"))


@router.get("/notification-preferences", tags=["notifications"])
async def read_notification_preferences(session: DbSession, auth: Auth) -> MoneyPreferencesRead:
    """How money notifications reach the caller besides the in-app inbox."""
    return MoneyPreferencesRead.of(await money_notifications.get_preferences(session,
                                                                             auth.user.id))


@router.put("/notification-preferences", tags=["notifications"])
async def replace_notification_preferences(body: MoneyPreferencesUpdate, session: DbSession,
                                           auth: Auth) -> MoneyPreferencesRead:
    return MoneyPreferencesRead.of(await money_notifications.set_preferences(
        session, auth.user.id, body.to_preferences()))
