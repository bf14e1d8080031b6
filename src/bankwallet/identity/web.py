"""Sign-up, login, logout and the security page of the web client (cookie sessions)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bankwallet.core.deps import DbSession, client_info
from bankwallet.core.errors import BankwalletError
from bankwallet.identity import service
from bankwallet.identity.deps import SESSION_COOKIE, Auth, optional_auth
from bankwallet.settings import get_settings
from bankwallet.web.csrf import require_same_origin, safe_next
from bankwallet.web.templating import render

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form(max_length=256)]


def _set_session_cookie(request: Request, response: Response, new: service.NewSession) -> None:
    response.set_cookie(SESSION_COOKIE, new.token, httponly=True, samesite="lax", path="/",
                        secure=request.url.scheme == "https" or get_settings().env == "prod",
                        max_age=int((new.session.expires_at - new.session.created_at)
                                    .total_seconds()))


def _form_error(request: Request, template: str, exc: BankwalletError,
                context: dict) -> HTMLResponse:
    return render(request, template, {**context, "error": exc.code}, status_code=exc.status)


@router.get("/signup", response_class=HTMLResponse)
async def signup_page(request: Request) -> HTMLResponse:
    return render(request, "identity/signup.html", {"login": "", "error": None})


@router.post("/signup")
async def signup(request: Request, session: DbSession, login: Text, password: Text) -> Response:
    require_same_origin(request)
    from bankwallet.core.i18n import request_locale

    try:
        sent = await service.start_signup(session, login_text=login, password=password,
                                          locale=request_locale(request),
                                          info=client_info(request))
    except BankwalletError as exc:
        return _form_error(request, "identity/signup.html", exc, {"login": login})
    return RedirectResponse(f"/signup/verify?c={sent.id}&via={sent.channel}", status_code=303)


@router.get("/signup/verify", response_class=HTMLResponse)
async def signup_verify_page(request: Request, c: uuid.UUID, via: str = "sms") -> HTMLResponse:
    return render(request, "identity/verify.html",
                  {"challenge_id": c, "via": "email" if via == "email" else "sms", "error": None})


@router.post("/signup/verify")
async def signup_verify(request: Request, session: DbSession,
                        challenge_id: Annotated[uuid.UUID, Form()], code: Text,
                        via: Annotated[str, Form(max_length=8)] = "sms") -> Response:
    require_same_origin(request)
    try:
        _, new = await service.finish_signup(session, challenge_id=challenge_id, code=code,
                                             info=client_info(request), kind="web")
    except BankwalletError as exc:
        return _form_error(request, "identity/verify.html", exc,
                           {"challenge_id": challenge_id, "via": via})
    response = RedirectResponse("/", status_code=303)
    _set_session_cookie(request, response, new)
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "identity/login.html",
                  {"login": "", "next": safe_next(next), "error": None})


@router.post("/login")
async def login(request: Request, session: DbSession, login: Text, password: Text,
                next_path: Annotated[str, Form(alias="next", max_length=2048)] = "/") -> Response:
    require_same_origin(request)
    try:
        _, new = await service.login(session, login_text=login, password=password,
                                     info=client_info(request), kind="web")
    except BankwalletError as exc:
        headers = exc.headers() or {}
        response = _form_error(request, "identity/login.html", exc,
                               {"login": login, "next": safe_next(next_path)})
        response.headers.update(headers)
        return response
    response = RedirectResponse(safe_next(next_path), status_code=303)
    _set_session_cookie(request, response, new)
    return response


@router.post("/logout")
async def logout(auth: Auth, session: DbSession) -> Response:
    await service.logout(session, auth)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me/security", response_class=HTMLResponse)
async def security_page(request: Request, session: DbSession) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return RedirectResponse("/login?next=/me/security", status_code=303)
    sessions = await service.list_sessions(session, auth)
    return render(request, "identity/security.html",
                  {"sessions": sessions, "current_id": auth.session.id, "device": device_name,
                   "contact": service.contact_of(auth.user)}, active="me")


_BROWSERS = (("Edg/", "Edge"), ("Firefox/", "Firefox"), ("MicroMessenger", "WeChat"),
             ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS = (("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"),
            ("Windows", "Windows"), ("Mac OS X", "macOS"), ("Linux", "Linux"))


def device_name(user_agent: str | None) -> str | None:
    """"Chrome on Android" from a User-Agent header: enough to recognise one's own devices."""
    if not user_agent:
        return None
    browser = next((name for token, name in _BROWSERS if token in user_agent), None)
    system = next((name for token, name in _SYSTEMS if token in user_agent), None)
    if browser and system:
        return f"{browser} · {system}"
    return browser or system or user_agent[:40]


@router.post("/me/security/sessions/{session_id}/revoke")
async def revoke_session(session_id: uuid.UUID, auth: Auth, session: DbSession) -> Response:
    await service.revoke_session(session, auth, session_id)
    return RedirectResponse("/me/security", status_code=303)
