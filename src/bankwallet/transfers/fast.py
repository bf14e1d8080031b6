"""``POST /api/v1/transfers`` on PostgreSQL in three round trips: the P2P fast path.

The general path (``api.send`` → ``core.idempotency.run`` → ``service.send``) takes four
transactions, ~35 socket writes and ~18,000 Python calls per transfer through FastAPI's
routing, the ORM and SQLAlchemy's statement compiler; on this project's machine that capped
P2P at ~100 transfers/s. This ASGI layer, in front of the FastAPI app, takes the steps of
docs/money-movement.md for the everyday case with prepared statements on a pool of its own:

1. one ``SELECT``: the bearer token's session and user, and the recipient;
2. ``bankwallet_p2p_intent`` (migration 0023), one transaction: claim the
   ``Idempotency-Key``, check the payee's balance cap and the payer's daily limit under the
   lock of the counter row, insert the ``pending`` row;
3. the ledger transfer through the shared batching ledger (``service.post``, as the general
   path);
4. ``bankwallet_p2p_outcome``, one transaction: ``posted``/``failed`` (a failure gives the
   outflow back), the ``money.moved`` event, the audit event and the key's stored answer.

Steps 1, 2 and 4 are batched as the ledger is (``core.batching``): the requests that arrive
while one look-up is in flight share the next one, and likewise for intents
(``bankwallet_p2p_intents``, migration 0024) and outcomes — one round trip and one commit
for many transfers. A batch the database refuses (a deadlock with the general path, say) is
done again one transfer at a time, so one transfer's trouble stays its own.

Ids, rows, events, audit data and answers are built by the same functions the general path
uses, so a retry on either path sees the same transfer. Anything else is handed to the
general path with the body replayed, untouched: a cookie session, a malformed request, a key
seen before, an amount that needs a second factor, another currency than the limits',
limits, an unknown or inactive recipient, a payee without a wallet yet. Errors therefore
have one author, and the fast path only ever commits the happy path (and the ledger's own
refusals, stored like the general path stores them) — and, as authentication does, a
session's last-seen time when it is due (every 30 s at most).

The healing job (``service.heal_once``) settles a row this path left ``pending`` (a crash
between steps 2 and 4), as it does for the general path.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import uuid
from typing import Any, Final

import asyncpg
import orjson
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bankwallet.core import audit, idempotency, outbox
from bankwallet.core.batching import Batcher
from bankwallet.core.db import utcnow
from bankwallet.core.errors import PROBLEM_JSON, BankwalletError
from bankwallet.core.ids import uuid7
from bankwallet.identity import kyc, mfa
from bankwallet.identity import service as identity_service
from bankwallet.risk import service as risk_service
from bankwallet.settings import get_settings
from bankwallet.transfers import service
from bankwallet.transfers.models import Transfer
from bankwallet.transfers.schemas import TransferCreate, TransferRead
from bankwallet.wallets import service as wallets_service
from bankwallet.wallets.codes import Code

log = logging.getLogger("bankwallet.transfers.fast")

PATH: Final = "/api/v1/transfers"
BODY_MAX_BYTES: Final = 4096  # a transfer body is ~150 bytes; larger ones go the general way
TOKEN_MAX_CHARS: Final = 128  # as identity_service.authenticate

# Step 1 for a batch: row ``i`` answers the i-th (1-based) token; no row, no session.
LOOKUP_MANY: Final = """
SELECT q.i, s.id AS session_id, s.user_id, s.kind, s.expires_at, s.revoked_at, s.last_seen_at,
       u.status, u.kyc_tier, u.email_enc, u.phone_enc,
       p.id AS payee_id, p.status AS payee_status, p.kyc_tier AS payee_tier,
       p.email_enc AS payee_email_enc, p.phone_enc AS payee_phone_enc
  FROM unnest($1::bytea[], $2::uuid[], $3::bytea[], $4::bytea[])
       WITH ORDINALITY AS q(token_hash, by_id, phone_index, email_index, i)
  JOIN identity_session s ON s.token_hash = q.token_hash
  JOIN identity_user u ON u.id = s.user_id
  LEFT JOIN LATERAL (
        SELECT id, status, kyc_tier, email_enc, phone_enc FROM identity_user
         WHERE id = q.by_id OR phone_index = q.phone_index OR email_index = q.email_index
         LIMIT 1) p ON true
"""
# The sessions' last-seen times, as authentication writes them (at most every 30 s each).
TOUCH_MANY: Final = """
UPDATE identity_session s SET last_seen_at = q.at
  FROM unnest($1::uuid[], $2::timestamptz[]) AS q(id, at)
 WHERE s.id = q.id AND s.last_seen_at < q.at
