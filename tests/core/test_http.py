"""The HTTP edge every response passes: request ids, security headers, the body limit,
problem+json for every error, and the health probes."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel

from bankwallet.app import create_app
from bankwallet.core.http import RequestContextMiddleware
from bankwallet.core.logging import request_id_var
from bankwallet.settings import Settings
from conftest import create_sqlite_database

MAX_BODY = 1024
AUTH = {"Authorization": "Bearer t"}
GENERATED_ID = re.compile(r"^[0-9a-f]{16}$")
SECRET = "s3cret-detail-4242"


class Note(BaseModel):
    text: str


def add_test_routes(app: FastAPI) -> None:
    @app.post("/_test/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    @app.post("/_test/model")
    async def model(note: Note) -> dict[str, int]:
        return {"length": len(note.text)}

    @app.get("/_test/request-id")
    async def current_request_id() -> dict[str, str | None]:
        return {"request_id": request_id_var.get()}

    @app.get("/_test/boom")
    async def boom() -> None:
        raise RuntimeError(f"database password is {SECRET}")

    @app.get("/_test/assert")
    async def impossible() -> None:
        assert 1 + 1 == 3, f"postings do not sum to zero: {SECRET}"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    url = create_sqlite_database(tmp_path_factory.mktemp("http"))
    app = create_app(Settings(database_url=url, ops_token="t", max_body_bytes=MAX_BODY,
                              log_level="WARNING"), run_workers=False)
    add_test_routes(app)
    # The 500 tests need the response, not the re-raised exception.
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def chunks(total: int, size: int = 256) -> Iterator[bytes]:
    """A body without Content-Length: httpx sends a generator chunked."""
    while total > 0:
        yield b"x" * min(size, total)
        total -= size


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"], body["type"]) == (status, code, f"/problems/{code}")
    assert body["title"]
    assert_edge_headers(response)
    return body


def csp_directives(response: httpx.Response) -> dict[str, list[str]]:
    directives = {}
    for part in response.headers["content-security-policy"].split(";"):
        if not part.strip():
            continue
        name, *values = part.split()
        directives[name] = values
    return directives


def assert_edge_headers(response: httpx.Response) -> None:
    """What every response carries, errors included."""
    assert response.headers.get("x-request-id"), response.headers
    csp = csp_directives(response)
    script_src = csp.get("script-src", csp["default-src"])
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]
    hsts = response.headers["strict-transport-security"]
    assert int(re.search(r"max-age=(\d+)", hsts).group(1)) >= 31_536_000  # a year at least
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] in ("no-referrer", "same-origin",
                                                   "strict-origin",
                                                   "strict-origin-when-cross-origin")
    assert response.headers["x-frame-options"] == "DENY"


# --- request ids -----------------------------------------------------------------------------


def test_every_response_gets_a_fresh_request_id(client: TestClient) -> None:
    ids = [client.get("/healthz").headers["x-request-id"] for _ in range(3)]
    assert all(GENERATED_ID.match(i) for i in ids)
    assert len(set(ids)) == 3


@pytest.mark.parametrize("incoming", ["abc-123.DEF_456", "a" * 64, "0190d2a0-1c2b-7def"])
def test_a_sane_incoming_request_id_is_echoed_and_used(client: TestClient, incoming: str) -> None:
    response = client.get("/_test/request-id", headers={"X-Request-ID": incoming})
    assert response.headers["x-request-id"] == incoming
    assert response.json() == {"request_id": incoming}  # what the logs of the request carry


@pytest.mark.parametrize("incoming", [
    "a" * 65, "a" * 200, "has space", "semi;colon", "<script>", "a/b", "quote'", "",
])
def test_a_malicious_incoming_request_id_is_replaced(client: TestClient, incoming: str) -> None:
    response = client.get("/_test/request-id", headers={"X-Request-ID": incoming})
    assert GENERATED_ID.match(response.headers["x-request-id"])
    assert response.json() == {"request_id": response.headers["x-request-id"]}


@pytest.mark.parametrize("incoming", [b"abc\n", b"abc\r\nSet-Cookie: x=1", b"\nabc", b"ab\x00c",
                                      b"caf\xe9"])
async def test_control_characters_in_the_request_id_are_never_echoed(incoming: bytes) -> None:
    # httpx refuses to send these, so talk ASGI to the middleware directly.
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"x-request-id", incoming)]}
    await RequestContextMiddleware(app, max_body_bytes=MAX_BODY)(scope, receive, send)
    headers = dict(sent[0]["headers"])
    assert GENERATED_ID.match(headers[b"x-request-id"].decode())


# --- security headers ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/", "/static/css/app.css"])
def test_security_headers_on_ordinary_responses(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert_edge_headers(response)


# --- the body limit --------------------------------------------------------------------------


def test_a_body_at_the_limit_is_accepted(client: TestClient) -> None:
    assert client.post("/_test/raw", content=b"x" * MAX_BODY).json() == {"length": MAX_BODY}
    streamed = client.post("/_test/raw", content=chunks(MAX_BODY))
    assert "content-length" not in streamed.request.headers
    assert streamed.json() == {"length": MAX_BODY}


@pytest.mark.parametrize("path", ["/_test/raw", "/_test/model", "/api/v1/ledger/transfers"])
def test_an_oversize_body_with_content_length_is_refused(client: TestClient, path: str) -> None:
    response = client.post(path, content=b"x" * (MAX_BODY + 1), headers=AUTH)
    body = assert_problem(response, 413, "payload_too_large")
    assert body["detail"] == f"The limit is {MAX_BODY} bytes."


@pytest.mark.parametrize("path", ["/_test/raw", "/_test/model", "/api/v1/ledger/transfers"])
def test_an_oversize_streamed_body_is_refused(client: TestClient, path: str) -> None:
    # No Content-Length: the limit is only hit while the app reads the body. Not a 500 (the
    # raw route) and not a 400 "error parsing the body" (FastAPI's body parsing).
    response = client.post(path, content=chunks(MAX_BODY * 4),
                           headers={**AUTH, "Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload_too_large")


@pytest.mark.parametrize("declared", ["small", "10", "-1"])
def test_a_lying_content_length_does_not_bypass_the_limit(client: TestClient,
                                                          declared: str) -> None:
    # The header is only a shortcut: what the app actually reads is counted too.
    response = client.post("/_test/raw", content=b"x" * (MAX_BODY * 2),
                           headers={"Content-Length": declared})
    assert_problem(response, 413, "payload_too_large")


# --- errors as problem+json ------------------------------------------------------------------


def test_unknown_route_is_a_404_problem(client: TestClient) -> None:
    body = assert_problem(client.get("/no/such/route"), 404, "not_found")
    assert body["instance"] == "/no/such/route"


def test_wrong_method_is_a_405_problem(client: TestClient) -> None:
    response = client.delete("/healthz")
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


@pytest.mark.parametrize("path", ["/_test/boom", "/_test/assert"])
def test_an_unhandled_error_is_a_bare_500_problem(client: TestClient, path: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="bankwallet.errors"):
        response = client.get(path)
    body = assert_problem(response, 500, "internal_error")
    assert body == {"type": "/problems/internal_error", "title": "Internal error", "status": 500,
                    "code": "internal_error",
                    "detail": "Something went wrong on our side; nothing was changed.",
                    "instance": path}
    for leak in (SECRET, "Traceback", "RuntimeError", "AssertionError", "password", ".py"):
        assert leak not in response.text
    # ...but it is logged once, with the exception, for the operators.
    logged = [r for r in caplog.records if r.name == "bankwallet.errors"]
    assert len(logged) == 1 and logged[0].exc_info is not None


def test_an_unhandled_error_still_propagates_to_the_server(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    # The middleware answers the 500 itself (to add the headers) but re-raises, so the server
    # (and a TestClient that raises server exceptions) still sees the failure.
    url = create_sqlite_database(tmp_path_factory.mktemp("http-raise"))
    app = create_app(Settings(database_url=url, log_level="CRITICAL"), run_workers=False)
    add_test_routes(app)
    with TestClient(app) as raising, pytest.raises(RuntimeError, match="password"):
        raising.get("/_test/boom")


# --- health probes ---------------------------------------------------------------------------


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_readyz_with_the_database_up(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "sqlite"}
    assert_edge_headers(response)


def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    # Nothing listens on port 1: connecting is refused at once. Startup must not need the
    # database (workers included); only readiness reports it.
    settings = Settings(database_url="postgresql+asyncpg://bankwallet:x@127.0.0.1:1/bankwallet",
                        ops_token="t", log_level="CRITICAL")
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "database": "unreachable"}
        assert_edge_headers(response)
