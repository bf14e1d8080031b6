"""Pure ASGI middleware: request ids, a bounded request body, and security headers."""

from __future__ import annotations

import re
import secrets
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bankwallet.core.errors import PROBLEM_JSON, internal_error_problem, problem
from bankwallet.core.logging import request_id_var

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
     b"connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; "
     b"object-src 'none'"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"camera=(self), geolocation=(), microphone=()"),
]


class RequestContextMiddleware:
    """Gives every request an id (or keeps a sane incoming ``X-Request-ID``), adds security
    headers, and refuses bodies over ``max_body_bytes`` with 413 problem+json."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        # fullmatch: `$` alone would also accept a trailing newline.
        request_id = incoming if _REQUEST_ID_RE.fullmatch(incoming) else secrets.token_hex(8)
        token = request_id_var.set(request_id)
        try:
            declared = dict(scope["headers"]).get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                await self._too_large(scope, send, request_id)
                return
            started = False
            send_with_headers = self._with_headers(send, request_id)

            async def tracked_send(message: Message) -> None:
                nonlocal started
                started = started or message["type"] == "http.response.start"
                await send_with_headers(message)

            try:
                await self.app(scope, self._bounded(receive), tracked_send)
            except Exception:
                # The app's 500 handler answers from outside this middleware, so its response
                # would lack the request id and security headers: answer here instead, then
                # re-raise so that handler still logs it and the server still sees it.
                if not started:
                    await self._send_problem(send_with_headers,
                                             internal_error_problem(scope.get("path")))
                raise
        finally:
            request_id_var.reset(token)

    def _bounded(self, receive: Receive) -> Receive:
        seen = 0

        async def bounded_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        return bounded_receive

    @staticmethod
    def _with_headers(send: Send, request_id: str) -> Send:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend((k, v) for k, v in SECURITY_HEADERS if k not in present)
                message["headers"] = headers
            await send(message)

        return send_with_headers

    async def _too_large(self, scope: Scope, send: Send, request_id: str) -> None:
        body = problem("payload_too_large", 413, "Request body too large",
                       f"The limit is {self.max_body_bytes} bytes.", scope.get("path"))
        await self._send_problem(self._with_headers(send, request_id), body)

    @staticmethod
    async def _send_problem(send: Send, body: dict[str, Any]) -> None:
        content = orjson.dumps(body)
        await send({"type": "http.response.start", "status": body["status"],
                    "headers": [(b"content-type", PROBLEM_JSON.encode()),
                                (b"content-length", str(len(content)).encode())]})
        await send({"type": "http.response.body", "body": content})


class _BodyTooLarge(HTTPException):
    """Raised inside ``receive`` when a body without a (truthful) Content-Length grows past
    the limit. An HTTPException because FastAPI re-raises those from body parsing (anything
    else becomes a 400) and the app's handler renders them as problem+json."""

    def __init__(self) -> None:
        super().__init__(413, "Request body too large")
