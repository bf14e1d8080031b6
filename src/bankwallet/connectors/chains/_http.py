"""One bounded JSON POST for the non-EVM clients: the answer, or why there is none.

Like ``evm.EvmJsonRpcClient._rpc``, a failure is returned, never raised, and a node's answer is
read up to ``MAX_RESPONSE_BYTES`` only. The URL (which may carry credentials or a provider's
key) is never put in a failure's message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Final, Self

import httpx
import orjson

from bankwallet.connectors.chains.base import ChainFailure, NetworkUnreachable, ProviderError

DEFAULT_TIMEOUT_S: Final = 10.0
MAX_RESPONSE_BYTES: Final = 8 * 1024 * 1024


class _TooLarge(Exception):
    pass


class NodeClient:
    """What every node client shares: one pooled HTTP client (``self._http``, from
    ``new_http``), closed by ``aclose`` or on leaving ``async with``."""

    _http: httpx.AsyncClient

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()


class JsonRpcClient(NodeClient):
    """A node spoken to in JSON-RPC (Bitcoin Core, Solana, Substrate): ``_rpc`` answers the
    call's ``result`` or the failure; a node's error object goes through ``rpc_error``."""

    url: str
    jsonrpc_version: ClassVar[str] = "2.0"
    _ids: Iterator[int]  # request ids: itertools.count(1), set by the subclass

    def rpc_error(self, method: str, error: Any) -> ChainFailure:
        """The failure a node's error object means; this default keeps its message and code."""
        code = error.get("code") if isinstance(error, dict) else None
        message = str(error.get("message", "")) if isinstance(error, dict) else ""
        return ProviderError(f"{method}: {message[:300] or 'JSON-RPC error'}",
                             code if isinstance(code, int) else None)

    async def _rpc(self, method: str, params: list[Any]) -> Any:
        answer = await post_json(self._http, self.url, {
            "jsonrpc": self.jsonrpc_version, "id": next(self._ids), "method": method,
            "params": params}, method)
        if isinstance(answer, ChainFailure):
            return answer
        status, body = answer
        if not isinstance(body, dict):
            return ProviderError(f"{method}: HTTP {status}, not a JSON-RPC response")
        if body.get("error") is not None:
            return self.rpc_error(method, body["error"])
        if status != 200 or "result" not in body:
            return ProviderError(f"{method}: HTTP {status}")
        return body["result"]


def new_http(timeout_s: float, transport: httpx.AsyncBaseTransport | None = None
             ) -> httpx.AsyncClient:
    assert 0 < timeout_s <= 300
    # follow_redirects off: a redirect would re-send the signed bytes somewhere else.
    return httpx.AsyncClient(timeout=timeout_s, transport=transport,
                             headers={"content-type": "application/json"})


async def post_json(http: httpx.AsyncClient, url: str, payload: Any,
                    what: str) -> tuple[int, Any] | ChainFailure:
    """POST ``payload`` as JSON; (HTTP status, parsed JSON) whatever the status, since some
    nodes (bitcoind) answer errors with HTTP 500 and a JSON body."""
    try:
        async with http.stream("POST", url, content=orjson.dumps(payload)) as response:
            content = bytearray()
            async for chunk in response.aiter_bytes():
                content += chunk
                if len(content) > MAX_RESPONSE_BYTES:
                    raise _TooLarge
    except httpx.TransportError as exc:
        return NetworkUnreachable(f"{what}: {type(exc).__name__}")
    except _TooLarge:
        return ProviderError(f"{what}: the answer is over {MAX_RESPONSE_BYTES} bytes")
    try:
        return response.status_code, orjson.loads(content)
    except orjson.JSONDecodeError:
        return ProviderError(f"{what}: HTTP {response.status_code}, not JSON")
