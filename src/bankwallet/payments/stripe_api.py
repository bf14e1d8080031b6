"""A Stripe-compatible wire API at ``/stripe/v1`` (as Hyperswitch offers one), so a merchant's
code written for Stripe works with ``stripe.api_base = "<wallet>/stripe"``.

It speaks Stripe's dialect end to end: ``Authorization: Bearer sk_test_…`` (or Basic with the
key as the user name), form-encoded bodies with bracket notation (``metadata[order]=1``,
``expand[]=latest_charge``, ``payment_method_types[0]=…``), Stripe's objects
(``objects``), its errors (``{"error": {"type", "code", "message", "param"}}`` with 400, 401,
402, 403, 404, 409) and its ``Idempotency-Key`` semantics (``core.idempotency`` with the
merchant as scope; required on requests that move money). The same services as our own API
do the work. Where the semantics differ (the wallet-balance payment method, confirmation in
the customer's wallet) ``docs/merchant-api.md`` says so.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException

from bankwallet.cards.api import gateway_of
from bankwallet.core import idempotency
from bankwallet.core.deps import DbSession
from bankwallet.core.errors import BankwalletError, NotFound
from bankwallet.core.money import UnknownCurrency
from bankwallet.payments import errors, objects, service
from bankwallet.payments.models import ApiKey, Charge, Merchant, PaymentIntent
from bankwallet.wallets.service import CurrencyUnsupported

log = logging.getLogger("bankwallet.payments.stripe")

PARAMS_MAX: Final = 200
INDEX_MAX: Final = 100
DEPTH_MAX: Final = 4
LIST_LIMIT_DEFAULT: Final = 10
EXPANDABLE: Final = frozenset({"latest_charge"})
# Parameters Stripe clients commonly send that change nothing here (documented).
IGNORED: Final = frozenset({"automatic_payment_methods", "receipt_email", "expand"})


# -- Stripe's errors ---------------------------------------------------------------------------


@dataclass(slots=True)
class StripeError(Exception):
    status: int
    type: str
    message: str
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
        if self.param:
            error["param"] = self.param
        return {"error": error}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers or None)


def _invalid(message: str, *, code: str | None = None, param: str | None = None,
             status: int = 400) -> StripeError:
    return StripeError(status, "invalid_request_error", message, code, param)


_RESOURCES: Final = {errors.PaymentIntentNotFound: "payment_intent",
                     errors.RefundNotFound: "refund", errors.EventNotFound: "event"}


def to_stripe(exc: BankwalletError, request: Request | None = None) -> StripeError:
    """Our typed errors in Stripe's words."""
    param = exc.extra.get("param") if isinstance(exc.extra.get("param"), str) else None
    if isinstance(exc, NotFound):
        resource = _RESOURCES.get(type(exc), "resource")
        given = request.path_params.get("object_id") if request is not None else None
        message = f"No such {resource}: '{given}'" if given else exc.detail
        return _invalid(message, code="resource_missing", param=param or "id", status=404)
    if isinstance(exc, errors.ApiKeyInvalid):
        return _invalid(exc.detail, code="api_key_invalid", status=401)
    if isinstance(exc, idempotency.IdempotencyKeyReused):
        return StripeError(400, "idempotency_error", exc.detail, "idempotency_key_in_use")
    if isinstance(exc, idempotency.IdempotencyRequestInProgress):
        return StripeError(409, "invalid_request_error", exc.detail, "idempotency_key_in_use",
                           headers=exc.headers() or {})
    if isinstance(exc, errors.UnexpectedState):
        return _invalid(exc.detail, code="payment_intent_unexpected_state")
    if isinstance(exc, errors.RefundExceedsCaptured):
        code = "charge_already_refunded" if exc.extra.get("refundable_minor") == 0 \
            else "amount_too_large"
        return _invalid(exc.detail, code=code, param="amount")
    if isinstance(exc, errors.CaptureExceedsCapturable):
        return _invalid(exc.detail, code="amount_too_large", param="amount_to_capture")
    if isinstance(exc, errors.MerchantBalanceInsufficient):
        return _invalid(exc.detail, code="balance_insufficient")
    if isinstance(exc, errors.PaymentMethodUnavailable):
        return _invalid(exc.detail, code="payment_method_unactivated", param="payment_method")
    if isinstance(exc, (UnknownCurrency, CurrencyUnsupported)):
        return _invalid(exc.detail, code="parameter_invalid_string", param="currency")
    if isinstance(exc, errors.InvalidAmount):
        return _invalid(exc.detail, code="parameter_invalid_integer", param=param or "amount")
    if exc.status == 403:
        return StripeError(403, "invalid_request_error", exc.detail, exc.code)
    if exc.status == 402:
        return StripeError(402, "card_error", exc.detail, exc.code, param)
    return _invalid(exc.detail, code=exc.code, param=param,
                    status=exc.status if exc.status in (400, 409, 413, 429) else 400)


