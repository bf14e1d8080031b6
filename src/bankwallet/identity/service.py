"""Identity use cases: sign-up with a one-time code, login, sessions, passwords, operators.

Logins are an e-mail address or a mobile number (E.164). Neither is stored in the clear: a
blind index finds the user, an envelope-encrypted copy is shown back. Responses never tell
whether an account exists.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import Literal

import phonenumbers
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.core import audit, outbox
from bankwallet.core.crypto import get_keyring, register_encrypted_column
from bankwallet.core.db import utcnow
from bankwallet.core.ids import uuid7
from bankwallet.identity import passwords
from bankwallet.identity.errors import (
    AccountLocked,
    BadCredentials,
    InvalidCode,
    InvalidLogin,
    Throttled,
    Unauthenticated,
    WrongPassword,
)
from bankwallet.identity.models import Challenge, Session, Throttle, Totp, User
from bankwallet.settings import get_settings

ROLES = ("customer", "support", "risk", "operations", "admin")
STAFF_ROLES = frozenset(ROLES[1:])
TOKEN_BYTES = 32
CODE_DIGITS = 6
EMAIL_MAX = 254
THROTTLE_WINDOW_S = 15 * 60
LOGIN_2FA_PURPOSE = "login_2fa"
LOCK_MAX_S = 15 * 60

register_encrypted_column("identity_user", "email_enc", context="identity_user.email")
register_encrypted_column("identity_user", "phone_enc", context="identity_user.phone")
register_encrypted_column("identity_challenge", "destination_enc",
                          context="identity_challenge.destination")

LoginKind = Literal["email", "phone"]


@dataclass(frozen=True, slots=True)
class Login:
    kind: LoginKind
    value: str  # lower-cased e-mail or E.164 number

    @property
    def channel(self) -> Literal["sms", "email"]:
        return "sms" if self.kind == "phone" else "email"


@dataclass(frozen=True, slots=True)
class Authenticated:
    user: User
    session: Session


@dataclass(frozen=True, slots=True)
class NewSession:
    session: Session
    token: str  # shown once: the cookie value or bearer token


@dataclass(frozen=True, slots=True)
class SecondFactorRequired:
    """The password was right; the login completes with a second factor
    (``identity.mfa.finish_login``)."""

    challenge_id: uuid.UUID
    methods: tuple[str, ...]
    expires_in_s: int


@dataclass(frozen=True, slots=True)
class ChallengeSent:
    id: uuid.UUID
    channel: Literal["sms", "email"]
    expires_in_s: int


@dataclass(frozen=True, slots=True)
class RequestInfo:
    ip: str | None = None
    user_agent: str | None = None


# -- logins --------------------------------------------------------------------------------


def parse_login(text: str, *, region: str | None = None) -> Login:
    """An e-mail address (lower-cased) or a phone number (E.164; local numbers use the
    default region, +86 by default)."""
    text = text.strip()
    if "@" in text:
        local, _, domain = text.rpartition("@")
        if not local or "." not in domain or len(text) > EMAIL_MAX or any(c.isspace() for c in text):
            raise InvalidLogin("Enter an e-mail address like name@example.com.")
        return Login("email", f"{local}@{domain.lower()}".lower())
    try:
        number = phonenumbers.parse(text, region or get_settings().default_phone_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidLogin("Enter a mobile number, e.g. +86 138 0013 8000.") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidLogin("That is not a valid phone number.")
    return Login("phone", phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def login_index(login: Login) -> bytes:
    """The blind index a login is found by (``identity_user.email_index`` / ``phone_index``)."""
    return get_keyring().blind_index(login.value, context=f"identity.{login.kind}")


async def find_user(session: AsyncSession, login: Login) -> User | None:
    column = User.email_index if login.kind == "email" else User.phone_index
    return (await session.execute(select(User).where(column == login_index(login)))
            ).scalar_one_or_none()


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    """A user by id: other domains' consumers need a payer's or payee's locale and contacts."""
    return await session.get(User, user_id)


