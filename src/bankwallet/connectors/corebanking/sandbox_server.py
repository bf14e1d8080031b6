"""The sandbox bank: a separate HTTP process playing a bank's core banking system
(``bankwallet sandbox-bank``), for demos and tests.

It keeps customers' bank accounts, answers ownership checks, and takes debit (pull) and credit
(push) instructions with Stripe-style idempotency keys. An accepted instruction answers 202
``pending``, settles a moment later and reports the outcome by a signed webhook
(``bankwallet.core.webhooks``) that is retried with bounded backoff until the receiver answers
2xx. Each request may ask for a failure (body ``failure_mode`` or header ``X-Sandbox-Failure``;
``X-Sandbox-Delay`` tunes the timed ones):

- ``decline``: refused at once (402, ``failed``, reason ``declined``);
- ``insufficient_funds``: refused at once; a debit above the available balance is refused this
  way without asking;
- ``timeout``: applied, but the answer comes only after the delay (default 15 s);
- ``duplicate_webhook``: every event of the instruction is delivered twice, same event id;
- ``webhook_never_sent``: settles, but no event is ever delivered (poll or read the statement);
- ``late_settlement``: settles after the delay (default 5 s) instead of at once;
- ``reversal_after_success``: settles, then after the delay (default 2 s) is reversed: the
  money goes back and a ``*.reversed`` event follows.

An instruction refused at once (402: ``declined``, ``insufficient_funds``,
``account_not_found``, ``currency_mismatch``) still gets its ``*.failed`` event, so every
instruction's outcome reaches the webhook stream (unless ``webhook_never_sent``).

A debit places a hold when accepted and moves the money when it settles, so two concurrent
debits cannot overdraw the account. All state is in SQLite: in memory, or in the ``--state``
file so that accounts, instructions and undelivered webhooks survive a restart. The process
is single-threaded (one event loop) and every state change is one SQLite transaction without
an ``await`` inside, so requests and the settlement loop never interleave mid-change.

The admin endpoints (``/sandbox/...``) have no authentication: bind the sandbox to a loopback
address (the default).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import re
import sqlite3
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final

import httpx
import orjson
from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bankwallet.connectors.corebanking.base import (
    HOLDER_NAME_MAX_CHARS,
    IDEMPOTENCY_KEY_MAX_CHARS,
    REFERENCE_MAX_CHARS,
    STATEMENT_PAGE_MAX,
)
from bankwallet.core import webhooks
from bankwallet.core.errors import Conflict, InvalidInput, NotFound, install_error_handlers
from bankwallet.core.http import RequestContextMiddleware
from bankwallet.core.money import check_currency

log = logging.getLogger("bankwallet.sandbox_bank")

BODY_MAX_BYTES: Final = 16 * 1024
AMOUNT_MAX_MINOR: Final = 10**15
BALANCE_MAX_MINOR: Final = 10**17
INSTRUCTIONS_BY_REFERENCE_MAX: Final = 100
EVENTS_PAGE_MAX: Final = 500
SETTLE_DELAY_S: Final = 0.2             # an accepted instruction settles this much later
DELAY_MAX_S: Final = 120.0              # bound on X-Sandbox-Delay
DEFAULT_DELAY_S: Final = {"timeout": 15.0, "late_settlement": 5.0,
                          "reversal_after_success": 2.0}
TICK_S: Final = 0.05                    # the settlement loop's polling period
SETTLE_BATCH_MAX: Final = 100
WEBHOOK_TIMEOUT_S: Final = 5.0
WEBHOOK_ATTEMPTS_MAX: Final = 8         # per delivery; then the event is left "dead"
WEBHOOK_BACKOFF_BASE_S: Final = 0.25    # 0.25, 0.5, 1, 2, ... (±20 %), at most:
WEBHOOK_BACKOFF_MAX_S: Final = 30.0
WEBHOOK_IN_FLIGHT_MAX: Final = 16
SECRET_MIN_CHARS: Final = 16

FAILURE_HEADER: Final = "X-Sandbox-Failure"
DELAY_HEADER: Final = "X-Sandbox-Delay"


FAILURE_MODES: Final = frozenset({
    "decline", "insufficient_funds", "timeout", "duplicate_webhook", "webhook_never_sent",
    "late_settlement", "reversal_after_success"})


class IdempotencyKeyMissing(InvalidInput):
    code = "idempotency_key_missing"
    status = 400
    title = "Idempotency-Key header required"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"
    title = "Idempotency key reused with another request"


class BankAccountExists(Conflict):
    code = "bank_account_exists"
    title = "Bank account already exists"


class BankAccountNotFound(NotFound):
    code = "bank_account_not_found"
    title = "Bank account not found"


class InstructionNotFound(NotFound):
    code = "instruction_not_found"
    title = "Instruction not found"


# --- account numbers and names ----------------------------------------------------------

_IBAN_RE = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}")
_CARD_OR_ACCOUNT_RE = re.compile(r"\d{16,19}")


def normalize_account_number(text: str) -> str:
    """An IBAN (mod-97 checked) or a 16–19 digit card/account number, without spaces or
    dashes; raises ValueError (a 422) otherwise."""
    number = re.sub(r"[\s-]", "", text).upper()
    if _CARD_OR_ACCOUNT_RE.fullmatch(number):
        return number
    if _IBAN_RE.fullmatch(number) and _iban_mod97(number) == 1:
        return number
    raise ValueError("not an IBAN or a 16-19 digit account number")


def _iban_mod97(iban: str) -> int:
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97


def _name_key(name: str) -> str:
    """Names compare without case, width or spacing differences."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def _last4(number: str) -> str:
    return number[-4:]