class StripeRoute(APIRoute):
    """Every error on these routes leaves in Stripe's shape, never as problem+json."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def stripe_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except StripeError as exc:
                return exc.response()
            except BankwalletError as exc:
                return to_stripe(exc, request).response()
            except RequestValidationError:
                return _invalid("The request does not match the expected shape.").response()
            except HTTPException as exc:
                return _invalid(str(exc.detail), status=exc.status_code).response()
            except Exception:
                log.exception("stripe api error", extra={"path": request.url.path})
                return StripeError(500, "api_error", "An error occurred on our side; "
                                   "nothing was changed.").response()

        return stripe_handler


router = APIRouter(prefix="/stripe/v1", route_class=StripeRoute, include_in_schema=False)


# -- form bodies in bracket notation -------------------------------------------------------------

_KEY_RE: Final = re.compile(r"^([A-Za-z0-9_]+)((?:\[[^\[\]]*\])*)$")


def parse_brackets(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``[("metadata[order]", "1"), ("expand[]", "a")]`` → ``{"metadata": {"order": "1"},
    "expand": ["a"]}`` (Stripe's and Rack's notation; lists also as ``a[0]``)."""
    if len(pairs) > PARAMS_MAX:
        raise _invalid(f"At most {PARAMS_MAX} parameters.")
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY_RE.match(key)
        if match is None:
            raise _invalid(f"Invalid parameter name: {key[:60]!r}.", code="parameter_unknown")
        parts = [match.group(1)] + re.findall(r"\[([^\[\]]*)\]", match.group(2))
        if len(parts) > DEPTH_MAX:
            raise _invalid(f"{match.group(1)} is nested too deeply.", param=match.group(1))
        _assign(root, parts, value, name=match.group(1))
    return root


def _assign(node: Any, parts: list[str], value: str, *, name: str) -> None:
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        following = parts[i + 1] if not last else None
        fresh: Any = [] if following is not None and (following == "" or following.isdigit()) \
            else {}
        if isinstance(node, list):
            if part == "":
                node.append(value if last else fresh)
                node = node[-1]
                continue
            if not part.isdigit() or int(part) > INDEX_MAX:
                raise _invalid(f"Invalid array index in {name}.", param=name)
            index = int(part)
            node.extend([None] * (index + 1 - len(node)))
            if last:
                node[index] = value
                return
            if node[index] is None:
                node[index] = fresh
            node = node[index]
        elif isinstance(node, dict):
            if last:
                if isinstance(node.get(part), (dict, list)):
                    raise _invalid(f"Invalid {name}: both a value and a hash.", param=name)
                node[part] = value
                return
            node = node.setdefault(part, fresh)
        else:
            raise _invalid(f"Invalid {name}: both a value and a hash.", param=name)


async def form_params(request: Request) -> dict[str, Any]:
    if request.method in ("GET", "DELETE"):
        return parse_brackets(list(request.query_params.multi_items()))
    body = (await request.body()).decode("utf-8", errors="replace")
    pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=PARAMS_MAX) \
        if body else []
    return parse_brackets(pairs + list(request.query_params.multi_items()))


