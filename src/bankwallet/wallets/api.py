"""The customer's balances."""

from __future__ import annotations

from fastapi import APIRouter, Request

from bankwallet.identity.deps import Auth
from bankwallet.wallets import service
from bankwallet.wallets.schemas import BalanceCreate, BalanceRead, WalletRead

router = APIRouter(prefix="/api/v1/wallet", tags=["wallet"])


@router.get("")
async def wallet(request: Request, auth: Auth) -> WalletRead:
    ledger = request.app.state.ledger
    found = await service.balances(ledger, auth.user.id)
    if not found:  # opened by the user.registered consumer; open now if it has not run yet
        await service.open_wallet(ledger, auth.user.id)
        found = await service.balances(ledger, auth.user.id)
    return WalletRead(wallet_id=str(auth.user.id), balances=[BalanceRead.of(b) for b in found])


@router.post("/balances", status_code=201)
async def open_balance(request: Request, body: BalanceCreate, auth: Auth) -> BalanceRead:
    """Hold another currency (opening one twice is harmless)."""
    currency = service.supported(body.currency)
    await service.open_wallet(request.app.state.ledger, auth.user.id, currency)
    return BalanceRead.of(await service.balance(request.app.state.ledger, auth.user.id, currency))
