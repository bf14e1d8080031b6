"""Sending money between customers, requesting it, and splitting bills.

Every movement follows docs/money-movement.md:

1. the route claims the ``Idempotency-Key`` (``core.idempotency.run``);
2. ``_record_intent`` checks everything (recipient, risk and step-up, the recipient's balance
   cap, the payer's limits under a lock on their daily counter), inserts the ``pending`` row
   whose id derives from (payer, key) and whose ledger transfer id derives from that id, and
   **commits** it;
3. ``_settle`` submits the ledger transfer (resubmitting the same id is always safe);
4. ``_finish`` records ``posted`` or ``failed`` (releasing the reserved outflow) with the
   ``money.moved`` event in one transaction; a failure is committed before its error is raised,
   so the idempotency record replays it;
5. ``heal_once`` (a job from ``tasks.startup``) settles rows still ``pending`` after a minute.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hmac
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs

import segno
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet.core import audit, outbox
from bankwallet.core.crypto import get_keyring
from bankwallet.core.db import Database, utcnow
from bankwallet.core.errors import InvalidInput
from bankwallet.core.idempotency import IdempotencyKeyReused
from bankwallet.core.ids import derived_id, uuid7
from bankwallet.core.money import MAX_AMOUNT_MINOR, InvalidAmount
from bankwallet.identity import kyc, mfa
from bankwallet.identity import service as identity_service
from bankwallet.identity.errors import InvalidLogin
from bankwallet.ledger import service as ledger_service
from bankwallet.ledger.store import LedgerStore
from bankwallet.ledger.types import Result, TransferIn
from bankwallet.risk import service as risk_service
from bankwallet.transfers import repository
from bankwallet.transfers.errors import (
    DuplicateParticipant,
    InsufficientFunds,
    InvalidContactCard,
    InvalidRecipient,
    NotThePayer,
    NotTheRequester,
    RecipientLimitExceeded,
    RecipientNotFound,
    RequestNotFound,
    RequestNotOpen,
    RiskDeclined,
    SelfTransfer,
    SplitNotFound,
    SplitSharesMismatch,
    SplitTooSmall,
    TooManyOpenRequests,
    TransferFailed,
    TransferNotFound,
)
from bankwallet.transfers.models import NOTE_MAX_CHARS, MoneyRequest, Split, Transfer
from bankwallet.wallets import service as wallets_service
from bankwallet.wallets.codes import KIND_OF_CODE, Code

log = logging.getLogger("bankwallet.transfers")

RECIPIENT_MAX_CHARS: Final = 512
CARD_CONTEXT: Final = "transfers.contact_card"
CARD_PREFIX: Final = "bankwallet:pay?"
CARD_VERSION: Final = "1"
CARD_SIGNATURE_BYTES: Final = 16  # 128 bits of HMAC-SHA256: unforgeable, short enough for a QR
CARD_MAX_CHARS: Final = 256
OPEN_REQUESTS_MAX: Final = 50  # per requester: requests are not a way to spam people
SPLIT_PARTICIPANTS_MAX: Final = 20
HEAL_AFTER_S: Final = 60  # a pending row younger than this may still be in its request
HEAL_BATCH_MAX: Final = 100
HEAL_INTERVAL_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class SplitView:
    split: Split
    requests: list[MoneyRequest]


# -- pure rules ------------------------------------------------------------------------------


def split_equal(total_minor: int, parts: int) -> list[int]:
    """``total_minor`` in ``parts`` shares that differ by at most one minor unit; the
    remainder goes one unit each to the first shares, so the same bill always splits alike."""
    assert parts >= 1 and total_minor >= 0
    share, remainder = divmod(total_minor, parts)
    return [share + 1] * remainder + [share] * (parts - remainder)


def clean_note(note: str | None) -> str | None:
    """Whitespace collapsed (no line breaks or control characters reach a statement)."""
    if note is None:
        return None
    text = " ".join("".join(c if c.isprintable() else " " for c in note).split())
    if len(text) > NOTE_MAX_CHARS:
        raise InvalidInput(f"A note has at most {NOTE_MAX_CHARS} characters.", field="note")
    return text or None


def check_amount(amount_minor: int) -> int:
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or not (
            0 < amount_minor <= MAX_AMOUNT_MINOR):
        raise InvalidAmount("The amount must be a positive whole number of minor units.")
    return amount_minor


def _card_signature(wallet_id: uuid.UUID) -> str:
    mac = get_keyring().blind_index(str(wallet_id), context=CARD_CONTEXT)[:CARD_SIGNATURE_BYTES]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def contact_card(wallet_id: uuid.UUID) -> str:
    """The text of a customer's QR contact card: their wallet id, signed by the bank."""
    return f"{CARD_PREFIX}to={wallet_id}&v={CARD_VERSION}&sig={_card_signature(wallet_id)}"