async def get_users(session: AsyncSession, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, User]:
    """Users by id, in one query (those that exist)."""
    if not user_ids:
        return {}
    found = (await session.scalars(select(User).where(User.id.in_(user_ids)))).all()
    return {user.id: user for user in found}


def contact_of(user: User) -> dict[str, str | None]:
    return contact_from(email_enc=user.email_enc, phone_enc=user.phone_enc)


def contact_from(*, email_enc: bytes | None, phone_enc: bytes | None) -> dict[str, str | None]:
    """The e-mail address and phone number from their encrypted columns."""
    keyring = get_keyring()
    return {
        "email": keyring.decrypt(email_enc, context="identity_user.email").decode()
        if email_enc else None,
        "phone": keyring.decrypt(phone_enc, context="identity_user.phone").decode()
        if phone_enc else None,
    }


# -- sign-up -------------------------------------------------------------------------------


async def start_signup(session: AsyncSession, *, login_text: str, password: str, locale: str,
                       info: RequestInfo) -> ChallengeSent:
    """Check the password, send a code to the phone or mailbox, return the challenge id.

    Someone who already has an account gets the same answer, and no code: whoever typed
    the address learns nothing about it.
    """
    login = parse_login(login_text)
    passwords.check_policy(password, user_inputs=[login.value])
    await _throttle_hit(session, f"signup:ip:{info.ip}", limit=get_settings().ip_max_failures)
    existing = await find_user(session, login)
    challenge = await _new_challenge(
        session, purpose="signup", login=login, user_id=None,
        data={"password_hash": passwords.hash_password(password), "locale": locale},
        send=existing is None, locale=locale)
    await audit.record(session, action="identity.signup.started", ip=info.ip,
                       user_agent=info.user_agent, subject_type="challenge",
                       subject_id=str(challenge.id))
    return ChallengeSent(challenge.id, login.channel, get_settings().otp_ttl_s)


async def finish_signup(session: AsyncSession, *, challenge_id: uuid.UUID, code: str,
                        info: RequestInfo, kind: Literal["web", "api"] = "api"
                        ) -> tuple[User, NewSession]:
    challenge = await _consume_challenge(session, challenge_id, code, purpose="signup")
    keyring = get_keyring()
    login_value = keyring.decrypt(challenge.destination_enc,
                                  context="identity_challenge.destination").decode()
    login = Login("phone" if challenge.channel == "sms" else "email", login_value)
    if await find_user(session, login) is not None:  # registered since the code was sent
        raise InvalidCode("This code can no longer be used.")
    data = challenge.data or {}
    user = _new_user(login, password_hash=data["password_hash"], role="customer",
                     locale=data.get("locale", "zh_CN"))
    session.add(user)
    await session.flush()
    await outbox.publish(session, "user.registered", {"user_id": str(user.id),
                                                      "kyc_tier": user.kyc_tier})
    await audit.record(session, action="identity.signup.completed", actor_type="user",
                       actor_id=str(user.id), subject_type="user", subject_id=str(user.id),
                       ip=info.ip, user_agent=info.user_agent)
    return user, await _open_session(session, user, kind=kind, info=info, second_factor=True)


def _new_user(login: Login, *, password_hash: str, role: str, locale: str) -> User:
    keyring = get_keyring()
    now = utcnow()
    user = User(id=uuid7(), password_hash=password_hash, role=role, status="active",
                kyc_tier=0, locale=locale, created_at=now, password_changed_at=now)
    encrypted = keyring.encrypt(login.value, context=f"identity_user.{login.kind}")
    if login.kind == "email":
        user.email_index, user.email_enc = login_index(login), encrypted
    else:
        user.phone_index, user.phone_enc = login_index(login), encrypted
    return user


async def create_user(session: AsyncSession, *, login_text: str, password: str,
                      role: str = "customer", locale: str = "zh_CN") -> User:
    """For operators (`bankwallet users create`): a verified user with a role."""
    if role not in ROLES:
        raise InvalidLogin(f"Unknown role {role!r}; one of {', '.join(ROLES)}.")
    login = parse_login(login_text)
    passwords.check_policy(password, user_inputs=[login.value])
    if await find_user(session, login) is not None:
        raise InvalidLogin("A user with this login exists already.")
    user = _new_user(login, password_hash=passwords.hash_password(password), role=role,
                     locale=locale)
    session.add(user)
    await session.flush()
    await audit.record(session, action="identity.user.created", actor_type="system",
                       subject_type="user", subject_id=str(user.id), data={"role": role})
    return user


