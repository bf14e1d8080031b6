"""Passkeys (WebAuthn, via the ``webauthn`` library): register, log in without a password,
prove a fresh second factor (step-up), list, rename and remove.

Every ceremony starts with a random challenge stored in ``identity_webauthn_ceremony`` and
bound to its purpose (and, for registration and step-up, to the user and session); finishing
uses it up with a conditional write, so an answer is accepted once. A passkey with user
verification is possession plus fingerprint/face/PIN: logging in with one counts as a fresh
second factor.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import webauthn
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from bankwallet.core import audit
from bankwallet.core.db import utcnow
from bankwallet.core.ids import uuid7
from bankwallet.identity import mfa, service
from bankwallet.identity.errors import (
    AccountLocked,
    InvalidLogin,
    PasskeyNotFound,
    PasskeyRejected,
    PasskeysNotConfigured,
)
from bankwallet.identity.models import Passkey, User, WebauthnCeremony
from bankwallet.settings import get_settings

CEREMONY_TTL_S = 300
CHALLENGE_BYTES = 32
MAX_PASSKEYS_PER_USER = 20
MAX_NAME_CHARS = 64
Purpose = Literal["register", "login", "step_up"]


@dataclass(frozen=True, slots=True)
class RelyingParty:
    id: str
    origins: tuple[str, ...]
    name: str


@dataclass(frozen=True, slots=True)
class Ceremony:
    id: uuid.UUID
    options: dict[str, Any]  # PublicKeyCredential{Creation,Request}Options as JSON


def relying_party(request: Request) -> RelyingParty:
    """The site passkeys are bound to: from settings, or in dev/test from the request."""
    settings = get_settings()
    if settings.webauthn_rp_id:
        origins = tuple(settings.webauthn_origins) or (f"https://{settings.webauthn_rp_id}",)
        return RelyingParty(settings.webauthn_rp_id, origins, settings.webauthn_rp_name)
    if settings.env == "prod":
        raise PasskeysNotConfigured()
    host = request.headers.get("host", "")
    hostname = urlsplit(f"//{host}").hostname or ""
    return RelyingParty(hostname, (f"{request.url.scheme}://{host}",), settings.webauthn_rp_name)


def _options_json(options: Any) -> dict[str, Any]:
    return json.loads(webauthn.options_to_json(options))


async def _new_ceremony(session: AsyncSession, *, purpose: Purpose, challenge: bytes,
                        user_id: uuid.UUID | None, session_id: uuid.UUID | None) -> uuid.UUID:
    now = utcnow()
    ceremony = WebauthnCeremony(id=uuid7(), purpose=purpose, challenge=challenge,
                                user_id=user_id, session_id=session_id, created_at=now,
                                expires_at=now + dt.timedelta(seconds=CEREMONY_TTL_S),
                                consumed_at=None)
    session.add(ceremony)
    await session.flush()
    return ceremony.id


async def _load_ceremony(session: AsyncSession, ceremony_id: uuid.UUID, *, purpose: Purpose,
                         user_id: uuid.UUID | None = None,
                         session_id: uuid.UUID | None = None) -> WebauthnCeremony:
    """A live ceremony (read only: nothing is written before the answer is checked, so a
    failure can be counted in a transaction of its own); PasskeyRejected if it is unknown,
    expired, used, or belongs to someone else."""
    with session.no_autoflush:
        ceremony = await session.get(WebauthnCeremony, ceremony_id)
    if (ceremony is None or ceremony.purpose != purpose or ceremony.consumed_at is not None
            or ceremony.expires_at <= utcnow()
            or (user_id is not None and ceremony.user_id != user_id)
            or (session_id is not None and ceremony.session_id != session_id)):
        raise PasskeyRejected("This passkey request has expired or was used; start again.")
    return ceremony


async def _use_ceremony(session: AsyncSession, ceremony_id: uuid.UUID) -> None:
    """Use it up; of two concurrent answers to one ceremony, one wins."""
    used = await session.execute(
        update(WebauthnCeremony).where(WebauthnCeremony.id == ceremony_id,
                                       WebauthnCeremony.consumed_at.is_(None))
        .values(consumed_at=utcnow()).execution_options(synchronize_session=False))
    if used.rowcount != 1:
        raise PasskeyRejected("This passkey request has expired or was used; start again.")


def _descriptors(passkeys: list[Passkey]) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(id=p.credential_id) for p in passkeys]


async def list_passkeys(session: AsyncSession, user_id: uuid.UUID) -> list[Passkey]:
    rows = await session.execute(select(Passkey).where(Passkey.user_id == user_id)
                                 .order_by(Passkey.created_at, Passkey.id)
                                 .limit(MAX_PASSKEYS_PER_USER))
    return list(rows.scalars())


# -- registration ------------------------------------------------------------------------


async def start_registration(session: AsyncSession, auth: service.Authenticated,
                             rp: RelyingParty) -> Ceremony:
    """Options for ``navigator.credentials.create``. Adding a passkey changes how one logs in,
    so it needs a fresh second factor (a new account's sign-up code counts)."""
    await mfa.ensure_recent_second_factor(session, auth)
    existing = await list_passkeys(session, auth.user.id)
    if len(existing) >= MAX_PASSKEYS_PER_USER:
        raise InvalidLogin(f"At most {MAX_PASSKEYS_PER_USER} passkeys; remove one first.")
    login = mfa.masked_login(auth.user)
    options = webauthn.generate_registration_options(
        rp_id=rp.id, rp_name=rp.name, user_id=auth.user.id.bytes, user_name=login,
        user_display_name=login, challenge=secrets.token_bytes(CHALLENGE_BYTES),
        timeout=CEREMONY_TTL_S * 1000, exclude_credentials=_descriptors(existing),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED))
    ceremony_id = await _new_ceremony(session, purpose="register", challenge=options.challenge,
                                      user_id=auth.user.id, session_id=auth.session.id)
    return Ceremony(ceremony_id, _options_json(options))


