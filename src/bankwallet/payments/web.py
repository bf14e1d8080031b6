"""Pages: the customer's pay page (``/pay/<client secret>``: merchant, amount → the wallet
balance or a saved card → confirm → done; a card's 3-D Secure page and back through
``/pay/<client secret>/card-return``) and the merchant dashboard under ``/merchant``
(onboarding, API keys, payments with refunds, webhooks with the delivery log, settlement).
Both call the same services as the JSON API; forms that move money carry an idempotency key
made when the page was drawn."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.cards import service as cards_service
from bankwallet.cards.api import gateway_of
from bankwallet.core import i18n, idempotency
from bankwallet.core.deps import DbSession
from bankwallet.core.errors import BankwalletError
from bankwallet.core.money import InvalidAmount, to_minor
from bankwallet.identity.deps import Auth, optional_auth
from bankwallet.identity.errors import StepUpRequired
from bankwallet.identity.service import Authenticated
from bankwallet.payments import forms, objects, service, webhooks
from bankwallet.payments.pages import login_redirect, merchant_member
from bankwallet.payments.api import CARD_RETURN_PATH, card_return_url
from bankwallet.payments.errors import InvalidPaymentMethod
from bankwallet.payments import pos as payments_pos
from bankwallet.payments import qr as payments_qr
from bankwallet.payments.models import Merchant
from bankwallet.qr import render as qr_render
from bankwallet.wallets import service as wallets_service
from bankwallet.web.csrf import safe_next
from bankwallet.web.templating import render

router = APIRouter(include_in_schema=False)
router.include_router(payments_pos.web_router)  # first: /pay/{handle} would take /pay/code

Text = Annotated[str, Form(max_length=256)]
OptionalText = Annotated[str, Form(max_length=256)]
Key = Annotated[str, Form(alias="idempotency_key", min_length=1,
                          max_length=idempotency.KEY_MAX_CHARS)]
STATUS_FILTERS = tuple(s.value for s in service.Status)
DASHBOARD_PAGE = 20
QR_KINDS = ("svg", "png", "poster")


def _step_up(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/me/step-up?{urlencode({'next': safe_next(next_path)})}",
                            status_code=303)


def _new_key() -> str:
    return str(uuid.uuid4())


# -- the customer's pay page -------------------------------------------------------------------


# -- scanning a merchant's QR code (before /pay/{handle}, which would match "scan") ----------

Payload = Annotated[str, Form(max_length=2048)]


@router.get("/pay/scan", response_class=HTMLResponse)
async def scan_page(request: Request, session: DbSession) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return login_redirect("/pay/scan")
    return _scan_page(request, {})


def _scan_page(request: Request, context: dict[str, Any], *,
               status_code: int = 200) -> HTMLResponse:
    return render(request, "payments/scan.html", {
        "payload": "", "error": None, "merchant": None, "intent": None, "key": _new_key(),
        "amount": "", "pay_url": None, **context}, active="pay", status_code=status_code)


@router.post("/pay/scan")
async def scan(request: Request, auth: Auth, session: DbSession, payload: Payload) -> Response:
    """A pasted payload: the merchant and amount of a dynamic code (then its pay page), or the
    merchant of a static one with a field for the amount. Nothing is written here."""
    try:
        merchant, intent = await service.resolve_qr(session, payload)
    except BankwalletError as exc:
        return _scan_page(request, {"payload": payload, "error": str(exc.detail)},
                          status_code=exc.status)
    return _scan_page(request, {
        "payload": payload, "merchant": merchant, "intent": intent,
        "pay_url": objects.pay_url(intent.id) if intent is not None else None})


@router.post("/pay/scan/picture")
async def scan_picture(request: Request, auth: Auth, session: DbSession,
                       picture: Annotated[UploadFile, File()]) -> Response:
    """A photo or screenshot of the code: read its text, then as a pasted payload."""
    data = await picture.read(payments_qr.PICTURE_MAX_BYTES + 1)
    try:
        payload = payments_qr.payload_from_picture(data)
        merchant, intent = await service.resolve_qr(session, payload)
    except payments_qr.PictureReadingUnavailable:
        return _scan_page(request, {"error": "Reading pictures is not available; paste the "
                                             "code's text instead."}, status_code=501)
    except BankwalletError as exc:
        return _scan_page(request, {"error": str(exc.detail)}, status_code=exc.status)
    return _scan_page(request, {
        "payload": payload, "merchant": merchant, "intent": intent,
        "pay_url": objects.pay_url(intent.id) if intent is not None else None})


@router.post("/pay/scan/amount")
async def scan_amount(request: Request, auth: Auth, session: DbSession, payload: Payload,
                      amount: Text, key: Key) -> Response:
    """A static code's amount: the intent is made on the merchant's behalf, then paid on the
    pay page as any other."""
    user_id = auth.user.id  # read now: a failure rolls the session back
    try:
        minor = _minor(amount, payments_qr.QR_CURRENCY)
        if minor is None:
            raise InvalidAmount("Enter an amount above zero.")
        intent = await service.intent_from_static_qr(
            session, request.app.state.ledger, user_id=user_id, payload=payload,
            amount_minor=minor, key=key)
    except BankwalletError as exc:
        await session.rollback()
        merchant = None
        try:
            merchant, _ = await service.resolve_qr(session, payload)
        except BankwalletError:
            pass
        return _scan_page(request, {"payload": payload, "merchant": merchant,
                                    "error": str(exc.detail), "amount": amount},
                          status_code=exc.status)
    return RedirectResponse(objects.pay_url(intent.id), status_code=303)


@router.get("/pay/{handle}", response_class=HTMLResponse)
async def pay_page(request: Request, handle: str, session: DbSession,
                   done: bool = False) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return login_redirect(f"/pay/{quote(handle)}")
    return await _pay_page(request, session, auth.user.id, handle, done=done)


async def _pay_page(request: Request, session: AsyncSession, user_id: uuid.UUID, handle: str,
                    *, done: bool = False, error: str | None = None,
                    decline_code: str | None = None, status_code: int = 200) -> HTMLResponse:
    try:
        intent = await service.intent_for_customer(session, user_id, handle)
    except BankwalletError:
        return render(request, "payments/pay.html", {"intent": None, "error": None},
                      active="pay", status_code=404)
    merchant = await session.get(Merchant, intent.merchant_id)
    assert merchant is not None
    balance = await wallets_service.balance(request.app.state.ledger, user_id, intent.currency)
    open_to_pay = service.Status(intent.status) in service.TRANSITIONS["pay"]
    by_wallet = open_to_pay and service.WALLET_METHOD in intent.payment_method_types
    by_card = open_to_pay and service.CARD_METHOD in intent.payment_method_types \
        and gateway_of(request) is not None
    cards = await cards_service.usable_cards(session, user_id) if by_card else []
    charge = await service.latest_charge(session, intent)
    challenge = (charge.next_action_url if charge is not None and charge.payer_user_id == user_id
                 and charge.method == service.CARD_METHOD and charge.status == "requires_action"
                 and intent.status == service.Status.REQUIRES_ACTION else None)
    if error is None and intent.last_payment_error and open_to_pay and not done:
        last = intent.last_payment_error
        if last.get("type") == "card_error":  # the card declined after 3-D Secure, say
            error, decline_code = last.get("code"), last.get("decline_code")
    return render(request, "payments/pay.html", {
        "intent": intent, "merchant": merchant, "handle": handle, "balance": balance,
        "payable": by_wallet or bool(cards), "by_wallet": by_wallet, "by_card": by_card,
        "cards": cards, "challenge_url": challenge, "charge": charge,
        "done": done or intent.status in ("succeeded", "requires_capture"),
        "key": _new_key(), "error": error, "decline_code": decline_code,
        "return_url": intent.return_url}, active="pay", status_code=status_code)


Method = Annotated[str, Form(max_length=64)]


@router.post("/pay/{handle}")
async def pay(request: Request, handle: str, auth: Auth, session: DbSession,
              key: Key, method: Method = "wallet") -> Response:
    """Pay from the balance (``method=wallet``) or with a saved card (``method=card:<id>``).
    A card that needs 3-D Secure is shown a link to the bank's page (the page's CSP keeps a
    form from redirecting off the site), which brings the customer back to ``card-return``."""
    user_id = auth.user.id  # read now: a failed attempt rolls the session back
    card_id = _card_choice(method)
    ledger, gateway = request.app.state.ledger, gateway_of(request)

    async def work() -> dict[str, Any]:
        if card_id is None:
            intent = await service.pay_from_wallet(session, ledger, auth, handle=handle,
                                                   key=key, gateway=gateway)
        else:
            intent = await service.pay_with_card(
                session, ledger, gateway, auth, handle=handle, card_id=card_id, key=key,
                return_url=card_return_url(request, handle))
        return {"status": intent.status}

    try:
        if method != "wallet" and card_id is None:
            raise InvalidPaymentMethod("Choose the balance or one of your cards.")
        done = await forms.run_once(session, request, scope=f"user:{user_id}", key=key,
                                    work=work)
    except StepUpRequired:
        return _step_up(f"/pay/{handle}")
    except BankwalletError as exc:
        await session.rollback()
        return await _pay_page(request, session, user_id, handle, error=exc.code,
                               decline_code=exc.extra.get("decline_code"),
                               status_code=exc.status)
    if done.get("status") in (service.Status.SUCCEEDED, service.Status.REQUIRES_CAPTURE):
        return RedirectResponse(f"/pay/{quote(handle)}?done=1", status_code=303)
    return RedirectResponse(f"/pay/{quote(handle)}", status_code=303)


def _card_choice(method: str) -> uuid.UUID | None:
    kind, _, value = method.partition(":")
    if kind != "card":
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


@router.get(CARD_RETURN_PATH)
async def card_return(request: Request, handle: str, session: DbSession) -> Response:
    """Where the card gateway sends the customer back after 3-D Secure: ask the gateway how
    the payment stands, then show the pay page (paid, declined, or still processing)."""
    auth = await optional_auth(request, session)
    if auth is None:
        return login_redirect(f"/pay/{quote(handle)}/card-return")
    user_id = auth.user.id
    try:
        intent = await service.follow_card_payment(session, request.app.state.ledger,
                                                   gateway_of(request), user_id=user_id,
                                                   handle=handle)
    except BankwalletError as exc:
        await session.rollback()
        return await _pay_page(request, session, user_id, handle, error=exc.code,
                               status_code=exc.status)
    if intent.status in (service.Status.SUCCEEDED, service.Status.REQUIRES_CAPTURE):
        return RedirectResponse(f"/pay/{quote(handle)}?done=1", status_code=303)
    return RedirectResponse(f"/pay/{quote(handle)}", status_code=303)


# -- the merchant dashboard --------------------------------------------------------------------


def _page(request: Request, template: str, actor: service.Actor, section: str,
          context: dict[str, Any], *, status_code: int = 200) -> HTMLResponse:
    return render(request, template, {"merchant": actor.merchant, "section": section,
                                      "mask": service.mask_bank_account, **context},
                  status_code=status_code)


@router.get("/merchant", response_class=HTMLResponse)
async def merchant_start(request: Request, session: DbSession) -> Response:
    auth = await optional_auth(request, session)
    if auth is None:
        return login_redirect("/merchant")
    return await _start_page(request, session, auth)


async def _start_page(request: Request, session: AsyncSession, auth: Authenticated, *,
                      error: str | None = None, form: dict[str, str] | None = None,
                      status_code: int = 200) -> HTMLResponse:
    return render(request, "payments/merchant_start.html", {
        "merchants": await service.merchants_of(session, auth.user.id), "error": error,
        "form": form or {"country": service.DEFAULT_COUNTRY}}, status_code=status_code)


@router.post("/merchant")
async def merchant_create(request: Request, auth: Auth, session: DbSession, name: Text,
                          mcc: Text, city: Text, bank_account: Text,
                          country: OptionalText = service.DEFAULT_COUNTRY) -> Response:
    form = {"name": name, "mcc": mcc, "city": city, "country": country}
    try:
        merchant = await service.create_merchant(
            session, request.app.state.ledger, auth, name=name, mcc=mcc, city=city,
            country=country, bank_account=bank_account)
    except BankwalletError as exc:
        return await _start_page(request, session, auth, error=exc.code, form=form,
                                 status_code=exc.status)
    return RedirectResponse(f"/merchant/{merchant.id}", status_code=303)


@router.get("/merchant/{merchant_id}", response_class=HTMLResponse)
async def merchant_home(request: Request, merchant_id: uuid.UUID, session: DbSession) -> Response:
    found = await merchant_member(request, session, merchant_id)
    if isinstance(found, Response):
        return found
    _, actor = found
    recent, _more = await service.list_intents(session, actor.merchant, limit=5)
    balances = await service.merchant_balances(request.app.state.ledger, actor.merchant.id)
    return _page(request, "payments/merchant_home.html", actor, "home", {
        "balances": balances, "recent": recent, "pid": _pid,
        "mcc_description": service.mcc_description(actor.merchant.mcc),
        "qr_payload": service.merchant_qr(actor.merchant).encode()})


def _pid(intent_or_id: Any) -> str:
    value = intent_or_id if isinstance(intent_or_id, uuid.UUID) else intent_or_id.id
    return objects.public_id("payment_intent", value)


# -- QR codes: the merchant's static code, an intent's dynamic code ------------------------------


def _qr_image(qr: Any, kind: str, filename: str, *, caption: str | None = None,
              locale: str = "en") -> Response:
    payload = qr.encode()
    if kind == "png":
        body, media = qr_render.render_png(payload), "image/png"
    elif kind == "poster":
        body = qr_render.merchant_poster_svg(qr, caption=caption, locale=locale)
        media = "image/svg+xml"
    else:
        body, media = qr_render.render_svg(payload), "image/svg+xml"
    disposition = "attachment" if kind != "svg" else "inline"
    ext = "png" if kind == "png" else "svg"
    return Response(body, media_type=media, headers={
        "Content-Disposition": f'{disposition}; filename="{filename}.{ext}"',
        "Cache-Control": "private, no-cache", "X-Qr-Payload": quote(payload)})


@router.get("/merchant/{merchant_id}/qr/{kind}")
async def merchant_qr_image(request: Request, merchant_id: uuid.UUID, kind: str,
                            session: DbSession) -> Response:
    """The static code as ``svg`` (shown inline), ``png`` or a printable ``poster`` (SVG)."""
    if kind not in QR_KINDS:
        return Response(status_code=404)
    found = await merchant_member(request, session, merchant_id)
    if isinstance(found, Response):
        return found
    _, actor = found
    locale = i18n.request_locale(request)
    return _qr_image(service.merchant_qr(actor.merchant), kind, "bankwallet-qr",
                     caption=i18n.gettext("Scan to pay", locale), locale=locale)


@router.get("/merchant/{merchant_id}/payments/{intent_id}/qr/{kind}")
async def payment_qr_image(request: Request, merchant_id: uuid.UUID, intent_id: str, kind: str,
                           session: DbSession) -> Response:
    """An intent's dynamic code (amount and reference) while it awaits payment."""
    if kind not in QR_KINDS:
        return Response(status_code=404)
    found = await merchant_member(request, session, merchant_id)
    if isinstance(found, Response):
        return found
    _, actor = found
    try:
        intent = await service.get_intent(session, actor.merchant,
                                          objects.parse_public_id("payment_intent", intent_id))
    except BankwalletError:
        return Response(status_code=404)
    if not _awaits_payment(intent):
        return Response(status_code=404)
    locale = i18n.request_locale(request)
    return _qr_image(service.merchant_qr(actor.merchant, intent), kind, intent_id,
                     caption=i18n.gettext("Scan to pay", locale), locale=locale)


