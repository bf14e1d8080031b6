from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from bankwallet.ledger.types import Account, Outcome, Transfer

Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
UserData = dict[str, str | int | bool | None]


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: uuid.UUID
    ledger: Currency
    kind: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    flags: Annotated[StrictInt, Field(ge=0, le=6)] = 0
    owner_id: Annotated[str, StringConstraints(max_length=64)] | None = None


class AccountCreateList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accounts: Annotated[list[AccountCreate], Field(min_length=1, max_length=1000)]


class AccountRead(BaseModel):
    id: uuid.UUID
    ledger: str
    kind: str
    flags: int
    owner_id: str | None
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    balance: int
    available: int
    created_at: dt.datetime

    @classmethod
    def of(cls, a: Account) -> AccountRead:
        return cls(id=a.id, ledger=a.ledger, kind=a.kind, flags=a.flags, owner_id=a.owner_id,
                   debits_pending=a.debits_pending, debits_posted=a.debits_posted,
                   credits_pending=a.credits_pending, credits_posted=a.credits_posted,
                   balance=a.balance, available=a.available, created_at=a.created_at)


class TransferCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: uuid.UUID
    debit_account_id: uuid.UUID | None = None
    credit_account_id: uuid.UUID | None = None
    # Strict: a money API does not guess that "100", 1.0 or true meant an amount.
    amount: StrictInt | None = None
    ledger: Currency | None = None
    code: Annotated[StrictInt, Field(ge=0, le=65535)] = 0
    flags: Annotated[StrictInt, Field(ge=0, le=2**16)] = 0
    pending_id: uuid.UUID | None = None
    timeout_s: Annotated[StrictInt, Field(ge=0, le=2**31 - 1)] = 0
    user_data: UserData | None = None


class TransferCreateList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    transfers: Annotated[list[TransferCreate], Field(min_length=1, max_length=8190)]


class TransferRead(BaseModel):
    id: uuid.UUID
    seq: int
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount: int
    ledger: str
    code: int
    flags: int
    pending_id: uuid.UUID | None
    timeout_s: int
    expires_at: dt.datetime | None
    user_data: dict[str, Any] | None
    created_at: dt.datetime
    hash: str

    @classmethod
    def of(cls, t: Transfer) -> TransferRead:
        return cls(id=t.id, seq=t.seq, debit_account_id=t.debit_account_id,
                   credit_account_id=t.credit_account_id, amount=t.amount, ledger=t.ledger,
                   code=t.code, flags=t.flags, pending_id=t.pending_id, timeout_s=t.timeout_s,
                   expires_at=t.expires_at, user_data=t.user_data, created_at=t.created_at,
                   hash=t.hash.hex())


class TransferResultRead(BaseModel):
    index: int
    result: str
    ok: bool
    message: str
    transfer: TransferRead | None = None

    @classmethod
    def of(cls, index: int, o: Outcome) -> TransferResultRead:
        return cls(index=index, result=o.result.value, ok=o.ok, message=o.message,
                   transfer=TransferRead.of(o.transfer) if o.transfer and o.ok else None)


class TransferResultList(BaseModel):
    results: list[TransferResultRead]


class TransferList(BaseModel):
    items: list[TransferRead]
    next_cursor: int | None