async def finish_registration(session: AsyncSession, auth: service.Authenticated,
                              rp: RelyingParty, *, ceremony_id: uuid.UUID,
                              credential: dict[str, Any], name: str,
                              info: service.RequestInfo) -> Passkey:
    await mfa.ensure_recent_second_factor(session, auth)
    ceremony = await _load_ceremony(session, ceremony_id, purpose="register",
                                    user_id=auth.user.id, session_id=auth.session.id)
    try:
        verified = webauthn.verify_registration_response(
            credential=credential, expected_challenge=ceremony.challenge, expected_rp_id=rp.id,
            expected_origin=list(rp.origins), require_user_verification=True)
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise PasskeyRejected(f"The passkey could not be registered: {exc}") from None
    await _use_ceremony(session, ceremony_id)
    taken = await session.execute(select(Passkey.id).where(
        Passkey.credential_id == verified.credential_id))
    if taken.first() is not None:
        raise PasskeyRejected("This passkey is registered already.")
    transports = credential.get("response", {}).get("transports")
    passkey = Passkey(
        id=uuid7(), user_id=auth.user.id, credential_id=verified.credential_id,
        public_key=verified.credential_public_key, sign_count=verified.sign_count,
        name=(name.strip() or "Passkey")[:MAX_NAME_CHARS],
        transports=[str(t)[:32] for t in transports][:8] if isinstance(transports, list) else None,
        backed_up=bool(verified.credential_backed_up), created_at=utcnow(), last_used_at=None)
    session.add(passkey)
    await session.flush()
    await audit.record(session, action="identity.passkey.registered", actor_type="user",
                       actor_id=str(auth.user.id), subject_type="passkey",
                       subject_id=str(passkey.id), ip=info.ip, user_agent=info.user_agent)
    return passkey


# -- authentication: login without a password, and step-up --------------------------------