def parse_contact_card(text: str) -> uuid.UUID:
    """The wallet id on a card the bank signed; anything else is ``InvalidContactCard``."""
    text = text.strip()
    if len(text) > CARD_MAX_CHARS or not text.lower().startswith(CARD_PREFIX):
        raise InvalidContactCard()
    try:
        params = parse_qs(text[len(CARD_PREFIX):], strict_parsing=True, max_num_fields=8)
    except ValueError:
        raise InvalidContactCard() from None
    if set(params) != {"to", "v", "sig"} or any(len(v) != 1 for v in params.values()):
        raise InvalidContactCard()
    if params["v"][0] != CARD_VERSION:
        raise InvalidContactCard("This card was made by a newer version of the app.")
    try:
        wallet_id = uuid.UUID(params["to"][0])
    except ValueError:
        raise InvalidContactCard() from None
    if not hmac.compare_digest(params["sig"][0].encode(), _card_signature(wallet_id).encode()):
        raise InvalidContactCard()
    return wallet_id


def contact_card_svg(payload: str) -> str:
    """Inline SVG with presentation attributes only (no ``style``), so the CSP allows it."""
    return segno.make(payload, error="m").svg_inline(
        scale=6, dark="#000", light="#fff", svgclass="contact-card-qr", lineclass=None,
        omitsize=False)


def ledger_transfer(row: Transfer) -> TransferIn:
    """The ledger transfer of a row: built from the row alone, so a retry is identical."""
    user_data: dict[str, Any] = {"kind": KIND_OF_CODE[row.code], "ref": str(row.id),
                                 "from": row.from_display, "to": row.to_display}
    if row.note:
        user_data["note"] = row.note
    return TransferIn(
        id=row.ledger_transfer_id, amount=row.amount_minor, ledger=row.currency, code=row.code,
        debit_account_id=wallets_service.wallet_account_id(row.payer_user_id, row.currency),
        credit_account_id=wallets_service.wallet_account_id(row.payee_user_id, row.currency),
        user_data=user_data)


def money_moved(row: Transfer) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "kind": KIND_OF_CODE[row.code], "status": row.status, "ref": str(row.id),
        "amount_minor": row.amount_minor, "currency": row.currency,
        "ledger_transfer_id": str(row.ledger_transfer_id),
        "payer_user_id": str(row.payer_user_id), "payee_user_id": str(row.payee_user_id),
        "from": row.from_display, "to": row.to_display}
    if row.note:
        payload["note"] = row.note
    return payload


def sent_transfer_id(payer_id: uuid.UUID, key: str) -> uuid.UUID:
    """The id of the transfer a payer sends under an ``Idempotency-Key`` (both paths)."""
    return derived_id("transfers.send", payer_id, key)


def ledger_transfer_id(transfer_id: uuid.UUID) -> uuid.UUID:
    """The ledger transfer id of a transfer row: a retry resubmits the same one."""
    return derived_id("transfers.p2p", transfer_id)


def audit_data(row: Transfer) -> dict[str, Any]:
    """What the audit log keeps about a transfer's outcome."""
    return {"amount_minor": row.amount_minor, "currency": row.currency,
            "payee_user_id": str(row.payee_user_id), "failure_code": row.failure_code}


def _failure_code(result: Result) -> str:
    if result in (Result.EXCEEDS_CREDITS, Result.DEBIT_ACCOUNT_NOT_FOUND):
        return InsufficientFunds.code
    return result.value


def error_of(row: Transfer) -> Exception:
    """The typed error a failed transfer answers with (the same on every replay)."""
    assert row.status == "failed"
    if row.failure_code == InsufficientFunds.code:
        return InsufficientFunds("Your balance does not cover this amount.",
                                 transfer_id=str(row.id))
    return TransferFailed(f"The ledger refused it ({row.failure_code}).",
                          reason=row.failure_code, transfer_id=str(row.id))


