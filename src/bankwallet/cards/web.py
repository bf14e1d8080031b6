"""The cards page of the web client: the customer's cards, adding one (3-D Secure when the
issuer asks), removing one. A refused form is shown again without the card number or the
security code: those are never written into a page."""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bankwallet.cards import service
from bankwallet.cards.api import RETURN_PATH, gateway_of, return_url_for
from bankwallet.cards.errors import InvalidExpiry
from bankwallet.cards.schemas import CardRead
from bankwallet.core.deps import DbSession, client_info
from bankwallet.core.errors import BankwalletError
from bankwallet.identity.deps import Auth, optional_auth
from bankwallet.identity.errors import StepUpRequired
from bankwallet.identity.service import Authenticated
from bankwallet.web.templating import render

router = APIRouter(include_in_schema=False)
PAGE = "/me/cards"
NOTICES = frozenset({"added", "removed", "pending"})
NO_STORE = {"Cache-Control": "no-store"}
Text = Annotated[str, Form(max_length=128)]


async def _page(request: Request, session: DbSession, auth: Authenticated, *,
                error: str | None = None, decline_code: str | None = None,
                notice: str | None = None, form: dict[str, str] | None = None,
                status_code: int = 200) -> HTMLResponse:
    cards = [CardRead.of(c) for c in await service.list_cards(session, auth.user.id)]
    return render(request, "cards/cards.html",
                  {"cards": cards, "connected": gateway_of(request) is not None,
                   "error": error, "decline_code": decline_code,
                   "notice": notice if notice in NOTICES else None,
                   "form": form or {"holder_name": "", "exp_month": "", "exp_year": ""}},
                  active="cards", status_code=status_code, headers=NO_STORE)


def _login(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/login?{urlencode({'next': next_path})}", status_code=303)


@router.get(PAGE, response_class=HTMLResponse)
async def cards_page(request: Request, session: DbSession, notice: str | None = None) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return _login(PAGE)
    return await _page(request, session, auth, notice=notice)


def _int(text: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 4):
        raise InvalidExpiry("Enter the month (1-12) and year printed on the card.")
    return int(text)


@router.post(PAGE)
async def add_card(request: Request, auth: Auth, session: DbSession, number: Text,
                   exp_month: Annotated[str, Form(max_length=8)],
                   exp_year: Annotated[str, Form(max_length=8)],
                   cvc: Annotated[str, Form(max_length=8)], holder_name: Text) -> Response:
    form = {"holder_name": holder_name, "exp_month": exp_month, "exp_year": exp_year}
    try:
        card = await service.add_card(
            session, auth, gateway_of(request), number=number, exp_month=_int(exp_month),
            exp_year=_int(exp_year), cvc=cvc, holder_name=holder_name,
            return_url=return_url_for(request), info=client_info(request))
    except StepUpRequired:
        # Nothing typed is carried along: the customer confirms, then enters the card again.
        return RedirectResponse(f"/me/step-up?{urlencode({'next': PAGE})}", status_code=303)
    except BankwalletError as exc:
        return await _page(request, session, auth, error=exc.code,
                           decline_code=exc.extra.get("decline_code"), form=form,
                           status_code=exc.status)
    if card.status == "requires_action" and card.challenge_url:
        # A link, not a redirect: the page's CSP (form-action 'self') would stop a form's
        # redirect to the issuer's site.
        return render(request, "cards/challenge.html", {"card": CardRead.of(card)},
                      active="cards", headers=NO_STORE)
    notice = "added" if card.status == "active" else "pending"
    return RedirectResponse(f"{PAGE}?notice={notice}", status_code=303)


@router.post(PAGE + "/{card_id}/remove")
async def remove_card(request: Request, card_id: uuid.UUID, auth: Auth,
                      session: DbSession) -> Response:
    try:
        await service.remove_card(session, auth, gateway_of(request), card_id,
                                  info=client_info(request))
    except BankwalletError as exc:
        return await _page(request, session, auth, error=exc.code, status_code=exc.status)
    return RedirectResponse(f"{PAGE}?notice=removed", status_code=303)


@router.get(RETURN_PATH, name="cards_return")
async def card_return(request: Request, card_id: uuid.UUID, session: DbSession) -> Response:
    """Where the gateway sends the customer back after 3-D Secure."""
    auth = await optional_auth(request, session)
    if auth is None:
        return _login(f"{PAGE}/{card_id}/return")
    try:
        card = await service.refresh(session, gateway_of(request), user_id=auth.user.id,
                                     card_id=card_id, info=client_info(request))
    except BankwalletError as exc:
        return await _page(request, session, auth, error=exc.code, status_code=exc.status)
    if card.status == "failed":  # the challenge failed, or the issuer declined after it
        return await _page(request, session, auth, error="card_declined",
                           decline_code=card.failure_reason)
    notice = "added" if card.status == "active" else "pending"
    return RedirectResponse(f"{PAGE}?notice={notice}", status_code=303)