"""
INTENT: Final = ("SELECT bankwallet_p2p_intent($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
                 "$12, $13, $14, $15, $16, $17, $18, $19)")
INTENTS: Final = ("SELECT bankwallet_p2p_intents($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
                  "$12, $13, $14, $15, $16, $17, $18, $19)")
OUTCOME: Final = ("SELECT bankwallet_p2p_outcome($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
                  "$12::jsonb, $13, $14, $15, $16::jsonb, $17, $18, $19, $20::jsonb)")
OUTCOMES: Final = ("SELECT bankwallet_p2p_outcomes($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
                   "$11, $12::jsonb[], $13, $14, $15, $16::jsonb[], $17, $18, $19, "
                   "$20::jsonb[])")
# Where the payer, and what orders one payer's transfers, sit among INTENT's and OUTCOME's
# arguments: batches take their locks in this order.
INTENT_ORDER: Final = (7, 1)  # payer, key
OUTCOME_ORDER: Final = (4, 0)  # payer, transfer id
RELEASE: Final = ("DELETE FROM core_idempotency_key WHERE scope = $1 AND key = $2 "
                  "AND state = 'started'")
FINISHED: Final = "SELECT status, failure_code, finished_at FROM transfers_transfer WHERE id = $1"
COMPLETE: Final = ("UPDATE core_idempotency_key SET state = 'done', response_status = $3, "
                   "response_body = $4::jsonb WHERE scope = $1 AND key = $2")

Answer = tuple[int, bytes, str]  # status, body, content type


def asyncpg_dsn(sqlalchemy_url: str) -> str | None:
    """The plain PostgreSQL URL behind an ``postgresql+asyncpg://`` one; None otherwise."""
    scheme, sep, rest = sqlalchemy_url.partition("://")
    if not sep or scheme not in ("postgresql+asyncpg", "postgresql", "postgres"):
        return None
    return f"postgresql://{rest}"


async def _no_reset(_connection: asyncpg.Connection) -> None:
    """Connections come back to the pool between statements, never inside a transaction
    and never with session state set, so asyncpg's reset (a round trip) has nothing to do."""


