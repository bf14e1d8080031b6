"""The wallet's home page: balances and what the customer can do with them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bankwallet.core.deps import DbSession
from bankwallet.history import service as history_service
from bankwallet.identity.deps import optional_auth
from bankwallet.transfers import service as transfers_service
from bankwallet.wallets import service
from bankwallet.web.templating import render

router = APIRouter(include_in_schema=False)
RECENT_ENTRIES = 5
OPEN_REQUESTS_COUNTED = 10  # beyond this the page says "10+"


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
    # Someone asking this customer for money should not wait until they think of the
    # requests page: the home page points there.
    asked = await transfers_service.list_requests(session, auth.user.id, box="incoming",
                                                  status="open",
                                                  limit=OPEN_REQUESTS_COUNTED + 1)
    open_requests = (f"{OPEN_REQUESTS_COUNTED}+" if len(asked) > OPEN_REQUESTS_COUNTED
                     else str(len(asked)) if asked else None)
    return render(request, "wallets/home.html",
                  {"balances": balances, "recent": recent.items,
                   "open_requests": open_requests}, active="wallet")
