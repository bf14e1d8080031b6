"""The ``CardGateway`` provider for the sandbox gateway (``bankwallet sandbox-gateway``), over
HTTP.

Every outcome becomes a result (see ``base``): a decline is ``DECLINED`` with the issuer's
reason, a timeout or a 5xx is ``UNKNOWN`` (the gateway may have applied it: ask again, or re-send
with the same idempotency key), a connection that never opened is ``FAILED`` and retryable
(nothing reached the gateway), and a refused operation (a capture above the hold, a reused
key) carries its ``error`` code. Card numbers, security codes and holder names never reach a
log line or a result.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote

import httpx
import orjson

from bankwallet.connectors.gateway.base import (
    IDEMPOTENCY_KEY_MAX_CHARS,
    REFERENCE_MAX_CHARS,
    RETURN_URL_MAX_CHARS,
    WEBHOOK_BODY_MAX_BYTES,
    Funding,
    PaymentResult,
    PaymentStatus,
    RefundResult,
    RefundStatus,
    TokenResult,
    WebhookEvent,
    WebhookPayloadInvalid,
)
from bankwallet.core import webhooks

log = logging.getLogger("bankwallet.connectors.gateway.sandbox")

TIMEOUT_MAX_S: Final = 60.0
RESPONSE_MAX_BYTES: Final = 1024 * 1024
PAYMENT_ID_MAX_CHARS: Final = 64

# The sandbox's statuses we know; any other is PENDING (unknown → pending).
_STATUSES: Final = {s.value: s for s in (
    PaymentStatus.REQUIRES_ACTION, PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED,
    PaymentStatus.REFUNDED, PaymentStatus.VOIDED, PaymentStatus.DECLINED, PaymentStatus.FAILED)}
_FUNDING: Final = {f.value: f for f in Funding}


class _NoAnswer(Exception):
    """The gateway's answer is missing or unreadable; ``never_sent`` when the request never
    reached it (connection refused), so nothing was applied."""

    def __init__(self, error: str, *, never_sent: bool) -> None:
        super().__init__(error)
        self.error, self.never_sent = error, never_sent


class SandboxCardGateway:
    """``secret`` verifies webhooks; pass ``[new, old]`` while the gateway rotates it.
    ``sandbox_delay_s`` is sent as ``X-Sandbox-Delay`` (how long the timeout mode lasts)."""

    def __init__(self, base_url: str, secret: str | Sequence[str], timeout_s: float = 10.0, *,
                 sandbox_delay_s: float | None = None,
                 webhook_tolerance_s: int = webhooks.DEFAULT_TOLERANCE_S,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        assert 0 < timeout_s <= TIMEOUT_MAX_S, timeout_s
        assert base_url.startswith(("http://", "https://")), "base_url must be http(s)"
        self.secrets = [secret] if isinstance(secret, str) else list(secret)
        assert self.secrets and all(self.secrets), "a webhook secret is required"
        self.timeout_s = timeout_s
        self.sandbox_delay_s = sandbox_delay_s
        self.webhook_tolerance_s = webhook_tolerance_s
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s,
                                         transport=transport, follow_redirects=False)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    # CardGateway

    async def tokenize(self, *, number: str, exp_month: int, exp_year: int, cvc: str,
                       holder_name: str) -> TokenResult:
        payload = {"number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": cvc,
                   "holder_name": holder_name}
        try:
            status_code, body = await self._request("POST", "/v1/tokens", json=payload)
        except _NoAnswer as exc:  # dropped here: its cause holds the request, card and all
            return TokenResult(None, error=exc.error, retryable=True)
        if status_code != 201:
            retryable = status_code >= 500 or status_code == 429
            return TokenResult(None, error=_code(body, status_code), retryable=retryable)
        try:
            return TokenResult(
                token=_text(body["id"]), brand=_text(body["brand"]),
                funding=_FUNDING.get(str(body.get("funding")), Funding.UNKNOWN),
                last4=_text(body["last4"]), exp_month=_amount(body["exp_month"]),
                exp_year=_amount(body["exp_year"]))
        except (KeyError, TypeError, ValueError):
            return TokenResult(None, error="unexpected_response", retryable=True)

    async def authorize(self, idempotency_key: str, *, token: str, amount_minor: int,
                        currency: str, reference: str, return_url: str | None = None,
                        failure_mode: str | None = None) -> PaymentResult:
        assert 0 < len(reference) <= REFERENCE_MAX_CHARS, "reference length"
        assert isinstance(amount_minor, int) and amount_minor >= 0, "amount must be >= 0"
        assert return_url is None or len(return_url) <= RETURN_URL_MAX_CHARS
        payload: dict[str, Any] = {"token": token, "amount_minor": amount_minor,
                                   "currency": currency, "reference": reference}
        if return_url is not None:
            payload["return_url"] = return_url
        fallback = PaymentResult(PaymentStatus.UNKNOWN, amount_minor=amount_minor,
                                 currency=currency, reference=reference)
        return await self._operation("POST", "/v1/payments", idempotency_key, payload,
                                     fallback, failure_mode=failure_mode)

    async def capture(self, idempotency_key: str, payment_id: str,
                      amount_minor: int | None = None) -> PaymentResult:
        assert amount_minor is None or amount_minor > 0, "amount must be positive"
        payload = {"amount_minor": amount_minor} if amount_minor is not None else None
        return await self._operation("POST", f"/v1/payments/{_id(payment_id)}/capture",
                                     idempotency_key, payload,
                                     PaymentResult(PaymentStatus.UNKNOWN, payment_id))

    async def void(self, idempotency_key: str, payment_id: str) -> PaymentResult:
        return await self._operation("POST", f"/v1/payments/{_id(payment_id)}/void",
                                     idempotency_key, None,
                                     PaymentResult(PaymentStatus.UNKNOWN, payment_id))

    async def refund(self, idempotency_key: str, payment_id: str,
                     amount_minor: int | None = None) -> RefundResult:
        assert amount_minor is None or amount_minor > 0, "amount must be positive"
        assert 0 < len(idempotency_key) <= IDEMPOTENCY_KEY_MAX_CHARS, "idempotency key length"
        payload = {"amount_minor": amount_minor} if amount_minor is not None else None
        try:
            status_code, body = await self._request(
                "POST", f"/v1/payments/{_id(payment_id)}/refunds", json=payload,
                headers=self._headers(idempotency_key, None))
        except _NoAnswer as exc:
            status = RefundStatus.FAILED if exc.never_sent else RefundStatus.UNKNOWN
            return RefundResult(status, payment_id=payment_id, amount_minor=amount_minor,
                                reason=exc.error, retryable=True)
        if status_code == 201:
            try:
                return RefundResult(
                    _REFUND_STATUSES.get(str(body["status"]), RefundStatus.PENDING),
                    refund_id=_text(body["id"]), payment_id=_text(body["payment_id"]),
                    amount_minor=_amount(body["amount_minor"]), currency=_text(body["currency"]),
                    payment=_payment(body["payment"]) if body.get("payment") else None)
            except (KeyError, TypeError, ValueError):
                return RefundResult(RefundStatus.UNKNOWN, payment_id=payment_id,
                                    reason="unexpected_response", retryable=True)
        if status_code >= 500 or status_code == 429:
            return RefundResult(RefundStatus.UNKNOWN, payment_id=payment_id,
                                amount_minor=amount_minor, reason=f"http_{status_code}",
                                retryable=True)
        return RefundResult(RefundStatus.FAILED, payment_id=payment_id,
                            amount_minor=amount_minor, reason=_code(body, status_code),
                            payment=_payment_or_none(body.get("payment")))

    async def get_payment(self, payment_id: str) -> PaymentResult | None:
        try:
            status_code, body = await self._request("GET", f"/v1/payments/{_id(payment_id)}")
        except _NoAnswer as exc:
            return PaymentResult(PaymentStatus.UNKNOWN, payment_id, reason=exc.error,
                                 retryable=True)
        if status_code == 404:
            return None
        if status_code != 200:
            return PaymentResult(PaymentStatus.UNKNOWN, payment_id,
                                 reason=f"http_{status_code}", retryable=True)
        return _payment_or_none(body) or PaymentResult(
            PaymentStatus.UNKNOWN, payment_id, reason="unexpected_response", retryable=True)

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify the signature, then read the event. Raises ``WebhookVerificationFailed`` or
        ``WebhookPayloadInvalid`` (both 400): the receiving route answers with them."""
        if len(body) > WEBHOOK_BODY_MAX_BYTES:
            raise WebhookPayloadInvalid("The webhook body is too large.")
        webhooks.verify(self.secrets, body, _header(headers, webhooks.SIGNATURE_HEADER),
                        tolerance_s=self.webhook_tolerance_s)
        try:
            data = orjson.loads(body)
            payment = _payment(data["payment"])
            refund = data.get("refund") or {}
            assert payment.payment_id is not None and payment.amount_minor is not None
            assert payment.currency is not None and payment.created_at is not None
            return WebhookEvent(
                id=_text(data["id"]), type=_text(data["type"]), payment_id=payment.payment_id,
                status=payment.status, amount_minor=payment.amount_minor,
                currency=payment.currency,
                amount_captured_minor=payment.amount_captured_minor,
                amount_refunded_minor=payment.amount_refunded_minor,
                created_at=_datetime(data["created_at"]), reference=payment.reference,
                reason=payment.reason,
                refund_id=_text(refund["id"]) if refund else None,
                refund_amount_minor=_amount(refund["amount_minor"]) if refund else None)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AssertionError) as exc:
            raise WebhookPayloadInvalid("The webhook body is not a gateway event.") from exc

    # plumbing

    def _headers(self, idempotency_key: str, failure_mode: str | None) -> dict[str, str]:
        assert 0 < len(idempotency_key) <= IDEMPOTENCY_KEY_MAX_CHARS, "idempotency key length"
        headers = {"Idempotency-Key": idempotency_key}
        if failure_mode is not None:
            headers["X-Sandbox-Failure"] = failure_mode
        if self.sandbox_delay_s is not None:
            headers["X-Sandbox-Delay"] = str(self.sandbox_delay_s)
        return headers

    async def _operation(self, method: str, path: str, idempotency_key: str,
                         payload: dict[str, Any] | None, fallback: PaymentResult, *,
                         failure_mode: str | None = None) -> PaymentResult:
        """An authorisation, capture or void: the payment after it, or why not."""
        try:
            status_code, body = await self._request(
                method, path, json=payload, headers=self._headers(idempotency_key, failure_mode))
        except _NoAnswer as exc:
            status = PaymentStatus.FAILED if exc.never_sent else PaymentStatus.UNKNOWN
            return _replace(fallback, status=status, reason=exc.error, retryable=True)
        if status_code in (200, 201, 402):
            return _payment_or_none(body) or _replace(fallback, reason="unexpected_response",
                                                      retryable=True)
        if status_code >= 500 or status_code == 429:
            return _replace(fallback, reason=f"http_{status_code}", retryable=True)
        # 4xx: the gateway refused the request itself; nothing was applied.
        code = _code(body, status_code)
        log.warning("card gateway refused a request", extra={"status_code": status_code,
                                                             "code": code})
        reported = _payment_or_none(body.get("payment"))
        if reported is not None:
            return _replace(reported, error=code)
        return _replace(fallback, status=PaymentStatus.PENDING if fallback.payment_id
                        else PaymentStatus.FAILED, error=code)

    async def _request(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        try:
            response = await self._client.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _NoAnswer("gateway_unreachable", never_sent=True) from exc
        except httpx.TimeoutException as exc:
            raise _NoAnswer("timeout", never_sent=False) from exc
        except httpx.HTTPError as exc:
            raise _NoAnswer(f"transport_{type(exc).__name__}", never_sent=False) from exc
        if len(response.content) > RESPONSE_MAX_BYTES:
            raise _NoAnswer("response_too_large", never_sent=False)
        try:
            body = orjson.loads(response.content) if response.content else {}
        except orjson.JSONDecodeError:
            body = {}
        return response.status_code, body if isinstance(body, dict) else {}


_REFUND_STATUSES: Final = {"succeeded": RefundStatus.SUCCEEDED, "failed": RefundStatus.FAILED}


def _replace(result: PaymentResult, **changes: Any) -> PaymentResult:
    return dataclasses.replace(result, **changes)


def _payment(data: Any) -> PaymentResult:
    if not isinstance(data, dict):
        raise TypeError("expected an object")
    next_action = data.get("next_action") or {}
    return PaymentResult(
        # A status we do not know is not a success nor a failure: pending until it is.
        status=_STATUSES.get(str(data["status"]), PaymentStatus.PENDING),
        payment_id=_text(data["id"]),
        amount_minor=_amount(data["amount_minor"]),
        currency=_text(data["currency"]),
        amount_captured_minor=_amount(data.get("amount_captured_minor", 0)),
        amount_refunded_minor=_amount(data.get("amount_refunded_minor", 0)),
        reason=_text(data["reason"]) if data.get("reason") is not None else None,
        next_action_url=(_text(next_action["url"]) if isinstance(next_action, dict)
                         and next_action.get("url") else None),
        reference=_text(data["reference"]) if data.get("reference") is not None else None,
        created_at=_datetime(data["created_at"]),
        updated_at=_datetime(data["updated_at"]))


def _payment_or_none(data: Any) -> PaymentResult | None:
    try:
        return _payment(data)
    except (KeyError, TypeError, ValueError):
        return None


def _code(body: dict[str, Any], status_code: int) -> str:
    code = body.get("code")
    return code if isinstance(code, str) and 0 < len(code) <= 64 else f"http_{status_code}"


def _id(payment_id: str) -> str:
    assert payment_id and len(payment_id) <= PAYMENT_ID_MAX_CHARS, "not a payment id"
    return quote(payment_id, safe="")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected text")
    return value


def _amount(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("expected an integer")
    return value


def _datetime(value: Any) -> datetime:
    parsed = datetime.fromisoformat(_text(value))
    if parsed.tzinfo is None:
        raise ValueError("a timestamp without a time zone")
    return parsed


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict is case-sensitive; HTTP headers are not
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value
