"""Sign-up, login and sessions for API clients (bearer tokens)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from bankwallet.core.deps import DbSession, client_info
from bankwallet.identity import closure, kyc, mfa, passkeys, service
from bankwallet.identity.deps import Auth
from bankwallet.identity.schemas import (
    AccountClose,
    ChallengeRead,
    KycApplicationCreate,
    KycApplicationRead,
    KycStatusRead,
    LimitsRead,
    PasskeyAssertion,
    PasskeyCreate,
    PasskeyList,
    PasskeyRead,
    PasskeyUpdate,
    StepUpCodeRequest,
    WebauthnOptionsRead,
    LoginIn,
    MfaStatusRead,
    RecoveryCodesRead,
    SecondFactorLogin,
    SecondFactorRequiredRead,
    SecondFactorSmsRequest,
    PasswordChange,
    ResetFinish,
    ResetStart,
    SessionCreated,
    SessionList,
    SessionRead,
    SignupFinish,
    SignupStart,
    StepUpIn,
    StepUpRead,
    StepUpSmsRequest,
    TotpConfirm,
    TotpEnrolmentRead,
    UserRead,
)

router = APIRouter(prefix="/api/v1", tags=["identity"])
Info = Annotated[service.RequestInfo, Depends(client_info)]


def user_read(user) -> UserRead:
    contact = service.contact_of(user)
    return UserRead(id=user.id, email=contact["email"], phone=contact["phone"], role=user.role,
                    kyc_tier=user.kyc_tier, locale=user.locale, created_at=user.created_at)


def session_created(user, new: service.NewSession) -> SessionCreated:
    return SessionCreated(token=new.token, session_id=new.session.id,
                          expires_at=new.session.expires_at, user=user_read(user))


@router.post("/auth/signup", status_code=202)
async def signup(body: SignupStart, session: DbSession, info: Info) -> ChallengeRead:
    sent = await service.start_signup(session, login_text=body.login, password=body.password,
                                      locale=body.locale, info=info)
    return ChallengeRead(challenge_id=sent.id, channel=sent.channel,
                         expires_in_s=sent.expires_in_s)


@router.post("/auth/signup/verify", status_code=201)
async def signup_verify(body: SignupFinish, session: DbSession, info: Info) -> SessionCreated:
    user, new = await service.finish_signup(session, challenge_id=body.challenge_id,
                                            code=body.code, info=info)
    return session_created(user, new)


@router.post("/auth/login")
async def login(body: LoginIn, session: DbSession, info: Info
                ) -> SessionCreated | SecondFactorRequiredRead:
    result = await service.login(session, login_text=body.login, password=body.password,
                                 info=info)
    if isinstance(result, service.SecondFactorRequired):
        return SecondFactorRequiredRead(challenge_id=result.challenge_id,
                                        methods=list(result.methods),
                                        expires_in_s=result.expires_in_s)
    return session_created(*result)


@router.post("/auth/login/second-factor")
async def login_second_factor(body: SecondFactorLogin, session: DbSession,
                              info: Info) -> SessionCreated:
    user, new = await mfa.finish_login(session, challenge_id=body.challenge_id,
                                       method=body.method, code=body.code, info=info)
    return session_created(user, new)


@router.post("/auth/login/second-factor/sms", status_code=202)
async def login_second_factor_sms(body: SecondFactorSmsRequest, session: DbSession,
                                  info: Info) -> ChallengeRead:
    sent = await mfa.send_login_sms(session, challenge_id=body.challenge_id,
                                    locale=body.locale, info=info)
    return ChallengeRead(challenge_id=sent.id, channel=sent.channel,
                         expires_in_s=sent.expires_in_s)


@router.post("/auth/step-up")
async def step_up(body: StepUpIn, auth: Auth, session: DbSession, info: Info) -> StepUpRead:
    at = await mfa.step_up(session, auth, method=body.method, code=body.code, info=info)
    return StepUpRead(second_factor_at=at)


@router.post("/auth/step-up/sms", status_code=202)
async def step_up_sms(auth: Auth, session: DbSession,
                      body: StepUpSmsRequest | None = None) -> ChallengeRead:
    sent = await mfa.send_step_up_code(session, auth,
                                       locale=body.locale if body else auth.user.locale)
    return ChallengeRead(challenge_id=sent.id, channel=sent.channel,
                         expires_in_s=sent.expires_in_s)


@router.post("/auth/step-up/code", status_code=202)
async def step_up_code(body: StepUpCodeRequest, auth: Auth, session: DbSession) -> ChallengeRead:
    """Send a step-up code by SMS or e-mail (``channel``)."""
    sent = await mfa.send_step_up_code(session, auth, locale=body.locale, channel=body.channel)
    return ChallengeRead(challenge_id=sent.id, channel=sent.channel,
                         expires_in_s=sent.expires_in_s)


@router.post("/auth/step-up/passkey/options")
async def step_up_passkey_options(request: Request, auth: Auth,
                                  session: DbSession) -> WebauthnOptionsRead:
    ceremony = await passkeys.start_step_up(session, auth, passkeys.relying_party(request))
    return WebauthnOptionsRead(ceremony_id=ceremony.id, options=ceremony.options)


@router.post("/auth/step-up/passkey")
async def step_up_passkey(request: Request, body: PasskeyAssertion, auth: Auth,
                          session: DbSession, info: Info) -> StepUpRead:
    at = await passkeys.finish_step_up(session, auth, passkeys.relying_party(request),
                                       ceremony_id=body.ceremony_id,
                                       credential=body.credential, info=info)
    return StepUpRead(second_factor_at=at)


# -- passkeys ------------------------------------------------------------------------------


def passkey_read(passkey) -> PasskeyRead:
    return PasskeyRead(id=passkey.id, name=passkey.name, backed_up=passkey.backed_up,
                       created_at=passkey.created_at, last_used_at=passkey.last_used_at)


@router.get("/auth/passkeys")
async def passkey_list(auth: Auth, session: DbSession) -> PasskeyList:
    return PasskeyList(items=[passkey_read(p)
                              for p in await passkeys.list_passkeys(session, auth.user.id)])


@router.post("/auth/passkeys/options")
async def passkey_registration_options(request: Request, auth: Auth,
                                       session: DbSession) -> WebauthnOptionsRead:
    """Options for navigator.credentials.create(); needs a fresh second factor."""
    ceremony = await passkeys.start_registration(session, auth, passkeys.relying_party(request))
    return WebauthnOptionsRead(ceremony_id=ceremony.id, options=ceremony.options)


@router.post("/auth/passkeys", status_code=201)
async def passkey_register(request: Request, body: PasskeyCreate, auth: Auth,
                           session: DbSession, info: Info) -> PasskeyRead:
    passkey = await passkeys.finish_registration(
        session, auth, passkeys.relying_party(request), ceremony_id=body.ceremony_id,
        credential=body.credential, name=body.name, info=info)
    return passkey_read(passkey)


@router.patch("/auth/passkeys/{passkey_id}")
async def passkey_rename(passkey_id: uuid.UUID, body: PasskeyUpdate, auth: Auth,
                         session: DbSession) -> PasskeyRead:
    return passkey_read(await passkeys.rename(session, auth, passkey_id, name=body.name))


@router.delete("/auth/passkeys/{passkey_id}", status_code=204)
async def passkey_remove(passkey_id: uuid.UUID, auth: Auth, session: DbSession,
                         info: Info) -> Response:
    await passkeys.remove(session, auth, passkey_id, info=info)
    return Response(status_code=204)


@router.post("/auth/passkey/login/options")
async def passkey_login_options(request: Request, session: DbSession) -> WebauthnOptionsRead:
    """Options for navigator.credentials.get(): log in with a passkey, no password."""
    ceremony = await passkeys.start_login(session, passkeys.relying_party(request))
    return WebauthnOptionsRead(ceremony_id=ceremony.id, options=ceremony.options)


@router.post("/auth/passkey/login")
async def passkey_login(request: Request, body: PasskeyAssertion, session: DbSession,
                        info: Info) -> SessionCreated:
    user, new = await passkeys.finish_login(session, passkeys.relying_party(request),
                                            ceremony_id=body.ceremony_id,
                                            credential=body.credential, info=info)
    return session_created(user, new)


@router.get("/auth/mfa")
async def mfa_status(auth: Auth, session: DbSession) -> MfaStatusRead:
    found = await mfa.status(session, auth.user)
    return MfaStatusRead(totp_active=found.totp_active, totp_pending=found.totp_pending,
                         recovery_codes_left=found.recovery_codes_left,
                         sms_available=found.sms_available,
                         passkeys=await passkeys.count(session, auth.user.id))


@router.post("/auth/mfa/totp", status_code=201)
async def totp_start(auth: Auth, session: DbSession, response: Response) -> TotpEnrolmentRead:
    enrolment = await mfa.start_totp(session, auth)
    response.headers["Cache-Control"] = "no-store"
    return TotpEnrolmentRead(secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri,
                             qr_svg=enrolment.qr_svg)


@router.post("/auth/mfa/totp/confirm")
async def totp_confirm(body: TotpConfirm, auth: Auth, session: DbSession, info: Info,
                       response: Response) -> RecoveryCodesRead:
    codes = await mfa.confirm_totp(session, auth, code=body.code, info=info)
    response.headers["Cache-Control"] = "no-store"
    return RecoveryCodesRead(recovery_codes=codes)


@router.delete("/auth/mfa/totp", status_code=204)
async def totp_disable(auth: mfa.RecentSecondFactor, session: DbSession, info: Info) -> Response:
    await mfa.disable_totp(session, auth, info=info)
    return Response(status_code=204)


@router.post("/auth/mfa/recovery-codes")
async def recovery_codes_regenerate(auth: mfa.RecentSecondFactor, session: DbSession,
                                    info: Info, response: Response) -> RecoveryCodesRead:
    codes = await mfa.regenerate_recovery_codes(session, auth, info=info)
    response.headers["Cache-Control"] = "no-store"
    return RecoveryCodesRead(recovery_codes=codes)


@router.post("/auth/logout", status_code=204)
async def logout(auth: Auth, session: DbSession) -> Response:
    await service.logout(session, auth)
    return Response(status_code=204)


@router.post("/auth/logout-everywhere")
async def logout_everywhere(auth: Auth, session: DbSession) -> dict[str, int]:
    return {"revoked": await service.logout_everywhere(session, auth)}


@router.get("/auth/sessions")
async def sessions(auth: Auth, session: DbSession) -> SessionList:
    rows = await service.list_sessions(session, auth)
    return SessionList(items=[SessionRead(
        id=r.id, kind=r.kind, created_at=r.created_at, last_seen_at=r.last_seen_at,
        expires_at=r.expires_at, ip=r.ip, user_agent=r.user_agent,
        current=r.id == auth.session.id) for r in rows])


@router.delete("/auth/sessions/{session_id}", status_code=204)
async def revoke(session_id: uuid.UUID, auth: Auth, session: DbSession) -> Response:
    await service.revoke_session(session, auth, session_id)
    return Response(status_code=204)


@router.post("/auth/password")
async def change_password(body: PasswordChange, auth: Auth, session: DbSession) -> dict[str, int]:
    ended = await service.change_password(session, auth, current=body.current_password,
                                          new=body.new_password)
    return {"sessions_ended": ended}


@router.post("/auth/password-reset", status_code=202)
async def password_reset(body: ResetStart, session: DbSession, info: Info) -> ChallengeRead:
    sent = await service.start_password_reset(session, login_text=body.login,
                                              locale=body.locale, info=info)
    return ChallengeRead(challenge_id=sent.id, channel=sent.channel,
                         expires_in_s=sent.expires_in_s)


@router.post("/auth/password-reset/verify", status_code=204)
async def password_reset_verify(body: ResetFinish, session: DbSession, info: Info) -> Response:
    await service.finish_password_reset(session, challenge_id=body.challenge_id, code=body.code,
                                        new_password=body.new_password, info=info)
    return Response(status_code=204)


@router.get("/me")
async def me(auth: Auth) -> UserRead:
    return user_read(auth.user)


@router.post("/me/close", status_code=204)
async def close_account(request: Request, body: AccountClose, auth: Auth, session: DbSession,
                        info: Info) -> Response:
    """Close the caller's account: every balance must be zero; needs a fresh second factor."""
    await closure.close_account(session, auth, ledger=request.app.state.ledger,
                                password=body.password, info=info)
    return Response(status_code=204)


# -- KYC: the customer's tier, limits and identity verification -------------------------


def status_read(status: kyc.KycStatus) -> KycStatusRead:
    return KycStatusRead(tier=status.tier, limits=LimitsRead.of(status.limits),
                         application=KycApplicationRead.of(status.application)
                         if status.application else None)


@router.get("/kyc")
async def kyc_status(auth: Auth, session: DbSession) -> KycStatusRead:
    return status_read(await kyc.status_of(session, auth.user))


@router.post("/kyc/applications", status_code=201)
async def kyc_apply(body: KycApplicationCreate, auth: Auth, session: DbSession,
                    request: Request) -> KycApplicationRead:
    info = client_info(request)
    return KycApplicationRead.of(await kyc.submit_application(
        session, auth.user, legal_name=body.legal_name, national_id=body.national_id,
        birth_date=body.birth_date, ip=info.ip, user_agent=info.user_agent))


@router.get("/kyc/applications/{application_id}")
async def kyc_application(application_id: uuid.UUID, auth: Auth,
                          session: DbSession) -> KycApplicationRead:
    return KycApplicationRead.of(await kyc.own_application(session, auth.user, application_id))
