"""The exchange page: balances, the rate board, a quote with a countdown, and confirm.

Forms post normally (the page works without scripts); with HTMX the quote swaps in place.
The confirm form carries an idempotency key made when the quote was shown, so a double
submit or a retried post exchanges once (the service derives the exchange from it).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from decimal import ROUND_CEILING, Decimal
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bankwallet.core.deps import DbSession
from bankwallet.core.errors import BankwalletError
from bankwallet.core.idempotency import KEY_MAX_CHARS
from bankwallet.core.money import to_minor
from bankwallet.fx import pricing, service
from bankwallet.fx.models import Exchange, Quote
from bankwallet.identity.deps import Auth, optional_auth
from bankwallet.identity.errors import StepUpRequired
from bankwallet.wallets import service as wallets
from bankwallet.web.csrf import require_same_origin
from bankwallet.web.templating import render

router = APIRouter(include_in_schema=False)

PAGE: Final = "/wallet/exchange"
ASSETS: Final = Path(__file__).resolve().parent / "templates" / "fx"
NO_STORE: Final = {"Cache-Control": "no-store"}
AMOUNT_TEXT_MAX: Final = 32
Currency = Annotated[str, Form(min_length=3, max_length=3)]
Side = Literal["sell", "buy"]


def rate_line(quote: Quote) -> tuple[str, str, str]:
    """The quote's rate as "1 <unit> = <price> <currency>", per foreign unit when one side is
    the home currency (how people read a rate board). Display only: amounts are fixed."""
    rate = Fraction(Decimal(quote.rate))
    if quote.sell_currency == wallets.DEFAULT_CURRENCY:
        return quote.buy_currency, pricing.rate_text(1 / rate, 4, rounding=ROUND_CEILING), \
            quote.sell_currency
    return quote.sell_currency, pricing.rate_text(rate, 4), quote.buy_currency


@lru_cache(maxsize=4)
def _asset(name: str) -> tuple[bytes, str]:
    body = (ASSETS / name).read_bytes()
    return body, hashlib.sha256(body).hexdigest()[:12]


def asset_url(name: str) -> str:
    return f"{PAGE}/{name}?v={_asset(name)[1]}"


@router.get(PAGE + "/{name}", include_in_schema=False)
async def asset(name: Literal["exchange.js", "exchange.css"]) -> Response:
    """The page's own script and styles, served from this domain's folder (CSP: 'self')."""
    media = "text/javascript" if name.endswith(".js") else "text/css"
    return Response(_asset(name)[0], media_type=media,
                    headers={"Cache-Control": "public, max-age=31536000, immutable"})


def _form(sell: str = wallets.DEFAULT_CURRENCY, buy: str = "USD", amount: str = "",
          side: Side = "sell") -> dict[str, str]:
    return {"sell": sell, "buy": buy, "amount": amount, "side": side}


async def _page(request: Request, user_id: uuid.UUID, *,
                form: dict[str, str] | None = None, quote: Quote | None = None,
                done: Exchange | None = None, error: str | None = None,
                status_code: int = 200, opened: str | None = None) -> HTMLResponse:
    ledger = request.app.state.ledger
    balances = await wallets.balances(ledger, user_id)
    if not balances:  # normally opened by the user.registered consumer
        await wallets.open_wallet(ledger, user_id)
        balances = await wallets.balances(ledger, user_id)
    try:
        board: service.Board | None = await service.board()
    except BankwalletError:
        board = None
    held = {b.currency for b in balances}
    context: dict[str, Any] = {
        "balances": balances, "board": board, "currencies": wallets.SUPPORTED_CURRENCIES,
        "unopened": [c for c in wallets.SUPPORTED_CURRENCIES if c not in held],
        "form": form or _form(), "quote": quote, "done": done, "error": error,
        "opened": opened, "seconds_left": 0, "confirm_key": None,
        "asset_url": asset_url, "rate_line": rate_line,
        "spread_percent": str(Decimal(service.SPREAD_BPS) / 100),
    }
    if quote is not None:
        left = (quote.expires_at - service.clock()).total_seconds()
        context["seconds_left"] = max(0, int(left))
        context["confirm_key"] = secrets.token_urlsafe(24)
    return render(request, "fx/exchange.html", context, active="wallet",
                  status_code=status_code, headers=NO_STORE)


@router.get(PAGE, response_class=HTMLResponse)
async def exchange_page(request: Request, session: DbSession, done: uuid.UUID | None = None,
                        opened: str | None = None) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return RedirectResponse(f"/login?{urlencode({'next': PAGE})}", status_code=303)
    exchange = None
    if done is not None:
        try:
            exchange = await service.get_exchange(session, user_id=auth.user.id,
                                                  exchange_id=done)
        except BankwalletError:
            exchange = None  # not theirs, or gone: show the page without it
    shown = opened if opened in wallets.SUPPORTED_CURRENCIES else None
    return await _page(request, auth.user.id, done=exchange, opened=shown)


@router.post(PAGE + "/quote")
async def quote(request: Request, auth: Auth, session: DbSession, sell_currency: Currency,
                buy_currency: Currency,
                amount: Annotated[str, Form(max_length=AMOUNT_TEXT_MAX)] = "",
                side: Annotated[Side, Form()] = "sell") -> Response:
    require_same_origin(request)
    user_id = auth.user.id  # read now: a rollback below expires the loaded user
    form = _form(sell_currency.upper(), buy_currency.upper(), amount.strip(), side)
    try:
        minor = to_minor(amount, form["sell"] if side == "sell" else form["buy"])
        made = await service.create_quote(
            session, user_id=user_id, sell_currency=form["sell"],
            buy_currency=form["buy"], sell_amount_minor=minor if side == "sell" else None,
            buy_amount_minor=minor if side == "buy" else None)
    except BankwalletError as exc:
        await session.rollback()
        return await _page(request, user_id, form=form, error=exc.code, status_code=exc.status)
    return await _page(request, user_id, form=form, quote=made)


@router.post(PAGE + "/confirm")
async def confirm(request: Request, auth: Auth, session: DbSession,
                  quote_id: Annotated[uuid.UUID, Form()],
                  key: Annotated[str, Form(min_length=16, max_length=KEY_MAX_CHARS)]
                  ) -> Response:
    require_same_origin(request)
    user_id = auth.user.id  # read now: a rollback below expires the loaded user
    try:
        exchange = await service.execute(session, request.app.state.ledger, auth,
                                         quote_id=quote_id, idempotency_key=f"web:{key}")
    except StepUpRequired:
        await session.rollback()
        return RedirectResponse(f"/me/step-up?{urlencode({'next': PAGE})}", status_code=303)
    except BankwalletError as exc:
        await session.rollback()  # nothing a refused exchange began may commit
        return await _page(request, user_id, error=exc.code, status_code=exc.status)
    return RedirectResponse(f"{PAGE}?{urlencode({'done': str(exchange.id)})}", status_code=303)


@router.post(PAGE + "/balances")
async def open_balance(request: Request, auth: Auth, currency: Currency) -> Response:
    require_same_origin(request)
    try:
        opened = await service.open_balance(request.app.state.ledger, user_id=auth.user.id,
                                            currency=currency)
    except BankwalletError as exc:
        return await _page(request, auth.user.id, error=exc.code, status_code=exc.status)
    return RedirectResponse(f"{PAGE}?{urlencode({'opened': opened})}", status_code=303)
