"""Second factors: TOTP authenticator apps, one-time recovery codes, SMS codes, and step-up.

A TOTP code is accepted once: ``identity_totp.last_step`` holds the newest time-step used and
only a later step passes (±1 step of clock drift). Recovery codes are stored as HMACs only.
Wrong codes are counted per user in a transaction of their own, like wrong passwords, so the
checks below run before the request's session writes anything (``no_autoflush``).
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import Annotated, Literal

import pyotp
import segno
from fastapi import Depends
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.core import audit, outbox
from bankwallet.core.crypto import get_keyring, register_encrypted_column
from bankwallet.core.db import utcnow
from bankwallet.core.deps import DbSession
from bankwallet.core.ids import uuid7
from bankwallet.identity import service
from bankwallet.identity.deps import Auth
from bankwallet.identity.errors import (
    AccountLocked,
    InvalidCode,
    SecondFactorUnavailable,
    StepUpRequired,
    TotpAlreadyActive,
    TotpNotEnrolled,
)
from bankwallet.identity.models import Challenge, Passkey, RecoveryCode, Totp, User
from bankwallet.settings import get_settings

TOTP_ISSUER = "bankwallet"
TOTP_DRIFT_STEPS = 1
RECOVERY_CODE_COUNT = 10
# No 0/o, 1/l/i: codes are read off paper.
RECOVERY_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
RECOVERY_HALF_CHARS = 4
STEP_UP_MAX_AGE_S = 300
SMS_SENDS_PER_WINDOW = 5
STEP_UP_PURPOSE = "stepup"
STEP_UP_URL = "/api/v1/auth/step-up"
SECRET_CONTEXT = "identity_totp.secret"

register_encrypted_column("identity_totp", "secret_enc", context=SECRET_CONTEXT,
                          key_column="user_id")

Method = Literal["totp", "recovery_code", "sms", "email"]
CodeChannel = Literal["sms", "email"]


@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    secret: str  # shown for manual entry while enrolling, never after
    otpauth_uri: str
    qr_svg: str


@dataclass(frozen=True, slots=True)
class MfaStatus:
    totp_active: bool
    totp_pending: bool
    recovery_codes_left: int
    sms_available: bool


# -- pure helpers ----------------------------------------------------------------------------


def masked_login(user: User) -> str:
    """``+86138****8000`` or ``u***@example.com``: enough to recognise, not to harvest."""
    return masked_contact(service.contact_of(user))


def masked_contact(contact: dict[str, str | None]) -> str:
    """``masked_login`` of a decrypted contact (``service.contact_of`` / ``contact_from``)."""
    if contact["phone"]:
        phone = contact["phone"]
        return f"{phone[:-8]}****{phone[-4:]}" if len(phone) > 10 else phone[:3] + "****"
    local, _, domain = (contact["email"] or "").partition("@")
    return f"{local[:1]}***@{domain}"


def qr_svg(uri: str) -> str:
    """Inline SVG with presentation attributes only (no ``style``), so the CSP allows it."""
    return segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff",
                                                 svgclass="totp-qr", lineclass=None,
                                                 omitsize=False)


def _enrolment(user: User, secret: str) -> TotpEnrolment:
    uri = pyotp.TOTP(secret).provisioning_uri(name=masked_login(user), issuer_name=TOTP_ISSUER)
    return TotpEnrolment(secret, uri, qr_svg(uri))


def _matching_step(secret: str, code: str, *, last_step: int | None,
                   now: dt.datetime) -> int | None:
    """The time-step ``code`` belongs to, if it is within the drift and newer than the last
    accepted step; otherwise None."""
    code = code.strip()
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_code() -> str:
    chars = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(2 * RECOVERY_HALF_CHARS))
    return f"{chars[:RECOVERY_HALF_CHARS]}-{chars[RECOVERY_HALF_CHARS:]}"


def _normalise_recovery_code(code: str) -> str:
    chars = "".join(c for c in code.lower() if c.isalnum())
    return f"{chars[:RECOVERY_HALF_CHARS]}-{chars[RECOVERY_HALF_CHARS:]}"


def _recovery_hash(user_id: uuid.UUID, code: str) -> bytes:
    # Bound to the user: two users' equal codes never collide on the unique index.
    return get_keyring().blind_index(f"{user_id}:{_normalise_recovery_code(code)}",
                                     context="identity.recovery")


def _throttle_key(user_id: uuid.UUID) -> str:
    return f"mfa:user:{user_id}"


def _secret_of(row: Totp) -> str:
    return get_keyring().decrypt(row.secret_enc, context=SECRET_CONTEXT).decode()


# -- status and enrolment --------------------------------------------------------------------


async def status(session: AsyncSession, user: User) -> MfaStatus:
    row = await session.get(Totp, user.id)
    left = (await session.execute(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)))).scalar_one()
    return MfaStatus(totp_active=bool(row and row.confirmed_at),
                     totp_pending=bool(row and row.confirmed_at is None),
                     recovery_codes_left=left, sms_available=user.phone_enc is not None)


async def start_totp(session: AsyncSession, auth: service.Authenticated) -> TotpEnrolment:
    """A new secret for the caller's authenticator app; active once confirmed with a code.
    Changing how one logs in needs a fresh second factor (a new account's sign-up code
    counts), so a stolen password alone cannot bind the thief's authenticator."""
    await ensure_recent_second_factor(session, auth)
    row = await session.get(Totp, auth.user.id)
    if row is not None and row.confirmed_at is not None:
        raise TotpAlreadyActive()
    secret = pyotp.random_base32()  # 160 bits, RFC 4226's recommended length
    encrypted = get_keyring().encrypt(secret, context=SECRET_CONTEXT)
    now = utcnow()
    if row is None:
        session.add(Totp(user_id=auth.user.id, secret_enc=encrypted, created_at=now,
                         confirmed_at=None, last_step=None))
    else:
        row.secret_enc, row.created_at, row.last_step = encrypted, now, None
    await session.flush()
    await audit.record(session, action="identity.totp.enrolment_started", actor_type="user",
                       actor_id=str(auth.user.id), subject_type="user",
                       subject_id=str(auth.user.id))
    return _enrolment(auth.user, secret)


