"""The crypto wallet's pages under ``/crypto``: the same services as the JSON API.

Pages that show a recovery phrase are ``Cache-Control: no-store``; a form never echoes a
phrase, a key or a PIN back after an error (the customer types it again).
"""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bankwallet.chains import evm_signing, service, uri
from bankwallet.chains.api import chain_config
from bankwallet.chains.errors import TypedDataInvalid
from bankwallet.chains.registry import CHAINS, Family, get_chain
from bankwallet.core.deps import DbSession, client_info
from bankwallet.core.errors import BankwalletError, InvalidInput
from bankwallet.identity.deps import Auth, optional_auth
from bankwallet.identity.errors import StepUpRequired
from bankwallet.identity.service import Authenticated
from bankwallet.web.templating import render

router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}
Text = Annotated[str, Form(max_length=256)]
LongText = Annotated[str, Form(max_length=64 * 1024)]
PinField = Annotated[str, Form(max_length=64)]
EVM_CHAINS = tuple(c.symbol for c in CHAINS.values() if c.family is Family.EVM)


def _page(request: Request, template: str, context: dict[str, Any], *, status_code: int = 200,
          headers: dict[str, str] | None = None) -> HTMLResponse:
    return render(request, template, context, active="crypto", status_code=status_code,
                  headers=headers)


def _login_redirect(path: str) -> RedirectResponse:
    return RedirectResponse(f"/login?{urlencode({'next': path})}", status_code=303)


def _step_up_redirect(path: str) -> RedirectResponse:
    return RedirectResponse(f"/me/step-up?{urlencode({'next': path})}", status_code=303)


async def _viewer(request: Request, session: DbSession) -> Authenticated | None:
    return await optional_auth(request, session)


def _error(exc: BankwalletError) -> dict[str, Any]:
    """What a page may say about an error (never the input that caused it)."""
    return {"code": exc.code, **{k: exc.extra.get(k) for k in ("attempts_left", "reason",
                                                              "positions")}}


# -- wallets -----------------------------------------------------------------------------------


@router.get("/crypto", response_class=HTMLResponse)
async def wallets_page(request: Request, session: DbSession) -> Response:
    auth = await _viewer(request, session)
    if auth is None:
        return _login_redirect("/crypto")
    views = await service.list_wallets(session, auth.user.id)
    return _page(request, "chains/index.html", {"views": views})


def _new_context(**extra: Any) -> dict[str, Any]:
    return {"error": None, "name": "", "word_count": 12, "language": "en", **extra}


@router.get("/crypto/new", response_class=HTMLResponse)
async def new_page(request: Request, session: DbSession) -> Response:
    if await _viewer(request, session) is None:
        return _login_redirect("/crypto/new")
    return _page(request, "chains/new.html", _new_context())


@router.post("/crypto/new")
async def create(request: Request, auth: Auth, session: DbSession, name: Text, pin: PinField,
                 pin_again: PinField, word_count: Annotated[int, Form()] = 12,
                 language: Annotated[str, Form(max_length=8)] = "en",
                 passphrase: Annotated[str, Form(max_length=256)] = "") -> Response:
    context = _new_context(name=name[:64], word_count=word_count, language=language)
    try:
        if pin != pin_again:
            raise InvalidInput("the two PINs differ", reason="pin_mismatch")
        if word_count not in (12, 24) or language not in ("en", "zh-CN"):
            raise InvalidInput("12 or 24 words, in English or Chinese")
        view, mnemonic = await service.create_wallet(
            session, auth, name=name, word_count=word_count, language=language,
            passphrase=passphrase, pin=pin, config=chain_config(request),
            info=client_info(request))
    except StepUpRequired:
        return _step_up_redirect("/crypto/new")
    except BankwalletError as exc:
        return _page(request, "chains/new.html", {**context, "error": _error(exc)},
                     status_code=exc.status)
    return _page(request, "chains/words.html",
                 {"wallet": view.wallet, "words": mnemonic.words, "private_key": None,
                  "created": True},
                 headers=NO_STORE)


@router.get("/crypto/import", response_class=HTMLResponse)
async def import_page(request: Request, session: DbSession) -> Response:
    if await _viewer(request, session) is None:
        return _login_redirect("/crypto/import")
    return _page(request, "chains/import.html", {"error": None, "kind": "mnemonic",
                                                 "chains": CHAINS.values()})