# -- login and sessions --------------------------------------------------------------------


async def login(session: AsyncSession, *, login_text: str, password: str, info: RequestInfo,
                kind: Literal["web", "api"] = "api"
                ) -> tuple[User, NewSession] | SecondFactorRequired:
    """A session, or (when the user has an authenticator app) a second-factor challenge."""
    settings = get_settings()
    try:
        parsed = parse_login(login_text)
    except InvalidLogin:
        raise BadCredentials() from None
    account_key = f"login:acct:{login_index(parsed).hex()}"
    ip_key = f"login:ip:{info.ip}"
    await _throttle_check(session, ip_key, limit=settings.ip_max_failures)
    await _throttle_check(session, account_key, limit=None)
    user = await find_user(session, parsed)
    ok = passwords.verify_password(user.password_hash if user else None, password)
    if not ok or user is None:
        subject = str(user.id) if user else None

        async def count_failure(own: AsyncSession) -> None:
            await _throttle_fail(own, account_key, free=settings.login_free_failures)
            await _throttle_fail(own, ip_key, free=settings.ip_max_failures)
            await audit.record(own, action="identity.login.failed", ip=info.ip,
                               user_agent=info.user_agent,
                               subject_type="user" if subject else None, subject_id=subject)

        await _in_own_transaction(session, count_failure)
        raise BadCredentials()
    if user.status != "active":
        raise AccountLocked()
    await _throttle_clear(session, account_key)
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    if await has_active_totp(session, user.id):
        return await _second_factor_challenge(session, user, kind=kind, info=info)
    await audit.record(session, action="identity.login.succeeded", actor_type="user",
                       actor_id=str(user.id), subject_type="user", subject_id=str(user.id),
                       ip=info.ip, user_agent=info.user_agent)
    return user, await _open_session(session, user, kind=kind, info=info, second_factor=False)


async def has_active_totp(session: AsyncSession, user_id: uuid.UUID) -> bool:
    found = await session.execute(select(Totp.user_id).where(
        Totp.user_id == user_id, Totp.confirmed_at.is_not(None)))
    return found.first() is not None


def second_factor_methods(user: User) -> tuple[str, ...]:
    return ("totp", "recovery_code", "sms") if user.phone_enc else ("totp", "recovery_code")


async def _second_factor_challenge(session: AsyncSession, user: User, *,
                                   kind: Literal["web", "api"],
                                   info: RequestInfo) -> SecondFactorRequired:
    """A login challenge bound to the user and the session kind. Its code hash is random
    (unusable) until the user asks for an SMS code (``identity.mfa.send_login_sms``)."""
    settings = get_settings()
    now = utcnow()
    contact = contact_of(user)
    login = (Login("phone", contact["phone"]) if contact["phone"]
             else Login("email", contact["email"] or ""))
    challenge = Challenge(
        id=uuid7(), purpose=LOGIN_2FA_PURPOSE, destination_index=login_index(login),
        destination_enc=get_keyring().encrypt(login.value,
                                              context="identity_challenge.destination"),
        channel=login.channel, code_hash=secrets.token_bytes(32), user_id=user.id,
        data={"kind": kind}, attempts=0, created_at=now,
        expires_at=now + dt.timedelta(seconds=settings.otp_ttl_s), consumed_at=None)
    session.add(challenge)
    await session.flush()
    await audit.record(session, action="identity.login.second_factor_required",
                       actor_type="user", actor_id=str(user.id), subject_type="challenge",
                       subject_id=str(challenge.id), ip=info.ip, user_agent=info.user_agent)
    return SecondFactorRequired(challenge.id, second_factor_methods(user), settings.otp_ttl_s)


