"""Merchant webhooks: endpoints with a signing secret (``whsec_…``, shown once, kept
envelope-encrypted), the fan-out of each event to the endpoints that want it (one delivery per
event and endpoint: receivers de-duplicate by the event id), delivery over HTTP signed with
Stripe's scheme (``Stripe-Signature: t=…,v1=…``, ``core.webhooks.sign``) with bounded retries
and exponential backoff, the delivery log (one row per attempt) and replay.

The payment service publishes ``payments.event`` into the outbox; ``tasks`` consumes it
(``fan_out``) and runs the delivery loop (``deliver_due``), outside any request."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import secrets
import string
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import httpx
import orjson
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bankwallet import __version__
from bankwallet.core import audit, webhooks
from bankwallet.core.crypto import get_keyring
from bankwallet.core.db import Database, utcnow
from bankwallet.core.ids import uuid7
from bankwallet.core.outbox import backoff_delay_s
from bankwallet.identity import mfa
from bankwallet.identity.service import Authenticated
from bankwallet.payments import objects, repository
from bankwallet.payments.errors import (
    InvalidEventTypes,
    InvalidWebhookUrl,
    WebhookDeliveryNotFound,
    WebhookEndpointNotFound,
)
from bankwallet.payments.models import (
    WEBHOOK_SECRET_CONTEXT,
    Event,
    Merchant,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from bankwallet.payments.service import EVENT_TYPES, clean_text
from bankwallet.settings import get_settings

log = logging.getLogger("bankwallet.payments.webhooks")

SIGNATURE_HEADER: Final = "Stripe-Signature"
SECRET_PREFIX: Final = "whsec_"
SECRET_RANDOM_CHARS: Final = 32
URL_MAX_CHARS: Final = 2048
DESCRIPTION_MAX_CHARS: Final = 200
ENDPOINTS_MAX: Final = 16
ALL_EVENTS: Final = "*"
MAX_ATTEMPTS: Final = 8  # 5 s, 10 s, 20 s … about ten minutes in all, then failed
RETRY_BASE_S: Final = 5.0
RETRY_MAX_S: Final = 3600.0
TIMEOUT_S: Final = 10.0  # connect + read, per attempt
LEASE_S: Final = 60.0  # a claimed delivery is not claimed again for this long
BATCH_MAX: Final = 20
CONCURRENCY: Final = 4
ERROR_MAX_CHARS: Final = 255
LOG_PAGE_MAX: Final = 100
assert TIMEOUT_S * 2 < LEASE_S


class InvalidWebhookName(InvalidWebhookUrl):
    code = "invalid_webhook_description"
    title = "The description is too long"


# -- endpoints -------------------------------------------------------------------------------


def check_url(url: str) -> str:
    """An http(s) URL; in production https only, and never a loopback or private address
    (the server must not be turned against its own network)."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if len(url) > URL_MAX_CHARS or parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidWebhookUrl("Give an http(s) URL, e.g. https://shop.example.com/hooks.")
    if get_settings().env == "prod":
        if parts.scheme != "https":
            raise InvalidWebhookUrl("Webhook URLs must use https.")
        host = parts.hostname
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if host == "localhost" or host.endswith(".localhost") or (
                address is not None and not address.is_global):
            raise InvalidWebhookUrl("Webhook URLs must be public addresses.")
    return url


def check_event_types(types: Sequence[str] | None) -> list[str]:
    chosen = list(dict.fromkeys(types or [ALL_EVENTS]))
    if ALL_EVENTS in chosen:
        return [ALL_EVENTS]
    unknown = [t for t in chosen if t not in EVENT_TYPES]
    if unknown:
        raise InvalidEventTypes(f"Event types are {', '.join(EVENT_TYPES)} or *.",
                                unknown=unknown)
    return chosen


def new_secret() -> str:
    alphabet = string.ascii_letters + string.digits
    return SECRET_PREFIX + "".join(secrets.choice(alphabet) for _ in range(SECRET_RANDOM_CHARS))


def secret_of(endpoint: WebhookEndpoint) -> str:
    return get_keyring().decrypt(endpoint.secret_enc, context=WEBHOOK_SECRET_CONTEXT).decode()


