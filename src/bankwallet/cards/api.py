"""The card vault's JSON API: list, add (with a fresh second factor), read, remove; and the
card gateway's webhooks (card verifications here, card payments of intents in ``payments``)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from bankwallet.cards import service
from bankwallet.cards.errors import CardPaymentsNotConnected
from bankwallet.cards.schemas import CardCreate, CardList, CardRead, WebhookReceived
from bankwallet.connectors.gateway.base import CardGateway
from bankwallet.core.deps import DbSession, client_info
from bankwallet.identity.deps import Auth
from bankwallet.identity.service import RequestInfo
from bankwallet.payments import service as payments_service

router = APIRouter(prefix="/api/v1/cards", tags=["cards"])
Info = Annotated[RequestInfo, Depends(client_info)]


def gateway_of(request: Request) -> CardGateway | None:
    """The app's card gateway (``cards.tasks.startup``); None when none is configured."""
    return getattr(request.app.state, "card_gateway", None)


RETURN_PATH = "/me/cards/{card_id}/return"  # the web client's page (cards.web.card_return)


def return_url_for(request: Request):
    """Where the gateway sends the customer back after 3-D Secure. Built from the path, not
    ``url_for``, which walks every route of the app on its first call."""
    base = str(request.base_url).rstrip("/")
    return lambda card_id: base + RETURN_PATH.format(card_id=card_id)


@router.get("")
async def list_cards(auth: Auth, session: DbSession) -> CardList:
    return CardList(items=[CardRead.of(c) for c in await service.list_cards(session,
                                                                            auth.user.id)])


@router.post("", status_code=201, responses={202: {"model": CardRead}})
async def add_card(request: Request, body: CardCreate, auth: Auth, session: DbSession,
                   info: Info) -> JSONResponse:
    """Add a card (needs a second factor from the last few minutes: else 403
    ``step_up_required``). 201 when it is ready; 202 ``requires_action`` when the issuer asks
    for 3-D Secure: send the customer to ``next_action.url``."""
    card = await service.add_card(
        session, auth, gateway_of(request), number=body.number, exp_month=body.exp_month,
        exp_year=body.exp_year, cvc=body.cvc, holder_name=body.holder_name,
        return_url=return_url_for(request), info=info)
    read = CardRead.of(card)
    return JSONResponse(read.model_dump(mode="json"),
                        status_code=201 if card.status == "active" else 202)


@router.get("/{card_id}")
async def get_card(request: Request, card_id: uuid.UUID, auth: Auth, session: DbSession,
                   info: Info) -> CardRead:
    """One card; a card still being verified is checked with the gateway first."""
    card = await service.refresh(session, gateway_of(request), user_id=auth.user.id,
                                 card_id=card_id, info=info)
    return CardRead.of(card)


@router.delete("/{card_id}", status_code=204)
async def remove_card(request: Request, card_id: uuid.UUID, auth: Auth, session: DbSession,
                      info: Info) -> Response:
    await service.remove_card(session, auth, gateway_of(request), card_id, info=info)
    return Response(status_code=204)


@router.post("/gateway/webhooks")
async def gateway_webhook(request: Request, session: DbSession) -> WebhookReceived:
    """The card gateway's signed events (``Bankwallet-Signature``); a bad signature is 400."""
    gateway = gateway_of(request)
    if gateway is None:
        raise CardPaymentsNotConnected()
    event = gateway.parse_webhook(await request.body(), request.headers)
    handled = await service.handle_gateway_event(session, gateway, event)
    if handled:  # once per event id: a payment of an intent is the payments domain's
        await payments_service.apply_gateway_event(session, request.app.state.ledger, gateway,
                                                   event)
    return WebhookReceived(duplicate=not handled)