def _awaits_payment(intent: Any) -> bool:
    return service.Status(intent.status) in service.TRANSITIONS["pay"]


@router.get("/merchant/{merchant_id}/payments", response_class=HTMLResponse)
async def payments_page(request: Request, merchant_id: uuid.UUID, session: DbSession,
                        status: Annotated[str, Query(max_length=32)] = "",
                        currency: Annotated[str, Query(max_length=3)] = "",
                        after: Annotated[str, Query(max_length=64)] = "") -> Response:
    found = await merchant_member(request, session, merchant_id)
    if isinstance(found, Response):
        return found
    return await _payments_page(request, session, found[1], status=status, currency=currency,
                                after=after)


async def _payments_page(request: Request, session: AsyncSession, actor: service.Actor, *,
                         status: str = "", currency: str = "", after: str = "",
                         error: str | None = None, form: dict[str, str] | None = None,
                         status_code: int = 200) -> HTMLResponse:
    cursor = objects.parse_public_id("payment_intent", after) if after else None
    try:
        intents, more = await service.list_intents(
            session, actor.merchant, limit=DASHBOARD_PAGE, starting_after=cursor,
            statuses=[status] if status in STATUS_FILTERS else (),
            currency=currency.upper() if currency else None)
    except BankwalletError:
        intents, more = [], False
    next_query = urlencode({"status": status, "currency": currency,
                            "after": _pid(intents[-1])}) if more and intents else None
    return _page(request, "payments/payments.html", actor, "payments", {
        "intents": intents, "next_query": next_query, "status": status,
        "currency": currency.upper(), "statuses": STATUS_FILTERS,
        "currencies": wallets_service.SUPPORTED_CURRENCIES, "pid": _pid,
        "key": _new_key(), "error": error,
        "form": form or {"currency": wallets_service.DEFAULT_CURRENCY}},
        status_code=status_code)