@router.post("/crypto/import")
async def import_wallet(request: Request, auth: Auth, session: DbSession, name: Text,
                        kind: Annotated[str, Form(max_length=16)],
                        secret: LongText = "", passphrase: Annotated[str, Form(max_length=256)] = "",
                        pin: PinField = "", pin_again: PinField = "",
                        chain: Annotated[str, Form(max_length=16)] = "ETH",
                        addresses: LongText = "") -> Response:
    user_id, info = auth.user.id, client_info(request)
    try:
        if kind == "watch_only":
            view = await service.import_watch_only(session, user_id, name=name,
                                                   addresses=_watch_lines(addresses), info=info)
        else:
            if pin != pin_again:
                raise InvalidInput("the two PINs differ", reason="pin_mismatch")
            if kind == "mnemonic":
                view = await service.import_mnemonic(session, user_id, name=name,
                                                     phrase=secret, passphrase=passphrase,
                                                     pin=pin, config=chain_config(request),
                                                     info=info)
            elif kind == "private_key":
                view = await service.import_private_key(session, user_id, name=name,
                                                        chain=chain, key_text=secret, pin=pin,
                                                        config=chain_config(request),
                                                        info=info)
            else:
                raise InvalidInput("unknown kind of import")
    except BankwalletError as exc:
        return _page(request, "chains/import.html",
                     {"error": _error(exc), "kind": kind, "chains": CHAINS.values()},
                     status_code=exc.status)
    return RedirectResponse(f"/crypto/{view.wallet.id}", status_code=303)


def _watch_lines(text: str) -> list[tuple[str, str]]:
    """"ETH 0xabc…" per line (a space, a colon or a comma between chain and address)."""
    pairs = []
    for line in text.splitlines():
        parts = line.replace(":", " ").replace(",", " ").split()
        if not parts:
            continue
        if len(parts) != 2:
            raise InvalidInput("one chain and one address per line", reason="watch_format")
        pairs.append((parts[0], parts[1]))
    return pairs


@router.get("/crypto/address-book", response_class=HTMLResponse)
async def address_book_page(request: Request, session: DbSession) -> Response:
    auth = await _viewer(request, session)
    if auth is None:
        return _login_redirect("/crypto/address-book")
    return await _address_book(request, session, auth)


async def _address_book(request: Request, session: DbSession, auth: Authenticated, *,
                        error: dict[str, Any] | None = None, status_code: int = 200,
                        form: dict[str, str] | None = None) -> HTMLResponse:
    own, saved = await service.address_book(session, auth.user.id)
    return _page(request, "chains/address_book.html",
                 {"own": own, "saved": saved, "error": error, "chains": CHAINS.values(),
                  "form": form or {"chain": "ETH", "address": "", "label": ""}},
                 status_code=status_code)


@router.post("/crypto/address-book")
async def address_book_add(request: Request, auth: Auth, session: DbSession,
                           chain: Annotated[str, Form(max_length=16)],
                           address: Annotated[str, Form(max_length=128)], label: Text) -> Response:
    try:
        await service.add_address_book_entry(session, auth.user.id, chain=chain,
                                             address=address, label=label)
    except BankwalletError as exc:
        return await _address_book(request, session, auth, error=_error(exc),
                                   status_code=exc.status,
                                   form={"chain": chain, "address": address, "label": label})
    return RedirectResponse("/crypto/address-book", status_code=303)


@router.post("/crypto/address-book/{entry_id}/remove")
async def address_book_remove(entry_id: uuid.UUID, auth: Auth, session: DbSession) -> Response:
    await service.remove_address_book_entry(session, auth.user.id, entry_id)
    return RedirectResponse("/crypto/address-book", status_code=303)


# -- relaying a transaction signed offline (BTC, TRON, SOL) -------------------------------------
# Declared before /crypto/{wallet_id}, which would otherwise take "broadcast" for a wallet id.


