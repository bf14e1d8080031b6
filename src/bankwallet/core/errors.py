"""Typed operating errors rendered once as RFC 9457 problem+json.

A user's mistake raises a ``BankwalletError`` subclass with a stable ``code``; an impossible
state is an ``assert``. Handlers here turn both into problem documents, never a bare 500 page.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("bankwallet.errors")

PROBLEM_JSON = "application/problem+json"


class BankwalletError(Exception):
    """Base of every operating error: a stable code, an HTTP status and a message."""

    code: ClassVar[str] = "bankwallet_error"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Request could not be completed"
    # Whether the error is the request's answer (replayed for its Idempotency-Key) or only
    # says what must happen first (a step-up), so the same request may be sent again.
    decides: ClassVar[bool] = True

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title
        self.extra = extra
        super().__init__(self.detail)

    def headers(self) -> dict[str, str] | None:
        """Extra response headers (e.g. Retry-After)."""
        return None

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        return problem(self.code, self.status, self.title, self.detail, instance, **self.extra)


class NotFound(BankwalletError):
    code = "not_found"
    status = 404
    title = "Not found"


class Forbidden(BankwalletError):
    code = "forbidden"
    status = 403
    title = "Forbidden"


class Conflict(BankwalletError):
    code = "conflict"
    status = 409
    title = "Conflict"


class InvalidInput(BankwalletError):
    code = "invalid_input"
    status = 422
    title = "Invalid input"


class PayloadTooLarge(BankwalletError):
    code = "payload_too_large"
    status = 413
    title = "Request body too large"


def problem(code: str, status: int, title: str, detail: str | None = None,
            instance: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": f"/problems/{code}", "title": title, "status": status,
                            "code": code}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    return body


def internal_error_problem(instance: str | None = None) -> dict[str, Any]:
    """The body of every 500: nothing about the exception itself reaches the client."""
    return problem("internal_error", 500, "Internal error",
                   "Something went wrong on our side; nothing was changed.", instance)


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=body["status"], media_type=PROBLEM_JSON, headers=headers)


_HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 409: "conflict",
               413: "payload_too_large", 415: "unsupported_media_type", 429: "rate_limited"}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BankwalletError)
    async def _bankwallet_error(request: Request, exc: BankwalletError) -> JSONResponse:
        return problem_response(exc.to_problem(request.url.path), headers=exc.headers())

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""),
                   "type": e.get("type", "")} for e in exc.errors()]
        body = problem("invalid_input", 422, "Invalid input",
                       "The request does not match the expected shape.", request.url.path,
                       errors=errors)
        return problem_response(body)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        detail = exc.detail if isinstance(exc.detail, str) else None
        body = problem(code, exc.status_code, detail or code.replace("_", " ").capitalize(),
                       None, request.url.path)
        return problem_response(body, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return problem_response(internal_error_problem(request.url.path))
