"""The wallet's home page: balances and what the customer can do with them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bankwallet.core.deps import DbSession
from bankwallet.history import service as history_service
from bankwallet.identity.deps import optional_auth
from bankwallet.wallets import service
from bankwallet.web.templating import render

router = APIRouter(include_in_schema=False)
RECENT_ENTRIES = 5


@router.get("/wallet", response_class=HTMLResponse)
async def wallet_home(request: Request, session: DbSession) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return RedirectResponse("/login?next=/wallet", status_code=303)
    ledger = request.app.state.ledger
    balances = await service.balances(ledger, auth.user.id)
    if not balances:  # the user.registered consumer has not run yet
        await service.open_wallet(ledger, auth.user.id)
        balances = await service.balances(ledger, auth.user.id)
    recent = await history_service.list_entries(ledger, auth.user.id, limit=RECENT_ENTRIES)
    return render(request, "wallets/home.html",
                  {"balances": balances, "recent": recent.items}, active="wallet")