async def create_endpoint(session: AsyncSession, auth: Authenticated, merchant: Merchant, *,
                          url: str, enabled_events: Sequence[str] | None = None,
                          description: str | None = None) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret, returned in the clear this once."""
    clean_url = check_url(url)
    events = check_event_types(enabled_events)
    clean_description = clean_text(description, max_chars=DESCRIPTION_MAX_CHARS,
                                   error=InvalidWebhookName, required=False)
    await mfa.ensure_recent_second_factor(session, auth)
    if len(await repository.endpoints(session, merchant.id, limit=ENDPOINTS_MAX)) \
            >= ENDPOINTS_MAX:
        raise InvalidWebhookUrl(f"At most {ENDPOINTS_MAX} endpoints.")
    secret = new_secret()
    now = utcnow()
    endpoint = WebhookEndpoint(id=uuid7(), merchant_id=merchant.id, url=clean_url,
                               description=clean_description,
                               secret_enc=get_keyring().encrypt(secret,
                                                                context=WEBHOOK_SECRET_CONTEXT),
                               enabled_events=events, status="enabled", created_at=now,
                               updated_at=now)
    session.add(endpoint)
    await session.flush()
    await audit.record(session, action="payments.webhook_endpoint.created", actor_type="user",
                       actor_id=str(auth.user.id), subject_type="merchant",
                       subject_id=str(merchant.id), data={"endpoint_id": str(endpoint.id)})
    return endpoint, secret


async def list_endpoints(session: AsyncSession, merchant: Merchant) -> list[WebhookEndpoint]:
    return await repository.endpoints(session, merchant.id, limit=ENDPOINTS_MAX)


async def get_endpoint(session: AsyncSession, merchant: Merchant,
                       endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.merchant_id != merchant.id:
        raise WebhookEndpointNotFound()
    return endpoint


async def set_endpoint_status(session: AsyncSession, auth: Authenticated, merchant: Merchant,
                              endpoint_id: uuid.UUID, *, enabled: bool) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, merchant, endpoint_id)
    status = "enabled" if enabled else "disabled"
    if endpoint.status != status:
        endpoint.status = status
        endpoint.updated_at = utcnow()
        await session.flush()
        await audit.record(session, action=f"payments.webhook_endpoint.{status}",
                           actor_type="user", actor_id=str(auth.user.id),
                           subject_type="merchant", subject_id=str(merchant.id),
                           data={"endpoint_id": str(endpoint.id)})
    return endpoint


def wants(endpoint: WebhookEndpoint, event_type: str) -> bool:
    return ALL_EVENTS in endpoint.enabled_events or event_type in endpoint.enabled_events


# -- fan-out (the outbox consumer) -------------------------------------------------------------


def _insert(session: AsyncSession):
    return pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert


async def fan_out(session: AsyncSession, event_id: uuid.UUID) -> int:
    """One delivery per enabled endpoint that wants the event and existed when it happened
    (an endpoint added later does not get the past); a second run adds none."""
    event = await session.get(Event, event_id)
    if event is None:  # the event's transaction committed, so this is a bug: say so
        raise LookupError(f"payments event {event_id} is missing")
    targets = [e for e in await repository.endpoints(session, event.merchant_id,
                                                      limit=ENDPOINTS_MAX, enabled_only=True)
               if wants(e, event.type) and e.created_at <= event.created_at]
    now = utcnow()
    for endpoint in targets:
        await session.execute(_insert(session)(WebhookDelivery).values(
            id=uuid7(), event_id=event.id, endpoint_id=endpoint.id,
            merchant_id=event.merchant_id, status="pending", attempts=0,
            attempts_allowed=MAX_ATTEMPTS, next_attempt_at=now, last_status_code=None,
            last_error=None, created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["event_id", "endpoint_id"]))
    return len(targets)


# -- delivery ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Job:
    delivery_id: uuid.UUID
    attempt: int
    url: str
    secret: str
    body: bytes


@dataclass(frozen=True, slots=True)
class _Result:
    status_code: int | None
    latency_ms: int
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def deliver_due(db: Database, *, now: dt.datetime | None = None, limit: int = BATCH_MAX,
                      transport: httpx.AsyncBaseTransport | None = None) -> int:
    """Send the deliveries that are due (at most ``limit``); returns how many were tried.
    ``now`` lets tests move the clock; the signature always carries the real time, as a
    receiver checks it against its own clock."""
    assert 0 < limit <= BATCH_MAX
    now = now or utcnow()
    jobs = await _claim(db, now=now, limit=limit)
    if not jobs:
        return 0
    limiter = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False,
                                 transport=transport,
                                 headers={"User-Agent": f"bankwallet-webhooks/{__version__}"}
                                 ) as client:

        async def one(job: _Job) -> None:
            async with limiter:
                result = await _send(client, job)
            await _record(db, job, result, now=now)

        await asyncio.gather(*(one(job) for job in jobs))
    return len(jobs)


async def _claim(db: Database, *, now: dt.datetime, limit: int) -> list[_Job]:
    """Lease due deliveries to this process and count the attempt (SKIP LOCKED on PostgreSQL,
    so two workers never send the same attempt)."""
    jobs: list[_Job] = []
    async with db.unit_of_work() as session:
        ids = await repository.due_deliveries(session, now=now, limit=limit)
        for delivery_id in ids:
            delivery = await session.get(WebhookDelivery, delivery_id)
            assert delivery is not None
            event = await session.get(Event, delivery.event_id)
            endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
            assert event is not None and endpoint is not None
            delivery.attempts += 1
            delivery.next_attempt_at = now + dt.timedelta(seconds=LEASE_S)
            delivery.updated_at = utcnow()
            if endpoint.status != "enabled":
                delivery.status, delivery.next_attempt_at = "failed", None
                delivery.last_error = "endpoint disabled"
                continue
            pending = await repository.pending_deliveries(session, [event.id])
            body = orjson.dumps(objects.event_object(event,
                                                     pending_webhooks=pending.get(event.id, 0)))
            jobs.append(_Job(delivery.id, delivery.attempts, endpoint.url, secret_of(endpoint),
                             body))
    return jobs


async def _send(client: httpx.AsyncClient, job: _Job) -> _Result:
    headers = {"Content-Type": "application/json",
               SIGNATURE_HEADER: webhooks.sign(job.secret, job.body, int(time.time()))}
    started = time.monotonic()
    try:
        response = await client.post(job.url, content=job.body, headers=headers)
    except httpx.HTTPError as exc:
        latency_ms = int((time.monotonic() - started) * 1000)
        return _Result(None, latency_ms, f"{type(exc).__name__}: {exc}"[:ERROR_MAX_CHARS])
    latency_ms = int((time.monotonic() - started) * 1000)
    error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
    return _Result(response.status_code, latency_ms, error)


def retry_delay_s(attempt: int) -> float:
    return backoff_delay_s(attempt, base_s=RETRY_BASE_S, max_s=RETRY_MAX_S)


async def _record(db: Database, job: _Job, result: _Result, *, now: dt.datetime) -> None:
    async with db.unit_of_work() as session:
        delivery = await session.get(WebhookDelivery, job.delivery_id)
        assert delivery is not None
        session.add(WebhookAttempt(id=uuid7(), delivery_id=delivery.id, attempt=job.attempt,
                                   status_code=result.status_code,
                                   latency_ms=result.latency_ms, error=result.error,
                                   created_at=utcnow()))
        delivery.last_status_code = result.status_code
        delivery.last_error = result.error
        delivery.updated_at = utcnow()
        if result.ok:
            delivery.status, delivery.next_attempt_at = "succeeded", None
        elif delivery.attempts >= delivery.attempts_allowed:
            delivery.status, delivery.next_attempt_at = "failed", None
            log.warning("webhook delivery gave up", extra={
                "delivery_id": str(delivery.id), "attempts": delivery.attempts,
                "error": result.error})
        else:
            delivery.next_attempt_at = now + dt.timedelta(seconds=retry_delay_s(job.attempt))


# -- the delivery log and replay -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryView:
    delivery: WebhookDelivery
    event: Event
    endpoint: WebhookEndpoint
    attempts: list[WebhookAttempt]


async def delivery_log(session: AsyncSession, merchant: Merchant, *, limit: int = 50,
                       endpoint_id: uuid.UUID | None = None) -> list[DeliveryView]:
    assert 0 < limit <= LOG_PAGE_MAX
    rows = await repository.deliveries(session, merchant.id, limit=limit,
                                       endpoint_id=endpoint_id)
    attempts = await repository.attempts_of(session, [d.id for d, _, _ in rows],
                                            limit=limit * MAX_ATTEMPTS * 2)
    by_delivery: dict[uuid.UUID, list[WebhookAttempt]] = {}
    for attempt in attempts:
        by_delivery.setdefault(attempt.delivery_id, []).append(attempt)
    return [DeliveryView(d, e, w, sorted(by_delivery.get(d.id, []), key=lambda a: a.attempt))
            for d, e, w in rows]


async def replay(session: AsyncSession, auth: Authenticated, merchant: Merchant,
                 delivery_id: uuid.UUID) -> WebhookDelivery:
    """Send a delivery once more, now (whatever its status): the receiver sees the same event
    id, so it can tell a replay from a new event."""
    delivery = await session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.merchant_id != merchant.id:
        raise WebhookDeliveryNotFound()
    now = utcnow()
    delivery.status = "pending"
    delivery.attempts_allowed = delivery.attempts + 1
    delivery.next_attempt_at = now
    delivery.updated_at = now
    await session.flush()
    await audit.record(session, action="payments.webhook_delivery.replayed", actor_type="user",
                       actor_id=str(auth.user.id), subject_type="merchant",
                       subject_id=str(merchant.id), data={"delivery_id": str(delivery_id)})
    return delivery


async def deliveries_of_event(session: AsyncSession, event_id: uuid.UUID) -> list[WebhookDelivery]:
    return list((await session.scalars(select(WebhookDelivery).where(
        WebhookDelivery.event_id == event_id))).all())