async def pending_totp(session: AsyncSession, user: User) -> TotpEnrolment | None:
    row = await session.get(Totp, user.id)
    if row is None or row.confirmed_at is not None:
        return None
    return _enrolment(user, _secret_of(row))


async def confirm_totp(session: AsyncSession, auth: service.Authenticated, *, code: str,
                       info: service.RequestInfo) -> list[str]:
    """Activate the enrolling authenticator with a current code; returns the recovery codes
    (shown this once). Proving the code also counts as a fresh second factor."""
    user = auth.user
    with session.no_autoflush:
        await service._throttle_check(session, _throttle_key(user.id), limit=None)
        row = await session.get(Totp, user.id)
        if row is None:
            raise TotpNotEnrolled()
        if row.confirmed_at is not None:
            raise TotpAlreadyActive()
        step = _matching_step(_secret_of(row), code, last_step=row.last_step, now=utcnow())
    if step is None:
        await _count_failure(session, user, method="totp", purpose="enrol", info=info)
        raise InvalidCode()
    now = utcnow()
    row.confirmed_at, row.last_step = now, step
    codes = await _replace_recovery_codes(session, user.id)
    auth.session.second_factor_at = now
    await service._throttle_clear(session, _throttle_key(user.id))
    await audit.record(session, action="identity.totp.enabled", actor_type="user",
                       actor_id=str(user.id), subject_type="user", subject_id=str(user.id),
                       ip=info.ip, user_agent=info.user_agent)
    return codes


async def disable_totp(session: AsyncSession, auth: service.Authenticated, *,
                       info: service.RequestInfo) -> None:
    """Remove the authenticator and its recovery codes; needs a fresh second factor."""
    await ensure_recent_second_factor(session, auth)
    row = await session.get(Totp, auth.user.id)
    if row is None:
        raise TotpNotEnrolled()
    await session.delete(row)
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == auth.user.id))
    await session.flush()
    await audit.record(session, action="identity.totp.disabled", actor_type="user",
                       actor_id=str(auth.user.id), subject_type="user",
                       subject_id=str(auth.user.id), ip=info.ip, user_agent=info.user_agent)