@router.post("/merchant/{merchant_id}/payments")
async def payment_create(request: Request, merchant_id: uuid.UUID, auth: Auth,
                         session: DbSession, key: Key,
                         amount: Annotated[str, Form(max_length=32)],
                         currency: Annotated[str, Form(max_length=3)] = "CNY",
                         description: Annotated[str, Form(
                             max_length=service.DESCRIPTION_MAX_CHARS)] = "") -> Response:
    """A payment for a customer at the till: its page shows the dynamic QR code to scan and
    the link to send. The page's key names the intent, so a double submit makes one."""
    found = await merchant_member(request, session, merchant_id, write=True, auth=auth)
    if isinstance(found, Response):
        return found
    _, actor = found
    try:
        minor = _minor(amount, wallets_service.supported(currency))
        if minor is None:
            raise InvalidAmount("Enter an amount above zero.")
        intent = await service.create_intent(
            session, request.app.state.ledger, actor, amount_minor=minor, currency=currency,
            description=description or None, metadata={"source": "dashboard"},
            intent_id=service.intent_id_for_key(actor.merchant.id, f"dashboard:{key}"))
    except BankwalletError as exc:
        await session.rollback()
        again = await merchant_member(request, session, merchant_id)  # the attempt rolled back
        if isinstance(again, Response):
            return again
        return await _payments_page(request, session, again[1], error=exc.code,
                                    form={"amount": amount, "currency": currency,
                                          "description": description},
                                    status_code=exc.status)
    return RedirectResponse(f"/merchant/{merchant_id}/payments/{_pid(intent)}",
                            status_code=303)


