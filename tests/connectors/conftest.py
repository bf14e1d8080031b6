"""Fixtures of the connector tests: the sandbox bank as a real process on a free port, and a
small webhook receiver (``http.server`` in a thread) that records what the bank delivers."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
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
RECEIVER_BODY_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return orjson.loads(self.body)


@dataclass
class WebhookReceiver:
    """Records every POST to ``/hook``; ``fail(reference, times)`` answers 503 to the next
    ``times`` deliveries about that reference (to see the bank retry)."""

    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, reference: str, times: int) -> None:
        with self.lock:
            self.failures[reference] = times

    def about(self, instruction_id: str) -> list[Delivery]:
        """Successful deliveries about one instruction, in arrival order."""
        with self.lock:
            return [d for d in self.deliveries
                    if d.json.get("instruction_id") == instruction_id
                    and d.headers.get("x-receiver-status") == "200"]

    def attempts(self, instruction_id: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.json.get("instruction_id") == instruction_id]

    def _receive(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            reference = _reference(body)
            status = 200
            if self.failures.get(reference, 0) > 0:
                self.failures[reference] -= 1
                status = 503
            self.deliveries.append(Delivery({**headers, "x-receiver-status": str(status)}, body))
            return status


def _reference(body: bytes) -> str:
    try:
        return str(orjson.loads(body).get("reference"))
    except (orjson.JSONDecodeError, AttributeError):
        return ""


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = min(int(self.headers.get("Content-Length") or 0), RECEIVER_BODY_MAX_BYTES)
            body = self.rfile.read(length)
            status = receiver._receive({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


class SandboxProcess:
    """``python -m bankwallet sandbox-bank`` on a free port; the secret goes through the
    environment (``--secret`` works too, but would show in the process list)."""

    def __init__(self, *, secret: str, webhook_url: str, workdir: Path,
                 state: Path | None = None) -> None:
        self.secret = secret
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"sandbox-bank-{self.port}.log"
        args = servers.bankwallet("sandbox-bank", "--host", "127.0.0.1", "--port",
                                  str(self.port), "--webhook-url", webhook_url)
        if state is not None:
            args += ["--state", str(state)]
        env = {**os.environ, "BANKWALLET_SANDBOX_BANK_SECRET": secret}
        self.process = servers.start(args, env=env, cwd=workdir, log_path=self.log_path)
        servers.wait_until_ready(self.url, self.process, self.log_path,
                                 timeout_s=START_TIMEOUT_S, name="the sandbox bank",
                                 poll_s=0.05)

    def stop(self) -> None:
        servers.stop(self.process, timeout_s=STOP_TIMEOUT_S)


@dataclass(frozen=True)
class SandboxBank:
    url: str
    secret: str
    receiver: WebhookReceiver


def new_secret() -> str:
    return f"whsec_{secrets.token_hex(16)}"


@pytest.fixture(scope="session")
def sandbox_bank(webhook_receiver: WebhookReceiver,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxBank]:
    """One sandbox bank (in memory) for the session; tests use accounts of their own."""
    process = SandboxProcess(secret=new_secret(), webhook_url=webhook_receiver.url,
                             workdir=tmp_path_factory.mktemp("sandbox-bank"))
    try:
        yield SandboxBank(process.url, process.secret, webhook_receiver)
    finally:
        process.stop()


@pytest.fixture
def start_sandbox(webhook_receiver: WebhookReceiver,
                  tmp_path: Path) -> Iterator[Any]:
    """Starts sandbox banks of the test's own (e.g. with ``--state``); stops them after."""
    started: list[SandboxProcess] = []

    def start(*, secret: str, state: Path | None = None) -> SandboxProcess:
        process = SandboxProcess(secret=secret, webhook_url=webhook_receiver.url,
                                 workdir=tmp_path, state=state)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
