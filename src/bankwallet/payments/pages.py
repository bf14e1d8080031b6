"""What the merchant pages (``web``, ``pos``) share: the way to the login page, and the
signed-in member acting for a merchant."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.core.errors import BankwalletError
from bankwallet.identity.deps import optional_auth
from bankwallet.identity.service import Authenticated
from bankwallet.payments import service
from bankwallet.web.csrf import safe_next
from bankwallet.web.templating import render


def login_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/login?{urlencode({'next': safe_next(next_path)})}",
                            status_code=303)


async def merchant_member(request: Request, session: AsyncSession, merchant_id: uuid.UUID, *,
                          write: bool = False, auth: Authenticated | None = None
                          ) -> tuple[Authenticated, service.Actor] | Response:
    """The signed-in member acting for the merchant, or the response to send instead: the
    login page (pages), 404 (not a member). POST handlers pass ``auth`` from ``Auth``,
    which also checks the form's CSRF token."""
    auth = auth or await optional_auth(request, session)
    if auth is None:
        return login_redirect(request.url.path)
    try:
        merchant = await service.merchant_for_user(session, auth.user.id, merchant_id,
                                                   write=write)
    except BankwalletError:
        return render(request, "payments/merchant_missing.html", {}, status_code=404)
    return auth, service.Actor(merchant=merchant, auth=auth)
