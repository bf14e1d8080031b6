"""API shapes of the back office."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints

from bankwallet.core import audit
from bankwallet.identity import kyc, staff
from bankwallet.identity.schemas import KycApplicationRead

Reason = Annotated[str, StringConstraints(max_length=kyc.REASON_MAX_CHARS)]


class KycApplicationList(BaseModel):
    items: list[KycApplicationRead]
    next_before: uuid.UUID | None


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
