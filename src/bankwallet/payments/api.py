"""Our payments JSON API: the merchant dashboard's (a signed-in member acts for a merchant)
and the customer's (see and pay a payment intent from the wallet). Merchants' servers use the
Stripe-compatible API (``stripe_api``) with an API key instead."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from bankwallet.cards.api import gateway_of
from bankwallet.core import idempotency
from bankwallet.core.deps import DbSession
from bankwallet.core.errors import NotFound
from bankwallet.identity.deps import Auth
from bankwallet.payments import objects, pos, service, stripe_api, webhooks
from bankwallet.payments.errors import PaymentIntentNotFound
from bankwallet.payments.models import Merchant
from bankwallet.payments.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyRead,
    CancelCreate,
    CaptureCreate,
    CustomerIntentRead,
    EventList,
    MerchantBalanceRead,
    MerchantCreate,
    MerchantList,
    MerchantRead,
    PayCreate,
    PaymentIntentCreate,
    PaymentIntentList,
    PaymentIntentRead,
    RefundCreate,
    RefundList,
    RefundRead,
    SettlementCreate,
    SettlementList,
    SettlementRead,
    WebhookDeliveryList,
    WebhookDeliveryRead,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointList,
    WebhookEndpointRead,
)

_json = APIRouter(prefix="/api/v1", tags=["payments"])

Limit = Annotated[int, Query(ge=1, le=service.PAGE_MAX)]


def merchant_scope(merchant_id: uuid.UUID) -> str:
    return f"merchant:{merchant_id}"


def user_scope(user_id: uuid.UUID) -> str:
    return f"user:{user_id}"


def _key(request: Request) -> str:
    return idempotency.check_key(request.headers.get(idempotency.HEADER))


async def _actor(session: DbSession, auth: Auth, merchant_id: uuid.UUID, *,
                 write: bool = False) -> service.Actor:
    merchant = await service.merchant_for_user(session, auth.user.id, merchant_id, write=write)
    return service.Actor(merchant=merchant, auth=auth)


# -- merchants -------------------------------------------------------------------------------


@_json.post("/merchants", status_code=201)
async def create_merchant(request: Request, body: MerchantCreate, auth: Auth,
                          session: DbSession) -> MerchantRead:
    merchant = await service.create_merchant(
        session, request.app.state.ledger, auth, name=body.name, mcc=body.mcc, city=body.city,
        country=body.country, bank_account=body.bank_account)
    return MerchantRead.of(merchant, "owner")


@_json.get("/merchants")
async def list_merchants(auth: Auth, session: DbSession) -> MerchantList:
    found = await service.merchants_of(session, auth.user.id)
    return MerchantList(data=[MerchantRead.of(m, role) for m, role in found])


@_json.get("/merchants/{merchant_id}")
async def get_merchant(merchant_id: uuid.UUID, auth: Auth, session: DbSession) -> MerchantRead:
    actor = await _actor(session, auth, merchant_id)
    return MerchantRead.of(actor.merchant, "owner")


@_json.get("/merchants/{merchant_id}/balances")
async def merchant_balances(request: Request, merchant_id: uuid.UUID, auth: Auth,
                            session: DbSession) -> list[MerchantBalanceRead]:
    actor = await _actor(session, auth, merchant_id)
    found = await service.merchant_balances(request.app.state.ledger, actor.merchant.id)
    return [MerchantBalanceRead.of(b) for b in found]


# -- API keys --------------------------------------------------------------------------------


@_json.post("/merchants/{merchant_id}/api-keys", status_code=201)
async def create_api_key(merchant_id: uuid.UUID, body: ApiKeyCreate, auth: Auth,
                         session: DbSession) -> ApiKeyCreated:
    actor = await _actor(session, auth, merchant_id, write=True)
    row, key = await service.create_api_key(session, auth, actor.merchant, name=body.name or "",
                                            kind=body.kind, scopes=body.scopes)
    return ApiKeyCreated(**ApiKeyRead.of(row).model_dump(), key=key)


@_json.get("/merchants/{merchant_id}/api-keys")
async def list_api_keys(merchant_id: uuid.UUID, auth: Auth, session: DbSession) -> ApiKeyList:
    actor = await _actor(session, auth, merchant_id)
    return ApiKeyList(data=[ApiKeyRead.of(k)
                            for k in await service.list_api_keys(session, actor.merchant)])


@_json.post("/merchants/{merchant_id}/api-keys/{key_id}/revoke")
async def revoke_api_key(merchant_id: uuid.UUID, key_id: uuid.UUID, auth: Auth,
                         session: DbSession) -> ApiKeyRead:
    actor = await _actor(session, auth, merchant_id, write=True)
    return ApiKeyRead.of(await service.revoke_api_key(session, auth, actor.merchant, key_id))


# -- payment intents (the merchant's side) -------------------------------------------------


@_json.post("/merchants/{merchant_id}/payment-intents", status_code=201)
async def create_intent(request: Request, merchant_id: uuid.UUID, body: PaymentIntentCreate,
                        auth: Auth, session: DbSession):
    actor = await _actor(session, auth, merchant_id, write=True)
    key = request.headers.get(idempotency.HEADER)

    async def work() -> PaymentIntentRead:
        intent = await service.create_intent(
            session, request.app.state.ledger, actor, amount_minor=body.amount_minor,
            currency=body.currency, capture_method=body.capture_method,
            payment_method_types=body.payment_method_types, description=body.description,
            metadata=body.metadata, return_url=body.return_url,
            intent_id=service.intent_id_for_key(actor.merchant.id, key), idempotency_key=key)
        return PaymentIntentRead.of(intent)

    if key is None:  # creating moves no money: the key is welcome, not required
        return await work()
    return await idempotency.run(request, session, scope=merchant_scope(merchant_id), body=body,
                                 work=work, status=201)


@_json.get("/merchants/{merchant_id}/payment-intents")
async def list_intents(merchant_id: uuid.UUID, auth: Auth, session: DbSession,
                       limit: Limit = 20, starting_after: str | None = None,
                       status: Annotated[list[str] | None, Query(max_length=7)] = None,
                       currency: Annotated[str | None, Query(max_length=3)] = None,
                       created_from: dt.datetime | None = None,
                       created_before: dt.datetime | None = None) -> PaymentIntentList:
    actor = await _actor(session, auth, merchant_id)
    cursor = objects.parse_public_id("payment_intent", starting_after) if starting_after else None
    if starting_after and cursor is None:
        raise PaymentIntentNotFound(param="starting_after")
    found, more = await service.list_intents(
        session, actor.merchant, limit=limit, starting_after=cursor,
        statuses=[s for s in (status or []) if s in set(service.Status)],
        currency=currency.upper() if currency else None,
        created_from=_aware(created_from), created_before=_aware(created_before))
    data = [PaymentIntentRead.of(i) for i in found]
    return PaymentIntentList(data=data, has_more=more,
                             next_starting_after=data[-1].id if more and data else None)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@_json.get("/merchants/{merchant_id}/payment-intents/{intent_id}")
async def get_intent(merchant_id: uuid.UUID, intent_id: str, auth: Auth,
                     session: DbSession) -> PaymentIntentRead:
    actor = await _actor(session, auth, merchant_id)
    intent = await service.get_intent(session, actor.merchant,
                                      objects.parse_public_id("payment_intent", intent_id))
    return PaymentIntentRead.of(intent)


@_json.post("/merchants/{merchant_id}/payment-intents/{intent_id}/capture")
async def capture_intent(request: Request, merchant_id: uuid.UUID, intent_id: str,
                         body: CaptureCreate, auth: Auth, session: DbSession) -> JSONResponse:
    actor = await _actor(session, auth, merchant_id, write=True)

    async def work() -> PaymentIntentRead:
        intent = await service.capture_intent(
            session, request.app.state.ledger, actor,
            objects.parse_public_id("payment_intent", intent_id),
            amount_to_capture=body.amount_to_capture_minor, gateway=gateway_of(request))
        return PaymentIntentRead.of(intent)

    return await idempotency.run(request, session, scope=merchant_scope(merchant_id), body=body,
                                 work=work)


@_json.post("/merchants/{merchant_id}/payment-intents/{intent_id}/cancel")
async def cancel_intent(request: Request, merchant_id: uuid.UUID, intent_id: str,
                        body: CancelCreate, auth: Auth, session: DbSession) -> JSONResponse:
    actor = await _actor(session, auth, merchant_id, write=True)

    async def work() -> PaymentIntentRead:
        intent = await service.cancel_intent(
            session, request.app.state.ledger, actor,
            objects.parse_public_id("payment_intent", intent_id),
            reason=body.cancellation_reason, gateway=gateway_of(request))
        return PaymentIntentRead.of(intent)

    return await idempotency.run(request, session, scope=merchant_scope(merchant_id), body=body,
                                 work=work)


@_json.post("/merchants/{merchant_id}/payment-intents/{intent_id}/refunds", status_code=201)
async def create_refund(request: Request, merchant_id: uuid.UUID, intent_id: str,
                        body: RefundCreate, auth: Auth, session: DbSession) -> JSONResponse:
    actor = await _actor(session, auth, merchant_id, write=True)

    async def work() -> RefundRead:
        refund = await service.create_refund(
            session, request.app.state.ledger, actor,
            intent_id=objects.parse_public_id("payment_intent", intent_id),
            refund_id=service.refund_id_for_key(actor.merchant.id, _key(request)),
            amount_minor=body.amount_minor, reason=body.reason, metadata=body.metadata,
            gateway=gateway_of(request))
        return RefundRead.of(refund)

    return await idempotency.run(request, session, scope=merchant_scope(merchant_id), body=body,
                                 work=work, status=201)


@_json.get("/merchants/{merchant_id}/payment-intents/{intent_id}/refunds")
async def list_refunds(merchant_id: uuid.UUID, intent_id: str, auth: Auth,
                       session: DbSession) -> RefundList:
    actor = await _actor(session, auth, merchant_id)
    intent = await service.get_intent(session, actor.merchant,
                                      objects.parse_public_id("payment_intent", intent_id))
    return RefundList(data=[RefundRead.of(r) for r in await service.refunds_of(session, intent)])


@_json.get("/merchants/{merchant_id}/events")
async def list_events(merchant_id: uuid.UUID, auth: Auth, session: DbSession,
                      limit: Limit = 20, starting_after: str | None = None,
                      type: Annotated[str | None, Query(max_length=64)] = None) -> EventList:
    actor = await _actor(session, auth, merchant_id)
    cursor = objects.parse_public_id("event", starting_after) if starting_after else None
    found, more = await service.list_events(session, actor.merchant, limit=limit,
                                            starting_after=cursor,
                                            types=[type] if type else ())
    pending = await service.pending_webhooks(session, found)
    return EventList(data=[objects.event_object(e, pending_webhooks=pending.get(e.id, 0))
                           for e in found], has_more=more)


# -- webhooks --------------------------------------------------------------------------------


@_json.post("/merchants/{merchant_id}/webhook-endpoints", status_code=201)
async def create_endpoint(merchant_id: uuid.UUID, body: WebhookEndpointCreate, auth: Auth,
                          session: DbSession) -> WebhookEndpointCreated:
    actor = await _actor(session, auth, merchant_id, write=True)
    endpoint, secret = await webhooks.create_endpoint(
        session, auth, actor.merchant, url=body.url, enabled_events=body.enabled_events,
        description=body.description)
    return WebhookEndpointCreated(**WebhookEndpointRead.of(endpoint).model_dump(), secret=secret)


@_json.get("/merchants/{merchant_id}/webhook-endpoints")
async def list_endpoints(merchant_id: uuid.UUID, auth: Auth,
                         session: DbSession) -> WebhookEndpointList:
    actor = await _actor(session, auth, merchant_id)
    return WebhookEndpointList(data=[WebhookEndpointRead.of(e) for e in
                                     await webhooks.list_endpoints(session, actor.merchant)])


@_json.post("/merchants/{merchant_id}/webhook-endpoints/{endpoint_id}/{action}")
async def set_endpoint(merchant_id: uuid.UUID, endpoint_id: uuid.UUID, action: str, auth: Auth,
                       session: DbSession) -> WebhookEndpointRead:
    if action not in ("enable", "disable"):
        raise NotFound("No such action.")
    actor = await _actor(session, auth, merchant_id, write=True)
    endpoint = await webhooks.set_endpoint_status(session, auth, actor.merchant, endpoint_id,
                                                  enabled=action == "enable")
    return WebhookEndpointRead.of(endpoint)


@_json.get("/merchants/{merchant_id}/webhook-deliveries")
async def list_deliveries(merchant_id: uuid.UUID, auth: Auth, session: DbSession,
                          limit: Annotated[int, Query(ge=1, le=webhooks.LOG_PAGE_MAX)] = 50,
                          endpoint_id: uuid.UUID | None = None) -> WebhookDeliveryList:
    actor = await _actor(session, auth, merchant_id)
    views = await webhooks.delivery_log(session, actor.merchant, limit=limit,
                                        endpoint_id=endpoint_id)
    return WebhookDeliveryList(data=[WebhookDeliveryRead.of(v) for v in views])


@_json.post("/merchants/{merchant_id}/webhook-deliveries/{delivery_id}/replay")
async def replay_delivery(merchant_id: uuid.UUID, delivery_id: uuid.UUID, auth: Auth,
                          session: DbSession) -> dict[str, str]:
    actor = await _actor(session, auth, merchant_id, write=True)
    delivery = await webhooks.replay(session, auth, actor.merchant, delivery_id)
    return {"id": str(delivery.id), "status": delivery.status}


# -- settlement ------------------------------------------------------------------------------


@_json.post("/merchants/{merchant_id}/settlements", status_code=201)
async def create_settlement(request: Request, merchant_id: uuid.UUID, body: SettlementCreate,
                            auth: Auth, session: DbSession) -> JSONResponse:
    actor = await _actor(session, auth, merchant_id, write=True)

    async def work() -> SettlementRead:
        settlement = await service.request_settlement(
            session, request.app.state.ledger, actor,
            settlement_id=service.settlement_id_for_key(actor.merchant.id, _key(request)),
            currency=body.currency, amount_minor=body.amount_minor)
        return SettlementRead.of(settlement)

    return await idempotency.run(request, session, scope=merchant_scope(merchant_id), body=body,
                                 work=work, status=201)


@_json.get("/merchants/{merchant_id}/settlements")
async def list_settlements(merchant_id: uuid.UUID, auth: Auth,
                           session: DbSession) -> SettlementList:
    actor = await _actor(session, auth, merchant_id)
    return SettlementList(data=[SettlementRead.of(s) for s in
                                await service.list_settlements(session, actor.merchant)])


# -- the customer's side ---------------------------------------------------------------------

async def customer_view(session: DbSession, user_id: uuid.UUID,
                        handle: str) -> CustomerIntentRead:
    intent = await service.intent_for_customer(session, user_id, handle)
    merchant = await session.get(Merchant, intent.merchant_id)
    assert merchant is not None
    return CustomerIntentRead.of(intent, merchant.name,
                                 charge=await service.latest_charge(session, intent))


# Where the card gateway sends the customer back after 3-D Secure (``web.card_return``).
CARD_RETURN_PATH = "/pay/{handle}/card-return"


def card_return_url(request: Request, handle: str) -> str:
    return str(request.base_url).rstrip("/") + CARD_RETURN_PATH.format(handle=quote(handle))


@_json.get("/payment-intents/{handle}")
async def customer_intent(request: Request, handle: str, auth: Auth,
                          session: DbSession) -> CustomerIntentRead:
    """What the customer is asked to pay: the path holds the intent's client secret. A card
    payment still waiting on the gateway (3-D Secure) is asked about first."""
    await service.follow_card_payment(session, request.app.state.ledger, gateway_of(request),
                                      user_id=auth.user.id, handle=handle)
    return await customer_view(session, auth.user.id, handle)


@_json.post("/payment-intents/{handle}/pay")
async def pay(request: Request, handle: str, auth: Auth, session: DbSession,
              body: PayCreate | None = None) -> JSONResponse:
    """Pay the intent from the wallet balance, or with one of the customer's saved cards
    (``card_id``); ``Idempotency-Key`` required. A card that needs 3-D Secure answers
    ``requires_action`` with ``next_action_url``: send the customer there."""
    card_id = body.card_id if body is not None else None

    async def work() -> CustomerIntentRead:
        ledger, gateway = request.app.state.ledger, gateway_of(request)
        if card_id is None:
            intent = await service.pay_from_wallet(session, ledger, auth, handle=handle,
                                                   key=_key(request), gateway=gateway)
        else:
            intent = await service.pay_with_card(
                session, ledger, gateway, auth, handle=handle, card_id=card_id,
                key=_key(request), return_url=card_return_url(request, handle))
        return await customer_view(session, auth.user.id,
                                   objects.public_id("payment_intent", intent.id))

    fingerprint: dict[str, str] = {"handle": handle}
    if card_id is not None:
        fingerprint["card_id"] = str(card_id)
    return await idempotency.run(request, session, scope=user_scope(auth.user.id),
                                 body=fingerprint, work=work)


# The app mounts ``router``: our JSON API and the Stripe-compatible one.
router = APIRouter()
router.include_router(_json)
router.include_router(stripe_api.router)
router.include_router(pos.api_router)  # consumer-presented codes (付款码)
