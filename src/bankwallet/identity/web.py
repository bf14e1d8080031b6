"""Sign-up, login, logout and the security page of the web client (cookie sessions)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from bankwallet.core.deps import DbSession, client_info
from bankwallet.core.errors import BankwalletError, InvalidInput
from bankwallet.identity import closure, kyc, mfa, passkeys, service
from bankwallet.identity.errors import StepUpRequired
from bankwallet.identity.schemas import WebauthnCredential
from bankwallet.identity.deps import SESSION_COOKIE, Auth, optional_auth
from bankwallet.web.csrf import cookies_secure, require_same_origin, safe_next
from bankwallet.web.templating import render

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form(max_length=256)]


def _set_session_cookie(request: Request, response: Response, new: service.NewSession) -> None:
    response.set_cookie(SESSION_COOKIE, new.token, httponly=True, samesite="lax", path="/",
                        secure=cookies_secure(request),
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
    response = RedirectResponse("/wallet", status_code=303)
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
        result = await service.login(session, login_text=login, password=password,
                                     info=client_info(request), kind="web")
    except BankwalletError as exc:
        headers = exc.headers() or {}
        response = _form_error(request, "identity/login.html", exc,
                               {"login": login, "next": safe_next(next_path)})
        response.headers.update(headers)
        return response
    if isinstance(result, service.SecondFactorRequired):
        query = urlencode({"c": str(result.challenge_id), "next": safe_next(next_path),
                           "sms": "1" if "sms" in result.methods else "0"})
        return RedirectResponse(f"/login/second-factor?{query}", status_code=303)
    _, new = result
    response = RedirectResponse(safe_next(next_path), status_code=303)
    _set_session_cookie(request, response, new)
    return response


@router.post("/logout")
async def logout(auth: Auth, session: DbSession) -> Response:
    await service.logout(session, auth)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me", response_class=HTMLResponse)
async def me_page(request: Request, session: DbSession) -> Response:
    """Everything about the customer in one list: security, money sources, preferences."""
    auth = await optional_auth(request, session)
    if auth is None:
        return RedirectResponse("/login?next=/me", status_code=303)
    return render(request, "identity/me.html",
                  {"contact": service.contact_of(auth.user), "tier": auth.user.kyc_tier},
                  active="me")


@router.get("/me/security", response_class=HTMLResponse)
async def security_page(request: Request, session: DbSession,
                        error: str | None = None) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return RedirectResponse("/login?next=/me/security", status_code=303)
    return await _security_page(request, session, auth, error=error)


async def _security_page(request: Request, session: DbSession, auth: service.Authenticated, *,
                         error: str | None = None, status_code: int = 200) -> HTMLResponse:
    return render(request, "identity/security.html",
                  {"sessions": await service.list_sessions(session, auth),
                   "passkeys": await passkeys.list_passkeys(session, auth.user.id),
                   "current_id": auth.session.id, "device": device_name,
                   "contact": service.contact_of(auth.user), "error": error}, active="me",
                  status_code=status_code)


def _step_up_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/me/step-up?{urlencode({'next': safe_next(next_path)})}",
                            status_code=303)


# -- passkeys: log in with one, remove one (adding goes through the JSON API from the page) --


class PasskeyLoginForm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ceremony_id: uuid.UUID
    credential: WebauthnCredential
    next: str = Field(default="/", max_length=2048)


@router.post("/login/passkey")
async def passkey_login(request: Request, body: PasskeyLoginForm, session: DbSession) -> Response:
    """Finish a passkey login from the login page's script: sets the session cookie."""
    require_same_origin(request)
    _, new = await passkeys.finish_login(session, passkeys.relying_party(request),
                                         ceremony_id=body.ceremony_id,
                                         credential=body.credential,
                                         info=client_info(request), kind="web")
    response = JSONResponse({"redirect": safe_next(body.next)})
    _set_session_cookie(request, response, new)
    return response


@router.post("/me/security/passkeys/{passkey_id}/remove")
async def passkey_remove(request: Request, passkey_id: uuid.UUID, auth: Auth,
                         session: DbSession) -> Response:
    try:
        await passkeys.remove(session, auth, passkey_id, info=client_info(request))
    except StepUpRequired:
        return _step_up_redirect("/me/security")
    except BankwalletError as exc:
        return await _security_page(request, session, auth, error=exc.code,
                                    status_code=exc.status)
    return RedirectResponse("/me/security", status_code=303)