class FastPath:
    """The fast path's pool, batches and counters. Off (everything handed on) until
    ``start`` gives it a PostgreSQL database."""

    def __init__(self) -> None:
        self.pool: asyncpg.Pool | None = None
        self.taken = 0  # answered here
        self.handed_on = 0  # given to the general path
        self.lookups: Batcher[tuple[Any, ...], asyncpg.Record | None] = Batcher(
            self._lookup_many)
        self.intents: Batcher[tuple[Any, ...], str] = Batcher(self._intent_many)
        self.outcomes: Batcher[tuple[Any, ...], bool] = Batcher(self._outcome_many)
        self.touches: Batcher[tuple[Any, ...], None] = Batcher(self._touch_many)

    async def start(self, database_url: str, *, pool_size: int) -> bool:
        dsn = asyncpg_dsn(database_url)
        if dsn is None:
            return False
        self.pool = await asyncpg.create_pool(dsn, min_size=0, max_size=pool_size,
                                              reset=_no_reset)
        return True

    async def close(self) -> None:
        for batcher in (self.lookups, self.intents, self.outcomes, self.touches):
            await batcher.close()
        pool, self.pool = self.pool, None
        if pool is not None:
            await pool.close()

    async def answer(self, app: Any, headers: dict[bytes, bytes], body: bytes
                      ) -> Answer | None:
        """The answer of a transfer this path can take, or None to hand it on."""
        request = _parse(headers, body)
        if request is None:
            return None
        token, key, create = request
        try:
            intent = await self._record_intent(token=token, key=key, create=create)
        except (OSError, asyncpg.PostgresError):
            # The general path answers it (and reports the database's trouble its own way).
            log.warning("the P2P fast path could not record an intent", exc_info=True)
            return None
        if intent is None:
            return None
        row, scope_ = intent
        return await self._settle(app.state.ledger, row, scope_, key)

    async def _record_intent(self, *, token: str, key: str, create: TransferCreate
                             ) -> tuple[Transfer, str] | None:
        """Steps 1 and 2: the pending row and the key's scope, or None to hand it on."""
        try:
            currency = wallets_service.supported(create.currency)
            amount_minor = service.check_amount(create.amount_minor)
            note = service.clean_note(create.note)
            query = service.recipient_query(create.to)
        except BankwalletError:
            return None
        if currency != kyc.LIMITS_CURRENCY or risk_service.assess_amount(
                action="p2p.send", amount_minor=amount_minor).decision \
                is not risk_service.Decision.ALLOW:
            return None
        by_id = phone_index = email_index = None
        if isinstance(query, uuid.UUID):
            by_id = query
        elif query.kind == "phone":
            phone_index = identity_service.login_index(query)
        else:
            email_index = identity_service.login_index(query)
        found = await self.lookups((identity_service.hash_token(token), by_id, phone_index,
                                    email_index))
        now = utcnow()
        settings = get_settings()
        if found is None or not identity_service.session_usable(
                kind=found["kind"], expires_at=found["expires_at"],
                revoked_at=found["revoked_at"], last_seen_at=found["last_seen_at"],
                user_status=found["status"], now=now,
                idle_timeout_s=settings.session_idle_timeout_s):
            return None
        payer_id, payee_id = found["user_id"], found["payee_id"]
        if payee_id is None or found["payee_status"] != "active" or payee_id == payer_id:
            return None
        limits = kyc.limits_for(found["kyc_tier"])
        if amount_minor > limits.single_minor:
            return None
        if identity_service.last_seen_due(found["last_seen_at"], now):
            # As authentication does on the general path: a customer who sends now and then
            # (most of them) finds it due at nearly every transfer.
            await self.touches((found["session_id"], now))
        scope_ = service.idempotency_scope(payer_id)
        transfer_id = service.sent_transfer_id(payer_id, key)
        day = wallets_service.bank_today(now)
        row = Transfer(
            id=transfer_id, payer_user_id=payer_id, payee_user_id=payee_id,
            amount_minor=amount_minor, currency=currency, code=int(Code.P2P), note=note,
            status="pending", failure_code=None,
            ledger_transfer_id=service.ledger_transfer_id(transfer_id),
            request_id=None, outflow_day=day, created_at=now, finished_at=None,
            from_display=_display(found["email_enc"], found["phone_enc"]),
            to_display=_display(found["payee_email_enc"], found["payee_phone_enc"]))
        fingerprint = idempotency.fingerprint("POST", PATH, create.model_dump(mode="json"))
        outcome = await self.intents((
            scope_, key, fingerprint, now,
            now + dt.timedelta(seconds=idempotency.STALE_AFTER_S), row.id,
            row.ledger_transfer_id, payer_id, payee_id, amount_minor, currency, row.code, note,
            row.from_display, row.to_display, day, limits.daily_minor,
            wallets_service.wallet_account_id(payee_id, currency),
            kyc.limits_for(found["payee_tier"]).balance_minor))
        return (row, scope_) if outcome == "ok" else None

    async def _settle(self, ledger: Any, row: Transfer, scope_: str, key: str) -> Answer:
        assert self.pool is not None
        try:
            failure_code = await service.post(ledger, row)
        except BaseException:
            # As the general path: give the key back so a retry runs again (the row stays
            # pending; the retry or the healing job settles the same ledger id).
            async with self.pool.acquire() as conn:
                await conn.execute(RELEASE, scope_, key)
            raise
        now = utcnow()
        row.status = "posted" if failure_code is None else "failed"
        row.failure_code, row.finished_at = failure_code, now
        status, answer, media_type = _answer_of(row)
        event = outbox.payload_json("money.moved", service.money_moved(row),
                                    key=str(row.payer_user_id))
        recorded = await self.outcomes((
            row.id, row.status, failure_code, now, row.payer_user_id, row.outflow_day,
            row.currency, row.amount_minor, uuid7(), "money.moved", str(row.payer_user_id),
            event.decode(), uuid7(), f"transfers.transfer.{row.status}", str(row.id),
            audit.data_json(service.audit_data(row)), scope_, key, status,
            orjson.dumps(answer).decode()))
        if not recorded:  # the healing job recorded it first: answer what it recorded
            async with self.pool.acquire() as conn:
                found = await conn.fetchrow(FINISHED, row.id)
                row.status, row.failure_code, row.finished_at = (
                    found["status"], found["failure_code"], found["finished_at"])
                status, answer, media_type = _answer_of(row)
                await conn.execute(COMPLETE, scope_, key, status, orjson.dumps(answer).decode())
        return status, orjson.dumps(answer), media_type

    # -- the batches -------------------------------------------------------------------------

    async def _lookup_many(self, items: list[tuple[Any, ...]]) -> list[asyncpg.Record | None]:
        assert self.pool is not None
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(LOOKUP_MANY, *_columns(items, 4))
        found = {row["i"]: row for row in rows}
        return [found.get(n) for n in range(1, len(items) + 1)]

    async def _touch_many(self, items: list[tuple[Any, ...]]) -> list[None]:
        assert self.pool is not None
        items = sorted(items)  # two batches lock sessions in one order
        async with self.pool.acquire() as conn:
            await conn.execute(TOUCH_MANY, *_columns(items, 2))
        return [None] * len(items)

    async def _intent_many(self, items: list[tuple[Any, ...]]) -> list[str | BaseException]:
        return await self._many(items, INTENTS, INTENT, INTENT_ORDER, 19)

    async def _outcome_many(self, items: list[tuple[Any, ...]]) -> list[bool | BaseException]:
        results = await self._many(items, OUTCOMES, OUTCOME, OUTCOME_ORDER, 20)
        if any(result is True for result in results):
            outbox.wake()
        return results

    async def _many(self, items: list[tuple[Any, ...]], many: str, one: str,
                    by: tuple[int, int], arity: int) -> list[Any]:
        """``many`` on the whole batch, ordered by payer (so concurrent batches take the
        payers' rows in one order); if the database refuses it, ``one`` per item."""
        assert self.pool is not None
        first, then = by
        order = sorted(range(len(items)), key=lambda n: (items[n][first], items[n][then]))
        try:
            async with self.pool.acquire() as conn:
                answers = await conn.fetchval(many, *_columns([items[n] for n in order], arity))
        except (OSError, asyncpg.PostgresError):
            if len(items) == 1:
                raise
            log.info("a P2P batch was refused; recording its %d transfers one by one",
                     len(items), exc_info=True)
            return [await self._one(one, item) for item in items]
        results: list[Any] = [None] * len(items)
        for n, answer in zip(order, answers, strict=True):
            results[n] = answer
        return results

    async def _one(self, statement: str, item: tuple[Any, ...]) -> Any:
        assert self.pool is not None
        try:
            async with self.pool.acquire() as conn:
                return await conn.fetchval(statement, *item)
        except (OSError, asyncpg.PostgresError) as exc:
            return exc


