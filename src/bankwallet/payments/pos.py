"""Consumer-presented payments at the edges: the customer's payment code page (``/pay/code``)
and JSON API (``/api/v1/consumer-codes``), the merchant's point-of-sale page
(``/merchant/{id}/pos``) and the charge endpoints (a signed-in member, or a merchant's server
with its secret API key). The rules live in ``consumer_codes``.

``web_router`` is included by ``payments.web`` before ``/pay/{handle}`` (which would match
``/pay/code``); ``api_router`` by ``payments.api``."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.core import idempotency
from bankwallet.core.deps import DbSession
from bankwallet.core.errors import BankwalletError
from bankwallet.core.money import InvalidAmount, to_minor
from bankwallet.identity.deps import Auth, optional_auth
from bankwallet.payments import consumer_codes, forms, objects, service, stripe_api
from bankwallet.payments import qr as payments_qr
from bankwallet.payments.code_models import ConsumerCode
from bankwallet.payments.errors import ApiKeyInvalid
from bankwallet.payments.pages import login_redirect, merchant_member
from bankwallet.payments.schemas import PaymentIntentRead
from bankwallet.qr import render as qr_render
from bankwallet.web.templating import render

api_router = APIRouter(prefix="/api/v1", tags=["payments"])
web_router = APIRouter(include_in_schema=False)

POLL_EVERY_S = 2
# Fetch the next code this long before the shown one expires (a till may be mid-typing).
REFRESH_BEFORE_S = 10
# An unattended page stops drawing new codes after this many (about eight minutes).
AUTO_REFRESH_MAX = 10
QR_SCALE = 6
CODE_FIELD_MAX_CHARS = 64


# -- schemas ---------------------------------------------------------------------------------


class ConsumerCodeIssued(BaseModel):
    """A new code: ``code`` is shown in this response only (it is not stored)."""

    id: uuid.UUID
    code: str
    code_display: str
    currency: str
    status: str
    created_at: dt.datetime
    expires_at: dt.datetime
    ttl_s: int


class ConsumerCodePaymentRead(BaseModel):
    id: str
    status: str
    amount_minor: int
    currency: str
    merchant_name: str
    failure_code: str | None


class ConsumerCodeRead(BaseModel):
    id: uuid.UUID
    status: str  # active | expired | revoked | used
    currency: str
    last4: str
    created_at: dt.datetime
    expires_at: dt.datetime
    used_at: dt.datetime | None
    payment: ConsumerCodePaymentRead | None


class ConsumerCodeCharge(BaseModel):
    code: str = Field(max_length=CODE_FIELD_MAX_CHARS)
    amount_minor: int
    currency: str = Field(default=consumer_codes.CODE_CURRENCY, max_length=3)
    description: str | None = Field(default=None, max_length=service.DESCRIPTION_MAX_CHARS)


async def _read(session: AsyncSession, row: ConsumerCode) -> ConsumerCodeRead:
    payment = await consumer_codes.payment_of(session, row)
    return ConsumerCodeRead(
        id=row.id, status=consumer_codes.state_of(row), currency=row.currency, last4=row.last4,
        created_at=row.created_at, expires_at=row.expires_at, used_at=row.used_at,
        payment=None if payment is None else ConsumerCodePaymentRead(
            id=objects.public_id("payment_intent", payment.intent.id),
            status=payment.intent.status, amount_minor=payment.intent.amount_minor,
            currency=payment.intent.currency, merchant_name=payment.merchant_name,
            failure_code=(payment.intent.last_payment_error or {}).get("code")))


# -- the customer's JSON API -----------------------------------------------------------------


@api_router.post("/consumer-codes", status_code=201)
async def issue_code(auth: Auth, session: DbSession) -> JSONResponse:
    """A new one-time payment code (the previous one stops working)."""
    row, code = await consumer_codes.issue(session, user_id=auth.user.id)
    body = ConsumerCodeIssued(id=row.id, code=code, code_display=consumer_codes.grouped(code),
                              currency=row.currency, status=row.status,
                              created_at=row.created_at, expires_at=row.expires_at,
                              ttl_s=consumer_codes.CODE_TTL_S)
    return JSONResponse(body.model_dump(mode="json"), status_code=201,
                        headers={"Cache-Control": "no-store"})


@api_router.get("/consumer-codes/{code_id}")
async def get_code(code_id: uuid.UUID, auth: Auth, session: DbSession) -> ConsumerCodeRead:
    """Whether the code is still live, and what it paid once a merchant charged it."""
    return await _read(session, await consumer_codes.get_for_user(session, auth.user.id,
                                                                  code_id))


# -- the merchant's JSON API -----------------------------------------------------------------


async def _charge_json(request: Request, session: AsyncSession, actor: service.Actor,
                       body: ConsumerCodeCharge) -> JSONResponse:
    async def work() -> PaymentIntentRead:
        intent = await consumer_codes.charge(
            session, request.app.state.ledger, actor, code_text=body.code,
            amount_minor=body.amount_minor, currency=body.currency,
            description=body.description, key=idempotency.check_key(
                request.headers.get(idempotency.HEADER)))
        return PaymentIntentRead.of(intent)

    return await idempotency.run(request, session, scope=f"merchant:{actor.merchant.id}",
                                 body=body, work=work)


@api_router.post("/merchants/{merchant_id}/consumer-code-charges")
async def member_charge(request: Request, merchant_id: uuid.UUID, body: ConsumerCodeCharge,
                        auth: Auth, session: DbSession) -> JSONResponse:
    """A signed-in member charges a customer's code (``Idempotency-Key`` required)."""
    merchant = await service.merchant_for_user(session, auth.user.id, merchant_id, write=True)
    return await _charge_json(request, session, service.Actor(merchant=merchant, auth=auth),
                              body)


