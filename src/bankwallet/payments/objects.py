"""Our payments as Stripe's objects (``payment_intent``, ``charge``, ``refund``, ``event``).

One shape for the Stripe-compatible API, the webhook bodies and the events a merchant lists,
so what a merchant's Stripe code reads is the same everywhere. Pure functions, except the
client secret, which is an HMAC under the server's index key (never stored)."""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import uuid
from typing import Any, Final

from bankwallet.core.crypto import get_keyring
from bankwallet.payments.models import Charge, Event, PaymentIntent, Refund

API_VERSION: Final = "2024-06-20"
PAY_PATH: Final = "/pay/"
_SECRET_SEPARATOR: Final = "_secret_"
_SECRET_TAG_CHARS: Final = 24

PREFIXES: Final = {"payment_intent": "pi", "charge": "ch", "refund": "re", "event": "evt",
                   "webhook_endpoint": "we"}


def public_id(kind: str, value: uuid.UUID) -> str:
    return f"{PREFIXES[kind]}_{value.hex}"


def parse_public_id(kind: str, text: str | None) -> uuid.UUID | None:
    """The uuid behind ``pi_…`` (or ``re_``, ``evt_`` …); None when ``text`` is not one."""
    prefix = PREFIXES[kind] + "_"
    if not text or not text.startswith(prefix) or len(text) != len(prefix) + 32:
        return None
    try:
        return uuid.UUID(hex=text[len(prefix):])
    except ValueError:
        return None


def unix(value: dt.datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


# -- client secrets: the customer's handle on one intent ----------------------------------------


def _secret_tag(intent_id: uuid.UUID) -> str:
    digest = get_keyring().blind_index(str(intent_id), context="payments.client_secret")
    return base64.b32encode(digest).decode().lower()[:_SECRET_TAG_CHARS]


def client_secret(intent_id: uuid.UUID) -> str:
    return f"{public_id('payment_intent', intent_id)}{_SECRET_SEPARATOR}{_secret_tag(intent_id)}"


def parse_client_secret(text: str) -> uuid.UUID | None:
    """The intent a client secret belongs to; None unless the secret is genuine."""
    head, sep, tag = text.partition(_SECRET_SEPARATOR)
    intent_id = parse_public_id("payment_intent", head)
    if not sep or intent_id is None or len(tag) != _SECRET_TAG_CHARS:
        return None
    return intent_id if hmac.compare_digest(tag, _secret_tag(intent_id)) else None


def pay_url(intent_id: uuid.UUID) -> str:
    """Where the customer confirms in the wallet (relative to the wallet's address)."""
    return PAY_PATH + client_secret(intent_id)


# -- objects ------------------------------------------------------------------------------------


def payment_intent(intent: PaymentIntent, *, charge: Charge | None = None,
                   expand: frozenset[str] = frozenset()) -> dict[str, Any]:
    next_action = None
    if intent.status == "requires_action":
        next_action = {"type": "redirect_to_url",
                       "redirect_to_url": {"url": pay_url(intent.id),
                                           "return_url": intent.return_url}}
    latest: Any = public_id("charge", intent.latest_charge_id) if intent.latest_charge_id else None
    if "latest_charge" in expand and charge is not None:
        latest = charge_object(charge, intent)
    return {
        "id": public_id("payment_intent", intent.id),
        "object": "payment_intent",
        "amount": intent.amount_minor,
        "amount_capturable": intent.amount_capturable_minor,
        "amount_received": intent.amount_received_minor,
        "application_fee_amount": None,
        "canceled_at": unix(intent.canceled_at),
        "cancellation_reason": intent.cancellation_reason,
        "capture_method": intent.capture_method,
        "client_secret": client_secret(intent.id),
        "confirmation_method": "automatic",
        "created": unix(intent.created_at),
        "currency": intent.currency.lower(),
        "customer": None,
        "description": intent.description,
        "last_payment_error": intent.last_payment_error,
        "latest_charge": latest,
        "livemode": False,
        "metadata": dict(intent.metadata_ or {}),
        "next_action": next_action,
        "payment_method": intent.payment_method,
        "payment_method_types": list(intent.payment_method_types),
        "receipt_email": None,
        "return_url": intent.return_url,
        "statement_descriptor": None,
        "status": intent.status,
    }


def charge_object(charge: Charge, intent: PaymentIntent) -> dict[str, Any]:
    captured = charge.status == "succeeded"
    status = {"succeeded": "succeeded", "failed": "failed"}.get(charge.status, "pending")
    if charge.status in ("authorized", "capturing", "canceling", "canceled"):
        status = "succeeded" if charge.status != "canceled" else "failed"
    refunded = intent.amount_refunded_minor if captured else 0
    return {
        "id": public_id("charge", charge.id),
        "object": "charge",
        "amount": charge.amount_minor,
        "amount_captured": charge.amount_captured_minor,
        "amount_refunded": refunded,
        "application_fee_amount": charge.fee_minor or None,
        "balance_transaction": None,
        "captured": captured,
        "created": unix(charge.created_at),
        "currency": charge.currency.lower(),
        "failure_code": charge.failure_code,
        "failure_message": charge.failure_message,
        "livemode": False,
        "metadata": dict(intent.metadata_ or {}),
        "paid": charge.status in ("succeeded", "authorized", "capturing"),
        "payment_intent": public_id("payment_intent", intent.id),
        "payment_method_details": {"type": charge.method},
        "refunded": captured and refunded >= charge.amount_captured_minor > 0,
        "status": status,
    }


def refund_object(refund: Refund) -> dict[str, Any]:
    return {
        "id": public_id("refund", refund.id),
        "object": "refund",
        "amount": refund.amount_minor,
        "balance_transaction": None,
        "charge": public_id("charge", refund.charge_id),
        "created": unix(refund.created_at),
        "currency": refund.currency.lower(),
        "failure_reason": refund.failure_code,
        "metadata": dict(refund.metadata_ or {}),
        "payment_intent": public_id("payment_intent", refund.intent_id),
        "reason": refund.reason,
        "status": refund.status,
    }


def event_object(event: Event, *, pending_webhooks: int = 0) -> dict[str, Any]:
    return {
        "id": public_id("event", event.id),
        "object": "event",
        "api_version": event.api_version,
        "created": unix(event.created_at),
        "data": event.data,
        "livemode": False,
        "pending_webhooks": pending_webhooks,
        "request": {"id": None, "idempotency_key": event.idempotency_key},
        "type": event.type,
    }
