"""API shapes of the transfers domain. Amounts are integer minor units plus a currency."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from bankwallet.core.money import MAX_AMOUNT_MINOR
from bankwallet.transfers import service
from bankwallet.transfers.models import NOTE_MAX_CHARS, MoneyRequest, Transfer
from bankwallet.wallets.codes import Code
from bankwallet.wallets.service import DEFAULT_CURRENCY

# Strict: 12.5, "12" and true are refused, not rounded or coerced.
AmountMinor = Annotated[int, Field(strict=True, gt=0, le=MAX_AMOUNT_MINOR)]
Recipient = Annotated[str, StringConstraints(min_length=1,
                                             max_length=service.RECIPIENT_MAX_CHARS)]
CurrencyCode = Annotated[str, StringConstraints(min_length=3, max_length=3)]
Note = Annotated[str, StringConstraints(max_length=NOTE_MAX_CHARS * 2)]  # cleaned to 140


class TransferCreate(BaseModel):
    """``to``: a mobile number, an e-mail address, a wallet id or a contact card's text."""

    model_config = ConfigDict(extra="forbid")
    to: Recipient
    amount_minor: AmountMinor
    currency: CurrencyCode = DEFAULT_CURRENCY
    note: Note | None = None


class TransferRead(BaseModel):
    id: uuid.UUID
    direction: Literal["sent", "received"]  # as the reader sees it
    kind: Literal["p2p", "request_payment"]
    status: Literal["pending", "posted", "failed"]
    amount_minor: int
    currency: str
    note: str | None
    counterparty: str  # the other customer, masked
    request_id: uuid.UUID | None
    ledger_transfer_id: uuid.UUID
    failure_code: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, row: Transfer, reader_id: uuid.UUID) -> TransferRead:
        sent = row.payer_user_id == reader_id
        return cls(id=row.id, direction="sent" if sent else "received",
                   kind="request_payment" if row.code == Code.REQUEST_PAYMENT else "p2p",
                   status=row.status, amount_minor=row.amount_minor, currency=row.currency,
                   note=row.note, counterparty=row.to_display if sent else row.from_display,
                   request_id=row.request_id, ledger_transfer_id=row.ledger_transfer_id,
                   failure_code=row.failure_code if sent else None,
                   created_at=row.created_at, finished_at=row.finished_at)


class TransferList(BaseModel):
    items: list[TransferRead]
    next_cursor: str | None


class RequestCreate(BaseModel):
    """``payer``: whom to ask (mobile number, e-mail address, wallet id or contact card)."""

    model_config = ConfigDict(extra="forbid")
    payer: Recipient
    amount_minor: AmountMinor
    currency: CurrencyCode = DEFAULT_CURRENCY
    note: Note | None = None


class RequestRead(BaseModel):
    id: uuid.UUID
    role: Literal["requester", "payer"]  # the reader's side of it
    status: Literal["open", "paying", "paid", "declined", "cancelled"]
    amount_minor: int
    currency: str
    note: str | None
    requester: str  # masked
    payer: str  # masked
    split_id: uuid.UUID | None
    transfer_id: uuid.UUID | None
    created_at: dt.datetime
    decided_at: dt.datetime | None

    @classmethod
    def of(cls, row: MoneyRequest, reader_id: uuid.UUID) -> RequestRead:
        return cls(id=row.id,
                   role="requester" if row.requester_user_id == reader_id else "payer",
                   status=row.status, amount_minor=row.amount_minor, currency=row.currency,
                   note=row.note, requester=row.requester_display, payer=row.payer_display,
                   split_id=row.split_id, transfer_id=row.transfer_id,
                   created_at=row.created_at, decided_at=row.decided_at)


class RequestList(BaseModel):
    items: list[RequestRead]
    next_cursor: str | None


class SplitShare(BaseModel):
    model_config = ConfigDict(extra="forbid")
    payer: Recipient
    amount_minor: AmountMinor


class SplitCreate(BaseModel):
    """Either ``participants`` (an equal split, among them and me if ``include_me``) or
    ``shares`` (explicit amounts that, with ``my_share_minor``, add up to ``total_minor``)."""

    model_config = ConfigDict(extra="forbid")
    total_minor: AmountMinor
    currency: CurrencyCode = DEFAULT_CURRENCY
    note: Note | None = None
    participants: Annotated[list[Recipient], Field(
        min_length=1, max_length=service.SPLIT_PARTICIPANTS_MAX)] | None = None
    include_me: bool = True
    shares: Annotated[list[SplitShare], Field(
        min_length=1, max_length=service.SPLIT_PARTICIPANTS_MAX)] | None = None
    my_share_minor: Annotated[int, Field(strict=True, ge=0, le=MAX_AMOUNT_MINOR)] = 0

    @model_validator(mode="after")
    def _one_way(self) -> SplitCreate:
        if (self.participants is None) == (self.shares is None):
            raise ValueError("give either participants (an equal split) or shares")
        return self


class SplitRead(BaseModel):
    id: uuid.UUID
    mode: Literal["equal", "explicit"]
    total_minor: int
    my_share_minor: int
    currency: str
    note: str | None
    created_at: dt.datetime
    requests: list[RequestRead]

    @classmethod
    def of(cls, view: service.SplitView, reader_id: uuid.UUID) -> SplitRead:
        s = view.split
        return cls(id=s.id, mode=s.mode, total_minor=s.total_minor,
                   my_share_minor=s.my_share_minor, currency=s.currency, note=s.note,
                   created_at=s.created_at,
                   requests=[RequestRead.of(r, reader_id) for r in view.requests])


class SplitList(BaseModel):
    items: list[SplitRead]
    next_cursor: str | None


class ContactCardRead(BaseModel):
    wallet_id: uuid.UUID
    display: str  # how payers will see me, masked
    payload: str  # the QR's text: bankwallet:pay?to=<wallet id>&v=1&sig=<HMAC>
    svg: str
