"""The sandbox card gateway: a separate HTTP process playing a card processor
(``bankwallet sandbox-gateway``), for demos and tests, with Stripe's test cards.

It tokenises cards (``POST /v1/tokens``), then authorises (``POST /v1/payments``), captures
(full or partial), voids and refunds (full or partial, never above what was captured) payments
on a token, with Stripe-style idempotency keys. Every outcome is in the response and in a
signed webhook (``bankwallet.core.webhooks``, the sandbox bank's scheme and delivery loop:
retried with bounded backoff until the receiver answers 2xx).

What a card does is decided by its number, as with Stripe's test cards:

- ``4242424242424242``, ``5555555555554444``, ``378282246310005``, ``4000056655665556`` (debit)
  and ``6200000000000005`` (UnionPay): approved; so is any other number that passes the Luhn
  check and has a known brand (every UnionPay ``62…`` number among them);
- ``4000000000000002``: declined, ``generic_decline``;
- ``4000000000009995``: declined, ``insufficient_funds``;
- ``4000000000000069``: declined, ``expired_card``;
- ``4000000000000127``: declined, ``incorrect_cvc``;
- ``4000000000000119``: failed, ``processing_error``;
- ``4000002500003155``: needs 3-D Secure: the authorisation answers ``requires_action`` with a
  challenge URL on this process (``GET /3ds/{id}``: a page with "Complete" and "Fail"); the
  choice authorises or declines (``authentication_failed``), sends the webhook and sends the
  customer back to the payment's ``return_url``.

The gateway keeps no card number: a token holds the brand, the last four digits, the expiry and
what the number does. The CVC is kept in memory only, until the token's first authorisation
checks it (a restart forgets it: that authorisation reports ``cvc_check: unavailable``).

Each request may ask for a failure with ``X-Sandbox-Failure``: ``timeout`` (applied, but the
answer comes only after ``X-Sandbox-Delay``, default 15 s), and on an authorisation
``duplicate_webhook`` (every event of the payment is delivered twice, same event id) or
``webhook_never_sent`` (poll ``GET /v1/payments/{id}``).

State is in SQLite (in memory, or the ``--state`` file), every change one transaction without
an ``await`` inside, as in the sandbox bank. The admin endpoint (``/sandbox/events``) and the
challenge pages have no authentication: bind the sandbox to a loopback address (the default).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import hashlib
import html
import logging
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import orjson
from fastapi import Body, FastAPI, Form, Header, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bankwallet.connectors.corebanking.sandbox_server import (
    EVENTS_PAGE_MAX,
    WEBHOOK_ATTEMPTS_MAX,
    WEBHOOK_IN_FLIGHT_MAX,
    WEBHOOK_TIMEOUT_S,
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
    SandboxConfig,
    Scheduler,
    backoff_s,
)
from bankwallet.connectors.gateway.base import (
    AMOUNT_MAX_MINOR,
    HOLDER_NAME_MAX_CHARS,
    IDEMPOTENCY_KEY_MAX_CHARS,
    REFERENCE_MAX_CHARS,
    RETURN_URL_MAX_CHARS,
    Brand,
    brand_of,
    cvc_digits,
    last4,
    luhn_valid,
    normalize_number,
)
from bankwallet.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    install_error_handlers,
)
from bankwallet.core.http import RequestContextMiddleware
from bankwallet.core.money import check_currency

log = logging.getLogger("bankwallet.sandbox_gateway")

BODY_MAX_BYTES: Final = 16 * 1024
DELAY_MAX_S: Final = 120.0
DEFAULT_TIMEOUT_DELAY_S: Final = 15.0
EXPIRY_YEARS_MAX: Final = 20
CVC_MEMORY_MAX: Final = 10_000  # tokens awaiting their first authorisation, in memory
FAILURE_HEADER: Final = "X-Sandbox-Failure"
DELAY_HEADER: Final = "X-Sandbox-Delay"
FAILURE_MODES: Final = frozenset({"timeout", "duplicate_webhook", "webhook_never_sent"})
OPERATION_FAILURE_MODES: Final = frozenset({"timeout"})

# What each test card does (Stripe's numbers); any other valid number is approved.
APPROVE, CHALLENGE = "approve", "challenge"
TEST_CARDS: Final[dict[str, str]] = {
    "4242424242424242": APPROVE,
    "4000056655665556": APPROVE,
    "5555555555554444": APPROVE,
    "378282246310005": APPROVE,
    "6200000000000005": APPROVE,
    "4000000000000002": "generic_decline",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4000000000000127": "incorrect_cvc",
    "4000000000000119": "processing_error",
    "4000002500003155": CHALLENGE,
}
DEBIT_CARDS: Final = frozenset({"4000056655665556"})
FAILURES: Final = frozenset({"processing_error"})  # status "failed"; the others "declined"


# --- errors -------------------------------------------------------------------------------


class CardNumberInvalid(InvalidInput):
    code = "invalid_number"
    title = "The card number is not valid"


class CardBrandUnsupported(InvalidInput):
    code = "unsupported_brand"
    title = "Cards of this brand are not accepted"


class ExpiryInvalid(InvalidInput):
    code = "invalid_expiry"
    title = "The expiry date is not valid"


class CvcInvalid(InvalidInput):
    code = "invalid_cvc"
    title = "The security code is not valid"


class TokenNotFound(NotFound):
    code = "token_not_found"
    title = "No such card token"


class PaymentNotFound(NotFound):
    code = "payment_not_found"
    title = "No such payment"


class PaymentStateConflict(Conflict):
    """The operation does not fit the payment's status; ``payment`` says where it is."""

    code = "payment_state_conflict"
    title = "The payment's status does not allow this"