async def start_login(session: AsyncSession, rp: RelyingParty) -> Ceremony:
    """Options for ``navigator.credentials.get`` with no user named: the device offers its
    passkeys for this site (discoverable credentials), so nobody learns who has an account."""
    options = webauthn.generate_authentication_options(
        rp_id=rp.id, challenge=secrets.token_bytes(CHALLENGE_BYTES),
        timeout=CEREMONY_TTL_S * 1000, user_verification=UserVerificationRequirement.REQUIRED)
    ceremony_id = await _new_ceremony(session, purpose="login", challenge=options.challenge,
                                      user_id=None, session_id=None)
    return Ceremony(ceremony_id, _options_json(options))


async def finish_login(session: AsyncSession, rp: RelyingParty, *, ceremony_id: uuid.UUID,
                       credential: dict[str, Any], info: service.RequestInfo,
                       kind: Literal["web", "api"] = "api") -> tuple[User, service.NewSession]:
    await service._throttle_check(session, f"login:ip:{info.ip}",
                                  limit=get_settings().ip_max_failures)
    ceremony = await _load_ceremony(session, ceremony_id, purpose="login")
    passkey = await _verify_assertion(session, rp, credential=credential, ceremony=ceremony,
                                      user_id=None, info=info)
    user = await session.get(User, passkey.user_id)
    assert user is not None, "a passkey without its user"
    if user.status != "active":
        raise AccountLocked()
    await audit.record(session, action="identity.login.succeeded", actor_type="user",
                       actor_id=str(user.id), subject_type="user", subject_id=str(user.id),
                       ip=info.ip, user_agent=info.user_agent, data={"method": "passkey"})
    return user, await service._open_session(session, user, kind=kind, info=info,
                                             second_factor=True)


async def start_step_up(session: AsyncSession, auth: service.Authenticated,
                        rp: RelyingParty) -> Ceremony:
    passkeys = await list_passkeys(session, auth.user.id)
    if not passkeys:
        raise PasskeyNotFound("You have no passkey yet.")
    options = webauthn.generate_authentication_options(
        rp_id=rp.id, challenge=secrets.token_bytes(CHALLENGE_BYTES),
        timeout=CEREMONY_TTL_S * 1000, allow_credentials=_descriptors(passkeys),
        user_verification=UserVerificationRequirement.REQUIRED)
    ceremony_id = await _new_ceremony(session, purpose="step_up", challenge=options.challenge,
                                      user_id=auth.user.id, session_id=auth.session.id)
    return Ceremony(ceremony_id, _options_json(options))


async def finish_step_up(session: AsyncSession, auth: service.Authenticated, rp: RelyingParty,
                         *, ceremony_id: uuid.UUID, credential: dict[str, Any],
                         info: service.RequestInfo) -> dt.datetime:
    ceremony = await _load_ceremony(session, ceremony_id, purpose="step_up",
                                    user_id=auth.user.id, session_id=auth.session.id)
    await _verify_assertion(session, rp, credential=credential, ceremony=ceremony,
                            user_id=auth.user.id, info=info)
    now = utcnow()
    auth.session.second_factor_at = now
    await audit.record(session, action="identity.step_up.succeeded", actor_type="user",
                       actor_id=str(auth.user.id), subject_type="session",
                       subject_id=str(auth.session.id), ip=info.ip, data={"method": "passkey"})
    return now


