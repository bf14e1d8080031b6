"""The ``CoreBanking`` provider for the sandbox bank (``bankwallet sandbox-bank``), over HTTP.

Every outcome becomes a result (see ``base``): a refusal is ``FAILED`` with the bank's reason, a
timeout or a 5xx is ``UNKNOWN`` (the bank may have applied it: ask again, or re-send with the
same idempotency key), and a connection that never opened is ``FAILED`` and retryable (nothing
reached the bank). Account numbers and names never reach a log line.
"""

from __future__ import annotations

import logging
from urllib.parse import quote
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Final

import httpx
import orjson

from bankwallet.connectors.corebanking.base import (
    IDEMPOTENCY_KEY_MAX_CHARS,
    REFERENCE_MAX_CHARS,
    STATEMENT_PAGE_MAX,
    WEBHOOK_BODY_MAX_BYTES,
    EventType,
    InstructionKind,
    InstructionResult,
    InstructionStatus,
    StatementEntry,
    StatementPage,
    VerificationResult,
    VerificationStatus,
    WebhookEvent,
    WebhookPayloadInvalid,
)
from bankwallet.core import webhooks

log = logging.getLogger("bankwallet.connectors.corebanking.sandbox")

TIMEOUT_MAX_S: Final = 60.0
RESPONSE_MAX_BYTES: Final = 1024 * 1024

_STATUSES: Final = {s.value: s for s in (InstructionStatus.PENDING, InstructionStatus.SUCCEEDED,
                                          InstructionStatus.FAILED, InstructionStatus.REVERSED)}
_VERIFICATIONS: Final = {"verified": VerificationStatus.VERIFIED,
                         "name_mismatch": VerificationStatus.NAME_MISMATCH,
                         "not_found": VerificationStatus.NOT_FOUND}


class _NoAnswer(Exception):
    """The bank's answer is missing or unreadable; ``retryable`` when it never got the request
    (connection refused), so nothing was applied."""

    def __init__(self, error: str, *, never_sent: bool) -> None:
        super().__init__(error)
        self.error, self.never_sent = error, never_sent