async def _key_caller(request: Request, session: DbSession) -> service.Actor:
    """The merchant behind a secret API key with ``payments:write``; a dependency, so a call
    without a valid key is refused (401) before its body is even looked at."""
    api_key, merchant = await service.authenticate_api_key(session,
                                                           stripe_api.presented_key(request))
    if api_key.kind != "secret":
        raise ApiKeyInvalid("Charging a payment code needs a secret key.")
    service.require_scope(api_key, "payments:write")
    return service.Actor(merchant=merchant, api_key=api_key)


KeyCaller = Annotated[service.Actor, Depends(_key_caller)]


@api_router.post("/consumer-code-charges")
async def api_key_charge(request: Request, caller: KeyCaller, body: ConsumerCodeCharge,
                         session: DbSession) -> JSONResponse:
    """A merchant's server (``Authorization: Bearer sk_test_…`` with ``payments:write``)
    charges a customer's code (``Idempotency-Key`` required). Errors are problem+json."""
    return await _charge_json(request, session, caller, body)


# -- the customer's page -----------------------------------------------------------------------


def _qr_svg(code: str) -> str:
    """Inline SVG with presentation attributes only (no ``style``), so the CSP allows it."""
    return qr_render.make_code(code).svg_inline(
        scale=QR_SCALE, border=qr_render.QUIET_ZONE_MODULES, dark="#000", light="#fff",
        svgclass="paycode-qr", lineclass=None, omitsize=False)


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


async def _panel(request: Request, session: AsyncSession, user_id: uuid.UUID, *,
                 state: str, row: ConsumerCode | None = None, code: str | None = None,
                 round_: int = 0, full: bool = False, status_code: int = 200) -> HTMLResponse:
    context: dict[str, Any] = {"state": state, "row": row, "round": round_,
                               "poll_every_s": POLL_EVERY_S, "payment": None, "balance": None}
    if code is not None:
        context.update(code=code, code_display=consumer_codes.grouped(code), qr=_qr_svg(code))
    if row is not None and state in ("paid", "failed"):
        context["payment"] = await consumer_codes.payment_of(session, row)
        context["balance"] = await _balance(request, user_id)
    template = "payments/pay_code.html" if full else "payments/_pay_code_panel.html"
    response = render(request, template, context, active="pay", status_code=status_code)
    response.headers["Cache-Control"] = "no-store"  # the page holds a live code
    return response


async def _balance(request: Request, user_id: uuid.UUID):
    from bankwallet.wallets import service as wallets_service

    return await wallets_service.balance(request.app.state.ledger, user_id,
                                         consumer_codes.CODE_CURRENCY)


@web_router.get("/pay/code", response_class=HTMLResponse)
async def code_page(request: Request, session: DbSession) -> Response:
    """The page: with HTMX it fetches a code at once (POST); without, a button does."""
    auth = await optional_auth(request, session)
    if auth is None:
        return login_redirect("/pay/code")
    return await _panel(request, session, auth.user.id, state="start", full=True)


@web_router.post("/pay/code", response_class=HTMLResponse)
async def code_issue(request: Request, auth: Auth, session: DbSession) -> Response:
    row, code = await consumer_codes.issue(session, user_id=auth.user.id)
    return await _panel(request, session, auth.user.id, state="active", row=row, code=code,
                        full=not _is_htmx(request))


