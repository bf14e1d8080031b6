"""EOS through an Antelope (EOSIO, Leap, Spring) node's chain API (``/v1/chain/*``).

On EOS a balance belongs to an *account*, a name of up to 12 characters registered on chain,
not to a key: the wallet derives a public key, and the accounts it controls are the ones
with a permission that key satisfies. ``key_accounts`` asks
``/v1/chain/get_accounts_by_authorizers`` (chain_api, Leap 3.1 and later) and, where a node
does not serve it (404), the older history plugin's ``/v1/history/get_key_accounts``.

``get_balance`` is ``/v1/chain/get_currency_balance`` of ``eosio.token``'s ``EOS``: a list
like ``["1.2345 EOS"]`` (4 decimals), empty where the account holds none (or does not exist),
so 0. ``chain_info`` is ``/v1/chain/get_info``: the chain id and head block. The node answers
errors with an HTTP 4xx/5xx and ``{"code", "message", "error": {"code", "name", "what"}}``.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import httpx

from bankwallet.connectors.chains._http import DEFAULT_TIMEOUT_S, NodeClient, new_http, post_json
from bankwallet.connectors.chains.base import (
    ChainFailure,
    InvalidRequest,
    NativeBalance,
    ProviderError,
)

TOKEN_CONTRACT: Final = "eosio.token"
SYMBOL: Final = "EOS"
DECIMALS: Final = 4
# An account name: up to 12 of a-z, 1-5 and dots, not ending with a dot (a 13th is a-j, 1-5).
_ACCOUNT: Final = re.compile(r"^[a-z1-5.]{0,11}[a-z1-5]$|^[a-z1-5.]{12}[a-j1-5]$")
_PUBLIC_KEY: Final = re.compile(r"^(?:EOS|PUB_K1_)[1-9A-HJ-NP-Za-km-z]{40,60}$")
_ASSET: Final = re.compile(r"^(-?[0-9]+(?:\.[0-9]+)?) ([A-Z]{1,7})$")
# fc exception names an Antelope node answers for what the caller sent wrong.
_INVALID: Final = ("name_type_exception", "public_key_type_exception",
                   "symbol_type_exception", "asset_type_exception", "parse_error_exception")


class EosChainClient(NodeClient):
    """Reads EOS balances and key accounts from one Antelope node. Close it with ``aclose``."""

    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = new_http(timeout_s, transport)

    async def get_balance(self, address: str) -> NativeBalance | ChainFailure:
        """The account's EOS (``address`` is the account name) in 10**-4 EOS."""
        if not isinstance(address, str) or not _ACCOUNT.match(address):
            return InvalidRequest("not an EOS account name (a public key has no balance: "
                                  "ask key_accounts for its accounts)")
        answer = await self._post("/v1/chain/get_currency_balance", {
            "code": TOKEN_CONTRACT, "account": address, "symbol": SYMBOL})
        if isinstance(answer, ChainFailure):
            return answer
        if not isinstance(answer, list):
            return ProviderError("get_currency_balance: not a list")
        total = 0
        for asset in answer:
            amount = parse_asset(asset)
            if amount is None:
                return ProviderError("get_currency_balance: malformed asset")
            total += amount
        return NativeBalance(address, total)

    async def key_accounts(self, public_key: str) -> list[str] | ChainFailure:
        """The accounts with a permission this key satisfies (sorted, without repeats)."""
        if not isinstance(public_key, str) or not _PUBLIC_KEY.match(public_key):
            return InvalidRequest("not an EOS public key (EOS... or PUB_K1_...)")
        answer = await self._post("/v1/chain/get_accounts_by_authorizers",
                                  {"keys": [public_key], "accounts": []}, missing_ok=True)
        if answer is None:  # an older node: the history plugin's endpoint
            legacy = await self._post("/v1/history/get_key_accounts",
                                      {"public_key": public_key})
            if isinstance(legacy, ChainFailure):
                return legacy
            names = legacy.get("account_names") if isinstance(legacy, dict) else None
        elif isinstance(answer, ChainFailure):
            return answer
        else:
            found = answer.get("accounts") if isinstance(answer, dict) else None
            names = ([a.get("account_name") for a in found if isinstance(a, dict)]
                     if isinstance(found, list) else None)
        if not isinstance(names, list) or not all(
                isinstance(n, str) and _ACCOUNT.match(n) for n in names):
            return ProviderError("key accounts: malformed answer")
        return sorted(set(names))

    async def chain_info(self) -> dict[str, Any] | ChainFailure:
        """``get_info``: ``chain_id``, ``head_block_num``, ``server_version_string``..."""
        answer = await self._post("/v1/chain/get_info", {})
        if isinstance(answer, ChainFailure):
            return answer
        if not isinstance(answer, dict) or not isinstance(answer.get("chain_id"), str):
            return ProviderError("get_info: malformed answer")
        return answer

    async def _post(self, path: str, body: dict[str, Any], *,
                    missing_ok: bool = False) -> Any:
        what = path.rsplit("/", 1)[-1]
        answer = await post_json(self._http, self.url + path, body, what)
        if isinstance(answer, ChainFailure):
            return answer
        status, parsed = answer
        if status == 200:
            return parsed
        if status == 404 and missing_ok:
            return None
        return map_error(what, status, parsed)


def map_error(what: str, status: int, body: Any) -> ChainFailure:
    """An Antelope error answer → the failure it means (``ProviderError`` if unknown)."""
    error = body.get("error") if isinstance(body, dict) else None
    name = str(error.get("name", "")) if isinstance(error, dict) else ""
    detail = ""
    if isinstance(error, dict) and isinstance(error.get("details"), list) and error["details"]:
        first = error["details"][0]
        detail = str(first.get("message", "")) if isinstance(first, dict) else ""
    if not detail and isinstance(error, dict):
        detail = str(error.get("what", ""))
    text = f"{what}: HTTP {status} {name} {detail}"
    if name in _INVALID:
        return InvalidRequest(text.strip()[:500])
    return ProviderError(text.strip()[:500])


def parse_asset(text: Any) -> int | None:
    """``"1.2345 EOS"`` → 12345 (10**-4 EOS); None for another symbol or precision."""
    match = _ASSET.match(text) if isinstance(text, str) else None
    if match is None or match.group(2) != SYMBOL:
        return None
    digits = match.group(1)
    if "." not in digits or len(digits.split(".")[1]) != DECIMALS:
        return None
    try:
        return int(Decimal(digits) * 10**DECIMALS)
    except InvalidOperation:
        return None
