from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bankwallet.core.money import MAX_AMOUNT_MINOR
from bankwallet.history import service
from bankwallet.notifications import money as money_notifications


class ResolutionRead(BaseModel):
    """The ledger transfer that posted or voided a hold."""

    ledger_transfer_id: uuid.UUID
    status: Literal["posted", "voided"]
    amount_minor: int
    created_at: dt.datetime
    hash: str

    @classmethod
    def of(cls, r: service.Resolution) -> ResolutionRead:
        return cls(ledger_transfer_id=r.id, status=r.status,  # type: ignore[arg-type]
                   amount_minor=r.amount_minor, created_at=r.created_at, hash=r.hash)


class EntryRead(BaseModel):
    id: uuid.UUID  # the ledger transfer that started the movement: GET /history/{id}
    direction: Literal["in", "out"]
    kind: str
    amount_minor: int
    currency: str
    counterparty: str
    note: str
    status: Literal["pending", "posted", "voided"]
    created_at: dt.datetime
    ref: str

    @classmethod
    def of(cls, e: service.Entry) -> EntryRead:
        return cls(id=e.id, direction=e.direction, kind=e.kind, amount_minor=e.amount_minor,
                   currency=e.currency, counterparty=e.counterparty, note=e.note,
                   status=e.status, created_at=e.created_at, ref=e.ref)


class EntryList(BaseModel):
    items: list[EntryRead]
    # Pass back as ?cursor= with the same filters for older entries. A page can be short (even
    # empty) and still have a cursor: read on until it is null.
    next_cursor: str | None


class ReceiptRead(EntryRead):
    """An entry with what proves it: its place in the ledger's hash chain."""

    ledger_transfer_id: uuid.UUID
    ledger_seq: int
    hash: str  # hex SHA-256 of (previous hash ‖ the transfer's canonical bytes)
    code: int
    resolution: ResolutionRead | None

    @classmethod
    def of(cls, e: service.Entry) -> ReceiptRead:
        return cls(**EntryRead.of(e).model_dump(), ledger_transfer_id=e.id, ledger_seq=e.seq,
                   hash=e.hash, code=e.code,
                   resolution=ResolutionRead.of(e.resolution) if e.resolution else None)


class MoneyPreferencesRead(BaseModel):
    """How money notifications reach you besides the in-app inbox, which always gets them."""

    sms_withdrawals: bool
    sms_money_out: bool
    sms_money_out_min_minor: int  # in the movement's currency
    sms_money_in: bool
    email: bool

    @classmethod
    def of(cls, p: money_notifications.MoneyPreferences) -> MoneyPreferencesRead:
        return cls(sms_withdrawals=p.sms_withdrawals, sms_money_out=p.sms_money_out,
                   sms_money_out_min_minor=p.sms_money_out_min_minor,
                   sms_money_in=p.sms_money_in, email=p.email)


class MoneyPreferencesUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sms_withdrawals: bool
    sms_money_out: bool
    sms_money_out_min_minor: int = Field(ge=0, le=MAX_AMOUNT_MINOR)
    sms_money_in: bool
    email: bool

    def to_preferences(self) -> money_notifications.MoneyPreferences:
        return money_notifications.MoneyPreferences(**self.model_dump())