async def regenerate_recovery_codes(session: AsyncSession, auth: service.Authenticated, *,
                                    info: service.RequestInfo) -> list[str]:
    await ensure_recent_second_factor(session, auth)
    if not await service.has_active_totp(session, auth.user.id):
        raise TotpNotEnrolled()
    codes = await _replace_recovery_codes(session, auth.user.id)
    await audit.record(session, action="identity.recovery_codes.regenerated", actor_type="user",
                       actor_id=str(auth.user.id), subject_type="user",
                       subject_id=str(auth.user.id), ip=info.ip, user_agent=info.user_agent)
    return codes


async def _replace_recovery_codes(session: AsyncSession, user_id: uuid.UUID) -> list[str]:
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    now = utcnow()
    codes = sorted({new_recovery_code() for _ in range(RECOVERY_CODE_COUNT * 2)})
    codes = codes[:RECOVERY_CODE_COUNT]
    assert len(codes) == RECOVERY_CODE_COUNT
    session.add_all([RecoveryCode(id=uuid7(), user_id=user_id,
                                  code_hash=_recovery_hash(user_id, code), created_at=now,
                                  used_at=None) for code in codes])
    await session.flush()
    return codes


# -- checking a second factor ----------------------------------------------------------------


async def _check_totp(session: AsyncSession, user: User, code: str) -> int | None:
    row = await session.get(Totp, user.id)
    if row is None or row.confirmed_at is None:
        return None
    return _matching_step(_secret_of(row), code, last_step=row.last_step, now=utcnow())


async def _check_recovery_code(session: AsyncSession, user: User, code: str) -> bytes | None:
    if len(code) > 32:
        return None
    digest = _recovery_hash(user.id, code)
    found = await session.execute(select(RecoveryCode.id).where(
        RecoveryCode.user_id == user.id, RecoveryCode.code_hash == digest,
        RecoveryCode.used_at.is_(None)))
    return digest if found.first() is not None else None


def _check_sent_code(challenge: Challenge | None, code: str) -> bool:
    """A code texted or mailed for this challenge (login SMS, step-up SMS or e-mail)."""
    if challenge is None or not (challenge.data or {}).get("sms"):
        return False
    return hmac.compare_digest(challenge.code_hash,
                               service._code_hash(challenge.id, code.strip()))


async def _verify(session: AsyncSession, user: User, *, method: Method, code: str,
                  sms_challenge: Challenge | None, purpose: str, info: service.RequestInfo,
                  counted_challenge_id: uuid.UUID | None = None) -> None:
    """Check and use up one second factor, or count the failure and raise InvalidCode."""
    with session.no_autoflush:
        await service._throttle_check(session, _throttle_key(user.id), limit=None)
        if method == "totp":
            proof: object = await _check_totp(session, user, code)
        elif method == "recovery_code":
            proof = await _check_recovery_code(session, user, code)
        else:
            proof = (_check_sent_code(sms_challenge, code)
                     and sms_challenge is not None and sms_challenge.channel == method)
    if proof is None or proof is False:
        await _count_failure(session, user, method=method, purpose=purpose, info=info,
                             challenge_id=counted_challenge_id
                             or (sms_challenge.id if sms_challenge else None))
        raise InvalidCode()
    # Use it up with a conditional write: of two concurrent requests with one code, one wins.
    now = utcnow()
    if method == "totp":
        used = await session.execute(
            update(Totp).where(Totp.user_id == user.id,
                               (Totp.last_step.is_(None)) | (Totp.last_step < proof))
            .values(last_step=proof).execution_options(synchronize_session=False))
    elif method == "recovery_code":
        used = await session.execute(
            update(RecoveryCode).where(RecoveryCode.user_id == user.id,
                                       RecoveryCode.code_hash == proof,
                                       RecoveryCode.used_at.is_(None))
            .values(used_at=now).execution_options(synchronize_session=False))
    else:
        used = await session.execute(
            update(Challenge).where(Challenge.id == sms_challenge.id,
                                    Challenge.consumed_at.is_(None))
            .values(consumed_at=now).execution_options(synchronize_session=False))
    if used.rowcount != 1:
        raise InvalidCode()
    await service._throttle_clear(session, _throttle_key(user.id))