@router.get("/merchant/{merchant_id}/payments/{intent_id}", response_class=HTMLResponse)
async def payment_page(request: Request, merchant_id: uuid.UUID, intent_id: str,
                       session: DbSession) -> Response:
    found = await merchant_member(request, session, merchant_id)
    if isinstance(found, Response):
        return found
    _, actor = found
    return await _payment_page(request, session, actor, intent_id)


async def _payment_page(request: Request, session: AsyncSession, actor: service.Actor,
                        intent_id: str, *, error: str | None = None,
                        status_code: int = 200) -> HTMLResponse:
    try:
        intent = await service.get_intent(session, actor.merchant,
                                          objects.parse_public_id("payment_intent", intent_id))
    except BankwalletError:
        return render(request, "payments/merchant_missing.html", {}, status_code=404)
    refunds = await service.refunds_of(session, intent)
    return _page(request, "payments/payment.html", actor, "payments", {
        "intent": intent, "refunds": refunds, "pid": _pid(intent), "key": _new_key(),
        "refundable": intent.amount_received_minor - intent.amount_refunded_minor,
        "can": {action: service.Status(intent.status) in starts
                for action, starts in service.TRANSITIONS.items()},
        "pay_url": objects.pay_url(intent.id), "error": error,
        "qr_payload": (service.merchant_qr(actor.merchant, intent).encode()
                       if _awaits_payment(intent) else None),
        "refund_reasons": service.REFUND_REASONS}, status_code=status_code)


