"""Sign-up, login and sessions for API clients (bearer tokens)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from bankwallet.core.deps import DbSession, client_info
from bankwallet.identity import service
from bankwallet.identity.deps import Auth
from bankwallet.identity.schemas import (
    ChallengeRead,
    LoginIn,
    PasswordChange,
    ResetFinish,
    ResetStart,
    SessionCreated,
    SessionList,
    SessionRead,
    SignupFinish,
    SignupStart,
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
async def login(body: LoginIn, session: DbSession, info: Info) -> SessionCreated:
    user, new = await service.login(session, login_text=body.login, password=body.password,
                                    info=info)
    return session_created(user, new)


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