def _broadcast_page(request: Request, *, error: dict[str, Any] | None = None,
                    relayed: service.Relayed | None = None, chain: str = "BTC",
                    signed: str = "", status_code: int = 200) -> HTMLResponse:
    config = chain_config(request)
    nodes = [{"symbol": c, "name": get_chain(c).name, "configured": config.relay_configured(c)}
             for c in service.RELAYED_CHAINS]
    return _page(request, "chains/broadcast.html",
                 {"nodes": nodes, "error": error, "relayed": relayed, "chain": chain,
                  "signed": signed}, status_code=status_code)


@router.get("/crypto/broadcast", response_class=HTMLResponse)
async def broadcast_page(request: Request, session: DbSession) -> Response:
    if await _viewer(request, session) is None:
        return _login_redirect("/crypto/broadcast")
    return _broadcast_page(request)


@router.post("/crypto/broadcast")
async def broadcast(request: Request, auth: Auth, session: DbSession,
                    chain: Annotated[str, Form(max_length=16)],
                    signed: Annotated[str, Form(max_length=service.MAX_RELAY_CHARS)]) -> Response:
    try:
        relayed = await service.relay(session, auth.user.id, chain=chain, signed=signed,
                                      config=chain_config(request), info=client_info(request))
    except BankwalletError as exc:
        # A signed transaction is no secret: it goes back in the form to be corrected.
        return _broadcast_page(request, error=_error(exc), chain=chain, signed=signed,
                               status_code=exc.status)
    return _broadcast_page(request, relayed=relayed, chain=relayed.chain)


@router.get("/crypto/{wallet_id}", response_class=HTMLResponse)
async def wallet_page(request: Request, wallet_id: uuid.UUID, session: DbSession) -> Response:
    auth = await _viewer(request, session)
    if auth is None:
        return _login_redirect(f"/crypto/{wallet_id}")
    view = await service.get_wallet(session, auth.user.id, wallet_id)
    transactions = await service.list_transactions(session, auth.user.id, wallet_id, limit=20)
    return _page(request, "chains/wallet.html",
                 {"view": view, "transactions": transactions, "format": service.format_amount})


# -- backup and showing the phrase -------------------------------------------------------------


@router.get("/crypto/{wallet_id}/backup", response_class=HTMLResponse)
async def backup_page(request: Request, wallet_id: uuid.UUID, session: DbSession) -> Response:
    auth = await _viewer(request, session)
    if auth is None:
        return _login_redirect(f"/crypto/{wallet_id}/backup")
    view = await service.get_wallet(session, auth.user.id, wallet_id)
    return _page(request, "chains/backup.html", {"wallet": view.wallet, "check": None,
                                                 "error": None})


@router.post("/crypto/{wallet_id}/backup")
async def backup_start(request: Request, wallet_id: uuid.UUID, auth: Auth,
                       session: DbSession) -> Response:
    view = await service.get_wallet(session, auth.user.id, wallet_id)
    try:
        check = await service.start_backup_check(session, auth.user.id, wallet_id)
    except BankwalletError as exc:
        return _page(request, "chains/backup.html",
                     {"wallet": view.wallet, "check": None, "error": _error(exc)},
                     status_code=exc.status)
    return _page(request, "chains/backup.html",
                 {"wallet": view.wallet, "check": check, "error": None}, headers=NO_STORE)


@router.post("/crypto/{wallet_id}/backup/{check_id}")
async def backup_answer(request: Request, wallet_id: uuid.UUID, check_id: uuid.UUID, auth: Auth,
                        session: DbSession, pin: PinField,
                        word: Annotated[list[str], Form(max_length=3)]) -> Response:
    try:
        await service.answer_backup_check(session, auth.user.id, wallet_id, check_id,
                                          words=[w[:64] for w in word], pin=pin,
                                          config=chain_config(request),
                                          info=client_info(request))
    except BankwalletError as exc:
        view = await service.get_wallet(session, auth.user.id, wallet_id)
        check = await service.get_backup_check(session, auth.user.id, wallet_id, check_id)
        return _page(request, "chains/backup.html",
                     {"wallet": view.wallet, "error": _error(exc),
                      "check": check if service.backup_check_open(check) else None},
                     status_code=exc.status, headers=NO_STORE)
    return RedirectResponse(f"/crypto/{wallet_id}?backed_up=1", status_code=303)