@router.post("/merchant/{merchant_id}/payments/{intent_id}/{action}")
async def payment_action(request: Request, merchant_id: uuid.UUID, intent_id: str, action: str,
                         auth: Auth, session: DbSession, key: Key,
                         amount: Annotated[str, Form(max_length=32)] = "",
                         reason: Annotated[str, Form(max_length=32)] = "") -> Response:
    found = await merchant_member(request, session, merchant_id, write=True, auth=auth)
    if isinstance(found, Response):
        return found
    _, actor = found
    if action not in ("refund", "capture", "cancel"):
        return render(request, "payments/merchant_missing.html", {}, status_code=404)
    ledger = request.app.state.ledger
    pi = objects.parse_public_id("payment_intent", intent_id)

    async def work() -> dict[str, Any]:
        intent = await service.get_intent(session, actor.merchant, pi)
        minor = _minor(amount, intent.currency)
        if action == "refund":
            await service.create_refund(session, ledger, actor, intent_id=pi,
                                        refund_id=service.refund_id_for_key(actor.merchant.id,
                                                                            key),
                                        amount_minor=minor, reason=reason or None,
                                        gateway=gateway_of(request))
        elif action == "capture":
            await service.capture_intent(session, ledger, actor, pi, amount_to_capture=minor,
                                         gateway=gateway_of(request))
        else:
            await service.cancel_intent(session, ledger, actor, pi, reason=reason or None,
                                        gateway=gateway_of(request))
        return {"ok": True}

    path = f"/merchant/{merchant_id}/payments/{intent_id}"
    try:
        await forms.run_once(session, request, scope=f"merchant:{merchant_id}", key=key,
                             work=work)
    except StepUpRequired:
        return _step_up(path)
    except BankwalletError as exc:
        again = await merchant_member(request, session, merchant_id)  # the attempt rolled back
        if isinstance(again, Response):
            return again
        return await _payment_page(request, session, again[1], intent_id, error=exc.code,
                                   status_code=exc.status)
    return RedirectResponse(path, status_code=303)