async def _count_failure(session: AsyncSession, user: User, *, method: str, purpose: str,
                         info: service.RequestInfo,
                         challenge_id: uuid.UUID | None = None) -> None:
    free = get_settings().login_free_failures

    async def count(own: AsyncSession) -> None:
        await service._throttle_fail(own, _throttle_key(user.id), free=free)
        if challenge_id is not None:
            await own.execute(update(Challenge).where(Challenge.id == challenge_id)
                              .values(attempts=Challenge.attempts + 1))
        await audit.record(own, action="identity.second_factor.failed", actor_type="user",
                           actor_id=str(user.id), subject_type="user", subject_id=str(user.id),
                           ip=info.ip, user_agent=info.user_agent,
                           data={"method": method, "purpose": purpose})

    await service._in_own_transaction(session, count)


# -- login with a second factor --------------------------------------------------------------


async def _live_login_challenge(session: AsyncSession, challenge_id: uuid.UUID
                                ) -> tuple[Challenge, User]:
    with session.no_autoflush:
        challenge = await session.get(Challenge, challenge_id)
        if challenge is None or challenge.purpose != service.LOGIN_2FA_PURPOSE:
            raise InvalidCode()
        user = await session.get(User, challenge.user_id) if challenge.user_id else None
    if user is None:
        raise InvalidCode()
    return challenge, user


def _usable(challenge: Challenge) -> bool:
    return (challenge.consumed_at is None and utcnow() < challenge.expires_at
            and challenge.attempts < get_settings().otp_max_attempts)


async def finish_login(session: AsyncSession, *, challenge_id: uuid.UUID, method: Method,
                       code: str, info: service.RequestInfo,
                       kind: Literal["web", "api"] = "api"
                       ) -> tuple[User, service.NewSession]:
    """Complete a login that needs a second factor; opens a session that counts as fresh."""
    challenge, user = await _live_login_challenge(session, challenge_id)
    with session.no_autoflush:
        await service._throttle_check(session, _throttle_key(user.id), limit=None)
    if not _usable(challenge) or (challenge.data or {}).get("kind") != kind:
        raise InvalidCode()
    if user.status != "active":
        raise AccountLocked()
    await _verify(session, user, method=method, code=code,
                  sms_challenge=challenge if method == "sms" else None, purpose="login",
                  info=info, counted_challenge_id=challenge.id)
    if method not in ("sms", "email"):  # a sent code consumed its challenge already
        consumed = await session.execute(
            update(Challenge).where(Challenge.id == challenge.id, Challenge.consumed_at.is_(None))
            .values(consumed_at=utcnow()).execution_options(synchronize_session=False))
        if consumed.rowcount != 1:  # a concurrent request completed this login first
            raise InvalidCode()
    await audit.record(session, action="identity.login.succeeded", actor_type="user",
                       actor_id=str(user.id), subject_type="user", subject_id=str(user.id),
                       ip=info.ip, user_agent=info.user_agent, data={"second_factor": method})
    return user, await service._open_session(session, user, kind=kind, info=info,
                                             second_factor=True)


async def send_login_sms(session: AsyncSession, *, challenge_id: uuid.UUID, locale: str,
                         info: service.RequestInfo) -> service.ChallengeSent:
    """Text a code for a pending login to the user's phone (a new code replaces the last)."""
    challenge, user = await _live_login_challenge(session, challenge_id)
    if not _usable(challenge):
        raise InvalidCode()
    phone = service.contact_of(user)["phone"]
    if not phone:
        raise SecondFactorUnavailable("This account has no mobile number.")
    await service._throttle_hit(session, f"mfa-sms:user:{user.id}", limit=SMS_SENDS_PER_WINDOW)
    code = f"{secrets.randbelow(10**service.CODE_DIGITS):0{service.CODE_DIGITS}d}"
    challenge.code_hash = service._code_hash(challenge.id, code)
    challenge.data = {**(challenge.data or {}), "sms": True}
    await session.flush()
    await outbox.publish(session, "notification.otp",
                         {"purpose": "login", "channel": "sms", "locale": locale},
                         sensitive={"destination": phone, "code": code})
    await audit.record(session, action="identity.second_factor.sms_sent", actor_type="user",
                       actor_id=str(user.id), subject_type="challenge",
                       subject_id=str(challenge.id), ip=info.ip, data={"purpose": "login"})
    return service.ChallengeSent(challenge.id, "sms",
                                 max(0, int((challenge.expires_at - utcnow()).total_seconds())))