@router.get("/crypto/{wallet_id}/reveal", response_class=HTMLResponse)
async def reveal_page(request: Request, wallet_id: uuid.UUID, session: DbSession) -> Response:
    auth = await _viewer(request, session)
    if auth is None:
        return _login_redirect(f"/crypto/{wallet_id}/reveal")
    view = await service.get_wallet(session, auth.user.id, wallet_id)
    return _page(request, "chains/reveal.html", {"wallet": view.wallet, "error": None})


@router.post("/crypto/{wallet_id}/reveal")
async def reveal(request: Request, wallet_id: uuid.UUID, auth: Auth, session: DbSession,
                 pin: PinField) -> Response:
    try:
        shown = await service.reveal(session, auth, wallet_id, pin=pin,
                                     config=chain_config(request), info=client_info(request))
    except StepUpRequired:
        return _step_up_redirect(f"/crypto/{wallet_id}/reveal")
    except BankwalletError as exc:
        view = await service.get_wallet(session, auth.user.id, wallet_id)
        return _page(request, "chains/reveal.html", {"wallet": view.wallet,
                                                     "error": _error(exc)},
                     status_code=exc.status)
    view = await service.get_wallet(session, auth.user.id, wallet_id)
    return _page(request, "chains/words.html",
                 {"wallet": view.wallet, "words": shown.words, "private_key": shown.private_key_hex,
                  "created": False}, headers=NO_STORE)


# -- receive and balances ----------------------------------------------------------------------


@router.get("/crypto/{wallet_id}/receive", response_class=HTMLResponse)
async def receive_page(request: Request, wallet_id: uuid.UUID, session: DbSession) -> Response:
    auth = await _viewer(request, session)
    if auth is None:
        return _login_redirect(f"/crypto/{wallet_id}/receive")
    view = await service.get_wallet(session, auth.user.id, wallet_id)
    entries = []
    for address in view.addresses:
        link = service.receive_link(address)
        entries.append({"chain": get_chain(address.chain), "address": address.address,
                        "link": link, "qr": uri.qr_svg(link or address.address)})
    return _page(request, "chains/receive.html", {"wallet": view.wallet, "entries": entries})


@router.get("/crypto/{wallet_id}/portfolio", response_class=HTMLResponse)
async def portfolio_page(request: Request, wallet_id: uuid.UUID, session: DbSession) -> Response:
    auth = await _viewer(request, session)
    if auth is None:
        return _login_redirect(f"/crypto/{wallet_id}/portfolio")
    view = await service.get_wallet(session, auth.user.id, wallet_id)
    holdings = await service.portfolio(session, auth.user.id, wallet_id,
                                       config=chain_config(request))
    return _page(request, "chains/portfolio.html",
                 {"wallet": view.wallet, "holdings": holdings, "chain_name": _chain_name,
                  "format": service.format_amount})


def _chain_name(symbol: str) -> str:
    return get_chain(symbol).name


# -- send --------------------------------------------------------------------------------------


def _assets(config: service.ChainConfig, view: service.WalletView) -> list[dict[str, str]]:
    """What the send form offers: each configured EVM chain's coin and tokens."""
    assets = []
    for symbol in EVM_CHAINS:
        if view.address_on(symbol) is None or not config.configured(symbol):
            continue
        spec = get_chain(symbol)
        assets.append({"value": f"{symbol}:", "label": f"{spec.native_symbol} · {spec.name}"})
        for token in config.tokens_of(symbol):
            assets.append({"value": f"{symbol}:{token.address}",
                           "label": f"{token.symbol} · {spec.name}"})
    return assets


async def _send_form(request: Request, session: DbSession, auth: Authenticated,
                     wallet_id: uuid.UUID, *, error: dict[str, Any] | None = None,
                     status_code: int = 200, form: dict[str, str] | None = None) -> HTMLResponse:
    config = chain_config(request)
    view = await service.get_wallet(session, auth.user.id, wallet_id)
    _, saved = await service.address_book(session, auth.user.id)
    return _page(request, "chains/send.html",
                 {"wallet": view.wallet, "assets": _assets(config, view), "error": error,
                  "saved": [e for e in saved if e.chain in EVM_CHAINS],
                  "form": form or {"asset": "", "to": "", "amount": ""},
                  "watch_only": view.wallet.kind == service.KIND_WATCH_ONLY},
                 status_code=status_code)


