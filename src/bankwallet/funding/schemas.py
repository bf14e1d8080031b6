"""The funding API's shapes. Amounts are integer minor units plus an ISO 4217 code."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from bankwallet.funding.models import BankAccount, Movement

NUMBER_MAX_CHARS = 64
AMOUNT_MAX_MINOR = 10**15  # the sandbox bank's bound; KYC limits are far lower
PAGE_MAX = 100

Name = Annotated[str, StringConstraints(min_length=1, max_length=64)]
HolderName = Annotated[str, StringConstraints(min_length=1, max_length=140)]
Currency = Annotated[str, StringConstraints(min_length=3, max_length=3)]
FailureMode = Literal["decline", "insufficient_funds", "timeout", "duplicate_webhook",
                      "webhook_never_sent", "late_settlement", "reversal_after_success"]


def masked(last4: str) -> str:
    return f"····{last4}"


class BankAccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: Annotated[str, StringConstraints(min_length=1, max_length=NUMBER_MAX_CHARS)]
    name: Name | None = None
    # Ignored once the user's identity is verified: the bank checks the verified legal name.
    holder_name: HolderName | None = None


class BankAccountUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name


class BankAccountRead(BaseModel):
    id: uuid.UUID
    name: str
    kind: Literal["iban", "card"]
    country: str | None
    number_masked: str
    verified_at: dt.datetime
    created_at: dt.datetime

    @classmethod
    def of(cls, account: BankAccount) -> BankAccountRead:
        return cls(id=account.id, name=account.name, kind=account.kind,  # type: ignore[arg-type]
                   country=account.country, number_masked=masked(account.last4),
                   verified_at=account.verified_at, created_at=account.created_at)


class BankAccountList(BaseModel):
    items: list[BankAccountRead]


class MovementCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bank_account_id: uuid.UUID
    amount_minor: int = Field(gt=0, le=AMOUNT_MAX_MINOR, strict=True)
    currency: Currency = "CNY"
    # The sandbox bank's failure modes, for development and tests; refused in production.
    failure_mode: FailureMode | None = None


class TopupCreate(MovementCreate):
    pass


class WithdrawalCreate(MovementCreate):
    pass


class MovementRead(BaseModel):
    id: uuid.UUID
    kind: Literal["topup", "withdrawal"]
    status: Literal["pending", "succeeded", "failed", "reversed"]
    amount_minor: int
    currency: str
    bank_account_id: uuid.UUID
    bank_account_masked: str
    failure_reason: str | None
    # A reversed top-up the wallet could not fully give back: the bank's operations follow up.
    shortfall_minor: int
    created_at: dt.datetime
    updated_at: dt.datetime
    settled_at: dt.datetime | None

    @classmethod
    def of(cls, movement: Movement, last4: str) -> MovementRead:
        return cls(id=movement.id, kind=movement.kind,  # type: ignore[arg-type]
                   status=movement.status,  # type: ignore[arg-type]
                   amount_minor=movement.amount_minor, currency=movement.currency,
                   bank_account_id=movement.bank_account_id,
                   bank_account_masked=masked(last4), failure_reason=movement.failure_reason,
                   shortfall_minor=movement.shortfall_minor, created_at=movement.created_at,
                   updated_at=movement.updated_at, settled_at=movement.settled_at)


class MovementList(BaseModel):
    items: list[MovementRead]
    next_cursor: str | None


class WebhookAck(BaseModel):
    status: Literal["applied", "duplicate", "ignored"]