# -- recipients ------------------------------------------------------------------------------


def recipient_query(text: str) -> uuid.UUID | identity_service.Login:
    """What to look a recipient up by: a wallet id (also from a signed contact card) or a
    login. Raises ``InvalidRecipient`` / ``InvalidContactCard`` for anything else."""
    text = (text or "").strip()
    if not text or len(text) > RECIPIENT_MAX_CHARS:
        raise InvalidRecipient()
    if text.lower().startswith("bankwallet:"):
        return parse_contact_card(text)
    try:
        return uuid.UUID(text)
    except ValueError:
        pass
    try:
        return identity_service.parse_login(text)
    except InvalidLogin:
        raise InvalidRecipient() from None


async def resolve_recipient(session: AsyncSession, text: str) -> Any:
    """The active customer behind a phone number, an e-mail address, a wallet id or a
    signed contact card. Unknown, closed and locked all answer ``RecipientNotFound``."""
    query = recipient_query(text)
    if isinstance(query, uuid.UUID):
        user = await identity_service.get_user(session, query)
    else:
        user = await identity_service.find_user(session, query)
    if user is None or user.status != "active":
        raise RecipientNotFound()
    return user


def idempotency_scope(user_id: uuid.UUID) -> str:
    """One key space per customer for every transfers POST (the path is in the fingerprint,
    so a key reused on another endpoint is a conflict)."""
    return f"transfers:{user_id}"


async def preview_recipient(session: AsyncSession, auth: identity_service.Authenticated,
                            text: str) -> str:
    """The masked name of whom a payment would reach, for the payer to check first."""
    user = await resolve_recipient(session, text)
    if user.id == auth.user.id:
        raise SelfTransfer()
    return mfa.masked_login(user)


# -- checks before money moves ---------------------------------------------------------------


async def check_risk(session: AsyncSession, auth: identity_service.Authenticated, *,
                     action: str, amount_minor: int, currency: str,
                     counterparty: str | None = None) -> None:
    """Ask the risk service; above the step-up threshold the session needs a fresh second
    factor. Routes call this before claiming the key too, so a step-up answer is not stored
    as the request's outcome (the retry after stepping up may use the same key)."""
    assessment = await risk_service.assess(session, user_id=auth.user.id, action=action,
                                           amount_minor=amount_minor, currency=currency,
                                           counterparty=counterparty)
    if assessment.decision is risk_service.Decision.STEP_UP:
        await mfa.ensure_recent_second_factor(session, auth)
    elif assessment.decision is not risk_service.Decision.ALLOW:
        raise RiskDeclined()


async def _check_inflow(session: AsyncSession, ledger: LedgerStore, *, payee_id: uuid.UUID,
                        amount_minor: int, currency: str) -> None:
    try:
        await wallets_service.check_inflow(session, ledger, user_id=payee_id,
                                           amount_minor=amount_minor, currency=currency)
    except kyc.LimitExceeded:
        raise RecipientLimitExceeded() from None


# -- sending ---------------------------------------------------------------------------------


async def send(session: AsyncSession, ledger: LedgerStore, auth: identity_service.Authenticated,
               *, key: str, to: str, amount_minor: int, currency: str,
               note: str | None = None) -> Transfer:
    """Send ``amount_minor`` to another customer, once per ``key``."""
    transfer_id = sent_transfer_id(auth.user.id, key)
    existing = await session.get(Transfer, transfer_id)
    if existing is not None:
        return await _resume(session, ledger, existing,
                             same=(existing.amount_minor, existing.currency, existing.note)
                             == (amount_minor, currency.upper(), clean_note(note)))
    currency = wallets_service.supported(currency)
    amount_minor = check_amount(amount_minor)
    note = clean_note(note)
    payee = await resolve_recipient(session, to)
    if payee.id == auth.user.id:
        raise SelfTransfer()
    row = Transfer(id=transfer_id, payer_user_id=auth.user.id, payee_user_id=payee.id,
                   amount_minor=amount_minor, currency=currency, code=int(Code.P2P), note=note,
                   from_display=mfa.masked_login(auth.user), to_display=mfa.masked_login(payee))
    return await _move(session, ledger, auth, row, request=None)