def _minor(text: str, currency: str) -> int | None:
    """A decimal amount typed in a form ("12.50"); blank is None (everything)."""
    text = text.strip()
    if not text:
        return None
    minor = to_minor(text, currency)
    if minor <= 0:
        raise InvalidAmount("Enter an amount above zero.")
    return minor


# -- API keys --------------------------------------------------------------------------------


@router.get("/merchant/{merchant_id}/keys", response_class=HTMLResponse)
async def keys_page(request: Request, merchant_id: uuid.UUID, session: DbSession) -> Response:
    found = await merchant_member(request, session, merchant_id)
    if isinstance(found, Response):
        return found
    return await _keys_page(request, session, found[1])


async def _keys_page(request: Request, session: AsyncSession, actor: service.Actor, *,
                     new_key: str | None = None, error: str | None = None,
                     status_code: int = 200) -> HTMLResponse:
    return _page(request, "payments/keys.html", actor, "keys", {
        "keys": await service.list_api_keys(session, actor.merchant), "new_key": new_key,
        "scopes": service.SCOPES, "prefixes": service.KEY_KINDS, "error": error},
        status_code=status_code)


@router.post("/merchant/{merchant_id}/keys")
async def key_create(request: Request, merchant_id: uuid.UUID, auth: Auth, session: DbSession,
                     name: OptionalText = "",
                     kind: Annotated[str, Form(max_length=16)] = "secret",
                     scope: Annotated[list[str] | None, Form(max_length=8)] = None) -> Response:
    found = await merchant_member(request, session, merchant_id, write=True, auth=auth)
    if isinstance(found, Response):
        return found
    _, actor = found
    try:
        _, key = await service.create_api_key(session, auth, actor.merchant, name=name,
                                              kind=kind, scopes=scope or None)
    except StepUpRequired:
        return _step_up(f"/merchant/{merchant_id}/keys")
    except BankwalletError as exc:
        return await _keys_page(request, session, actor, error=exc.code, status_code=exc.status)
    # Shown in this response only; a reload does not show it again.
    response = await _keys_page(request, session, actor, new_key=key)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/merchant/{merchant_id}/keys/{key_id}/revoke")