class Params:
    """Typed reads of Stripe parameters, with Stripe's messages for what is wrong."""

    def __init__(self, data: dict[str, Any], allowed: frozenset[str] | set[str]) -> None:
        unknown = sorted(set(data) - set(allowed) - IGNORED)
        if unknown:
            raise _invalid(f"Received unknown parameter: {unknown[0]}", code="parameter_unknown",
                           param=unknown[0])
        self.data = data

    def text(self, name: str, *, required: bool = False, max_chars: int = 5000) -> str | None:
        value = self.data.get(name)
        if value is None or value == "":
            if required:
                raise _invalid(f"Missing required param: {name}.", code="parameter_missing",
                               param=name)
            return None
        if not isinstance(value, str) or len(value) > max_chars:
            raise _invalid(f"Invalid string: {name}.", code="parameter_invalid_string",
                           param=name)
        return value

    def integer(self, name: str, *, required: bool = False) -> int | None:
        value = self.text(name, required=required, max_chars=20)
        if value is None:
            return None
        if not re.fullmatch(r"-?\d{1,19}", value, re.ASCII):
            raise _invalid(f"Invalid integer: {value}", code="parameter_invalid_integer",
                           param=name)
        return int(value)

    def boolean(self, name: str) -> bool:
        value = self.text(name, max_chars=5)
        if value is None:
            return False
        if value not in ("true", "false"):
            raise _invalid(f"Invalid boolean: {value}", code="parameter_invalid_boolean",
                           param=name)
        return value == "true"

    def strings(self, name: str) -> list[str] | None:
        value = self.data.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, dict):  # a[0]=x parsed where keys came unordered
            value = [value[k] for k in sorted(value, key=lambda k: int(k) if k.isdigit() else 0)]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _invalid(f"Invalid array: {name}.", code="parameter_invalid_array",
                           param=name)
        return value

    def mapping(self, name: str) -> dict[str, Any] | None:
        value = self.data.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise _invalid(f"Invalid hash: {name}.", code="parameter_invalid_hash", param=name)
        return value

    def expand(self) -> frozenset[str]:
        chosen = frozenset(self.strings("expand") or [])
        bad = sorted(chosen - EXPANDABLE)
        if bad:
            raise _invalid(f"This property cannot be expanded ({bad[0]}).", param="expand")
        return chosen


# -- who is calling ------------------------------------------------------------------------------