async def _move(session: AsyncSession, ledger: LedgerStore,
                auth: identity_service.Authenticated, row: Transfer, *,
                request: MoneyRequest | None) -> Transfer:
    recorded = await _record_intent(session, ledger, auth, row, request=request)
    if recorded is not row:  # a concurrent duplicate recorded it first
        return await _resume(session, ledger, recorded, same=True)
    settled = await _settle(session, ledger, row)
    if settled.status == "failed":
        await session.commit()  # the outcome stands even though the request answers an error
        raise error_of(settled)
    return settled


async def _record_intent(session: AsyncSession, ledger: LedgerStore,
                         auth: identity_service.Authenticated, row: Transfer, *,
                         request: MoneyRequest | None) -> Transfer:
    """Check, reserve the outflow, insert the pending row and commit it (step 2)."""
    await check_risk(session, auth, action="p2p.send" if request is None else "p2p.request_pay",
                     amount_minor=row.amount_minor, currency=row.currency,
                     counterparty=str(row.payee_user_id))
    await _check_inflow(session, ledger, payee_id=row.payee_user_id,
                        amount_minor=row.amount_minor, currency=row.currency)
    row.outflow_day = await wallets_service.reserve_outflow(
        session, user_id=row.payer_user_id, amount_minor=row.amount_minor,
        currency=row.currency)
    if request is not None and not await repository.move_request(
            session, request.id, from_status="open", to_status="paying", transfer_id=row.id):
        raise RequestNotOpen()
    now = utcnow()
    row.status, row.failure_code, row.created_at, row.finished_at = "pending", None, now, None
    row.ledger_transfer_id = ledger_transfer_id(row.id)
    row.request_id = request.id if request is not None else None
    session.add(row)
    try:
        await session.commit()
    except IntegrityError:
        # The same key, twice at once (a double-clicked form): the first row stands.
        await session.rollback()
        existing = await session.get(Transfer, row.id)
        if existing is None:
            raise
        return existing
    return row


async def post(ledger: LedgerStore, row: Transfer) -> str | None:
    """Submit the ledger transfer of a pending row (step 3): None when it posted, else the
    failure code to record. Resubmitting the same row is always safe."""
    (outcome,) = await ledger_service.submit(ledger, [ledger_transfer(row)])
    if outcome.result is Result.CREDIT_ACCOUNT_NOT_FOUND:
        # The payee has never held this currency: open the wallet, then the same transfer
        # again (a refused transfer is not stored, so its id is still free). Asking first
        # would cost every transfer a look-up for the rare one that needs it.
        await wallets_service.open_wallet(ledger, row.payee_user_id, row.currency)
        (outcome,) = await ledger_service.submit(ledger, [ledger_transfer(row)])
    if outcome.ok:
        return None
    if outcome.result is not Result.EXCEEDS_CREDITS:
        log.warning("ledger refused a transfer",
                    extra={"transfer_id": str(row.id), "result": outcome.result.value})
    return _failure_code(outcome.result)


async def _settle(session: AsyncSession, ledger: LedgerStore, row: Transfer) -> Transfer:
    """Submit the ledger transfer (step 3) and record its outcome (step 4)."""
    failure_code = await post(ledger, row)
    return await _finish(session, row, posted=failure_code is None, failure_code=failure_code)


async def _finish(session: AsyncSession, row: Transfer, *, posted: bool,
                  failure_code: str | None) -> Transfer:
    now = utcnow()
    status = "posted" if posted else "failed"
    if not await repository.finish_transfer(session, row.id, status=status,
                                            failure_code=failure_code, finished_at=now):
        await session.refresh(row)  # a retry or the healing job recorded it first
        return row
    row.status, row.failure_code, row.finished_at = status, failure_code, now
    if not posted:
        await wallets_service.release_outflow(session, user_id=row.payer_user_id,
                                              amount_minor=row.amount_minor,
                                              currency=row.currency, day=row.outflow_day)
    if row.request_id is not None:
        settled = await repository.settle_request(session, row.request_id, row.id, paid=posted,
                                                  at=now)
        assert settled, "a request being paid left 'paying' without its payment"
    await outbox.publish(session, "money.moved", money_moved(row), key=str(row.payer_user_id))
    if posted and row.request_id is not None:
        await outbox.publish(session, "request.paid",
                             {"request_id": str(row.request_id), "transfer_id": str(row.id)},
                             key=str(row.payer_user_id))
    await audit.record(session, action=f"transfers.transfer.{status}", actor_type="user",
                       actor_id=str(row.payer_user_id), subject_type="transfer",
                       subject_id=str(row.id), data=audit_data(row))
    await session.flush()
    return row