async def _open_session(session: AsyncSession, user: User, *, kind: Literal["web", "api"],
                        info: RequestInfo, second_factor: bool) -> NewSession:
    settings = get_settings()
    now = utcnow()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    lifetime = (settings.session_absolute_timeout_s if kind == "web"
                else settings.api_session_absolute_timeout_s)
    record = Session(id=uuid7(), token_hash=hash_token(token), user_id=user.id, kind=kind,
                     created_at=now, last_seen_at=now,
                     expires_at=now + dt.timedelta(seconds=lifetime), revoked_at=None,
                     second_factor_at=now if second_factor else None,
                     ip=(info.ip or "")[:64] or None, user_agent=(info.user_agent or "")[:256] or None)
    session.add(record)
    await session.flush()
    return NewSession(record, token)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def csrf_token_for(token: str) -> str:
    """The CSRF token of a web session: derived from the session token, so nothing more is
    stored, and useless without the HttpOnly cookie it derives from."""
    return hmac.new(hash_token(token), b"csrf", hashlib.sha256).hexdigest()


async def authenticate(session: AsyncSession, token: str | None) -> Authenticated:
    """The live session and user behind a token, or Unauthenticated."""
    if not token or len(token) > 128:
        raise Unauthenticated()
    settings = get_settings()
    now = utcnow()
    row = (await session.execute(
        select(Session, User).join(User, User.id == Session.user_id)
        .where(Session.token_hash == hash_token(token)))).one_or_none()
    if row is None:
        raise Unauthenticated()
    record, user = row
    if not session_usable(kind=record.kind, expires_at=record.expires_at,
                          revoked_at=record.revoked_at, last_seen_at=record.last_seen_at,
                          user_status=user.status, now=now,
                          idle_timeout_s=settings.session_idle_timeout_s):
        raise Unauthenticated()
    if last_seen_due(record.last_seen_at, now):
        record.last_seen_at = now
    return Authenticated(user, record)


def session_usable(*, kind: str, expires_at: dt.datetime, revoked_at: dt.datetime | None,
                   last_seen_at: dt.datetime, user_status: str, now: dt.datetime,
                   idle_timeout_s: int) -> bool:
    """Whether a session still authenticates: not revoked or expired, its user active, and
    a web session not idle too long."""
    idle_limit = last_seen_at + dt.timedelta(seconds=idle_timeout_s)
    return not (revoked_at is not None or now >= expires_at or user_status != "active"
                or (kind == "web" and now >= idle_limit))


def last_seen_due(last_seen_at: dt.datetime, now: dt.datetime) -> bool:
    """The session's last-seen time is written at most every 30 s (a bounded write rate)."""
    return (now - last_seen_at).total_seconds() > 30


async def logout(session: AsyncSession, auth: Authenticated) -> None:
    auth.session.revoked_at = utcnow()
    await audit.record(session, action="identity.logout", actor_type="user",
                       actor_id=str(auth.user.id), subject_type="session",
                       subject_id=str(auth.session.id))


async def logout_everywhere(session: AsyncSession, auth: Authenticated, *,
                            keep_current: bool = False) -> int:
    revoked = await _revoke_sessions(session, auth.user.id,
                                     except_id=auth.session.id if keep_current else None)
    await audit.record(session, action="identity.logout_everywhere", actor_type="user",
                       actor_id=str(auth.user.id), subject_type="user",
                       subject_id=str(auth.user.id), data={"revoked": revoked})
    return revoked


async def _revoke_sessions(session: AsyncSession, user_id: uuid.UUID, *,
                           except_id: uuid.UUID | None) -> int:
    statement = (update(Session).where(Session.user_id == user_id, Session.revoked_at.is_(None))
                 .values(revoked_at=utcnow()))
    if except_id is not None:
        statement = statement.where(Session.id != except_id)
    result = await session.execute(statement.execution_options(synchronize_session="fetch"))
    return result.rowcount or 0


async def list_sessions(session: AsyncSession, auth: Authenticated) -> list[Session]:
    now = utcnow()
    rows = await session.execute(
        select(Session).where(Session.user_id == auth.user.id, Session.revoked_at.is_(None),
                              Session.expires_at > now)
        .order_by(Session.last_seen_at.desc()).limit(100))
    return list(rows.scalars())


