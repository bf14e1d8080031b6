"""Who is asking: the session behind a bearer token (API clients) or a cookie (the web
client, whose unsafe requests must also carry the CSRF token)."""

from __future__ import annotations

import hmac
import uuid
from typing import Annotated

from fastapi import Depends, Request

from bankwallet.core.deps import DbSession
from bankwallet.core.errors import Forbidden
from bankwallet.identity import service
from bankwallet.identity.errors import CsrfFailed, Unauthenticated

SESSION_COOKIE = "bw_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def request_token(request: Request) -> tuple[str | None, bool]:
    """The presented token and whether it came from the cookie."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip(), False
    return request.cookies.get(SESSION_COOKIE), True


async def current_auth(request: Request, session: DbSession) -> service.Authenticated:
    token, from_cookie = request_token(request)
    auth = await service.authenticate(session, token)
    if session.dirty and session.bind.dialect.name == "sqlite":
        # The last-seen time, at most every 30 s. SQLite has one writer: flushed later in the
        # request, the update would hold the database's write lock until the request ends,
        # and work that writes through another connection (the ledger store) would wait on
        # it. Written now, in its own short transaction; PostgreSQL's row lock stays harmless.
        await session.commit()
    if from_cookie and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER) or (await _form_csrf(request))
        if not sent or not hmac.compare_digest(sent, service.csrf_token_for(token or "")):
            raise CsrfFailed()
    request.state.csrf_token = service.csrf_token_for(token) if from_cookie and token else ""
    return auth


async def _form_csrf(request: Request) -> str | None:
    if request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get("csrf_token")
        return value if isinstance(value, str) else None
    return None


Auth = Annotated[service.Authenticated, Depends(current_auth)]


async def current_user_id(auth: Auth) -> uuid.UUID:
    return auth.user.id


def require_role(*roles: str):
    """A dependency: the caller's role must be one of ``roles`` (staff pages and APIs)."""

    async def check(auth: Auth) -> service.Authenticated:
        if auth.user.role not in roles:
            raise Forbidden("Your role does not allow this.")
        return auth

    return check


async def optional_auth(request: Request, session: DbSession) -> service.Authenticated | None:
    try:
        return await current_auth(request, session)
    except (Unauthenticated, CsrfFailed):
        return None