# -- step-up ---------------------------------------------------------------------------------


async def available_methods(session: AsyncSession, user: User) -> list[str]:
    methods = ["totp", "recovery_code"] if await service.has_active_totp(session, user.id) else []
    found = await session.execute(select(Passkey.id).where(Passkey.user_id == user.id).limit(1))
    if found.first() is not None:
        methods.append("passkey")
    return methods + (["sms"] if user.phone_enc else []) + (["email"] if user.email_enc else [])


async def ensure_recent_second_factor(session: AsyncSession, auth: service.Authenticated, *,
                                      max_age_s: int = STEP_UP_MAX_AGE_S) -> None:
    at = auth.session.second_factor_at
    if at is not None and (utcnow() - at).total_seconds() <= max_age_s:
        return
    raise StepUpRequired(f"Confirm with a second factor: POST {STEP_UP_URL}.",
                         step_up_url=STEP_UP_URL, max_age_s=max_age_s,
                         methods=await available_methods(session, auth.user))


def require_recent_second_factor(max_age_s: int = STEP_UP_MAX_AGE_S):
    """A route dependency: the caller's session proved a second factor in the last
    ``max_age_s`` seconds, else 403 ``step_up_required`` (the client then calls step-up)."""

    async def check(auth: Auth, session: DbSession) -> service.Authenticated:
        await ensure_recent_second_factor(session, auth, max_age_s=max_age_s)
        return auth

    return check


RecentSecondFactor = Annotated[service.Authenticated, Depends(require_recent_second_factor())]


async def step_up(session: AsyncSession, auth: service.Authenticated, *, method: Method,
                  code: str, info: service.RequestInfo) -> dt.datetime:
    """Prove a second factor again on the current session."""
    sms_challenge = (await _latest_step_up_challenge(session, auth)
                     if method in ("sms", "email") else None)
    await _verify(session, auth.user, method=method, code=code, sms_challenge=sms_challenge,
                  purpose="step_up", info=info)
    now = utcnow()
    auth.session.second_factor_at = now
    await audit.record(session, action="identity.step_up.succeeded", actor_type="user",
                       actor_id=str(auth.user.id), subject_type="session",
                       subject_id=str(auth.session.id), ip=info.ip, data={"method": method})
    return now


async def _latest_step_up_challenge(session: AsyncSession,
                                    auth: service.Authenticated) -> Challenge | None:
    with session.no_autoflush:
        challenge = (await session.execute(
            select(Challenge).where(Challenge.user_id == auth.user.id,
                                    Challenge.purpose == STEP_UP_PURPOSE)
            .order_by(Challenge.created_at.desc(), Challenge.id.desc()).limit(1))
        ).scalar_one_or_none()
    if (challenge is None or not _usable(challenge)
            or (challenge.data or {}).get("session_id") != str(auth.session.id)):
        return None
    return challenge


async def send_step_up_code(session: AsyncSession, auth: service.Authenticated, *, locale: str,
                            channel: CodeChannel = "sms") -> service.ChallengeSent:
    """Text or mail a step-up code to the user's own phone or mailbox."""
    kind = "phone" if channel == "sms" else "email"
    destination = service.contact_of(auth.user)[kind]
    if not destination:
        raise SecondFactorUnavailable("This account has no mobile number." if channel == "sms"
                                      else "This account has no e-mail address.")
    await service._throttle_hit(session, f"mfa-sms:user:{auth.user.id}",
                                limit=SMS_SENDS_PER_WINDOW)
    # "sms": True marks a challenge whose code was really sent (either channel).
    challenge = await service._new_challenge(
        session, purpose=STEP_UP_PURPOSE, login=service.Login(kind, destination),
        user_id=auth.user.id, data={"session_id": str(auth.session.id), "sms": True},
        send=True, locale=locale)
    return service.ChallengeSent(challenge.id, channel, get_settings().otp_ttl_s)
