"""API shapes of the back office and of the customer's KYC endpoints."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints

from bankwallet.core import audit
from bankwallet.identity import kyc, staff

Reason = Annotated[str, StringConstraints(max_length=kyc.REASON_MAX_CHARS)]


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


class KycApplicationList(BaseModel):
    items: list[KycApplicationRead]
    next_before: uuid.UUID | None


class KycStatusRead(BaseModel):
    tier: int
    limits: LimitsRead
    application: KycApplicationRead | None


class KycDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason | None = None


class LockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


class UnlockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason | None = None


class CustomerRead(BaseModel):
    id: uuid.UUID
    email: str | None
    phone: str | None
    role: str
    status: str
    kyc_tier: int
    created_at: dt.datetime

    @classmethod
    def of(cls, v: staff.CustomerView) -> CustomerRead:
        return cls(id=v.id, email=v.email, phone=v.phone, role=v.role, status=v.status,
                   kyc_tier=v.kyc_tier, created_at=v.created_at)


class AuditEventRead(BaseModel):
    id: uuid.UUID
    seq: int
    at: dt.datetime
    actor_type: str
    actor_id: str | None
    action: str
    subject_type: str | None
    subject_id: str | None
    ip: str | None
    data: dict[str, Any] | None

    @classmethod
    def of(cls, e: audit.AuditEvent) -> AuditEventRead:
        return cls(id=e.id, seq=e.seq, at=e.at, actor_type=e.actor_type, actor_id=e.actor_id,
                   action=e.action, subject_type=e.subject_type, subject_id=e.subject_id,
                   ip=e.ip, data=e.data)


class AuditEventList(BaseModel):
    items: list[AuditEventRead]
    next_before: int | None  # pass as ?before= for the next page