# --- request shapes ---------------------------------------------------------------------

AccountNumber = Annotated[str, Field(min_length=1, max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BankAccountCreate(_Strict):
    number: AccountNumber
    holder_name: str = Field(min_length=1, max_length=HOLDER_NAME_MAX_CHARS)
    currency: str = Field(min_length=3, max_length=3)
    balance_minor: int = Field(0, ge=0, le=AMOUNT_MAX_MINOR, strict=True)

    _number = field_validator("number")(normalize_account_number)
    _currency = field_validator("currency")(check_currency)


class VerificationCreate(_Strict):
    account_number: AccountNumber
    holder_name: str = Field(min_length=1, max_length=HOLDER_NAME_MAX_CHARS)

    _number = field_validator("account_number")(normalize_account_number)


class InstructionCreate(_Strict):
    account_number: AccountNumber
    amount_minor: int = Field(gt=0, le=AMOUNT_MAX_MINOR, strict=True)
    currency: str = Field(min_length=3, max_length=3)
    reference: str = Field(min_length=1, max_length=REFERENCE_MAX_CHARS)
    failure_mode: str | None = None

    _number = field_validator("account_number")(normalize_account_number)
    _currency = field_validator("currency")(check_currency)

    @field_validator("failure_mode")
    @classmethod
    def _known_mode(cls, value: str | None) -> str | None:
        if value is not None and value not in FAILURE_MODES:
            raise ValueError(f"one of {', '.join(sorted(FAILURE_MODES))}")
        return value


# --- state ------------------------------------------------------------------------------

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS sandbox_bank_account (
    number TEXT PRIMARY KEY,
    holder_name TEXT NOT NULL,
    currency TEXT NOT NULL,
    balance_minor INTEGER NOT NULL,
    held_minor INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sandbox_instruction (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    account_number TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    reference TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    failure_mode TEXT,
    reversal_delay_s REAL,
    settle_at REAL,
    reverse_at REAL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_sandbox_instruction_reference ON sandbox_instruction (reference);
CREATE INDEX IF NOT EXISTS ix_sandbox_instruction_settle_at ON sandbox_instruction (settle_at);
CREATE INDEX IF NOT EXISTS ix_sandbox_instruction_reverse_at
    ON sandbox_instruction (reverse_at);
CREATE TABLE IF NOT EXISTS sandbox_idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sandbox_movement (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    instruction_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    account_number TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    reference TEXT NOT NULL,
    booked_at TEXT NOT NULL,
    booked_at_unix REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sandbox_event (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    instruction_id TEXT NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    deliveries_left INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_sandbox_event_due ON sandbox_event (state, next_attempt_at);
"""


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="microseconds")


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class Submission:
    status_code: int
    body: dict[str, Any]
    replayed: bool


class SandboxStore:
    """Every state change of the sandbox bank, each in one SQLite transaction."""

    def __init__(self, path: Path | None) -> None:
        self.conn = sqlite3.connect(str(path) if path else ":memory:", isolation_level=None,
                                    check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        if path:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
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

    # accounts

    def create_account(self, data: BankAccountCreate, now: float) -> dict[str, Any]:
        with self._tx() as db:
            if self._account(db, data.number) is not None:
                raise BankAccountExists("A bank account with this number exists.")
            db.execute("INSERT INTO sandbox_bank_account VALUES (?, ?, ?, ?, 0, ?)",
                       (data.number, data.holder_name, data.currency, data.balance_minor,
                        _iso(now)))
            return _account_view(self._account(db, data.number))

    def get_account(self, number: str) -> dict[str, Any]:
        row = self._account(self.conn, number)
        if row is None:
            raise BankAccountNotFound()
        return _account_view(row)

    def verify(self, data: VerificationCreate) -> str:
        row = self._account(self.conn, data.account_number)
        if row is None:
            return "not_found"
        if _name_key(row["holder_name"]) != _name_key(data.holder_name):
            return "name_mismatch"
        return "verified"

    # instructions

    def submit(self, kind: str, key: str, data: InstructionCreate, *, settle_delay_s: float,
               reversal_delay_s: float, now: float) -> Submission:
        fingerprint = _fingerprint(kind, data)
        with self._tx() as db:
            seen = db.execute("SELECT * FROM sandbox_idempotency WHERE key = ?",
                              (key,)).fetchone()
            if seen is not None:
                if seen["fingerprint"] != fingerprint:
                    raise IdempotencyKeyReused(
                        "This Idempotency-Key was used with another request.")
                return Submission(seen["status_code"], orjson.loads(seen["body"]), True)
            account = self._account(db, data.account_number)
            reason = _refusal(kind, data, account)
            instruction_id = _new_id("ins")
            status, settle_at = ("failed", None) if reason else ("pending", now + settle_delay_s)
            db.execute(
                "INSERT INTO sandbox_instruction VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL,"
                " ?, ?)",
                (instruction_id, kind, data.account_number, data.amount_minor, data.currency,
                 data.reference, status, reason, data.failure_mode, reversal_delay_s, settle_at,
                 _iso(now), _iso(now)))
            if reason:
                self._add_event(db, instruction_id, f"{kind}.failed", now)
            elif kind == "debit":
                db.execute("UPDATE sandbox_bank_account SET held_minor = held_minor + ? "
                           "WHERE number = ?", (data.amount_minor, data.account_number))
            body = _instruction_view(self._instruction(db, instruction_id))
            status_code = 402 if reason else 202
            db.execute("INSERT INTO sandbox_idempotency VALUES (?, ?, ?, ?, ?)",
                       (key, fingerprint, status_code, orjson.dumps(body).decode(), _iso(now)))
            return Submission(status_code, body, False)

    def get_instruction(self, instruction_id: str) -> dict[str, Any]:
        row = self._instruction(self.conn, instruction_id)
        if row is None:
            raise InstructionNotFound()
        return _instruction_view(row)

    def instructions_by_reference(self, reference: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT * FROM sandbox_instruction WHERE reference = ? ORDER BY created_at, id "
            "LIMIT ?", (reference, INSTRUCTIONS_BY_REFERENCE_MAX)).fetchall()
        return [_instruction_view(r) for r in rows]

    def settle_due(self, now: float) -> int:
        rows = self.conn.execute(
            "SELECT id FROM sandbox_instruction WHERE status = 'pending' AND settle_at <= ? "
            "ORDER BY settle_at LIMIT ?", (now, SETTLE_BATCH_MAX)).fetchall()
        for row in rows:
            with self._tx() as db:
                self._settle(db, self._instruction(db, row["id"]), now)
        return len(rows)

    def reverse_due(self, now: float) -> int:
        rows = self.conn.execute(
            "SELECT id FROM sandbox_instruction WHERE status = 'succeeded' AND reverse_at <= ? "
            "ORDER BY reverse_at LIMIT ?", (now, SETTLE_BATCH_MAX)).fetchall()
        for row in rows:
            with self._tx() as db:
                self._reverse(db, self._instruction(db, row["id"]), now)
        return len(rows)

    def _settle(self, db: sqlite3.Connection, ins: sqlite3.Row, now: float) -> None:
        assert ins["status"] == "pending", ins["status"]
        account = self._account(db, ins["account_number"])
        assert account is not None, "an instruction's bank account disappeared"
        amount, kind = ins["amount_minor"], ins["kind"]
        if kind == "debit":
            assert account["held_minor"] >= amount, "a settling debit lost its hold"
            db.execute("UPDATE sandbox_bank_account SET balance_minor = ?, held_minor = ? "
                       "WHERE number = ?", (account["balance_minor"] - amount,
                                            account["held_minor"] - amount, account["number"]))
        else:
            db.execute("UPDATE sandbox_bank_account SET balance_minor = ? WHERE number = ?",
                       (account["balance_minor"] + amount, account["number"]))
        self._book(db, ins, kind, -amount if kind == "debit" else amount, now)
        reverse_at = (now + ins["reversal_delay_s"]
                      if ins["failure_mode"] == "reversal_after_success" else None)
        db.execute("UPDATE sandbox_instruction SET status = 'succeeded', settle_at = NULL, "
                   "reverse_at = ?, updated_at = ? WHERE id = ?",
                   (reverse_at, _iso(now), ins["id"]))
        self._add_event(db, ins["id"], f"{kind}.succeeded", now)

    def _reverse(self, db: sqlite3.Connection, ins: sqlite3.Row, now: float) -> None:
        assert ins["status"] == "succeeded", ins["status"]
        account = self._account(db, ins["account_number"])
        assert account is not None, "an instruction's bank account disappeared"
        amount, kind = ins["amount_minor"], ins["kind"]
        # The money goes back the way it came; a credit reversal may overdraw (the bank's
        # problem, as in life).
        signed = amount if kind == "debit" else -amount
        db.execute("UPDATE sandbox_bank_account SET balance_minor = ? WHERE number = ?",
                   (account["balance_minor"] + signed, account["number"]))
        self._book(db, ins, f"{kind}_reversal", signed, now)
        db.execute("UPDATE sandbox_instruction SET status = 'reversed', reason = ?, "
                   "reverse_at = NULL, updated_at = ? WHERE id = ?",
                   ("sandbox_reversal", _iso(now), ins["id"]))
        self._add_event(db, ins["id"], f"{kind}.reversed", now)

    def _book(self, db: sqlite3.Connection, ins: sqlite3.Row, kind: str, signed_minor: int,
              now: float) -> None:
        db.execute("INSERT INTO sandbox_movement (id, instruction_id, kind, account_number, "
                   "amount_minor, currency, reference, booked_at, booked_at_unix) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (_new_id("mov"), ins["id"], kind, ins["account_number"], signed_minor,
                    ins["currency"], ins["reference"], _iso(now), now))

    def statement(self, *, since: float | None, after: int | None, limit: int,
                  account_number: str | None) -> dict[str, Any]:
        sql = "SELECT * FROM sandbox_movement WHERE seq > ? AND booked_at_unix >= ?"
        args: list[Any] = [after or 0, since if since is not None else 0.0]
        if account_number is not None:
            sql += " AND account_number = ?"
            args.append(account_number)
        rows = self.conn.execute(sql + " ORDER BY seq LIMIT ?", (*args, limit + 1)).fetchall()
        page = rows[:limit]
        return {"movements": [_movement_view(r) for r in page],
                "next_after": page[-1]["seq"] if len(rows) > limit else None}

    # webhook events

    def _add_event(self, db: sqlite3.Connection, instruction_id: str, event_type: str,
                   now: float) -> None:
        ins = self._instruction(db, instruction_id)
        event_id = _new_id("evt")
        payload: dict[str, Any] = {
            "id": event_id, "type": event_type, "instruction_id": ins["id"],
            "reference": ins["reference"], "amount_minor": ins["amount_minor"],
            "currency": ins["currency"], "created_at": _iso(now)}
        if event_type.endswith((".failed", ".reversed")) and ins["reason"]:
            payload["reason"] = ins["reason"]
        mode = ins["failure_mode"]
        state = "suppressed" if mode == "webhook_never_sent" else "pending"
        deliveries = 2 if mode == "duplicate_webhook" else 1
        db.execute("INSERT INTO sandbox_event (id, instruction_id, type, payload, state, "
                   "deliveries_left, attempts, next_attempt_at, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
                   (event_id, ins["id"], event_type, orjson.dumps(payload).decode(), state,
                    deliveries, now, _iso(now)))

    def due_events(self, now: float, *, exclude: set[str], limit: int) -> list[sqlite3.Row]:
        """Events to deliver now, oldest first; an instruction's later event waits until its
        earlier one is delivered or given up, so a reversal never overtakes its success."""
        rows = self.conn.execute(
            "SELECT * FROM sandbox_event e WHERE state = 'pending' AND next_attempt_at <= ? "
            "AND NOT EXISTS (SELECT 1 FROM sandbox_event p WHERE p.instruction_id = "
            "e.instruction_id AND p.seq < e.seq AND p.state = 'pending') "
            "ORDER BY seq LIMIT ?", (now, limit + len(exclude))).fetchall()
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

    def events(self, instruction_id: str | None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM sandbox_event", []
        if instruction_id is not None:
            sql, args = sql + " WHERE instruction_id = ?", [instruction_id]
        rows = self.conn.execute(sql + " ORDER BY seq DESC LIMIT ?",
                                 (*args, EVENTS_PAGE_MAX)).fetchall()
        return [{"id": r["id"], "type": r["type"], "instruction_id": r["instruction_id"],
                 "state": r["state"], "attempts": r["attempts"],
                 "deliveries_left": r["deliveries_left"], "last_error": r["last_error"],
                 "created_at": r["created_at"]} for r in reversed(rows)]

    @staticmethod
    def _account(db: sqlite3.Connection, number: str) -> sqlite3.Row | None:
        return db.execute("SELECT * FROM sandbox_bank_account WHERE number = ?",
                          (number,)).fetchone()

    @staticmethod
    def _instruction(db: sqlite3.Connection, instruction_id: str) -> sqlite3.Row | None:
        return db.execute("SELECT * FROM sandbox_instruction WHERE id = ?",
                          (instruction_id,)).fetchone()


def backoff_s(attempts: int) -> float:
    base = min(WEBHOOK_BACKOFF_MAX_S, WEBHOOK_BACKOFF_BASE_S * 2 ** (attempts - 1))
    return base * random.uniform(0.8, 1.2)


def _refusal(kind: str, data: InstructionCreate, account: sqlite3.Row | None) -> str | None:
    """Why the bank refuses the instruction at once, or None when it accepts it."""
    if account is None:
        return "account_not_found"
    if account["currency"] != data.currency:
        return "currency_mismatch"
    if data.failure_mode == "decline":
        return "declined"
    if data.failure_mode == "insufficient_funds":
        return "insufficient_funds"
    if kind == "debit" and account["balance_minor"] - account["held_minor"] < data.amount_minor:
        return "insufficient_funds"
    if kind == "credit" and account["balance_minor"] + data.amount_minor > BALANCE_MAX_MINOR:
        return "account_limit_exceeded"
    return None


def _fingerprint(kind: str, data: InstructionCreate) -> str:
    canonical = orjson.dumps({"kind": kind, **data.model_dump()}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def _account_view(row: sqlite3.Row) -> dict[str, Any]:
    return {"number": row["number"], "holder_name": row["holder_name"],
            "currency": row["currency"], "balance_minor": row["balance_minor"],
            "held_minor": row["held_minor"],
            "available_minor": row["balance_minor"] - row["held_minor"],
            "created_at": row["created_at"]}


def _instruction_view(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "kind": row["kind"], "status": row["status"],
            "reason": row["reason"], "reference": row["reference"],
            "amount_minor": row["amount_minor"], "currency": row["currency"],
            "account_last4": _last4(row["account_number"]),
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


def _movement_view(row: sqlite3.Row) -> dict[str, Any]:
    return {"seq": row["seq"], "id": row["id"], "instruction_id": row["instruction_id"],
            "kind": row["kind"], "account_last4": _last4(row["account_number"]),
            "amount_minor": row["amount_minor"], "currency": row["currency"],
            "reference": row["reference"], "booked_at": row["booked_at"]}


# --- settlement and webhook delivery ----------------------------------------------------

@dataclass
class SandboxConfig:
    secret: str
    webhook_url: str | None = None
    state_path: Path | None = None

    def __post_init__(self) -> None:
        assert len(self.secret) >= SECRET_MIN_CHARS, "the webhook secret is too short"
        assert self.webhook_url is None or self.webhook_url.startswith(
            ("http://", "https://")), "the webhook URL must be http(s)"


@dataclass
class Scheduler:
    """Settles due instructions, reverses due ones and delivers due webhooks, in one loop."""

    store: SandboxStore
    config: SandboxConfig
    client: httpx.AsyncClient
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    async def run_forever(self) -> None:
        while True:
            try:
                self.tick(time.time())
            except Exception:  # one bad tick must not stop settlement for good
                log.exception("sandbox bank tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), TICK_S)
            self.wake.clear()

    def tick(self, now: float) -> None:
        self.store.settle_due(now)
        self.store.reverse_due(now)
        if self.config.webhook_url is None:
            return  # events wait in the state file until a URL is configured
        free = WEBHOOK_IN_FLIGHT_MAX - len(self.in_flight)
        for row in self.store.due_events(now, exclude=set(self.in_flight), limit=free):
            self.in_flight[row["id"]] = asyncio.create_task(
                self._deliver(row["id"], row["payload"].encode()))

    async def _deliver(self, event_id: str, body: bytes) -> None:
        assert self.config.webhook_url is not None
        headers = {"Content-Type": "application/json",
                   webhooks.SIGNATURE_HEADER: webhooks.sign(self.config.secret, body),
                   "Bankwallet-Event-Id": event_id}
        error: str | None = None
        try:
            response = await self.client.post(self.config.webhook_url, content=body,
                                              headers=headers)
            if not 200 <= response.status_code < 300:
                error = f"http_{response.status_code}"
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        try:
            self.store.record_delivery(event_id, ok=error is None, error=error, now=time.time())
        finally:
            self.in_flight.pop(event_id, None)
            self.wake.set()  # a second (duplicate) delivery goes without waiting a tick

    async def close(self) -> None:
        tasks = list(self.in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --- the application --------------------------------------------------------------------

def create_sandbox_app(config: SandboxConfig) -> FastAPI:

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = SandboxStore(config.state_path)
        client = httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S, follow_redirects=False)
        scheduler = Scheduler(store, config, client)
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

    app = FastAPI(title="bankwallet sandbox bank", lifespan=lifespan, redoc_url=None)
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=BODY_MAX_BYTES)

    def store(request: Request) -> SandboxStore:
        return request.app.state.store

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/sandbox/accounts", status_code=201)
    async def create_account(data: BankAccountCreate, request: Request) -> dict[str, Any]:
        return store(request).create_account(data, time.time())

    @app.get("/sandbox/accounts/{number}")
    async def get_account(number: str, request: Request) -> dict[str, Any]:
        try:
            normalized = normalize_account_number(number)
        except ValueError:
            raise BankAccountNotFound() from None
        return store(request).get_account(normalized)

    @app.get("/sandbox/statement")
    async def statement(request: Request, since: datetime | None = None,
                        after: int | None = Query(None, ge=0),
                        limit: int = Query(STATEMENT_PAGE_MAX, ge=1, le=STATEMENT_PAGE_MAX),
                        account_number: str | None = Query(None, max_length=64)
                        ) -> dict[str, Any]:
        number = None
        if account_number is not None:
            try:
                number = normalize_account_number(account_number)
            except ValueError as exc:
                raise InvalidInput("account_number is not an account number.") from exc
        since_unix = None
        if since is not None:
            since_unix = (since if since.tzinfo else since.replace(tzinfo=UTC)).timestamp()
        return store(request).statement(since=since_unix, after=after, limit=limit,
                                        account_number=number)

    @app.get("/sandbox/events")
    async def events(request: Request,
                     instruction_id: str | None = Query(None, max_length=64)
                     ) -> dict[str, Any]:
        return {"events": store(request).events(instruction_id)}

    @app.post("/v1/verifications")
    async def verify(data: VerificationCreate, request: Request) -> dict[str, str]:
        return {"status": store(request).verify(data)}

    async def submit(kind: str, data: InstructionCreate, request: Request,
                     idempotency_key: str | None, failure: str | None,
                     delay: float | None) -> JSONResponse:
        if not idempotency_key:
            raise IdempotencyKeyMissing()
        if len(idempotency_key) > IDEMPOTENCY_KEY_MAX_CHARS:
            raise InvalidInput(f"Idempotency-Key is longer than {IDEMPOTENCY_KEY_MAX_CHARS}.")
        data = _with_header_mode(data, failure)
        mode = data.failure_mode or ""
        delay_s = delay if delay is not None else DEFAULT_DELAY_S.get(mode, 0.0)
        settle_delay_s = delay_s if mode == "late_settlement" else SETTLE_DELAY_S
        result = store(request).submit(
            kind, idempotency_key, data, settle_delay_s=settle_delay_s,
            reversal_delay_s=delay_s if mode == "reversal_after_success" else 0.0,
            now=time.time())
        request.app.state.scheduler.wake.set()
        if mode == "timeout" and not result.replayed:
            # Applied already; only the answer is late, so a client that gave up must ask.
            await asyncio.sleep(delay_s)
        headers = {"Idempotent-Replayed": "true"} if result.replayed else None
        return JSONResponse(result.body, status_code=result.status_code, headers=headers)

    FailureHeader = Header(None, alias=FAILURE_HEADER, max_length=32)
    DelayHeader = Header(None, alias=DELAY_HEADER, ge=0, le=DELAY_MAX_S)
    KeyHeader = Header(None, alias="Idempotency-Key")

    @app.post("/v1/debits", status_code=202)
    async def debit(data: InstructionCreate, request: Request,
                    idempotency_key: str | None = KeyHeader, failure: str | None = FailureHeader,
                    delay: float | None = DelayHeader) -> JSONResponse:
        return await submit("debit", data, request, idempotency_key, failure, delay)

    @app.post("/v1/credits", status_code=202)
    async def credit(data: InstructionCreate, request: Request,
                     idempotency_key: str | None = KeyHeader, failure: str | None = FailureHeader,
                     delay: float | None = DelayHeader) -> JSONResponse:
        return await submit("credit", data, request, idempotency_key, failure, delay)

    @app.get("/v1/instructions/{instruction_id}")
    async def get_instruction(instruction_id: str, request: Request) -> dict[str, Any]:
        if len(instruction_id) > 64:
            raise InstructionNotFound()
        return store(request).get_instruction(instruction_id)

    @app.get("/v1/instructions")
    async def find_instructions(request: Request,
                                reference: str = Query(min_length=1,
                                                       max_length=REFERENCE_MAX_CHARS)
                                ) -> dict[str, Any]:
        return {"instructions": store(request).instructions_by_reference(reference)}

    return app


def _with_header_mode(data: InstructionCreate, header_mode: str | None) -> InstructionCreate:
    if header_mode is None:
        return data
    if header_mode not in FAILURE_MODES:
        raise InvalidInput(f"{FAILURE_HEADER} must be one of {', '.join(sorted(FAILURE_MODES))}.")
    if data.failure_mode not in (None, header_mode):
        raise InvalidInput(f"failure_mode and {FAILURE_HEADER} disagree.")
    return data.model_copy(update={"failure_mode": header_mode})
