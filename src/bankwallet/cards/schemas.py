"""The card vault's API shapes. A card is only ever shown masked; the number and the security
code come in (``CardCreate``) and never go out."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bankwallet.cards import rules, service
from bankwallet.cards.models import Card


class CardCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Shapes only; the rules (Luhn, brand, expiry, code) are the service's, with their own
    # error codes. repr=False: a logged model never shows the number or the code.
    number: str = Field(min_length=1, max_length=32, repr=False)
    exp_month: int
    exp_year: int
    cvc: str = Field(min_length=1, max_length=8, repr=False)
    holder_name: str = Field(min_length=1, max_length=128)


class NextAction(BaseModel):
    type: Literal["redirect"] = "redirect"
    url: str  # send the customer here (3-D Secure); they come back to the wallet


class CardRead(BaseModel):
    id: uuid.UUID
    status: str  # verifying | requires_action | active (failed: once, as a verification ends)
    brand: str
    funding: str
    last4: str
    masked_number: str
    exp_month: int
    exp_year: int
    expired: bool
    holder_name: str | None
    created_at: dt.datetime
    verified_at: dt.datetime | None
    next_action: NextAction | None

    @classmethod
    def of(cls, card: Card) -> CardRead:
        return cls(id=card.id, status=card.status, brand=card.brand, funding=card.funding,
                   last4=card.last4, masked_number=rules.masked_number(card.brand, card.last4),
                   exp_month=card.exp_month, exp_year=card.exp_year,
                   expired=service.is_expired(card), holder_name=service.holder_name(card),
                   created_at=card.created_at, verified_at=card.verified_at,
                   next_action=NextAction(url=card.challenge_url)
                   if card.status == "requires_action" and card.challenge_url else None)


class CardList(BaseModel):
    items: list[CardRead]


class WebhookReceived(BaseModel):
    received: bool = True
    duplicate: bool = False
