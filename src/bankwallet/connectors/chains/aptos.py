"""Aptos through a fullnode's REST API (``/v1``, as aptos-node and the Aptos Labs API serve it).

An account's APT is in two places since the coin-to-fungible-asset migration (AIP-63): the
legacy ``0x1::coin::CoinStore<0x1::aptos_coin::AptosCoin>`` resource, and the primary
fungible store of the APT metadata object ``0xa``. ``get_balance`` adds the two, as
``0x1::coin::balance`` does on chain: the resource through
``GET /v1/accounts/{address}/resource/...`` (``404 resource_not_found`` or
``account_not_found``: none, so 0) and the store through the view function
``0x1::primary_fungible_store::balance`` (``POST /v1/view``; 0 where there is no store).

Amounts are octas (10**-8 APT). Addresses are ``0x`` + 64 hex digits (AIP-40's long form);
a shorter one is padded. This client reads only: no transaction is built or sent here.
"""

from __future__ import annotations

import re
from typing import Any, Final

import httpx
import orjson

from bankwallet.connectors.chains._http import (
    DEFAULT_TIMEOUT_S,
    MAX_RESPONSE_BYTES,
    NodeClient,
    new_http,
    post_json,
)
from bankwallet.connectors.chains.base import (
    ChainFailure,
    InvalidRequest,
    NativeBalance,
    NetworkUnreachable,
    ProviderError,
)

APT_COIN_STORE: Final = "0x1::coin::CoinStore<0x1::aptos_coin::AptosCoin>"
APT_METADATA: Final = "0xa"  # the fungible asset metadata object paired with AptosCoin
_ADDRESS: Final = re.compile(r"^0x[0-9a-fA-F]{1,64}$")
_U64: Final = re.compile(r"^[0-9]{1,20}$")
_NOT_FOUND: Final = ("resource_not_found", "account_not_found")


class AptosRestClient(NodeClient):
    """Reads APT balances from one Aptos fullnode (``url`` up to ``/v1``, e.g.
    ``https://fullnode.mainnet.aptoslabs.com/v1``). Close it with ``aclose``."""

    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S, *,
                 api_key: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        if not self.url.endswith("/v1"):
            self.url += "/v1"
        self._http = new_http(timeout_s, transport)
        if api_key:
            self._http.headers["authorization"] = f"Bearer {api_key}"

    async def get_balance(self, address: str) -> NativeBalance | ChainFailure:
        """APT in octas: the ``CoinStore`` plus the primary fungible store; 0 for an
        account that does not exist (yet)."""
        if not isinstance(address, str) or not _ADDRESS.match(address):
            return InvalidRequest("not an Aptos address (0x + up to 64 hex digits)")
        address = "0x" + address[2:].lower().rjust(64, "0")
        coin = await self._coin_store(address)
        if isinstance(coin, ChainFailure):
            return coin
        fungible = await self._view_u64("0x1::primary_fungible_store::balance",
                                        ["0x1::fungible_asset::Metadata"],
                                        [address, APT_METADATA])
        if isinstance(fungible, ChainFailure):
            return fungible
        return NativeBalance(address, coin + fungible)

    async def ledger_info(self) -> dict[str, Any] | ChainFailure:
        """``GET /v1``: chain id, ledger version and time, the node's role."""
        answer = await self._get("")
        if isinstance(answer, ChainFailure):
            return answer
        status, body = answer
        if status != 200 or not isinstance(body, dict) or "chain_id" not in body:
            return ProviderError(f"ledger info: HTTP {status}")
        return body

    async def _coin_store(self, address: str) -> int | ChainFailure:
        path = f"/accounts/{address}/resource/" + APT_COIN_STORE.replace("<", "%3C").replace(
            ">", "%3E")
        answer = await self._get(path)
        if isinstance(answer, ChainFailure):
            return answer
        status, body = answer
        if status == 404 and isinstance(body, dict) and body.get("error_code") in _NOT_FOUND:
            return 0
        if status != 200 or not isinstance(body, dict):
            return _error("resource", status, body)
        try:
            value = str(body["data"]["coin"]["value"])
            if not _U64.match(value):
                raise ValueError(value)
            return int(value)
        except (KeyError, TypeError, ValueError):
            return ProviderError("resource: malformed CoinStore")

    async def _view_u64(self, function: str, type_arguments: list[str],
                        arguments: list[str]) -> int | ChainFailure:
        answer = await post_json(self._http, self.url + "/view", {
            "function": function, "type_arguments": type_arguments, "arguments": arguments},
            "view")
        if isinstance(answer, ChainFailure):
            return answer
        status, body = answer
        if status != 200:
            return _error("view", status, body)
        try:
            (value,) = body
            if not isinstance(value, str) or not _U64.match(value):
                raise ValueError(value)
            return int(value)
        except (TypeError, ValueError):
            return ProviderError("view: not a u64")

    async def _get(self, path: str) -> tuple[int, Any] | ChainFailure:
        what = path.split("/")[1] if path.count("/") > 1 else "ledger"
        try:
            async with self._http.stream("GET", self.url + path) as response:
                content = bytearray()
                async for chunk in response.aiter_bytes():
                    content += chunk
                    if len(content) > MAX_RESPONSE_BYTES:
                        return ProviderError(f"{what}: the answer is too large")
        except httpx.TransportError as exc:
            return NetworkUnreachable(f"{what}: {type(exc).__name__}")
        try:
            return response.status_code, orjson.loads(content)
        except orjson.JSONDecodeError:
            return ProviderError(f"{what}: HTTP {response.status_code}, not JSON")


def _error(what: str, status: int, body: Any) -> ChainFailure:
    """The node's error ``{"message", "error_code", "vm_error_code"}`` → our failure."""
    code = body.get("error_code") if isinstance(body, dict) else None
    message = str(body.get("message", ""))[:300] if isinstance(body, dict) else ""
    text = f"{what}: HTTP {status} {code or ''} {message}".strip()
    if status == 400 and code in ("invalid_input", "web_framework_error"):
        return InvalidRequest(text)
    if status in (502, 503, 504):
        return NetworkUnreachable(text)  # a gateway before a node that does not answer
    return ProviderError(text)