async def _resume(session: AsyncSession, ledger: LedgerStore, row: Transfer, *,
                  same: bool) -> Transfer:
    """The same key again after the intent was recorded: finish it and answer the same."""
    if not same:
        raise IdempotencyKeyReused()
    if row.status == "pending":
        row = await _settle(session, ledger, row)
        if row.status == "failed":
            await session.commit()
    if row.status == "failed":
        raise error_of(row)
    return row


async def get_transfer(session: AsyncSession, user_id: uuid.UUID,
                       transfer_id: uuid.UUID) -> Transfer:
    row = await repository.visible_transfer(session, user_id, transfer_id)
    if row is None:
        raise TransferNotFound()
    return row


async def list_transfers(session: AsyncSession, user_id: uuid.UUID, *,
                         direction: repository.Direction = "all", cursor: str | None = None,
                         limit: int = 50) -> list[Transfer]:
    return await repository.list_transfers(session, user_id, direction=direction,
                                           cursor=cursor, limit=limit)


# -- requests --------------------------------------------------------------------------------


async def _visible_request(session: AsyncSession, user_id: uuid.UUID,
                           request_id: uuid.UUID) -> MoneyRequest:
    row = await repository.get_request(session, request_id)
    if row is None or user_id not in (row.requester_user_id, row.payer_user_id):
        raise RequestNotFound()
    return row


async def get_request(session: AsyncSession, user_id: uuid.UUID,
                      request_id: uuid.UUID) -> MoneyRequest:
    return await _visible_request(session, user_id, request_id)


async def list_requests(session: AsyncSession, user_id: uuid.UUID, *, box: repository.Box,
                        status: str | None = None, cursor: str | None = None,
                        limit: int = 50) -> list[MoneyRequest]:
    return await repository.list_requests(session, user_id, box=box, status=status,
                                          cursor=cursor, limit=limit)


async def _check_open_requests(session: AsyncSession, requester_id: uuid.UUID,
                               adding: int) -> None:
    if await repository.count_open_requests(session, requester_id) + adding > OPEN_REQUESTS_MAX:
        raise TooManyOpenRequests(limit=OPEN_REQUESTS_MAX)


def _new_request(auth: identity_service.Authenticated, payer: Any, *, amount_minor: int,
                 currency: str, note: str | None, split_id: uuid.UUID | None = None,
                 position: int | None = None, now: dt.datetime) -> MoneyRequest:
    return MoneyRequest(
        id=uuid7(), requester_user_id=auth.user.id, payer_user_id=payer.id,
        amount_minor=amount_minor, currency=currency, note=note, status="open",
        split_id=split_id, split_position=position, transfer_id=None,
        requester_display=mfa.masked_login(auth.user), payer_display=mfa.masked_login(payer),
        created_at=now, decided_at=None)


async def _announce(session: AsyncSession, request: MoneyRequest) -> None:
    await outbox.publish(session, "request.created", {
        "request_id": str(request.id), "requester_user_id": str(request.requester_user_id),
        "payer_user_id": str(request.payer_user_id), "amount_minor": request.amount_minor,
        "currency": request.currency, "from": request.requester_display,
        **({"note": request.note} if request.note else {}),
        **({"split_id": str(request.split_id)} if request.split_id else {})},
        key=str(request.payer_user_id))


async def create_request(session: AsyncSession, auth: identity_service.Authenticated, *,
                         payer: str, amount_minor: int, currency: str,
                         note: str | None = None) -> MoneyRequest:
    """Ask another customer for money; they pay or decline it."""
    currency = wallets_service.supported(currency)
    amount_minor = check_amount(amount_minor)
    note = clean_note(note)
    payer_user = await resolve_recipient(session, payer)
    if payer_user.id == auth.user.id:
        raise SelfTransfer()
    await _check_open_requests(session, auth.user.id, 1)
    request = _new_request(auth, payer_user, amount_minor=amount_minor, currency=currency,
                           note=note, now=utcnow())
    session.add(request)
    await session.flush()
    await _announce(session, request)
    await audit.record(session, action="transfers.request.created", actor_type="user",
                       actor_id=str(auth.user.id), subject_type="request",
                       subject_id=str(request.id),
                       data={"amount_minor": amount_minor, "currency": currency,
                             "payer_user_id": str(payer_user.id)})
    return request