async def revoke_session(session: AsyncSession, auth: Authenticated, session_id: uuid.UUID) -> None:
    """Revoke one of the caller's own sessions; anyone else's is 'not found'."""
    from bankwallet.core.errors import NotFound

    record = await session.get(Session, session_id)
    if record is None or record.user_id != auth.user.id or record.revoked_at is not None:
        raise NotFound("No such session.")
    record.revoked_at = utcnow()
    await audit.record(session, action="identity.session.revoked", actor_type="user",
                       actor_id=str(auth.user.id), subject_type="session",
                       subject_id=str(session_id))


# -- passwords -----------------------------------------------------------------------------


async def change_password(session: AsyncSession, auth: Authenticated, *, current: str,
                          new: str) -> int:
    """Change the password and end every other session; returns how many ended."""
    if not passwords.verify_password(auth.user.password_hash, current):
        raise WrongPassword()
    passwords.check_policy(new, user_inputs=[v for v in contact_of(auth.user).values() if v])
    auth.user.password_hash = passwords.hash_password(new)
    auth.user.password_changed_at = utcnow()
    ended = await _revoke_sessions(session, auth.user.id, except_id=auth.session.id)
    await audit.record(session, action="identity.password.changed", actor_type="user",
                       actor_id=str(auth.user.id), subject_type="user",
                       subject_id=str(auth.user.id), data={"sessions_ended": ended})
    return ended


async def start_password_reset(session: AsyncSession, *, login_text: str, locale: str,
                               info: RequestInfo) -> ChallengeSent:
    login = parse_login(login_text)
    await _throttle_hit(session, f"reset:ip:{info.ip}", limit=get_settings().ip_max_failures)
    user = await find_user(session, login)
    challenge = await _new_challenge(session, purpose="reset", login=login,
                                     user_id=user.id if user else None, data=None,
                                     send=user is not None, locale=locale)
    return ChallengeSent(challenge.id, login.channel, get_settings().otp_ttl_s)


async def finish_password_reset(session: AsyncSession, *, challenge_id: uuid.UUID, code: str,
                                new_password: str, info: RequestInfo) -> None:
    challenge = await _consume_challenge(session, challenge_id, code, purpose="reset")
    user = await session.get(User, challenge.user_id) if challenge.user_id else None
    if user is None:
        raise InvalidCode()
    passwords.check_policy(new_password, user_inputs=[v for v in contact_of(user).values() if v])
    user.password_hash = passwords.hash_password(new_password)
    user.password_changed_at = utcnow()
    ended = await _revoke_sessions(session, user.id, except_id=None)
    await audit.record(session, action="identity.password.reset", actor_type="user",
                       actor_id=str(user.id), subject_type="user", subject_id=str(user.id),
                       ip=info.ip, data={"sessions_ended": ended})


# -- one-time codes ------------------------------------------------------------------------


def _code_hash(challenge_id: uuid.UUID, code: str) -> bytes:
    return get_keyring().blind_index(f"{challenge_id}:{code}", context="identity.otp")


async def _new_challenge(session: AsyncSession, *, purpose: str, login: Login,
                         user_id: uuid.UUID | None, data: dict | None, send: bool,
                         locale: str) -> Challenge:
    settings = get_settings()
    now = utcnow()
    challenge_id = uuid7()
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    challenge = Challenge(
        id=challenge_id, purpose=purpose, destination_index=login_index(login),
        destination_enc=get_keyring().encrypt(login.value,
                                              context="identity_challenge.destination"),
        channel=login.channel, code_hash=_code_hash(challenge_id, code), user_id=user_id,
        data=data, attempts=0, created_at=now,
        expires_at=now + dt.timedelta(seconds=settings.otp_ttl_s), consumed_at=None)
    session.add(challenge)
    await session.flush()
    if send:
        await outbox.publish(session, "notification.otp",
                             {"purpose": purpose, "channel": login.channel, "locale": locale},
                             sensitive={"destination": login.value, "code": code})
    return challenge