async def key_revoke(request: Request, merchant_id: uuid.UUID, key_id: uuid.UUID,
                     auth: Auth, session: DbSession) -> Response:
    found = await merchant_member(request, session, merchant_id, write=True, auth=auth)
    if isinstance(found, Response):
        return found
    _, actor = found
    try:
        await service.revoke_api_key(session, auth, actor.merchant, key_id)
    except BankwalletError as exc:
        return await _keys_page(request, session, actor, error=exc.code, status_code=exc.status)
    return RedirectResponse(f"/merchant/{merchant_id}/keys", status_code=303)


# -- webhooks --------------------------------------------------------------------------------


@router.get("/merchant/{merchant_id}/webhooks", response_class=HTMLResponse)
async def webhooks_page(request: Request, merchant_id: uuid.UUID, session: DbSession) -> Response:
    found = await merchant_member(request, session, merchant_id)
    if isinstance(found, Response):
        return found
    return await _webhooks_page(request, session, found[1])


async def _webhooks_page(request: Request, session: AsyncSession, actor: service.Actor, *,
                         new_secret: str | None = None, error: str | None = None,
                         status_code: int = 200) -> HTMLResponse:
    return _page(request, "payments/webhooks.html", actor, "webhooks", {
        "endpoints": await webhooks.list_endpoints(session, actor.merchant),
        "deliveries": await webhooks.delivery_log(session, actor.merchant, limit=30),
        "event_types": service.EVENT_TYPES, "new_secret": new_secret, "error": error,
        "evt": lambda e: objects.public_id("event", e.id)}, status_code=status_code)