@router.get("/crypto/{wallet_id}/send", response_class=HTMLResponse)
async def send_page(request: Request, wallet_id: uuid.UUID, session: DbSession) -> Response:
    auth = await _viewer(request, session)
    if auth is None:
        return _login_redirect(f"/crypto/{wallet_id}/send")
    return await _send_form(request, session, auth, wallet_id)


def _asset(config: service.ChainConfig, asset: str) -> tuple[str, str | None, int]:
    """"ETH:" or "ETH:0xtoken" → chain, token, decimals."""
    chain, _, token = asset.partition(":")
    spec = get_chain(chain or "?")
    if not token:
        return spec.symbol, None, spec.decimals
    return spec.symbol, token, config.token(spec.symbol, token).decimals


@router.post("/crypto/{wallet_id}/send/preview")
async def send_preview(request: Request, wallet_id: uuid.UUID, auth: Auth, session: DbSession,
                       asset: Annotated[str, Form(max_length=80)],
                       to: Annotated[str, Form(max_length=128)],
                       amount: Annotated[str, Form(max_length=100)]) -> Response:
    config = chain_config(request)
    try:
        chain, token, decimals = _asset(config, asset)
        plan = await service.plan_send(session, auth.user.id, wallet_id, chain=chain, to=to,
                                       amount_minor=service.parse_amount(amount, decimals),
                                       token=token, config=config)
    except BankwalletError as exc:
        if exc.status == 404:
            raise
        return await _send_form(request, session, auth, wallet_id, error=_error(exc),
                                status_code=exc.status,
                                form={"asset": asset, "to": to, "amount": amount})
    return _page(request, "chains/send_preview.html",
                 {"plan": plan, "asset": asset, "error": None, "format": service.format_amount,
                  "chain_name": _chain_name(plan.chain),
                  "native": get_chain(plan.chain).native_symbol,
                  "key": secrets.token_urlsafe(16)})


@router.post("/crypto/{wallet_id}/send")
async def send(request: Request, wallet_id: uuid.UUID, auth: Auth, session: DbSession,
               asset: Annotated[str, Form(max_length=80)],
               to: Annotated[str, Form(max_length=128)],
               amount_minor: Annotated[str, Form(max_length=80)],
               max_fee_wei: Annotated[str, Form(max_length=80)],
               key: Annotated[str, Form(min_length=8, max_length=64)], pin: PinField) -> Response:
    config = chain_config(request)
    info = client_info(request)
    try:
        chain, token, _ = _asset(config, asset)
        if not (amount_minor.isdigit() and max_fee_wei.isdigit()):
            raise InvalidInput("the form is out of date")
        secret = await service.unlock(session, auth.user.id, wallet_id, pin, config=config,
                                      info=info)
        row = await service.send(session, auth.user.id, wallet_id, chain=chain, to=to,
                                 amount_minor=int(amount_minor), token=token, secret=secret,
                                 idempotency_key=f"web:{key}", config=config,
                                 max_fee_wei=int(max_fee_wei), info=info)
    except BankwalletError as exc:
        if exc.status == 404:
            raise
        await session.rollback()
        return await _send_form(request, session, auth, wallet_id, error=_error(exc),
                                status_code=exc.status,
                                form={"asset": asset, "to": to, "amount": ""})
    return RedirectResponse(f"/crypto/{wallet_id}/transactions/{row.id}", status_code=303)


@router.get("/crypto/{wallet_id}/transactions/{tx_id}", response_class=HTMLResponse)
async def transaction_page(request: Request, wallet_id: uuid.UUID, tx_id: uuid.UUID,
                           session: DbSession) -> Response:
    auth = await _viewer(request, session)
    if auth is None:
        return _login_redirect(f"/crypto/{wallet_id}/transactions/{tx_id}")
    view = await service.get_wallet(session, auth.user.id, wallet_id)
    row = await service.get_transaction(session, auth.user.id, wallet_id, tx_id,
                                        config=chain_config(request))
    return _page(request, "chains/transaction.html",
                 {"wallet": view.wallet, "wallet_id": wallet_id, "tx": row,
                  "format": service.format_amount, "chain_name": _chain_name(row.chain),
                  "native": get_chain(row.chain).native_symbol})