class SandboxCoreBanking:
    """``secret`` verifies webhooks; pass ``[new, old]`` while the bank rotates it.
    ``sandbox_delay_s`` is sent as ``X-Sandbox-Delay`` (how long timed failure modes last)."""

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

    async def __aenter__(self) -> SandboxCoreBanking:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    # CoreBanking

    async def verify_account(self, number: str, holder_name: str) -> VerificationResult:
        try:
            status_code, body = await self._request(
                "POST", "/v1/verifications",
                json={"account_number": number, "holder_name": holder_name})
        except _NoAnswer as exc:
            return VerificationResult(VerificationStatus.UNKNOWN, exc.error)
        if status_code == 422:
            return VerificationResult(VerificationStatus.NOT_FOUND, "invalid_account_number")
        if status_code != 200:
            return VerificationResult(VerificationStatus.UNKNOWN, f"http_{status_code}")
        status = _VERIFICATIONS.get(str(body.get("status")))
        if status is None:
            return VerificationResult(VerificationStatus.UNKNOWN, "unexpected_status")
        return VerificationResult(status)

    async def debit(self, idempotency_key: str, account_number: str, amount_minor: int,
                    currency: str, reference: str,
                    failure_mode: str | None = None) -> InstructionResult:
        return await self._instruct(InstructionKind.DEBIT, idempotency_key, account_number,
                                    amount_minor, currency, reference, failure_mode)

    async def credit(self, idempotency_key: str, account_number: str, amount_minor: int,
                     currency: str, reference: str,
                     failure_mode: str | None = None) -> InstructionResult:
        return await self._instruct(InstructionKind.CREDIT, idempotency_key, account_number,
                                    amount_minor, currency, reference, failure_mode)

    async def get_instruction(self, instruction_id: str) -> InstructionResult | None:
        assert instruction_id and len(instruction_id) <= 64, "not an instruction id"
        try:
            status_code, body = await self._request(
                "GET", f"/v1/instructions/{quote(instruction_id, safe='')}")
        except _NoAnswer as exc:
            return InstructionResult(InstructionStatus.UNKNOWN, reference="",
                                     instruction_id=instruction_id, reason=exc.error,
                                     retryable=True)
        if status_code == 404:
            return None
        if status_code != 200:
            return InstructionResult(InstructionStatus.UNKNOWN, reference="",
                                     instruction_id=instruction_id,
                                     reason=f"http_{status_code}", retryable=True)
        try:
            return _instruction(body)
        except (KeyError, TypeError, ValueError):
            return InstructionResult(InstructionStatus.UNKNOWN, reference="",
                                     instruction_id=instruction_id,
                                     reason="unexpected_response", retryable=True)

    async def find_by_reference(self, reference: str) -> InstructionResult | None:
        """The bank's instruction for ``reference``. Should the bank hold several (the same
        reference sent under two idempotency keys), the one that moved money wins, then the
        newest: that is the one reconciliation must account for."""
        assert 0 < len(reference) <= REFERENCE_MAX_CHARS, "reference length"
        try:
            status_code, body = await self._request("GET", "/v1/instructions",
                                                    params={"reference": reference})
        except _NoAnswer as exc:
            return InstructionResult(InstructionStatus.UNKNOWN, reference, reason=exc.error,
                                     retryable=True)
        if status_code != 200 or not isinstance(body.get("instructions"), list):
            return InstructionResult(InstructionStatus.UNKNOWN, reference,
                                     reason=f"http_{status_code}", retryable=True)
        try:
            found = [_instruction(item) for item in body["instructions"]]
        except (KeyError, TypeError, ValueError):
            return InstructionResult(InstructionStatus.UNKNOWN, reference,
                                     reason="unexpected_response", retryable=True)
        if not found:
            return None
        moved = [r for r in found if r.status in (InstructionStatus.SUCCEEDED,
                                                  InstructionStatus.REVERSED)]
        return (moved or found)[-1]

    async def statement(self, since: datetime | None = None, *, after: int | None = None,
                        limit: int = STATEMENT_PAGE_MAX,
                        account_number: str | None = None) -> StatementPage:
        assert 0 < limit <= STATEMENT_PAGE_MAX, limit
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            assert since.tzinfo is not None, "since must be timezone-aware (UTC)"
            params["since"] = since.isoformat()
        if after is not None:
            params["after"] = after
        if account_number is not None:
            params["account_number"] = account_number
        try:
            status_code, body = await self._request("GET", "/sandbox/statement", params=params)
        except _NoAnswer as exc:
            return StatementPage((), None, exc.error)
        if status_code != 200:
            return StatementPage((), None, f"http_{status_code}")
        try:
            entries = tuple(_entry(m) for m in body["movements"])
        except (KeyError, TypeError, ValueError):
            return StatementPage((), None, "unexpected_response")
        return StatementPage(entries, body.get("next_after"))

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify the signature, then read the event. Raises ``WebhookVerificationFailed`` or
        ``WebhookPayloadInvalid`` (both 400): the receiving route answers with them."""
        if len(body) > WEBHOOK_BODY_MAX_BYTES:
            raise WebhookPayloadInvalid("The webhook body is too large.")
        webhooks.verify(self.secrets, body, _header(headers, webhooks.SIGNATURE_HEADER),
                        tolerance_s=self.webhook_tolerance_s)
        try:
            data = orjson.loads(body)
            return WebhookEvent(
                id=_text(data["id"]), type=EventType(data["type"]),
                instruction_id=_text(data["instruction_id"]), reference=_text(data["reference"]),
                amount_minor=_amount(data["amount_minor"]), currency=_text(data["currency"]),
                created_at=_datetime(data["created_at"]),
                reason=_text(data["reason"]) if data.get("reason") is not None else None)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise WebhookPayloadInvalid("The webhook body is not a bank event.") from exc

    # plumbing

    async def _instruct(self, kind: InstructionKind, idempotency_key: str, account_number: str,
                        amount_minor: int, currency: str, reference: str,
                        failure_mode: str | None) -> InstructionResult:
        assert 0 < len(idempotency_key) <= IDEMPOTENCY_KEY_MAX_CHARS, "idempotency key length"
        assert 0 < len(reference) <= REFERENCE_MAX_CHARS, "reference length"
        assert isinstance(amount_minor, int) and amount_minor > 0, "amount must be positive"
        payload: dict[str, Any] = {"account_number": account_number,
                                   "amount_minor": amount_minor, "currency": currency,
                                   "reference": reference}
        if failure_mode is not None:
            payload["failure_mode"] = failure_mode
        headers = {"Idempotency-Key": idempotency_key}
        if self.sandbox_delay_s is not None:
            headers["X-Sandbox-Delay"] = str(self.sandbox_delay_s)
        try:
            status_code, body = await self._request("POST", f"/v1/{kind.value}s", json=payload,
                                                    headers=headers)
        except _NoAnswer as exc:
            if exc.never_sent:
                return InstructionResult(InstructionStatus.FAILED, reference, kind=kind,
                                         amount_minor=amount_minor, currency=currency,
                                         reason=exc.error, retryable=True)
            return InstructionResult(InstructionStatus.UNKNOWN, reference, kind=kind,
                                     amount_minor=amount_minor, currency=currency,
                                     reason=exc.error, retryable=True)
        if status_code in (200, 201, 202, 402):
            try:
                return _instruction(body)
            except (KeyError, TypeError, ValueError):
                return InstructionResult(InstructionStatus.UNKNOWN, reference, kind=kind,
                                         reason="unexpected_response", retryable=True)
        if status_code >= 500 or status_code == 429:
            return InstructionResult(InstructionStatus.UNKNOWN, reference, kind=kind,
                                     amount_minor=amount_minor, currency=currency,
                                     reason=f"http_{status_code}", retryable=True)
        # 4xx: the bank refused the request itself (bad input, a reused key): nothing applied.
        log.warning("core bank refused an instruction",
                    extra={"status_code": status_code, "code": body.get("code")})
        return InstructionResult(InstructionStatus.FAILED, reference, kind=kind,
                                 amount_minor=amount_minor, currency=currency,
                                 reason=str(body.get("code") or f"http_{status_code}"))

    async def _request(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        try:
            response = await self._client.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _NoAnswer("bank_unreachable", never_sent=True) from exc
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


def _instruction(data: dict[str, Any]) -> InstructionResult:
    return InstructionResult(
        # A status we do not know is not a success nor a failure: pending until it is.
        status=_STATUSES.get(str(data["status"]), InstructionStatus.PENDING),
        reference=_text(data["reference"]),
        instruction_id=_text(data["id"]),
        kind=InstructionKind(data["kind"]),
        amount_minor=_amount(data["amount_minor"]),
        currency=_text(data["currency"]),
        reason=_text(data["reason"]) if data.get("reason") is not None else None,
        retryable=False,
        created_at=_datetime(data["created_at"]),
        updated_at=_datetime(data["updated_at"]))


def _entry(data: dict[str, Any]) -> StatementEntry:
    return StatementEntry(
        sequence=_amount(data["seq"]), movement_id=_text(data["id"]),
        instruction_id=_text(data["instruction_id"]), kind=_text(data["kind"]),
        account_last4=_text(data["account_last4"]), amount_minor=_amount(data["amount_minor"]),
        currency=_text(data["currency"]), reference=_text(data["reference"]),
        booked_at=_datetime(data["booked_at"]))


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
