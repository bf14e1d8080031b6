"""Fixtures of the card gateway tests: the sandbox gateway as a real process on a free port
(``python -m bankwallet sandbox-gateway``), and a webhook receiver (``http.server`` in a
thread) that records what the gateway delivers. ``tests/cards`` imports them too."""

from __future__ import annotations

import asyncio
import inspect
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
import servers
from conftest import free_port

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
DEADLINE_S = 5.0
RECEIVER_BODY_MAX_BYTES = 64 * 1024
FUTURE_YEAR = time.gmtime().tm_year + 3


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return orjson.loads(self.body)

    @property
    def payment_id(self) -> str | None:
        return (self.json.get("payment") or {}).get("id")


@dataclass
class WebhookReceiver:
    """Records every POST; ``fail(payment_id, times)`` answers 503 to the next ``times``
    deliveries about that payment (to see the gateway retry)."""

    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, payment_id: str, times: int) -> None:
        with self.lock:
            self.failures[payment_id] = times

    def about(self, payment_id: str) -> list[Delivery]:
        """Deliveries answered 200 about one payment, in arrival order."""
        with self.lock:
            return [d for d in self.deliveries if d.payment_id == payment_id
                    and d.headers.get("x-receiver-status") == "200"]

    def attempts(self, payment_id: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.payment_id == payment_id]

    def receive(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            try:
                payment_id = (orjson.loads(body).get("payment") or {}).get("id")
            except (orjson.JSONDecodeError, AttributeError):
                payment_id = None
            status = 200
            if self.failures.get(payment_id or "", 0) > 0:
                self.failures[payment_id or ""] -= 1
                status = 503
            self.deliveries.append(Delivery({**headers, "x-receiver-status": str(status)}, body))
            return status


def start_receiver() -> tuple[WebhookReceiver, ThreadingHTTPServer]:
    receiver = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = min(int(self.headers.get("Content-Length") or 0), RECEIVER_BODY_MAX_BYTES)
            body = self.rfile.read(length)
            status = receiver.receive({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver, server


class GatewayProcess:
    """``python -m bankwallet sandbox-gateway`` on a free port; the secret goes through the
    environment (``--secret`` would show in the process list)."""

    def __init__(self, *, secret: str, webhook_url: str | None, workdir: Path,
                 state: Path | None = None) -> None:
        self.secret = secret
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"sandbox-gateway-{self.port}.log"
        args = servers.bankwallet("sandbox-gateway", "--host", "127.0.0.1", "--port",
                                  str(self.port))
        if webhook_url:
            args += ["--webhook-url", webhook_url]
        if state is not None:
            args += ["--state", str(state)]
        env = {**os.environ, "BANKWALLET_SANDBOX_GATEWAY_SECRET": secret}
        self.process = servers.start(args, env=env, cwd=workdir, log_path=self.log_path)
        servers.wait_until_ready(self.url, self.process, self.log_path,
                                 timeout_s=START_TIMEOUT_S, name="the sandbox gateway",
                                 poll_s=0.05)

    def stop(self) -> None:
        servers.stop(self.process, timeout_s=STOP_TIMEOUT_S)


@dataclass(frozen=True)
class SandboxGateway:
    url: str
    secret: str
    receiver: WebhookReceiver
    log_path: Path


def new_secret() -> str:
    return f"whsec_{secrets.token_hex(16)}"


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver, server = start_receiver()
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def sandbox_gateway(webhook_receiver: WebhookReceiver,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxGateway]:
    """One sandbox gateway (in memory) for the session."""
    process = GatewayProcess(secret=new_secret(), webhook_url=webhook_receiver.url,
                             workdir=tmp_path_factory.mktemp("sandbox-gateway"))
    try:
        yield SandboxGateway(process.url, process.secret, webhook_receiver, process.log_path)
    finally:
        process.stop()


@pytest.fixture
def start_gateway(webhook_receiver: WebhookReceiver, tmp_path: Path) -> Iterator[Any]:
    """Starts gateways of the test's own (e.g. with ``--state``); stops them after."""
    started: list[GatewayProcess] = []

    def start(*, secret: str, state: Path | None = None) -> GatewayProcess:
        process = GatewayProcess(secret=secret, webhook_url=webhook_receiver.url,
                                 workdir=tmp_path, state=state)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


async def eventually(check: Callable[[], Any], what: str, timeout_s: float = DEADLINE_S) -> Any:
    """Poll ``check`` (sync or async) until it is truthy, or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.05)