@router.get("/crypto/{wallet_id}/transactions/{tx_id}/status", response_class=HTMLResponse)
async def transaction_status(request: Request, wallet_id: uuid.UUID, tx_id: uuid.UUID,
                             auth: Auth, session: DbSession) -> Response:
    """The status block, polled by the transaction page (htmx) until the status is final."""
    row = await service.get_transaction(session, auth.user.id, wallet_id, tx_id,
                                        config=chain_config(request))
    return _page(request, "chains/_tx_status.html",
                 {"wallet_id": wallet_id, "tx": row, "format": service.format_amount,
                  "native": get_chain(row.chain).native_symbol})


# -- signing -----------------------------------------------------------------------------------


@router.get("/crypto/{wallet_id}/sign", response_class=HTMLResponse)
async def sign_page(request: Request, wallet_id: uuid.UUID, session: DbSession) -> Response:
    auth = await _viewer(request, session)
    if auth is None:
        return _login_redirect(f"/crypto/{wallet_id}/sign")
    view = await service.get_wallet(session, auth.user.id, wallet_id)
    return _page(request, "chains/sign.html", {"wallet": view.wallet, "error": None,
                                               "message": "", "typed_data": ""})


def _typed(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        raise TypedDataInvalid("not valid JSON") from None
    if not isinstance(data, dict):
        raise TypedDataInvalid("typed data is a JSON object")
    return data


async def _sign_error(request: Request, session: DbSession, auth: Authenticated,
                      wallet_id: uuid.UUID, exc: BankwalletError, *, message: str = "",
                      typed_data: str = "") -> HTMLResponse:
    if exc.status == 404:
        raise exc
    view = await service.get_wallet(session, auth.user.id, wallet_id)
    return _page(request, "chains/sign.html",
                 {"wallet": view.wallet, "error": _error(exc), "message": message,
                  "typed_data": typed_data}, status_code=exc.status)


@router.post("/crypto/{wallet_id}/sign/preview")
async def sign_preview(request: Request, wallet_id: uuid.UUID, auth: Auth, session: DbSession,
                       kind: Annotated[str, Form(max_length=16)], payload: LongText) -> Response:
    """What will be signed, readable, before the PIN is asked."""
    try:
        address = await service.check_signing_wallet(session, auth.user.id, wallet_id)
        preview = None
        if kind == "typed_data":
            preview = evm_signing.preview_typed_data(_typed(payload))
        elif kind != "message" or not payload:
            raise InvalidInput("write the message to sign")
    except BankwalletError as exc:
        return await _sign_error(request, session, auth, wallet_id, exc,
                                 **{"typed_data" if kind == "typed_data" else "message": payload})
    return _page(request, "chains/sign_preview.html",
                 {"wallet_id": wallet_id, "address": address.address, "kind": kind,
                  "payload": payload, "preview": preview, "error": None})


@router.post("/crypto/{wallet_id}/sign")
async def sign(request: Request, wallet_id: uuid.UUID, auth: Auth, session: DbSession,
               kind: Annotated[str, Form(max_length=16)], payload: LongText,
               pin: PinField) -> Response:
    info = client_info(request)
    try:
        await service.check_signing_wallet(session, auth.user.id, wallet_id)
        typed = _typed(payload) if kind == "typed_data" else None
        if typed is not None:
            evm_signing.preview_typed_data(typed)
        secret = await service.unlock(session, auth.user.id, wallet_id, pin,
                                      config=chain_config(request), info=info)
        if typed is not None:
            signed = await service.sign_typed_data(session, auth.user.id, wallet_id,
                                                   typed_data=typed, secret=secret, info=info)
            address, signature = signed.signer, signed.signature
        else:
            result = await service.sign_message(session, auth.user.id, wallet_id,
                                                message=payload.encode(), secret=secret,
                                                info=info)
            address, signature = result.address, result.signature
    except BankwalletError as exc:
        return await _sign_error(request, session, auth, wallet_id, exc,
                                 **{"typed_data" if kind == "typed_data" else "message": payload})
    return _page(request, "chains/signed.html",
                 {"wallet_id": wallet_id, "address": address, "signature": signature})
