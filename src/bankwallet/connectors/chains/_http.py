"""One bounded JSON POST for the non-EVM clients: the answer, or why there is none.

Like ``evm.EvmJsonRpcClient._rpc``, a failure is returned, never raised, and a node's answer is
read up to ``MAX_RESPONSE_BYTES`` only. The URL (which may carry credentials or a provider's
key) is never put in a failure's message.
"""

from __future__ import annotations

from typing import Any, Final, Self

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