async def _consume_challenge(session: AsyncSession, challenge_id: uuid.UUID, code: str, *,
                             purpose: str) -> Challenge:
    """Check a code. Every attempt is counted in its own transaction first, so a wrong code
    still counts although the request that carried it fails; a right one is consumed once."""
    settings = get_settings()
    now = utcnow()
    counted = False

    async def count_attempt(own: AsyncSession) -> None:
        nonlocal counted
        result = await own.execute(
            update(Challenge)
            .where(Challenge.id == challenge_id, Challenge.purpose == purpose,
                   Challenge.consumed_at.is_(None), Challenge.expires_at > now,
                   Challenge.attempts < settings.otp_max_attempts)
            .values(attempts=Challenge.attempts + 1))
        counted = result.rowcount == 1

    await _in_own_transaction(session, count_attempt)
    challenge = await session.get(Challenge, challenge_id) if counted else None
    if challenge is None:
        raise InvalidCode()
    if not hmac.compare_digest(challenge.code_hash, _code_hash(challenge_id, code.strip())):
        raise InvalidCode(attempts_left=max(0, settings.otp_max_attempts - challenge.attempts))
    consumed = await session.execute(
        update(Challenge).where(Challenge.id == challenge_id, Challenge.consumed_at.is_(None))
        .values(consumed_at=now).execution_options(synchronize_session=False))
    if consumed.rowcount != 1:  # a concurrent request used it first
        raise InvalidCode()
    return challenge


async def _in_own_transaction(session: AsyncSession, work) -> None:
    """Run ``work`` in a unit of work of its own that commits even when the request's fails
    (security counters). Call it before the request's session has written anything."""
    async with AsyncSession(session.bind, expire_on_commit=False) as own:
        await work(own)
        await own.commit()


# -- throttling ----------------------------------------------------------------------------


async def _throttle_check(session: AsyncSession, key: str, *, limit: int | None) -> None:
    row = await session.get(Throttle, key)
    if row is None:
        return
    now = utcnow()
    if row.locked_until is not None and now < row.locked_until:
        raise Throttled(max(1, int((row.locked_until - now).total_seconds()) + 1))
    if limit is not None and row.failures >= limit and (
            now - row.window_started_at).total_seconds() < THROTTLE_WINDOW_S:
        retry = THROTTLE_WINDOW_S - int((now - row.window_started_at).total_seconds())
        raise Throttled(max(1, retry))


async def _throttle_fail(session: AsyncSession, key: str, *, free: int) -> None:
    """Count a failure; past ``free`` failures the key is locked for a doubling delay."""
    now = utcnow()
    # Concurrent failures for one key: create the row if missing, then lock and count.
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    await session.execute(insert(Throttle).values(
        key=key, failures=0, window_started_at=now, locked_until=None).on_conflict_do_nothing())
    row = (await session.execute(select(Throttle).where(Throttle.key == key)
                                 .with_for_update())).scalar_one()
    if (now - row.window_started_at).total_seconds() >= THROTTLE_WINDOW_S:
        row.failures, row.window_started_at, row.locked_until = 0, now, None
    row.failures += 1
    if row.failures >= free:
        delay = min(LOCK_MAX_S, 2 ** (row.failures - free))
        row.locked_until = now + dt.timedelta(seconds=delay)
    await session.flush()


async def _throttle_hit(session: AsyncSession, key: str, *, limit: int) -> None:
    """Count a request (sign-up, reset) and refuse past ``limit`` per window."""
    await _throttle_check(session, key, limit=limit)
    now = utcnow()
    row = await session.get(Throttle, key)
    if row is None:
        session.add(Throttle(key=key, failures=1, window_started_at=now, locked_until=None))
    elif (now - row.window_started_at).total_seconds() >= THROTTLE_WINDOW_S:
        row.failures, row.window_started_at = 1, now
    else:
        row.failures += 1
    await session.flush()


async def _throttle_clear(session: AsyncSession, key: str) -> None:
    row = await session.get(Throttle, key)
    if row is not None:
        await session.delete(row)