async def _verify_assertion(session: AsyncSession, rp: RelyingParty, *,
                            credential: dict[str, Any], ceremony: WebauthnCeremony,
                            user_id: uuid.UUID | None, info: service.RequestInfo) -> Passkey:
    """The passkey that signed the ceremony's challenge; the ceremony is used up and the
    passkey's counter moves forward. A failure burns the ceremony and counts against the
    address like a wrong password, in a transaction of its own."""
    passkey = await _passkey_of(session, credential)
    try:
        if passkey is None or (user_id is not None and passkey.user_id != user_id):
            raise PasskeyRejected("This passkey is not registered here.")
        verified = webauthn.verify_authentication_response(
            credential=credential, expected_challenge=ceremony.challenge, expected_rp_id=rp.id,
            expected_origin=list(rp.origins), credential_public_key=passkey.public_key,
            credential_current_sign_count=passkey.sign_count, require_user_verification=True)
    except (WebAuthnException, ValueError, KeyError, TypeError, PasskeyRejected) as exc:
        await _count_failure(session, passkey, ceremony_id=ceremony.id, info=info)
        raise PasskeyRejected(str(exc) if isinstance(exc, PasskeyRejected)
                              else f"The passkey could not be verified: {exc}") from None
    await _use_ceremony(session, ceremony.id)
    # Conditional on the counter we read: a clone racing the real device loses.
    moved = await session.execute(
        update(Passkey).where(Passkey.id == passkey.id, Passkey.sign_count == passkey.sign_count)
        .values(sign_count=verified.new_sign_count, last_used_at=utcnow(),
                backed_up=bool(verified.credential_backed_up))
        .execution_options(synchronize_session=False))
    if moved.rowcount != 1:
        raise PasskeyRejected("This passkey answer was used already.")
    return passkey


async def _passkey_of(session: AsyncSession, credential: dict[str, Any]) -> Passkey | None:
    raw_id = credential.get("rawId") or credential.get("id")
    if not isinstance(raw_id, str) or len(raw_id) > 1400:
        return None
    try:
        credential_id = webauthn.base64url_to_bytes(raw_id)
    except (ValueError, TypeError):
        return None
    with session.no_autoflush:
        found = await session.execute(select(Passkey).where(
            Passkey.credential_id == credential_id))
    return found.scalar_one_or_none()


async def _count_failure(session: AsyncSession, passkey: Passkey | None, *,
                         ceremony_id: uuid.UUID, info: service.RequestInfo) -> None:
    free = get_settings().ip_max_failures
    subject = str(passkey.user_id) if passkey else None

    async def count(own: AsyncSession) -> None:
        await own.execute(update(WebauthnCeremony).where(WebauthnCeremony.id == ceremony_id)
                          .values(consumed_at=utcnow()))
        await service._throttle_fail(own, f"login:ip:{info.ip}", free=free)
        await audit.record(own, action="identity.passkey.failed", ip=info.ip,
                           user_agent=info.user_agent,
                           subject_type="user" if subject else None, subject_id=subject)

    await service._in_own_transaction(session, count)


# -- managing ----------------------------------------------------------------------------


async def rename(session: AsyncSession, auth: service.Authenticated, passkey_id: uuid.UUID,
                 *, name: str) -> Passkey:
    passkey = await _own(session, auth, passkey_id)
    passkey.name = (name.strip() or passkey.name)[:MAX_NAME_CHARS]
    await session.flush()
    return passkey


async def remove(session: AsyncSession, auth: service.Authenticated, passkey_id: uuid.UUID,
                 *, info: service.RequestInfo) -> None:
    await mfa.ensure_recent_second_factor(session, auth)
    passkey = await _own(session, auth, passkey_id)
    await session.delete(passkey)
    await session.flush()
    await audit.record(session, action="identity.passkey.removed", actor_type="user",
                       actor_id=str(auth.user.id), subject_type="passkey",
                       subject_id=str(passkey_id), ip=info.ip, user_agent=info.user_agent)


async def _own(session: AsyncSession, auth: service.Authenticated,
               passkey_id: uuid.UUID) -> Passkey:
    passkey = await session.get(Passkey, passkey_id)
    if passkey is None or passkey.user_id != auth.user.id:  # another's is "not found" too
        raise PasskeyNotFound()
    return passkey


async def count(session: AsyncSession, user_id: uuid.UUID) -> int:
    return (await session.execute(select(func.count()).select_from(Passkey)
                                  .where(Passkey.user_id == user_id))).scalar_one()