@functools.lru_cache(maxsize=4096)
def _display(email_enc: bytes | None, phone_enc: bytes | None) -> str:
    """A customer's masked contact (``a***@example.com``), decrypted once per ciphertext: a
    changed address is a new ciphertext, so the cache is never stale, and it holds only the
    masked text."""
    return mfa.masked_contact(identity_service.contact_from(email_enc=email_enc,
                                                            phone_enc=phone_enc))


def _columns(items: list[tuple[Any, ...]], arity: int) -> list[list[Any]]:
    """Items (argument tuples) as one list per argument, for ``unnest`` and array functions."""
    return [list(column) for column in zip(*items, strict=True)] if items else [[]] * arity


class FastTransfersMiddleware:
    """ASGI middleware: answers what it can of ``POST /api/v1/transfers`` through ``fast``
    and hands the rest (and every other request) to the app."""

    def __init__(self, app: ASGIApp, *, fast: FastPath) -> None:
        self.app = app
        self.fast = fast

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast
        if (fast.pool is None or scope["type"] != "http" or scope["path"] != PATH
                or scope["method"] != "POST"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        if not declared.isdigit() or int(declared) > BODY_MAX_BYTES:
            await self.app(scope, receive, send)
            return
        body, rest = await _read_body(receive)
        answer = None
        if rest is None:
            answer = await fast.answer(scope["app"], headers, body)
        if answer is None:
            fast.handed_on += 1
            await self.app(scope, _replay(body, rest, receive), send)
            return
        fast.taken += 1
        status, content, media_type = answer
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", media_type.encode()),
                                (b"content-length", str(len(content)).encode())]})
        await send({"type": "http.response.body", "body": content})


def _answer_of(row: Transfer) -> tuple[int, dict[str, Any], str]:
    """The general path's answer for a settled row: 201 with the transfer, or its problem."""
    if row.status == "failed":
        error: BankwalletError = service.error_of(row)  # type: ignore[assignment]
        return error.status, error.to_problem(PATH), PROBLEM_JSON
    return 201, TransferRead.of(row, row.payer_user_id).model_dump(mode="json"), \
        "application/json"


def _parse(headers: dict[bytes, bytes], body: bytes) -> tuple[str, str, TransferCreate] | None:
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > TOKEN_MAX_CHARS:
        return None
    raw_key = headers.get(b"idempotency-key")
    if raw_key is None or not headers.get(b"content-type", b"").startswith(b"application/json"):
        return None
    try:
        key = idempotency.check_key(raw_key.decode("latin-1"))
        create = TransferCreate.model_validate_json(body)
    except (BankwalletError, ValidationError):
        return None
    return token, key, create


async def _read_body(receive: Receive) -> tuple[bytes, Message | None]:
    """The whole body; or what was read and the first message that was not body (a
    disconnect), for the general path to see."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _replay(body: bytes, rest: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that gives the body again, then whatever the client sends next."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    if rest is not None:
        pending.append(rest)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