async def request_to_pay(session: AsyncSession, user_id: uuid.UUID,
                         request_id: uuid.UUID) -> MoneyRequest:
    """The open request ``user_id`` may pay, or the error saying why not."""
    request = await _visible_request(session, user_id, request_id)
    if request.payer_user_id != user_id:
        raise NotThePayer()
    if request.status != "open":
        raise RequestNotOpen(request_status=request.status)
    return request


async def pay_request(session: AsyncSession, ledger: LedgerStore,
                      auth: identity_service.Authenticated, *, request_id: uuid.UUID,
                      key: str) -> Transfer:
    """Pay a request made to me: a transfer to the requester, once per request."""
    transfer_id = derived_id("transfers.pay", auth.user.id, key)
    existing = await session.get(Transfer, transfer_id)
    if existing is not None:
        return await _resume(session, ledger, existing, same=existing.request_id == request_id)
    request = await request_to_pay(session, auth.user.id, request_id)
    requester = await identity_service.get_user(session, request.requester_user_id)
    if requester is None or requester.status != "active":
        raise RecipientNotFound()
    row = Transfer(id=transfer_id, payer_user_id=auth.user.id, payee_user_id=requester.id,
                   amount_minor=request.amount_minor, currency=request.currency,
                   code=int(Code.REQUEST_PAYMENT), note=request.note,
                   from_display=mfa.masked_login(auth.user),
                   to_display=mfa.masked_login(requester))
    return await _move(session, ledger, auth, row, request=request)


async def decline_request(session: AsyncSession, auth: identity_service.Authenticated,
                          request_id: uuid.UUID) -> MoneyRequest:
    request = await _visible_request(session, auth.user.id, request_id)
    if request.payer_user_id != auth.user.id:
        raise NotThePayer()
    return await _close_request(session, auth, request, "declined")


async def cancel_request(session: AsyncSession, auth: identity_service.Authenticated,
                         request_id: uuid.UUID) -> MoneyRequest:
    request = await _visible_request(session, auth.user.id, request_id)
    if request.requester_user_id != auth.user.id:
        raise NotTheRequester()
    return await _close_request(session, auth, request, "cancelled")


async def _close_request(session: AsyncSession, auth: identity_service.Authenticated,
                         request: MoneyRequest, status: str) -> MoneyRequest:
    now = utcnow()
    if not await repository.move_request(session, request.id, from_status="open",
                                         to_status=status, decided_at=now):
        await session.refresh(request)
        raise RequestNotOpen(request_status=request.status)
    await session.refresh(request)
    await outbox.publish(session, f"request.{status}", {
        "request_id": str(request.id), "requester_user_id": str(request.requester_user_id),
        "payer_user_id": str(request.payer_user_id)}, key=str(request.requester_user_id))
    await audit.record(session, action=f"transfers.request.{status}", actor_type="user",
                       actor_id=str(auth.user.id), subject_type="request",
                       subject_id=str(request.id))
    return request


# -- split bills -----------------------------------------------------------------------------