@router.post("/merchant/{merchant_id}/webhooks")
async def webhook_create(request: Request, merchant_id: uuid.UUID, auth: Auth, session: DbSession,
                         url: Annotated[str, Form(max_length=webhooks.URL_MAX_CHARS)],
                         description: OptionalText = "",
                         event: Annotated[list[str] | None, Form(max_length=16)] = None
                         ) -> Response:
    found = await merchant_member(request, session, merchant_id, write=True, auth=auth)
    if isinstance(found, Response):
        return found
    _, actor = found
    try:
        _, secret = await webhooks.create_endpoint(session, auth, actor.merchant, url=url,
                                                   enabled_events=event or None,
                                                   description=description or None)
    except StepUpRequired:
        return _step_up(f"/merchant/{merchant_id}/webhooks")
    except BankwalletError as exc:
        return await _webhooks_page(request, session, actor, error=exc.code,
                                    status_code=exc.status)
    response = await _webhooks_page(request, session, actor, new_secret=secret)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/merchant/{merchant_id}/webhooks/{endpoint_id}/{action}")
async def webhook_status(request: Request, merchant_id: uuid.UUID, endpoint_id: uuid.UUID,
                         action: str, auth: Auth, session: DbSession) -> Response:
    found = await merchant_member(request, session, merchant_id, write=True, auth=auth)
    if isinstance(found, Response):
        return found
    _, actor = found
    try:
        if action == "replay":
            await webhooks.replay(session, auth, actor.merchant, endpoint_id)
        elif action in ("enable", "disable"):
            await webhooks.set_endpoint_status(session, auth, actor.merchant, endpoint_id,
                                               enabled=action == "enable")
        else:
            return render(request, "payments/merchant_missing.html", {}, status_code=404)
    except BankwalletError as exc:
        return await _webhooks_page(request, session, actor, error=exc.code,
                                    status_code=exc.status)
    return RedirectResponse(f"/merchant/{merchant_id}/webhooks", status_code=303)


# -- settlement ------------------------------------------------------------------------------


@router.get("/merchant/{merchant_id}/settlements", response_class=HTMLResponse)
async def settlements_page(request: Request, merchant_id: uuid.UUID,
                           session: DbSession) -> Response:
    found = await merchant_member(request, session, merchant_id)
    if isinstance(found, Response):
        return found
    return await _settlements_page(request, session, found[1])


async def _settlements_page(request: Request, session: AsyncSession, actor: service.Actor, *,
                            error: str | None = None, status_code: int = 200) -> HTMLResponse:
    return _page(request, "payments/settlements.html", actor, "settlements", {
        "balances": await service.merchant_balances(request.app.state.ledger, actor.merchant.id),
        "settlements": await service.list_settlements(session, actor.merchant),
        "key": _new_key(), "error": error}, status_code=status_code)


@router.post("/merchant/{merchant_id}/settlements")
async def settlement_create(request: Request, merchant_id: uuid.UUID, auth: Auth,
                            session: DbSession, key: Key,
                            currency: Annotated[str, Form(max_length=3)] = "CNY",
                            amount: Annotated[str, Form(max_length=32)] = "") -> Response:
    found = await merchant_member(request, session, merchant_id, write=True, auth=auth)
    if isinstance(found, Response):
        return found
    _, actor = found

    async def work() -> dict[str, Any]:
        settlement = await service.request_settlement(
            session, request.app.state.ledger, actor,
            settlement_id=service.settlement_id_for_key(actor.merchant.id, key),
            currency=currency, amount_minor=_minor(amount, wallets_service.supported(currency)))
        return {"id": str(settlement.id)}

    path = f"/merchant/{merchant_id}/settlements"
    try:
        await forms.run_once(session, request, scope=f"merchant:{merchant_id}", key=key,
                             work=work)
    except StepUpRequired:
        return _step_up(path)
    except BankwalletError as exc:
        again = await merchant_member(request, session, merchant_id)  # the attempt rolled back
        if isinstance(again, Response):
            return again
        return await _settlements_page(request, session, again[1], error=exc.code,
                                       status_code=exc.status)
    return RedirectResponse(path, status_code=303)
