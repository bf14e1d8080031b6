"""Identity tables. Contact details are stored only encrypted, found by blind index."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from bankwallet.core.db import Base, JSONType, UTCDateTime


class User(Base):
    __tablename__ = "identity_user"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # HMAC blind indexes (look-up) and envelope-encrypted values (display) of the contacts.
    email_index: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True)
    email_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_index: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True)
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # active | locked | closed
    kyc_tier: Mapped[int] = mapped_column(Integer)
    locale: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Session(Base):
    """A login: an opaque random token, stored as its SHA-256 only."""

    __tablename__ = "identity_session"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identity_user.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # web (cookie) | api (bearer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # absolute timeout
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    second_factor_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(256))


class Challenge(Base):
    """A one-time code sent to a phone or mailbox (sign-up, password reset, step-up)."""

    __tablename__ = "identity_challenge"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))
    destination_index: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    destination_enc: Mapped[bytes] = mapped_column(LargeBinary)
    channel: Mapped[str] = mapped_column(String(8))  # sms | email
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # What completing the challenge needs, e.g. the new account's argon2 password hash.
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    consumed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Throttle(Base):
    """Failed attempts per account or per address, with a growing lock-out."""

    __tablename__ = "identity_throttle"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class KycApplication(Base):
    """A customer's request for identity verification (KYC tier 1), and staff's decision.

    Name, national id and birth date are stored only envelope-encrypted; the national id also
    as a blind index. ``national_id_claim`` holds that index once approved and is unique: one
    identity number verifies one user, enforced by the database, not only by a check.
    """

    __tablename__ = "identity_kyc_application"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identity_user.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending | approved | rejected
    legal_name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    national_id_enc: Mapped[bytes] = mapped_column(LargeBinary)
    national_id_index: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    national_id_claim: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True)
    birth_date_enc: Mapped[bytes] = mapped_column(LargeBinary)
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    reason: Mapped[str | None] = mapped_column(String(500))


class Totp(Base):
    """A user's authenticator app (RFC 6238). The shared secret is stored only envelope-
    encrypted; ``last_step`` is the newest time-step accepted, so no code works twice."""

    __tablename__ = "identity_totp"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identity_user.id"),
                                               primary_key=True)
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # None: enrolling
    last_step: Mapped[int | None] = mapped_column(Integer)


class RecoveryCode(Base):
    """A one-time recovery code, stored only as its HMAC (blind index)."""

    __tablename__ = "identity_recovery_code"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identity_user.id"), index=True)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Passkey(Base):
    """A WebAuthn credential (a passkey: fingerprint, face or PIN on the user's device).

    Only the public key is stored; ``sign_count`` detects a cloned authenticator when the
    device keeps a counter (many synced passkeys report 0 forever).
    """

    __tablename__ = "identity_passkey"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identity_user.id"), index=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary(1023), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    transports: Mapped[list[str] | None] = mapped_column(JSONType)
    backed_up: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class WebauthnCeremony(Base):
    """One WebAuthn ceremony in flight: the random challenge the browser must sign, what it is
    for (register, login, step_up), and for whom. Used at most once, before it expires."""

    __tablename__ = "identity_webauthn_ceremony"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))
    challenge: Mapped[bytes] = mapped_column(LargeBinary(64))
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    consumed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