@web_router.post("/pay/code/{code_id}/status", response_class=HTMLResponse)
async def code_status(request: Request, code_id: uuid.UUID, auth: Auth, session: DbSession,
                      round: Annotated[int, Form(ge=0, le=AUTO_REFRESH_MAX)] = 0) -> Response:
    """The page's poll: 204 (nothing to redraw) while the code is live; the outcome once a
    merchant charged it; a fresh code shortly before this one expires."""
    user_id = auth.user.id
    try:
        row = await consumer_codes.get_for_user(session, user_id, code_id)
    except BankwalletError:
        return await _panel(request, session, user_id, state="ended")
    state = consumer_codes.state_of(row)
    if state is consumer_codes.State.USED:
        payment = await consumer_codes.payment_of(session, row)
        assert payment is not None
        if payment.intent.status == service.Status.PROCESSING:
            return Response(status_code=204)
        outcome = "paid" if payment.intent.status in ("succeeded", "requires_capture") \
            else "failed"
        return await _panel(request, session, user_id, state=outcome, row=row)
    if state is consumer_codes.State.REVOKED:  # another page or device drew a newer code
        return await _panel(request, session, user_id, state="replaced")
    left_s = (row.expires_at - consumer_codes.utcnow()).total_seconds()
    if state is consumer_codes.State.ACTIVE and left_s > REFRESH_BEFORE_S:
        return Response(status_code=204)
    if round >= AUTO_REFRESH_MAX:
        return await _panel(request, session, user_id, state="ended")
    fresh, code = await consumer_codes.issue(session, user_id=user_id)
    return await _panel(request, session, user_id, state="active", row=fresh, code=code,
                        round_=round + 1)


# -- the merchant's point of sale --------------------------------------------------------------


Key = Annotated[str, Form(alias="idempotency_key", min_length=1,
                          max_length=idempotency.KEY_MAX_CHARS)]
FormText = Annotated[str, Form(max_length=CODE_FIELD_MAX_CHARS)]


def _pos_page(request: Request, actor: service.Actor, *, form: dict[str, str] | None = None,
              error: str | None = None, paid: Any = None,
              status_code: int = 200) -> HTMLResponse:
    return render(request, "payments/pos.html", {
        "merchant": actor.merchant, "section": "pos", "key": str(uuid.uuid4()),
        "form": form or {"amount": "", "code": "", "description": ""}, "error": error,
        "paid": paid, "pid": objects.public_id}, status_code=status_code)


@web_router.get("/merchant/{merchant_id}/pos", response_class=HTMLResponse)
async def pos_page(request: Request, merchant_id: uuid.UUID, session: DbSession) -> Response:
    found = await merchant_member(request, session, merchant_id, write=True)
    if isinstance(found, Response):
        return found
    return _pos_page(request, found[1])


def _minor(text: str) -> int:
    minor = to_minor(text, consumer_codes.CODE_CURRENCY) if text.strip() else 0
    if minor <= 0:
        raise InvalidAmount("Enter an amount above zero.")
    return minor


@web_router.post("/merchant/{merchant_id}/pos", response_class=HTMLResponse)
async def pos_charge(request: Request, merchant_id: uuid.UUID, auth: Auth, session: DbSession,
                     key: Key, amount: FormText, code: FormText,
                     description: Annotated[str, Form(max_length=200)] = "") -> Response:
    found = await merchant_member(request, session, merchant_id, write=True, auth=auth)
    if isinstance(found, Response):
        return found
    _, actor = found
    form = {"amount": amount, "code": code, "description": description}

    async def work() -> dict[str, Any]:
        intent = await consumer_codes.charge(
            session, request.app.state.ledger, actor, code_text=code, amount_minor=_minor(amount),
            key=key, description=description or None)
        return {"intent_id": str(intent.id)}

    try:
        result = await forms.run_once(session, request, scope=f"merchant:{merchant_id}", key=key,
                                      work=work)
    except BankwalletError as exc:
        again = await merchant_member(request, session, merchant_id, write=True)  # rolled back
        if isinstance(again, Response):
            return again
        return _pos_page(request, again[1], form={**form, "code": ""} if exc.code in (
            "consumer_code_used", "consumer_code_expired") else form, error=exc.code,
            status_code=exc.status)
    intent = await service.get_intent(session, actor.merchant, uuid.UUID(result["intent_id"]))
    return _pos_page(request, actor, paid=intent)


@web_router.post("/merchant/{merchant_id}/pos/picture", response_class=HTMLResponse)
async def pos_picture(request: Request, merchant_id: uuid.UUID, auth: Auth, session: DbSession,
                      picture: Annotated[UploadFile, File()],
                      amount: Annotated[str, Form(max_length=32)] = "") -> Response:
    """A photo of the customer's code: its digits fill the code field; nothing is charged."""
    found = await merchant_member(request, session, merchant_id, write=True, auth=auth)
    if isinstance(found, Response):
        return found
    _, actor = found
    data = await picture.read(payments_qr.PICTURE_MAX_BYTES + 1)
    form = {"amount": amount, "code": "", "description": ""}
    try:
        form["code"] = consumer_codes.parse_code(payments_qr.payload_from_picture(data))
    except payments_qr.PictureReadingUnavailable:
        return _pos_page(request, actor, form=form, error="picture_unavailable",
                         status_code=501)
    except BankwalletError:
        return _pos_page(request, actor, form=form, error="consumer_code_invalid",
                         status_code=422)
    return _pos_page(request, actor, form=form)



