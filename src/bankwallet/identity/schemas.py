from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from bankwallet.identity import kyc

LoginText = Annotated[str, StringConstraints(min_length=3, max_length=254)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Code = Annotated[str, StringConstraints(pattern=r"^\s*\d{6}\s*$")]
Locale = Literal["zh_CN", "en"]


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    login: LoginText
    password: Password


class SignupStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    login: LoginText
    password: Password
    locale: Locale = "zh_CN"


class SignupFinish(BaseModel):
    model_config = ConfigDict(extra="forbid")
    challenge_id: uuid.UUID
    code: Code


class ChallengeRead(BaseModel):
    challenge_id: uuid.UUID
    channel: Literal["sms", "email"]
    expires_in_s: int


class UserRead(BaseModel):
    id: uuid.UUID
    email: str | None
    phone: str | None
    role: str
    kyc_tier: int
    locale: str
    created_at: dt.datetime


class SessionCreated(BaseModel):
    token: str
    token_type: Literal["bearer"] = "bearer"
    session_id: uuid.UUID
    expires_at: dt.datetime
    user: UserRead


class SessionRead(BaseModel):
    id: uuid.UUID
    kind: str
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime
    ip: str | None
    user_agent: str | None
    current: bool


class SessionList(BaseModel):
    items: list[SessionRead]


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: Password
    new_password: Password


class ResetStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    login: LoginText
    locale: Locale = "zh_CN"


class ResetFinish(BaseModel):
    model_config = ConfigDict(extra="forbid")
    challenge_id: uuid.UUID
    code: Code
    new_password: Password


# -- second factors --------------------------------------------------------------------------

SecondFactorMethod = Literal["totp", "recovery_code", "sms"]
# A 6-digit TOTP/SMS code or a recovery code like "abcd-efgh".
SecondFactorCode = Annotated[str, StringConstraints(min_length=6, max_length=32,
                                                    pattern=r"^[\sA-Za-z0-9-]+$")]


class SecondFactorRequiredRead(BaseModel):
    second_factor_required: Literal[True] = True
    challenge_id: uuid.UUID
    methods: list[SecondFactorMethod]
    expires_in_s: int


class SecondFactorLogin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    challenge_id: uuid.UUID
    method: SecondFactorMethod
    code: SecondFactorCode


class SecondFactorSmsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    challenge_id: uuid.UUID
    locale: Locale = "zh_CN"


class StepUpIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Literal["totp", "recovery_code", "sms", "email"]
    code: SecondFactorCode


class StepUpSmsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    locale: Locale = "zh_CN"


class StepUpCodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: Literal["sms", "email"] = "sms"
    locale: Locale = "zh_CN"


class StepUpRead(BaseModel):
    second_factor_at: dt.datetime


class TotpEnrolmentRead(BaseModel):
    secret: str
    otpauth_uri: str
    qr_svg: str


class TotpConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: Code


class RecoveryCodesRead(BaseModel):
    recovery_codes: list[str]


class MfaStatusRead(BaseModel):
    totp_active: bool
    totp_pending: bool
    recovery_codes_left: int
    sms_available: bool
    passkeys: int


# -- passkeys (WebAuthn) ---------------------------------------------------------------------

# The browser's PublicKeyCredential as JSON (``credential.toJSON()``); the webauthn library
# checks its structure. Bounded: an attestation with a certificate chain stays well below.
WebauthnCredential = Annotated[dict[str, Any], Field(max_length=8)]


class WebauthnOptionsRead(BaseModel):
    ceremony_id: uuid.UUID
    options: dict[str, Any]  # pass to navigator.credentials.create / .get


class PasskeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ceremony_id: uuid.UUID
    credential: WebauthnCredential
    name: Annotated[str, StringConstraints(max_length=64)] = "Passkey"


class PasskeyAssertion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ceremony_id: uuid.UUID
    credential: WebauthnCredential


class PasskeyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class PasskeyRead(BaseModel):
    id: uuid.UUID
    name: str
    backed_up: bool
    created_at: dt.datetime
    last_used_at: dt.datetime | None


class PasskeyList(BaseModel):
    items: list[PasskeyRead]


class AccountClose(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: Annotated[str, StringConstraints(min_length=1, max_length=128)]


# -- KYC (the customer's side; staff review is in admin) ---------------------------------


class LimitsRead(BaseModel):
    currency: str
    single_minor: int
    daily_minor: int
    balance_minor: int

    @classmethod
    def of(cls, limits: kyc.Limits) -> LimitsRead:
        return cls(currency=limits.currency, single_minor=limits.single_minor,
                   daily_minor=limits.daily_minor, balance_minor=limits.balance_minor)


class KycApplicationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    legal_name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    national_id: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    birth_date: dt.date


class KycApplicationRead(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    status: str
    legal_name: str
    national_id_masked: str
    birth_date: dt.date
    submitted_at: dt.datetime
    decided_at: dt.datetime | None
    reason: str | None

    @classmethod
    def of(cls, v: kyc.ApplicationView) -> KycApplicationRead:
        return cls(id=v.id, user_id=v.user_id, status=v.status, legal_name=v.legal_name,
                   national_id_masked=v.national_id_masked, birth_date=v.birth_date,
                   submitted_at=v.submitted_at, decided_at=v.decided_at, reason=v.reason)


class KycStatusRead(BaseModel):
    tier: int
    limits: LimitsRead
    application: KycApplicationRead | None