class CaptureExceedsAuthorized(InvalidInput):
    code = "capture_exceeds_authorized"
    title = "More than the authorised amount"


class RefundExceedsCaptured(InvalidInput):
    code = "refund_exceeds_captured"
    title = "More than is left to refund"


# --- request shapes -----------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenCreate(_Strict):
    # Checked by ``tokenize`` (not validators), so no error can ever echo the number.
    number: str = Field(min_length=1, max_length=32)
    exp_month: int = Field(strict=True)
    exp_year: int = Field(strict=True)
    cvc: str = Field(min_length=1, max_length=8)
    holder_name: str | None = Field(default=None, max_length=HOLDER_NAME_MAX_CHARS)


def _check_return_url(value: str | None) -> str | None:
    if value is not None and urlsplit(value).scheme not in ("http", "https"):
        raise ValueError("an http(s) URL")
    return value


class PaymentCreate(_Strict):
    token: str = Field(min_length=1, max_length=64)
    amount_minor: int = Field(ge=0, le=AMOUNT_MAX_MINOR, strict=True)
    currency: str = Field(min_length=3, max_length=3)
    reference: str = Field(min_length=1, max_length=REFERENCE_MAX_CHARS)
    return_url: str | None = Field(default=None, max_length=RETURN_URL_MAX_CHARS)

    _currency = field_validator("currency")(check_currency)
    _return_url = field_validator("return_url")(_check_return_url)


class AmountIn(_Strict):
    amount_minor: int | None = Field(default=None, gt=0, le=AMOUNT_MAX_MINOR, strict=True)


# --- state --------------------------------------------------------------------------------

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS sandbox_card_token (
    id TEXT PRIMARY KEY,
    brand TEXT NOT NULL,
    funding TEXT NOT NULL,
    last4 TEXT NOT NULL,
    exp_month INTEGER NOT NULL,
    exp_year INTEGER NOT NULL,
    scenario TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sandbox_payment (
    id TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    reference TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    cvc_check TEXT NOT NULL,
    amount_captured_minor INTEGER NOT NULL,
    amount_refunded_minor INTEGER NOT NULL,
    return_url TEXT,
    failure_mode TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_sandbox_payment_reference ON sandbox_payment (reference);
CREATE TABLE IF NOT EXISTS sandbox_refund (
    id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sandbox_idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sandbox_event (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    payment_id TEXT NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    deliveries_left INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_sandbox_gateway_event_due ON sandbox_event (state, next_attempt_at);
"""


def _iso(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).isoformat(timespec="microseconds")


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class CardFacts:
    """What the gateway keeps of a card: never its number."""

    brand: Brand
    funding: str
    last4: str
    exp_month: int
    exp_year: int
    scenario: str


def card_facts(data: TokenCreate, *, today: dt.date) -> CardFacts:
    """Check a card to tokenise; raises a 422 whose message never repeats the number."""
    number = normalize_number(data.number)
    if number is None or not luhn_valid(number):
        raise CardNumberInvalid()
    brand = brand_of(number)
    if brand is None:
        raise CardBrandUnsupported()
    if not 1 <= data.exp_month <= 12 or not (
            (today.year, today.month) <= (data.exp_year, data.exp_month)
            and data.exp_year <= today.year + EXPIRY_YEARS_MAX):
        raise ExpiryInvalid()
    if not (data.cvc.isascii() and data.cvc.isdigit() and len(data.cvc) == cvc_digits(brand)):
        raise CvcInvalid()
    funding = "debit" if number in DEBIT_CARDS or brand is Brand.UNIONPAY else "credit"
    return CardFacts(brand, funding, last4(number), data.exp_month, data.exp_year,
                     TEST_CARDS.get(number, APPROVE))


class GatewayStore:
    """Every state change of the sandbox gateway, each in one SQLite transaction."""

    def __init__(self, path: Path | None) -> None:
        self.conn = sqlite3.connect(str(path) if path else ":memory:", isolation_level=None,
                                    check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        if path:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(SCHEMA)
        # token -> CVC, until the token's first authorisation; never written to the file.
        self.cvcs: collections.OrderedDict[str, str] = collections.OrderedDict()

    def close(self) -> None:
        self.cvcs.clear()
        self.conn.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # tokens

    def tokenize(self, facts: CardFacts, cvc: str, now: float) -> dict[str, Any]:
        token_id = _new_id("tok")
        with self._tx() as db:
            db.execute("INSERT INTO sandbox_card_token VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (token_id, facts.brand.value, facts.funding, facts.last4, facts.exp_month,
                        facts.exp_year, facts.scenario, _iso(now)))
            row = db.execute("SELECT * FROM sandbox_card_token WHERE id = ?",
                             (token_id,)).fetchone()
        self.cvcs[token_id] = cvc
        while len(self.cvcs) > CVC_MEMORY_MAX:
            self.cvcs.popitem(last=False)
        return _token_view(row)

    # idempotency

    def _replay(self, db: sqlite3.Connection, key: str, fingerprint: str) -> Answer | None:
        seen = db.execute("SELECT * FROM sandbox_idempotency WHERE key = ?", (key,)).fetchone()
        if seen is None:
            return None
        if seen["fingerprint"] != fingerprint:
            raise IdempotencyKeyReused("This Idempotency-Key was used with another request.")
        return Answer(seen["status_code"], orjson.loads(seen["body"]), True)

    @staticmethod
    def _remember(db: sqlite3.Connection, key: str, fingerprint: str, answer: Answer,
                  now: float) -> Answer:
        db.execute("INSERT INTO sandbox_idempotency VALUES (?, ?, ?, ?, ?)",
                   (key, fingerprint, answer.status_code, orjson.dumps(answer.body).decode(),
                    _iso(now)))
        return answer

    # payments

    def authorize(self, key: str, data: PaymentCreate, *, failure_mode: str | None,
                  challenge_base: str, now: float) -> Answer:
        fingerprint = _fingerprint("authorize", data.model_dump())
        with self._tx() as db:
            replay = self._replay(db, key, fingerprint)
            if replay is not None:
                return replay
            token = db.execute("SELECT * FROM sandbox_card_token WHERE id = ?",
                               (data.token,)).fetchone()
            if token is None:
                raise TokenNotFound()
            cvc = self.cvcs.pop(data.token, None)
            scenario = token["scenario"]
            status, reason = _decide(token, scenario, today=_utc_date(now))
            cvc_check = ("unavailable" if cvc is None
                         else "fail" if scenario == "incorrect_cvc" else "pass")
            payment_id = _new_id("pay")
            db.execute("INSERT INTO sandbox_payment VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?, "
                       "?, ?)",
                       (payment_id, data.token, data.amount_minor, data.currency, data.reference,
                        status, reason, cvc_check, data.return_url, failure_mode, _iso(now),
                        _iso(now)))
            if status != "requires_action":
                self._add_event(db, payment_id, f"payment.{status}", now)
            body = self._payment_view(db, payment_id, challenge_base)
            code = 402 if status in ("declined", "failed") else 201
            return self._remember(db, key, fingerprint, Answer(code, body), now)

    def capture(self, key: str, payment_id: str, amount_minor: int | None, *,
                challenge_base: str, now: float) -> Answer:
        fingerprint = _fingerprint("capture", {"payment": payment_id, "amount": amount_minor})
        with self._tx() as db:
            replay = self._replay(db, key, fingerprint)
            if replay is not None:
                return replay
            payment = self._payment_or_404(db, payment_id)
            if payment["status"] != "authorized" or payment["amount_minor"] == 0:
                raise self._conflict(db, payment_id, challenge_base,
                                     "Only an authorised, non-zero payment can be captured.")
            amount = payment["amount_minor"] if amount_minor is None else amount_minor
            if amount > payment["amount_minor"]:
                raise CaptureExceedsAuthorized(
                    f"At most {payment['amount_minor']} can be captured.",
                    payment=self._payment_view(db, payment_id, challenge_base))
            db.execute("UPDATE sandbox_payment SET status = 'captured', amount_captured_minor = ?,"
                       " updated_at = ? WHERE id = ?", (amount, _iso(now), payment_id))
            self._add_event(db, payment_id, "payment.captured", now)
            body = self._payment_view(db, payment_id, challenge_base)
            return self._remember(db, key, fingerprint, Answer(200, body), now)

    def void(self, key: str, payment_id: str, *, challenge_base: str, now: float) -> Answer:
        fingerprint = _fingerprint("void", {"payment": payment_id})
        with self._tx() as db:
            replay = self._replay(db, key, fingerprint)
            if replay is not None:
                return replay
            payment = self._payment_or_404(db, payment_id)
            if payment["status"] not in ("authorized", "requires_action"):
                raise self._conflict(db, payment_id, challenge_base,
                                     "Only an authorised payment can be voided.")
            db.execute("UPDATE sandbox_payment SET status = 'voided', updated_at = ? WHERE id = ?",
                       (_iso(now), payment_id))
            self._add_event(db, payment_id, "payment.voided", now)
            body = self._payment_view(db, payment_id, challenge_base)
            return self._remember(db, key, fingerprint, Answer(200, body), now)

    def refund(self, key: str, payment_id: str, amount_minor: int | None, *,
               challenge_base: str, now: float) -> Answer:
        fingerprint = _fingerprint("refund", {"payment": payment_id, "amount": amount_minor})
        with self._tx() as db:
            replay = self._replay(db, key, fingerprint)
            if replay is not None:
                return replay
            payment = self._payment_or_404(db, payment_id)
            if payment["status"] not in ("captured", "refunded"):
                raise self._conflict(db, payment_id, challenge_base,
                                     "Only a captured payment can be refunded.")
            left = payment["amount_captured_minor"] - payment["amount_refunded_minor"]
            amount = left if amount_minor is None else amount_minor
            if amount <= 0 or amount > left:
                raise RefundExceedsCaptured(
                    f"{left} is left to refund.",
                    payment=self._payment_view(db, payment_id, challenge_base))
            refund_id = _new_id("re")
            db.execute("INSERT INTO sandbox_refund VALUES (?, ?, ?, 'succeeded', ?)",
                       (refund_id, payment_id, amount, _iso(now)))
            status = "refunded" if amount == left else "captured"
            db.execute("UPDATE sandbox_payment SET status = ?, amount_refunded_minor = "
                       "amount_refunded_minor + ?, updated_at = ? WHERE id = ?",
                       (status, amount, _iso(now), payment_id))
            self._add_event(db, payment_id, "payment.refunded", now,
                            refund={"id": refund_id, "amount_minor": amount})
            body = {"id": refund_id, "object": "refund", "payment_id": payment_id,
                    "amount_minor": amount, "currency": payment["currency"],
                    "status": "succeeded", "created_at": _iso(now),
                    "payment": self._payment_view(db, payment_id, challenge_base)}
            return self._remember(db, key, fingerprint, Answer(201, body), now)

    def decide_challenge(self, payment_id: str, *, passed: bool, now: float) -> sqlite3.Row:
        """Complete or fail a 3-D Secure challenge; a decided challenge stays as it is."""
        with self._tx() as db:
            payment = self._payment_or_404(db, payment_id)
            if payment["status"] == "requires_action":
                status, reason = ("authorized", None) if passed else (
                    "declined", "authentication_failed")
                db.execute("UPDATE sandbox_payment SET status = ?, reason = ?, updated_at = ? "
                           "WHERE id = ?", (status, reason, _iso(now), payment_id))
                self._add_event(db, payment_id, f"payment.{status}", now)
            return self._payment_or_404(db, payment_id)

    def get_payment(self, payment_id: str, challenge_base: str) -> dict[str, Any]:
        self._payment_or_404(self.conn, payment_id)
        return self._payment_view(self.conn, payment_id, challenge_base)

    def payment_row(self, payment_id: str) -> sqlite3.Row:
        return self._payment_or_404(self.conn, payment_id)

    def token_row(self, token_id: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM sandbox_card_token WHERE id = ?",
                                 (token_id,)).fetchone()

    def payments_by_reference(self, reference: str, challenge_base: str) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT id FROM sandbox_payment WHERE reference = ? "
                                 "ORDER BY created_at, id LIMIT 100", (reference,)).fetchall()
        return [self._payment_view(self.conn, r["id"], challenge_base) for r in rows]

    def _payment_or_404(self, db: sqlite3.Connection, payment_id: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM sandbox_payment WHERE id = ?", (payment_id,)).fetchone()
        if row is None:
            raise PaymentNotFound()
        return row

    def _conflict(self, db: sqlite3.Connection, payment_id: str, challenge_base: str,
                  detail: str) -> PaymentStateConflict:
        return PaymentStateConflict(detail,
                                    payment=self._payment_view(db, payment_id, challenge_base))

    def _payment_view(self, db: sqlite3.Connection, payment_id: str,
                      challenge_base: str) -> dict[str, Any]:
        row = self._payment_or_404(db, payment_id)
        token = db.execute("SELECT brand, last4 FROM sandbox_card_token WHERE id = ?",
                           (row["token"],)).fetchone()
        view = _payment_payload(row)
        view["card"] = {"brand": token["brand"], "last4": token["last4"]} if token else None
        view["next_action"] = ({"type": "redirect", "url": f"{challenge_base}/3ds/{row['id']}"}
                               if row["status"] == "requires_action" else None)
        return view

    # webhook events

    def _add_event(self, db: sqlite3.Connection, payment_id: str, event_type: str, now: float,
                   *, refund: dict[str, Any] | None = None) -> None:
        row = self._payment_or_404(db, payment_id)
        event_id = _new_id("evt")
        payload = {"id": event_id, "type": event_type, "created_at": _iso(now),
                   "payment": _payment_payload(row)}
        if refund is not None:
            payload["refund"] = refund
        mode = row["failure_mode"]
        state = "suppressed" if mode == "webhook_never_sent" else "pending"
        deliveries = 2 if mode == "duplicate_webhook" else 1
        db.execute("INSERT INTO sandbox_event (id, payment_id, type, payload, state, "
                   "deliveries_left, attempts, next_attempt_at, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
                   (event_id, payment_id, event_type, orjson.dumps(payload).decode(), state,
                    deliveries, now, _iso(now)))

    def due_events(self, now: float, *, exclude: set[str], limit: int) -> list[sqlite3.Row]:
        """Events to deliver now, oldest first; a payment's later event waits until its
        earlier one is delivered or given up, so a capture never overtakes its authorisation."""
        rows = self.conn.execute(
            "SELECT * FROM sandbox_event e WHERE state = 'pending' AND next_attempt_at <= ? "
            "AND NOT EXISTS (SELECT 1 FROM sandbox_event p WHERE p.payment_id = e.payment_id "
            "AND p.seq < e.seq AND p.state = 'pending') ORDER BY seq LIMIT ?",
            (now, limit + len(exclude))).fetchall()
        return [r for r in rows if r["id"] not in exclude][:limit]

    def record_delivery(self, event_id: str, *, ok: bool, error: str | None,
                        now: float) -> None:
        with self._tx() as db:
            row = db.execute("SELECT * FROM sandbox_event WHERE id = ?", (event_id,)).fetchone()
            attempts = row["attempts"] + 1
            left, state, next_at = row["deliveries_left"], "pending", now
            if ok:
                left -= 1
                state = "delivered" if left == 0 else "pending"
            elif attempts >= WEBHOOK_ATTEMPTS_MAX:
                state = "dead"
            else:
                next_at = now + backoff_s(attempts)
            db.execute("UPDATE sandbox_event SET attempts = ?, deliveries_left = ?, state = ?, "
                       "next_attempt_at = ?, last_error = ? WHERE id = ?",
                       (attempts, left, state, next_at, error, event_id))
        if state == "dead":
            log.warning("webhook given up", extra={"event_id": event_id, "attempts": attempts,
                                                   "error": error})

    def events(self, payment_id: str | None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM sandbox_event", []
        if payment_id is not None:
            sql, args = sql + " WHERE payment_id = ?", [payment_id]
        rows = self.conn.execute(sql + " ORDER BY seq DESC LIMIT ?",
                                 (*args, EVENTS_PAGE_MAX)).fetchall()
        return [{"id": r["id"], "type": r["type"], "payment_id": r["payment_id"],
                 "state": r["state"], "attempts": r["attempts"],
                 "deliveries_left": r["deliveries_left"], "last_error": r["last_error"],
                 "created_at": r["created_at"]} for r in reversed(rows)]


def _utc_date(now: float) -> dt.date:
    return dt.datetime.fromtimestamp(now, dt.UTC).date()


def _decide(token: sqlite3.Row, scenario: str, *, today: dt.date) -> tuple[str, str | None]:
    """The authorisation's status and reason for a card that does ``scenario``."""
    if (token["exp_year"], token["exp_month"]) < (today.year, today.month):
        return "declined", "expired_card"  # expired since it was tokenised
    if scenario == APPROVE:
        return "authorized", None
    if scenario == CHALLENGE:
        return "requires_action", None
    return ("failed" if scenario in FAILURES else "declined"), scenario


def _fingerprint(operation: str, data: dict[str, Any]) -> str:
    canonical = orjson.dumps({"operation": operation, **data}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def _token_view(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "object": "token", "brand": row["brand"],
            "funding": row["funding"], "last4": row["last4"], "exp_month": row["exp_month"],
            "exp_year": row["exp_year"], "created_at": row["created_at"]}


def _payment_payload(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "object": "payment", "status": row["status"],
            "reason": row["reason"], "amount_minor": row["amount_minor"],
            "currency": row["currency"], "amount_captured_minor": row["amount_captured_minor"],
            "amount_refunded_minor": row["amount_refunded_minor"], "reference": row["reference"],
            "token": row["token"], "cvc_check": row["cvc_check"],
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


# --- webhook delivery: the sandbox bank's loop --------------------------------------------


class GatewayScheduler(Scheduler):
    """The sandbox bank's delivery loop (bounded in-flight deliveries, retries with backoff,
    one payment's events in order); the gateway has nothing to settle, so a tick delivers."""

    def tick(self, now: float) -> None:
        if self.config.webhook_url is None:
            return  # events wait in the state until a URL is configured
        free = WEBHOOK_IN_FLIGHT_MAX - len(self.in_flight)
        for row in self.store.due_events(now, exclude=set(self.in_flight), limit=free):
            self.in_flight[row["id"]] = asyncio.create_task(
                self._deliver(row["id"], row["payload"].encode()))


# --- the 3-D Secure challenge page ----------------------------------------------------------

_PAGE_CSS: Final = (
    "body{font-family:system-ui,sans-serif;max-width:26rem;margin:2rem auto;padding:0 1rem;"
    "color:#1a1a1a}h1{font-size:1.4rem}dl{display:grid;grid-template-columns:auto 1fr;"
    "gap:.25rem 1rem}button{font:inherit;min-height:48px;padding:0 1.25rem;border-radius:12px;"
    "border:0;margin:.5rem .5rem 0 0;cursor:pointer}.ok{background:#0b4f8a;color:#fff}"
    ".no{background:#fdecea;color:#8a1c12}")


def _challenge_page(payment: sqlite3.Row, token: sqlite3.Row | None) -> str:
    card = (f"{html.escape(token['brand'].upper())} •••• {html.escape(token['last4'])}"
            if token else "")
    amount = f"{payment['amount_minor']} {html.escape(payment['currency'])} (minor units)"
    action = f"/3ds/{html.escape(payment['id'])}"
    if payment["status"] != "requires_action":
        back = (f'<p><a href="{html.escape(payment["return_url"])}">Return to the shop</a></p>'
                if payment["return_url"] else "")
        body = (f"<h1>Challenge finished</h1><p>This payment is "
                f"<strong>{html.escape(payment['status'])}</strong>.</p>{back}")
    else:
        body = (
            "<h1>Confirm this payment</h1>"
            "<p>Sandbox 3-D Secure: your bank asks you to approve this card payment.</p>"
            f"<dl><dt>Card</dt><dd>{card}</dd><dt>Amount</dt><dd>{amount}</dd>"
            f"<dt>Reference</dt><dd>{html.escape(payment['reference'])}</dd></dl>"
            f'<form method="post" action="{action}">'
            '<button class="ok" type="submit" name="result" value="complete">Complete</button>'
            '<button class="no" type="submit" name="result" value="fail">Fail</button></form>')
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>Sandbox 3-D Secure</title>"
            f'<link rel="stylesheet" href="/3ds.css"></head><body>{body}</body></html>')


def _origin(url: str | None) -> str:
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _challenge_csp(return_url: str | None) -> str:
    # The form posts here and is redirected to the return URL: form-action must allow both.
    return ("default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
            f"form-action 'self' {_origin(return_url)}".rstrip())


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


# --- the application ----------------------------------------------------------------------


def create_gateway_app(config: SandboxConfig) -> FastAPI:

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = GatewayStore(config.state_path)
        client = httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S, follow_redirects=False)
        scheduler = GatewayScheduler(store, config, client)  # type: ignore[arg-type]
        app.state.store, app.state.scheduler = store, scheduler
        loop = asyncio.create_task(scheduler.run_forever())
        try:
            yield
        finally:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
            await scheduler.close()
            await client.aclose()
            store.close()

    app = FastAPI(title="bankwallet sandbox card gateway", lifespan=lifespan, redoc_url=None)
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=BODY_MAX_BYTES)

    def store(request: Request) -> GatewayStore:
        return request.app.state.store

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def check_key(key: str | None) -> str:
        if not key:
            raise IdempotencyKeyMissing()
        if len(key) > IDEMPOTENCY_KEY_MAX_CHARS:
            raise InvalidInput(f"Idempotency-Key is longer than {IDEMPOTENCY_KEY_MAX_CHARS}.")
        return key

    def check_mode(mode: str | None, allowed: frozenset[str]) -> str | None:
        if mode is not None and mode not in allowed:
            raise InvalidInput(f"{FAILURE_HEADER} must be one of {', '.join(sorted(allowed))}.")
        return mode

    async def answer(request: Request, result: Answer, mode: str | None,
                     delay: float | None) -> JSONResponse:
        request.app.state.scheduler.wake.set()
        if mode == "timeout" and not result.replayed:
            # Applied already; only the answer is late, so a client that gave up must ask.
            await asyncio.sleep(DEFAULT_TIMEOUT_DELAY_S if delay is None else delay)
        headers = {"Idempotent-Replayed": "true"} if result.replayed else None
        return JSONResponse(result.body, status_code=result.status_code, headers=headers)

    KeyHeader = Header(None, alias="Idempotency-Key")
    FailureHeader = Header(None, alias=FAILURE_HEADER, max_length=32)
    DelayHeader = Header(None, alias=DELAY_HEADER, ge=0, le=DELAY_MAX_S)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/3ds.css")
    async def challenge_css() -> Response:
        return Response(_PAGE_CSS, media_type="text/css")

    @app.post("/v1/tokens", status_code=201)
    async def tokenize(data: TokenCreate, request: Request) -> dict[str, Any]:
        facts = card_facts(data, today=_utc_date(time.time()))
        return store(request).tokenize(facts, data.cvc, time.time())

    @app.post("/v1/payments", status_code=201)
    async def authorize(data: PaymentCreate, request: Request,
                        idempotency_key: str | None = KeyHeader,
                        failure: str | None = FailureHeader,
                        delay: float | None = DelayHeader) -> JSONResponse:
        key = check_key(idempotency_key)
        mode = check_mode(failure, FAILURE_MODES)
        result = store(request).authorize(key, data, failure_mode=mode,
                                          challenge_base=base(request), now=time.time())
        return await answer(request, result, mode, delay)

    @app.get("/v1/payments/{payment_id}")
    async def get_payment(payment_id: str, request: Request) -> dict[str, Any]:
        if len(payment_id) > 64:
            raise PaymentNotFound()
        return store(request).get_payment(payment_id, base(request))

    @app.get("/v1/payments")
    async def find_payments(request: Request,
                            reference: str = Query(min_length=1, max_length=REFERENCE_MAX_CHARS)
                            ) -> dict[str, Any]:
        return {"payments": store(request).payments_by_reference(reference, base(request))}

    @app.post("/v1/payments/{payment_id}/capture")
    async def capture(payment_id: str, request: Request,
                      data: Annotated[AmountIn | None, Body()] = None,
                      idempotency_key: str | None = KeyHeader,
                      failure: str | None = FailureHeader,
                      delay: float | None = DelayHeader) -> JSONResponse:
        key = check_key(idempotency_key)
        mode = check_mode(failure, OPERATION_FAILURE_MODES)
        result = store(request).capture(key, payment_id[:64], (data or AmountIn()).amount_minor,
                                        challenge_base=base(request), now=time.time())
        return await answer(request, result, mode, delay)

    @app.post("/v1/payments/{payment_id}/void")
    async def void(payment_id: str, request: Request,
                   idempotency_key: str | None = KeyHeader,
                   failure: str | None = FailureHeader,
                   delay: float | None = DelayHeader) -> JSONResponse:
        key = check_key(idempotency_key)
        mode = check_mode(failure, OPERATION_FAILURE_MODES)
        result = store(request).void(key, payment_id[:64], challenge_base=base(request),
                                     now=time.time())
        return await answer(request, result, mode, delay)

    @app.post("/v1/payments/{payment_id}/refunds", status_code=201)
    async def refund(payment_id: str, request: Request,
                     data: Annotated[AmountIn | None, Body()] = None,
                     idempotency_key: str | None = KeyHeader,
                     failure: str | None = FailureHeader,
                     delay: float | None = DelayHeader) -> JSONResponse:
        key = check_key(idempotency_key)
        mode = check_mode(failure, OPERATION_FAILURE_MODES)
        result = store(request).refund(key, payment_id[:64], (data or AmountIn()).amount_minor,
                                       challenge_base=base(request), now=time.time())
        return await answer(request, result, mode, delay)

    @app.get("/3ds/{payment_id}", response_class=HTMLResponse)
    async def challenge_page(payment_id: str, request: Request) -> HTMLResponse:
        payment = store(request).payment_row(payment_id[:64])
        page = _challenge_page(payment, store(request).token_row(payment["token"]))
        return HTMLResponse(page, headers={
            "content-security-policy": _challenge_csp(payment["return_url"]),
            "cache-control": "no-store"})

    @app.post("/3ds/{payment_id}")
    async def challenge_decide(payment_id: str, request: Request,
                               result: Annotated[str, Form(max_length=16)]) -> Response:
        if result not in ("complete", "fail"):
            raise InvalidInput("result must be complete or fail.")
        payment = store(request).decide_challenge(payment_id[:64], passed=result == "complete",
                                                  now=time.time())
        request.app.state.scheduler.wake.set()
        if payment["return_url"]:
            return RedirectResponse(_with_query(payment["return_url"], payment_id=payment["id"]),
                                    status_code=303)
        page = _challenge_page(payment, None)
        return HTMLResponse(page, headers={"content-security-policy": _challenge_csp(None)})

    @app.get("/sandbox/events")
    async def events(request: Request,
                     payment_id: Annotated[str | None, Query(max_length=64)] = None
                     ) -> dict[str, Any]:
        return {"events": store(request).events(payment_id)}

    return app