async def create_split(session: AsyncSession, auth: identity_service.Authenticated, *,
                       total_minor: int, currency: str, note: str | None = None,
                       participants: Sequence[str] | None = None, include_me: bool = True,
                       shares: Sequence[tuple[str, int]] | None = None,
                       my_share_minor: int = 0) -> SplitView:
    """Share a bill out: equally among ``participants`` (and me, if ``include_me``), or by
    explicit ``shares`` that with ``my_share_minor`` add up to ``total_minor``. One request
    per participant."""
    currency = wallets_service.supported(currency)
    total_minor = check_amount(total_minor)
    note = clean_note(note)
    if (participants is None) == (shares is None):
        raise InvalidInput("Give either participants (an equal split) or shares.")
    who = list(participants) if participants is not None else [to for to, _ in shares or ()]
    if not 1 <= len(who) <= SPLIT_PARTICIPANTS_MAX:
        raise InvalidInput(f"A split bill has 1 to {SPLIT_PARTICIPANTS_MAX} participants.")
    if shares is None:
        parts = split_equal(total_minor, len(who) + (1 if include_me else 0))
        mine, theirs = (parts[0], parts[1:]) if include_me else (0, parts)
        mode = "equal"
    else:
        theirs = [check_amount(amount) for _, amount in shares]
        if my_share_minor < 0 or sum(theirs) + my_share_minor != total_minor:
            raise SplitSharesMismatch(total_minor=total_minor,
                                      shares_minor=sum(theirs) + max(my_share_minor, 0))
        mine, mode = my_share_minor, "explicit"
    if min(theirs) <= 0:
        raise SplitTooSmall()
    payers = await _resolve_participants(session, auth, who)
    await _check_open_requests(session, auth.user.id, len(payers))
    now = utcnow()
    split = Split(id=uuid7(), requester_user_id=auth.user.id, total_minor=total_minor,
                  currency=currency, my_share_minor=mine, mode=mode, note=note, created_at=now)
    session.add(split)
    await session.flush()
    requests = [_new_request(auth, payer, amount_minor=amount, currency=currency, note=note,
                             split_id=split.id, position=i, now=now)
                for i, (payer, amount) in enumerate(zip(payers, theirs, strict=True))]
    session.add_all(requests)
    await session.flush()
    for request in requests:
        await _announce(session, request)
    await audit.record(session, action="transfers.split.created", actor_type="user",
                       actor_id=str(auth.user.id), subject_type="split", subject_id=str(split.id),
                       data={"total_minor": total_minor, "currency": currency,
                             "participants": len(requests)})
    return SplitView(split, requests)


async def _resolve_participants(session: AsyncSession, auth: identity_service.Authenticated,
                                who: Sequence[str]) -> list[Any]:
    users: list[Any] = []
    for position, text in enumerate(who):
        try:
            user = await resolve_recipient(session, text)
        except (RecipientNotFound, InvalidRecipient, InvalidContactCard) as exc:
            exc.extra["participant"] = position
            raise
        if user.id == auth.user.id:
            raise SelfTransfer("Your own share is set with include_me or my_share_minor.",
                               participant=position)
        if any(u.id == user.id for u in users):
            raise DuplicateParticipant(participant=position)
        users.append(user)
    return users


async def get_split(session: AsyncSession, user_id: uuid.UUID, split_id: uuid.UUID) -> SplitView:
    split = await session.get(Split, split_id)
    if split is None or split.requester_user_id != user_id:
        raise SplitNotFound()
    return SplitView(split, await repository.requests_of_split(session, split.id))


async def list_splits(session: AsyncSession, user_id: uuid.UUID, *, cursor: str | None = None,
                      limit: int = 20) -> list[SplitView]:
    splits = await repository.list_splits(session, user_id, cursor=cursor, limit=limit)
    return [SplitView(s, await repository.requests_of_split(session, s.id)) for s in splits]


# -- healing ---------------------------------------------------------------------------------


async def heal_once(db: Database, ledger: LedgerStore, *, older_than_s: float = HEAL_AFTER_S,
                    limit: int = HEAL_BATCH_MAX, now: dt.datetime | None = None) -> int:
    """Settle transfers still ``pending`` after ``older_than_s`` (their request died between
    recording the intent and the outcome): resubmit the same ledger id, record the outcome.
    Each in a unit of work of its own; returns how many were settled here."""
    cutoff = (now or utcnow()) - dt.timedelta(seconds=older_than_s)
    async with db.sessionmaker() as session:
        ids = await repository.stale_pending_ids(session, created_before=cutoff, limit=limit)
    healed = 0
    for transfer_id in ids:
        async with db.unit_of_work() as session:
            row = await session.get(Transfer, transfer_id)
            if row is None or row.status != "pending":
                continue
            row = await _settle(session, ledger, row)
            healed += 1
            log.info("healed a pending transfer",
                     extra={"transfer_id": str(row.id), "status": row.status})
    return healed


async def heal_forever(db: Database, ledger: LedgerStore, *,
                       interval_s: float = HEAL_INTERVAL_S) -> None:
    while True:
        try:
            await heal_once(db, ledger)
        except Exception:  # a bad round must not stop the job; the next one retries
            log.exception("healing pending transfers failed")
        await asyncio.sleep(interval_s)
