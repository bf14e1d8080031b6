from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from bankwallet.wallets import service


class BalanceRead(BaseModel):
    currency: str
    available_minor: int
    posted_minor: int
    incoming_minor: int
    outgoing_minor: int

    @classmethod
    def of(cls, b: service.Balance) -> BalanceRead:
        return cls(currency=b.currency, available_minor=b.available_minor,
                   posted_minor=b.posted_minor, incoming_minor=b.incoming_minor,
                   outgoing_minor=b.outgoing_minor)


class WalletRead(BaseModel):
    wallet_id: str  # what others type to send money here (the user id)
    balances: list[BalanceRead]


class BalanceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    currency: str