def presented_key(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[0] or None
    return None


@dataclass(frozen=True, slots=True)
class Caller:
    api_key: ApiKey
    merchant: Merchant

    @property
    def actor(self) -> service.Actor:
        return service.Actor(merchant=self.merchant, api_key=self.api_key)


async def _caller(request: Request, session: AsyncSession, scope: str | None) -> Caller:
    key = presented_key(request)
    if key is None:
        raise _invalid("You did not provide an API key. Provide it in the Authorization "
                       "header: Bearer sk_test_…", status=401)
    try:
        api_key, merchant = await service.authenticate_api_key(session, key)
    except errors.ApiKeyInvalid as exc:
        shown = f"{key[:8]}****{key[-4:]}" if len(key) > 12 else "****"
        raise _invalid(f"Invalid API Key provided: {shown}", code="api_key_invalid",
                       status=401) from exc
    if scope is not None:
        if api_key.kind != "secret":
            raise StripeError(403, "invalid_request_error",
                              "This API call cannot be made with a publishable API key.",
                              "secret_key_required")
        try:
            service.require_scope(api_key, scope)
        except errors.ApiKeyScopeMissing as exc:
            raise StripeError(403, "invalid_request_error",
                              f"The provided key does not have the {scope} scope.",
                              "insufficient_scope") from exc
    return Caller(api_key, merchant)


# -- idempotency with Stripe's semantics -------------------------------------------------------


async def _once(request: Request, session: AsyncSession, caller: Caller, params: dict[str, Any],
                work: Callable[[], Awaitable[dict[str, Any]]], *,
                required: bool) -> JSONResponse:
    """Run ``work`` once per ``Idempotency-Key`` (scoped to the merchant) and answer with its
    stored result, successes and decided errors alike; ``required`` on money-moving calls."""
    key = request.headers.get(idempotency.HEADER)
    if key is None:
        if required:
            raise _invalid("This request moves money: send an Idempotency-Key header.",
                           code="idempotency_key_missing")
        return JSONResponse(await work())
    idempotency.check_key(key)
    # Only reads so far: give the connection back before the claim takes one (as
    # ``idempotency.run`` does), so a request never holds two pooled connections.
    await session.commit()
    claimed = await idempotency.claim(
        session, scope=f"merchant:{caller.merchant.id}", key=key,
        fingerprint=idempotency.fingerprint(request.method, request.url.path, params))
    if claimed.replay is not None:
        status, body = claimed.replay
        return JSONResponse(body, status_code=status, headers={"Idempotent-Replayed": "true"})
    try:
        result = await work()
    except (StripeError, BankwalletError) as exc:
        error = exc if isinstance(exc, StripeError) else to_stripe(exc, request)
        await session.rollback()
        async with AsyncSession(session.bind) as own:
            await idempotency.complete(own, claimed, status=error.status, body=error.body())
            await own.commit()
        raise error from None
    except BaseException:
        await idempotency.release(session, claimed)
        raise
    await idempotency.complete(session, claimed, status=200, body=result)
    return JSONResponse(result)


async def _intent_object(session: AsyncSession, intent: PaymentIntent,
                         expand: frozenset[str]) -> dict[str, Any]:
    # A card charge shapes next_action (3-D Secure) and the expanded charge's card details.
    wanted = expand or intent.payment_method == service.CARD_METHOD
    charge = await service.latest_charge(session, intent) if wanted else None
    return service.intent_object(intent, charge=charge, expand=expand)


def _intent_id(text: str) -> uuid.UUID | None:
    return objects.parse_public_id("payment_intent", text)


# -- payment intents -----------------------------------------------------------------------------

_CREATE: Final = frozenset({"amount", "currency", "capture_method", "payment_method_types",
                            "payment_method", "description", "metadata", "confirm",
                            "return_url", "expand"})


@router.post("/payment_intents")
async def create_payment_intent(request: Request, session: DbSession) -> Response:
    caller = await _caller(request, session, "payments:write")
    data = await form_params(request)
    p = Params(data, _CREATE)
    key = request.headers.get(idempotency.HEADER)

    async def work() -> dict[str, Any]:
        amount = p.integer("amount", required=True)
        currency = p.text("currency", required=True, max_chars=3)
        assert amount is not None and currency is not None
        intent = await service.create_intent(
            session, request.app.state.ledger, caller.actor, amount_minor=amount,
            currency=currency, capture_method=p.text("capture_method") or "automatic",
            payment_method_types=p.strings("payment_method_types"),
            payment_method=p.text("payment_method", max_chars=64),
            description=p.text("description", max_chars=service.DESCRIPTION_MAX_CHARS),
            metadata=p.mapping("metadata"), return_url=p.text("return_url"),
            confirm=p.boolean("confirm"),
            intent_id=service.intent_id_for_key(caller.merchant.id, key), idempotency_key=key)
        return await _intent_object(session, intent, p.expand())

    return await _once(request, session, caller, data, work, required=False)


@router.get("/payment_intents")
async def list_payment_intents(request: Request, session: DbSession) -> Response:
    caller = await _caller(request, session, "payments:read")
    p = Params(await form_params(request), {"limit", "starting_after", "expand"})
    limit = p.integer("limit") or LIST_LIMIT_DEFAULT
    if not 1 <= limit <= service.PAGE_MAX:
        raise _invalid(f"limit must be between 1 and {service.PAGE_MAX}.", param="limit")
    after_text = p.text("starting_after", max_chars=64)
    after = _intent_id(after_text) if after_text else None
    if after_text and after is None:
        raise _invalid(f"No such payment_intent: '{after_text}'", code="resource_missing",
                       param="starting_after", status=404)
    found, more = await service.list_intents(session, caller.merchant, limit=limit,
                                             starting_after=after)
    expand = frozenset(e.removeprefix("data.") for e in p.strings("expand") or [])
    if expand - EXPANDABLE:
        raise _invalid("This property cannot be expanded.", param="expand")
    return JSONResponse({"object": "list", "url": "/v1/payment_intents", "has_more": more,
                         "data": [await _intent_object(session, i, expand) for i in found]})


@router.get("/payment_intents/{object_id}")
async def retrieve_payment_intent(request: Request, object_id: str,
                                  session: DbSession) -> Response:
    data = await form_params(request)
    p = Params(data, {"client_secret", "expand"})
    secret = p.text("client_secret", max_chars=128)
    caller = await _caller(request, session, None if secret else "payments:read")
    if secret is not None and objects.parse_client_secret(secret) != _intent_id(object_id):
        raise _invalid("The client_secret does not match this PaymentIntent.",
                       param="client_secret")
    if caller.api_key.kind != "secret" and secret is None:
        raise StripeError(403, "invalid_request_error",
                          "This API call cannot be made with a publishable API key.")
    intent = await service.get_intent(session, caller.merchant, _intent_id(object_id))
    return JSONResponse(await _intent_object(session, intent, p.expand()))


@router.post("/payment_intents/{object_id}/confirm")
async def confirm_payment_intent(request: Request, object_id: str,
                                 session: DbSession) -> Response:
    caller = await _caller(request, session, "payments:write")
    data = await form_params(request)
    p = Params(data, {"payment_method", "return_url", "expand"})

    async def work() -> dict[str, Any]:
        intent = await service.confirm_intent(session, caller.actor, _intent_id(object_id),
                                              payment_method=p.text("payment_method",
                                                                    max_chars=64),
                                              return_url=p.text("return_url"))
        return await _intent_object(session, intent, p.expand())

    return await _once(request, session, caller, data, work, required=False)


@router.post("/payment_intents/{object_id}/capture")
async def capture_payment_intent(request: Request, object_id: str,
                                 session: DbSession) -> Response:
    caller = await _caller(request, session, "payments:write")
    data = await form_params(request)
    p = Params(data, {"amount_to_capture", "expand"})

    async def work() -> dict[str, Any]:
        intent = await service.capture_intent(session, request.app.state.ledger, caller.actor,
                                              _intent_id(object_id),
                                              amount_to_capture=p.integer("amount_to_capture"),
                                              gateway=gateway_of(request))
        return await _intent_object(session, intent, p.expand())

    return await _once(request, session, caller, data, work, required=True)


@router.post("/payment_intents/{object_id}/cancel")
async def cancel_payment_intent(request: Request, object_id: str,
                                session: DbSession) -> Response:
    caller = await _caller(request, session, "payments:write")
    data = await form_params(request)
    p = Params(data, {"cancellation_reason", "expand"})

    async def work() -> dict[str, Any]:
        intent = await service.cancel_intent(session, request.app.state.ledger, caller.actor,
                                             _intent_id(object_id),
                                             reason=p.text("cancellation_reason", max_chars=32),
                                             gateway=gateway_of(request))
        return await _intent_object(session, intent, p.expand())

    return await _once(request, session, caller, data, work, required=True)


# -- refunds -------------------------------------------------------------------------------------


async def _intent_of_charge(session: AsyncSession, merchant: Merchant,
                            charge_text: str) -> uuid.UUID | None:
    charge_id = objects.parse_public_id("charge", charge_text)
    charge = await session.get(Charge, charge_id) if charge_id else None
    if charge is None or charge.merchant_id != merchant.id:
        raise _invalid(f"No such charge: '{charge_text}'", code="resource_missing",
                       param="charge", status=404)
    return charge.intent_id


@router.post("/refunds")
async def create_refund(request: Request, session: DbSession) -> Response:
    caller = await _caller(request, session, "refunds:write")
    data = await form_params(request)
    p = Params(data, {"payment_intent", "charge", "amount", "reason", "metadata", "expand"})

    async def work() -> dict[str, Any]:
        intent_text = p.text("payment_intent", max_chars=64)
        charge_text = p.text("charge", max_chars=64)
        if intent_text is None and charge_text is None:
            raise _invalid("Missing required param: payment_intent.", code="parameter_missing",
                           param="payment_intent")
        intent_id = _intent_id(intent_text) if intent_text else \
            await _intent_of_charge(session, caller.merchant, charge_text or "")
        if intent_id is None:
            raise _invalid(f"No such payment_intent: '{intent_text}'", code="resource_missing",
                           param="payment_intent", status=404)
        key = idempotency.check_key(request.headers.get(idempotency.HEADER))
        refund = await service.create_refund(
            session, request.app.state.ledger, caller.actor, intent_id=intent_id,
            refund_id=service.refund_id_for_key(caller.merchant.id, key),
            amount_minor=p.integer("amount"), reason=p.text("reason", max_chars=32),
            metadata=p.mapping("metadata"), gateway=gateway_of(request))
        return objects.refund_object(refund)

    return await _once(request, session, caller, data, work, required=True)


@router.get("/refunds/{object_id}")
async def retrieve_refund(request: Request, object_id: str, session: DbSession) -> Response:
    caller = await _caller(request, session, "refunds:read")
    Params(await form_params(request), {"expand"})
    refund = await service.get_refund(session, caller.merchant,
                                      objects.parse_public_id("refund", object_id))
    return JSONResponse(objects.refund_object(refund))


# -- events --------------------------------------------------------------------------------------


@router.get("/events/{object_id}")
async def retrieve_event(request: Request, object_id: str, session: DbSession) -> Response:
    caller = await _caller(request, session, "events:read")
    Params(await form_params(request), {"expand"})
    event_id = objects.parse_public_id("event", object_id)
    if event_id is None:
        raise errors.EventNotFound(param="id")
    event = await service.get_event(session, caller.merchant, event_id)
    pending = await service.pending_webhooks(session, [event])
    return JSONResponse(objects.event_object(event, pending_webhooks=pending.get(event.id, 0)))


@router.get("/events")
async def list_events(request: Request, session: DbSession) -> Response:
    caller = await _caller(request, session, "events:read")
    p = Params(await form_params(request), {"limit", "starting_after", "type", "expand"})
    limit = p.integer("limit") or LIST_LIMIT_DEFAULT
    if not 1 <= limit <= service.PAGE_MAX:
        raise _invalid(f"limit must be between 1 and {service.PAGE_MAX}.", param="limit")
    after_text = p.text("starting_after", max_chars=64)
    after = objects.parse_public_id("event", after_text) if after_text else None
    if after_text and after is None:
        raise _invalid(f"No such event: '{after_text}'", code="resource_missing",
                       param="starting_after", status=404)
    event_type = p.text("type", max_chars=64)
    found, more = await service.list_events(session, caller.merchant, limit=limit,
                                            starting_after=after,
                                            types=[event_type] if event_type else ())
    pending = await service.pending_webhooks(session, found)
    return JSONResponse({"object": "list", "url": "/v1/events", "has_more": more,
                         "data": [objects.event_object(e, pending_webhooks=pending.get(e.id, 0))
                                  for e in found]})


@router.api_route("/{path:path}", methods=["GET", "POST", "DELETE"])
async def unknown(request: Request, path: str) -> Response:
    raise _invalid(f"Unrecognized request URL ({request.method}: /v1/{path[:100]}).",
                   status=404)

