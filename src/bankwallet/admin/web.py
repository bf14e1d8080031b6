"""The back-office pages (``/admin``).

Pages read the cookie session; every form carries the session's CSRF token, which
``identity.deps.current_auth`` checks. Role checks are in ``identity.staff``.
"""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bankwallet.core.deps import DbSession
from bankwallet.core.errors import BankwalletError, InvalidInput, NotFound
from bankwallet.identity import kyc, staff
from bankwallet.identity.deps import Auth, optional_auth
from bankwallet.identity.service import Authenticated
from bankwallet.web.templating import render

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form(max_length=kyc.REASON_MAX_CHARS)]
OptionalText = Annotated[str, Form(max_length=kyc.REASON_MAX_CHARS)]


async def _page_auth(request: Request, session: DbSession, path: str
                     ) -> Authenticated | RedirectResponse:
    auth = await optional_auth(request, session)
    if auth is None:
        return RedirectResponse(f"/login?{urlencode({'next': path})}", status_code=303)
    return auth


def _permissions(auth: Authenticated) -> dict[str, bool]:
    def can(roles: tuple[str, ...]) -> bool:
        try:
            staff.require_role(auth.user, *roles)
        except BankwalletError:
            return False
        return True

    return {"customers": can(staff.CUSTOMERS_READ), "kyc": can(staff.KYC_REVIEW),
            "lock": can(staff.ACCOUNTS_LOCK), "audit": can(staff.AUDIT_READ)}


def _back(path: str, **params: str) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v})
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)


# -- back office ---------------------------------------------------------------------------


@router.get("/admin", response_class=HTMLResponse)
async def admin_home(request: Request, session: DbSession) -> Response:
    auth = await _page_auth(request, session, "/admin")
    if isinstance(auth, Response):
        return auth
    staff.require_role(auth.user, *staff.STAFF)
    return render(request, "admin/index.html", {"can": _permissions(auth), "me": auth.user})


@router.get("/admin/customers", response_class=HTMLResponse)
async def customers_page(request: Request, session: DbSession, login: str = "",
                         id: uuid.UUID | None = None, error: str | None = None) -> Response:
    auth = await _page_auth(request, session, "/admin/customers")
    if isinstance(auth, Response):
        return auth
    staff.require_role(auth.user, *staff.CUSTOMERS_READ)
    customer, events, not_found = None, [], False
    try:
        if id is not None:
            customer = await staff.get_customer(session, auth.user, id)
        elif login.strip():
            customer = await staff.find_customer(session, auth.user, login_text=login[:254])
    except NotFound:
        not_found = True
    if customer is not None:
        events = await staff.customer_events(session, auth.user, customer.id, limit=50)
    return render(request, "admin/customers.html",
                  {"can": _permissions(auth), "login": login, "customer": customer,
                   "events": events, "not_found": not_found, "error": error})


@router.post("/admin/customers/{user_id}/lock")
async def lock(user_id: uuid.UUID, auth: Auth, session: DbSession, reason: Text = "") -> Response:
    try:
        await staff.lock_user(session, auth.user, user_id, reason=reason)
    except InvalidInput as exc:
        return _back("/admin/customers", id=str(user_id), error=exc.code)
    return _back("/admin/customers", id=str(user_id))


@router.post("/admin/customers/{user_id}/unlock")
async def unlock(user_id: uuid.UUID, auth: Auth, session: DbSession,
                 reason: OptionalText = "") -> Response:
    await staff.unlock_user(session, auth.user, user_id, reason=reason)
    return _back("/admin/customers", id=str(user_id))


@router.get("/admin/kyc", response_class=HTMLResponse)
async def kyc_queue_page(request: Request, session: DbSession, status: str = "pending",
                         before: uuid.UUID | None = None, error: str | None = None) -> Response:
    auth = await _page_auth(request, session, "/admin/kyc")
    if isinstance(auth, Response):
        return auth
    status = status if status in kyc.STATUSES else "pending"
    items = await staff.kyc_queue(session, auth.user, status=status, before_id=before, limit=50)
    return render(request, "admin/kyc.html",
                  {"can": _permissions(auth), "items": items, "status": status,
                   "statuses": kyc.STATUSES, "error": error,
                   "next_before": items[-1].id if len(items) == 50 else None})


@router.post("/admin/kyc/{application_id}/approve")
async def approve(application_id: uuid.UUID, auth: Auth, session: DbSession) -> Response:
    try:
        await staff.decide_kyc(session, auth.user, application_id, approve=True)
    except (InvalidInput, kyc.KycAlreadyDecided) as exc:
        return _back("/admin/kyc", error=exc.code)
    return _back("/admin/kyc")


@router.post("/admin/kyc/{application_id}/reject")
async def reject(application_id: uuid.UUID, auth: Auth, session: DbSession,
                 reason: Text = "") -> Response:
    try:
        await staff.decide_kyc(session, auth.user, application_id, approve=False, reason=reason)
    except (InvalidInput, kyc.KycAlreadyDecided) as exc:
        return _back("/admin/kyc", error=exc.code)
    return _back("/admin/kyc")


@router.get("/admin/audit", response_class=HTMLResponse)
async def audit_page(request: Request, session: DbSession,
                     before: int | None = None) -> Response:
    auth = await _page_auth(request, session, "/admin/audit")
    if isinstance(auth, Response):
        return auth
    events = await staff.audit_log(session, auth.user, before_seq=before, limit=50)
    return render(request, "admin/audit.html",
                  {"can": _permissions(auth), "events": events,
                   "next_before": events[-1].seq if len(events) == 50 else None})