@router.post("/me/close")
async def close_account(request: Request, auth: Auth, session: DbSession,
                        password: Text) -> Response:
    try:
        await closure.close_account(session, auth, ledger=request.app.state.ledger,
                                    password=password, info=client_info(request))
    except StepUpRequired:
        return _step_up_redirect("/me/security")
    except BankwalletError as exc:
        return await _security_page(request, session, auth, error=exc.code,
                                    status_code=exc.status)
    response = RedirectResponse("/?closed=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- step-up: prove a second factor again before a sensitive action --------------------------

StepUpMethod = Annotated[Literal["totp", "recovery_code", "sms", "email"], Form()]


async def _step_up_page(request: Request, session: DbSession, auth: service.Authenticated, *,
                        next_path: str, error: str | None = None, sent: str | None = None,
                        status_code: int = 200) -> HTMLResponse:
    return render(request, "identity/step_up.html",
                  {"methods": await mfa.available_methods(session, auth.user),
                   "next": safe_next(next_path), "error": error, "sent": sent}, active="me",
                  status_code=status_code, headers=NO_STORE)


@router.get("/me/step-up", response_class=HTMLResponse)
async def step_up_page(request: Request, session: DbSession, next: str = "/me/security"
                       ) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return RedirectResponse(f"/login?{urlencode({'next': safe_next(next)})}",
                                status_code=303)
    return await _step_up_page(request, session, auth, next_path=next)


@router.post("/me/step-up")
async def step_up(request: Request, auth: Auth, session: DbSession, method: StepUpMethod,
                  code: FactorCode,
                  next_path: Annotated[str, Form(alias="next", max_length=2048)] = "/me/security"
                  ) -> Response:
    try:
        await mfa.step_up(session, auth, method=method, code=code, info=client_info(request))
    except BankwalletError as exc:
        return await _step_up_page(request, session, auth, next_path=next_path,
                                   error=exc.code, status_code=exc.status)
    return RedirectResponse(safe_next(next_path), status_code=303)


@router.post("/me/step-up/send")
async def step_up_send(request: Request, auth: Auth, session: DbSession,
                       channel: Annotated[Literal["sms", "email"], Form()],
                       next_path: Annotated[str, Form(alias="next", max_length=2048)] = "/me/security"
                       ) -> Response:
    from bankwallet.core.i18n import request_locale

    try:
        await mfa.send_step_up_code(session, auth, locale=request_locale(request),
                                    channel=channel)
    except BankwalletError as exc:
        return await _step_up_page(request, session, auth, next_path=next_path,
                                   error=exc.code, status_code=exc.status)
    return await _step_up_page(request, session, auth, next_path=next_path, sent=channel)


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


# -- second factor at login, and the authenticator page ---------------------------------------

SecondFactorMethod = Annotated[Literal["totp", "recovery_code", "sms"], Form()]
FactorCode = Annotated[str, Form(max_length=32)]
NO_STORE = {"Cache-Control": "no-store"}


def _second_factor_page(request: Request, *, challenge_id: uuid.UUID, next_path: str,
                        sms: bool, method: str = "totp", error: str | None = None,
                        sent: bool = False, status_code: int = 200,
                        headers: dict[str, str] | None = None) -> HTMLResponse:
    return render(request, "identity/mfa_second_factor.html",
                  {"challenge_id": challenge_id, "next": safe_next(next_path), "sms": sms,
                   "method": method, "error": error, "sent": sent},
                  status_code=status_code, headers=headers)


@router.get("/login/second-factor", response_class=HTMLResponse)
async def second_factor_page(request: Request, c: uuid.UUID, next: str = "/",
                             sms: str = "1") -> HTMLResponse:
    return _second_factor_page(request, challenge_id=c, next_path=next, sms=sms == "1")


@router.post("/login/second-factor")
async def second_factor(request: Request, session: DbSession,
                        challenge_id: Annotated[uuid.UUID, Form()], method: SecondFactorMethod,
                        code: FactorCode,
                        next_path: Annotated[str, Form(alias="next", max_length=2048)] = "/",
                        sms: Annotated[str, Form(max_length=1)] = "1") -> Response:
    require_same_origin(request)
    try:
        _, new = await mfa.finish_login(session, challenge_id=challenge_id, method=method,
                                        code=code, info=client_info(request), kind="web")
    except BankwalletError as exc:
        return _second_factor_page(request, challenge_id=challenge_id, next_path=next_path,
                                   sms=sms == "1", method=method, error=exc.code,
                                   status_code=exc.status, headers=exc.headers())
    response = RedirectResponse(safe_next(next_path), status_code=303)
    _set_session_cookie(request, response, new)
    return response


@router.post("/login/second-factor/sms")
async def second_factor_sms(request: Request, session: DbSession,
                            challenge_id: Annotated[uuid.UUID, Form()],
                            next_path: Annotated[str, Form(alias="next", max_length=2048)] = "/"
                            ) -> Response:
    require_same_origin(request)
    from bankwallet.core.i18n import request_locale

    try:
        await mfa.send_login_sms(session, challenge_id=challenge_id,
                                 locale=request_locale(request), info=client_info(request))
    except BankwalletError as exc:
        return _second_factor_page(request, challenge_id=challenge_id, next_path=next_path,
                                   sms=True, method="sms", error=exc.code,
                                   status_code=exc.status, headers=exc.headers())
    return _second_factor_page(request, challenge_id=challenge_id, next_path=next_path,
                               sms=True, method="sms", sent=True)


async def _totp_page(request: Request, session: DbSession, auth: service.Authenticated, *,
                     recovery_codes: list[str] | None = None, error: str | None = None,
                     status_code: int = 200, sms_sent: bool = False) -> HTMLResponse:
    found = await mfa.status(session, auth.user)
    enrolment = await mfa.pending_totp(session, auth.user) if found.totp_pending else None
    return render(request, "identity/mfa_totp.html",
                  {"status": found, "enrolment": enrolment, "recovery_codes": recovery_codes,
                   "error": error, "sms_sent": sms_sent}, active="me",
                  status_code=status_code, headers=NO_STORE)


@router.get("/me/security/totp", response_class=HTMLResponse)
async def totp_page(request: Request, session: DbSession) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return RedirectResponse("/login?next=/me/security/totp", status_code=303)
    return await _totp_page(request, session, auth)


@router.post("/me/security/totp/start")
async def totp_start(request: Request, auth: Auth, session: DbSession) -> Response:
    try:
        await mfa.start_totp(session, auth)
    except StepUpRequired:
        return _step_up_redirect("/me/security/totp")
    except BankwalletError as exc:
        return await _totp_page(request, session, auth, error=exc.code, status_code=exc.status)
    return RedirectResponse("/me/security/totp", status_code=303)


@router.post("/me/security/totp/confirm")
async def totp_confirm(request: Request, auth: Auth, session: DbSession,
                       code: FactorCode) -> Response:
    try:
        codes = await mfa.confirm_totp(session, auth, code=code, info=client_info(request))
    except BankwalletError as exc:
        return await _totp_page(request, session, auth, error=exc.code, status_code=exc.status)
    return await _totp_page(request, session, auth, recovery_codes=codes)


@router.post("/me/security/totp/disable")
async def totp_disable(request: Request, auth: Auth, session: DbSession,
                       method: SecondFactorMethod, code: FactorCode) -> Response:
    info = client_info(request)
    try:
        await mfa.step_up(session, auth, method=method, code=code, info=info)
        await mfa.disable_totp(session, auth, info=info)
    except BankwalletError as exc:
        return await _totp_page(request, session, auth, error=exc.code, status_code=exc.status)
    return RedirectResponse("/me/security/totp", status_code=303)


@router.post("/me/security/totp/recovery-codes")
async def totp_recovery_codes(request: Request, auth: Auth, session: DbSession,
                              method: SecondFactorMethod, code: FactorCode) -> Response:
    info = client_info(request)
    try:
        await mfa.step_up(session, auth, method=method, code=code, info=info)
        codes = await mfa.regenerate_recovery_codes(session, auth, info=info)
    except BankwalletError as exc:
        return await _totp_page(request, session, auth, error=exc.code, status_code=exc.status)
    return await _totp_page(request, session, auth, recovery_codes=codes)


@router.post("/me/security/totp/sms")
async def totp_step_up_sms(request: Request, auth: Auth, session: DbSession) -> Response:
    from bankwallet.core.i18n import request_locale

    try:
        await mfa.send_step_up_code(session, auth, locale=request_locale(request))
    except BankwalletError as exc:
        return await _totp_page(request, session, auth, error=exc.code, status_code=exc.status)
    return await _totp_page(request, session, auth, error=None, sms_sent=True)


# -- the customer's verification page ------------------------------------------------------


@router.get("/me/kyc", response_class=HTMLResponse)
async def kyc_page(request: Request, session: DbSession, error: str | None = None,
                   reason: str | None = None) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return RedirectResponse("/login?next=/me/kyc", status_code=303)
    status = await kyc.status_of(session, auth.user)
    return render(request, "identity/kyc.html",
                  {"status": status, "error": error, "reason": reason,
                   "form": {"legal_name": "", "national_id": "", "birth_date": ""}},
                  active="me")


@router.post("/me/kyc")
async def kyc_apply(request: Request, auth: Auth, session: DbSession,
                    legal_name: Annotated[str, Form(max_length=128)],
                    national_id: Annotated[str, Form(max_length=32)],
                    birth_date: Annotated[str, Form(max_length=16)]) -> Response:
    try:
        try:
            born = dt.date.fromisoformat(birth_date.strip())
        except ValueError:
            raise InvalidInput("Enter the birth date as YYYY-MM-DD.") from None
        await kyc.submit_application(session, auth.user, legal_name=legal_name,
                                     national_id=national_id, birth_date=born,
                                     ip=request.client.host if request.client else None,
                                     user_agent=request.headers.get("user-agent"))
    except BankwalletError as exc:
        status = await kyc.status_of(session, auth.user)
        return render(request, "identity/kyc.html",
                      {"status": status, "error": exc.code,
                       "reason": exc.extra.get("reason"),
                       "form": {"legal_name": legal_name, "national_id": national_id,
                                "birth_date": birth_date}},
                      active="me", status_code=exc.status)
    return RedirectResponse("/me/kyc", status_code=303)
