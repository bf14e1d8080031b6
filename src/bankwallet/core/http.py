"""Pure ASGI middleware: request ids, a bounded request body, and security headers."""

from __future__ import annotations

import re
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bankwallet.core.errors import problem
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
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else secrets.token_hex(8)
        token = request_id_var.set(request_id)
        try:
            declared = dict(scope["headers"]).get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                await self._too_large(scope, send, request_id)
                return
            await self.app(scope, self._bounded(receive), self._with_headers(send, request_id))
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
        import orjson

        body = orjson.dumps(problem("payload_too_large", 413, "Request body too large",
                                    f"The limit is {self.max_body_bytes} bytes.",
                                    scope.get("path")))
        send = self._with_headers(send, request_id)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/problem+json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass
