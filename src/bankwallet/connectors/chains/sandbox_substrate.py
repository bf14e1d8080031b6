"""A sandbox Polkadot or Kusama node: the JSON-RPC a Substrate node serves over HTTP, for
``connectors.chains.substrate``, as its own process. TEST ONLY.

    python -m bankwallet.connectors.chains.sandbox_substrate --chain DOT --port 9944 \\
        [--genesis local|mainnet|0x…] [--balance ADDRESS=PLANCK ...]

State is a key-value store as a node keeps it: each account is stored under the key FRAME
gives ``System.Account(account_id)`` (``twox128("System") ‖ twox128("Account") ‖
blake2_128_concat(account_id)``) with its SCALE-encoded ``AccountInfo`` as the value, and
``state_getStorage`` answers whatever is under the key it is asked for (``null`` if nothing):
a client computing another key finds nothing. Each change makes a new block.

Served: ``system_chain``, ``system_name``, ``system_version``, ``system_properties``,
``system_health``, ``chain_getBlockHash`` ([] best, [n]), ``chain_getHeader`` ([] or [hash]),
``state_getStorage`` ([key] or [key, at]), and ``sandbox_setBalance`` [address, free,
reserved?] to seed an account (no real node has it). ``--genesis mainnet`` answers as the
live relay chain does (a fork of it, as chopsticks serves one); the default ``local`` is a
network of its own (``system_chain`` "<Name> Sandbox", genesis ``sandbox_genesis(chain)``),
which a client accepts only if configured for it.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import struct
from collections.abc import Callable
from typing import Any, Final

from bankwallet.connectors.chains.sandbox_nodes import MAX_REQUEST_BYTES, RpcError
from bankwallet.connectors.chains.substrate import (
    DECIMALS,
    KNOWN_GENESIS,
    NAMES,
    SS58_FORMATS,
    account_id,
)

EXISTENTIAL_DEPOSIT: Final = {"DOT": 10**10, "KSM": 333_333_333}  # below it: no account
_HEX: Final = re.compile(r"^0x(?:[0-9a-fA-F]{2})*$")
_HASH: Final = re.compile(r"^0x[0-9a-fA-F]{64}$")


# The node's own storage layout, written out rather than taken from the client, so that the
# two agree only if the client computes what a node stores: the ``System.Account`` prefix as
# FRAME's metadata and every block explorer publish it, the map's Blake2_128Concat hasher,
# and AccountInfo's SCALE layout (4 × u32, then AccountData: 4 × u128, little-endian).
SYSTEM_ACCOUNT_PREFIX: Final = bytes.fromhex(
    "26aa394eea5630e07c48ae0c9558cef7b99d880ec681799c0cf30e8886371da9")
IS_NEW_LOGIC: Final = 1 << 127  # pallet_balances ExtraFlags, set on every migrated account


def account_key(account: bytes) -> bytes:
    return SYSTEM_ACCOUNT_PREFIX + hashlib.blake2b(account, digest_size=16).digest() + account


def scale_account_info(nonce: int, consumers: int, providers: int, sufficients: int,
                       free: int, reserved: int, frozen: int, flags: int) -> bytes:
    return (struct.pack("<4I", nonce, consumers, providers, sufficients)
            + b"".join(v.to_bytes(16, "little") for v in (free, reserved, frozen, flags)))


def unscale_account_info(value: bytes) -> tuple[int, ...]:
    return (*struct.unpack_from("<4I", value), *(int.from_bytes(value[16 + 16 * i:32 + 16 * i],
                                                                "little") for i in range(4)))


def sandbox_genesis(chain: str) -> str:
    """The genesis hash of the local sandbox network of ``chain``."""
    return "0x" + hashlib.blake2b(b"bankwallet sandbox " + chain.encode(),
                                  digest_size=32).hexdigest()


def mainnet_genesis(chain: str) -> str:
    return next(iter(KNOWN_GENESIS[chain]))  # the relay chain's, listed first


def _invalid_params(detail: str) -> RpcError:
    return RpcError(-32602, "Invalid params", detail)  # jsonrpsee's shape


class SubstrateNode:
    """One Substrate chain: blocks of storage snapshots, the newest last."""

    def __init__(self, chain: str, *, genesis: str = "local") -> None:
        if chain not in DECIMALS:
            raise ValueError(chain)
        self.chain = chain
        if genesis == "mainnet":
            self.genesis, self.name = mainnet_genesis(chain), NAMES[chain]
        elif genesis == "local":
            self.genesis, self.name = sandbox_genesis(chain), f"{NAMES[chain]} Sandbox"
        elif _HASH.match(genesis):
            self.genesis, self.name = genesis.lower(), f"{NAMES[chain]} Test"
        else:
            raise ValueError("genesis: local, mainnet or 0x and 64 hex digits")
        self.storage: dict[bytes, bytes] = {}
        self.blocks: list[tuple[str, dict[bytes, bytes]]] = [(self.genesis, {})]
        self.methods: dict[str, Callable[[list[Any]], Any]] = {
            "system_chain": lambda p: self.name,
            "system_name": lambda p: "bankwallet-sandbox-substrate",
            "system_version": lambda p: "1.0.0-sandbox",
            "system_chainType": lambda p: "Live" if genesis == "mainnet" else "Development",
            "system_properties": lambda p: {"ss58Format": SS58_FORMATS[chain],
                                            "tokenDecimals": DECIMALS[chain],
                                            "tokenSymbol": chain},
            "system_health": lambda p: {"peers": 0, "isSyncing": False,
                                        "shouldHavePeers": False},
            "chain_getBlockHash": self.block_hash,
            "chain_getHeader": self.header,
            "state_getStorage": self.get_storage,
            "sandbox_setBalance": self.set_balance,
        }

    # -- JSON-RPC ------------------------------------------------------------------------------

    def handle(self, request: Any) -> dict[str, Any]:
        request_id = request.get("id") if isinstance(request, dict) else None
        try:
            if not isinstance(request, dict) or request.get("jsonrpc") != "2.0" \
                    or not isinstance(request.get("method"), str):
                raise RpcError(-32600, "Invalid request")
            method = self.methods.get(request["method"])
            if method is None:
                raise RpcError(-32601, "Method not found")
            params = request.get("params")
            params = [] if params is None else params
            if not isinstance(params, list):
                raise _invalid_params("expected an array")
            return {"jsonrpc": "2.0", "id": request_id, "result": method(params)}
        except RpcError as exc:
            return {"jsonrpc": "2.0", "id": request_id, "error": exc.as_json()}

    def block_hash(self, params: list[Any]) -> str | None:
        if not params or params[0] is None:
            return self.blocks[-1][0]
        number = params[0]
        if isinstance(number, str) and re.match(r"^0x[0-9a-fA-F]{1,16}$", number):
            number = int(number, 16)
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise _invalid_params("a block number")
        return self.blocks[number][0] if number < len(self.blocks) else None

    def _block_number(self, block: Any) -> int:
        if block is None:
            return len(self.blocks) - 1
        if not isinstance(block, str) or not _HASH.match(block):
            raise _invalid_params("a block hash is 0x and 64 hex digits")
        for number, (found, _) in enumerate(self.blocks):
            if found == block.lower():
                return number
        raise RpcError(4003, "Client error: UnknownBlock: header not found")

    def header(self, params: list[Any]) -> dict[str, Any] | None:
        try:
            number = self._block_number(params[0] if params else None)
        except RpcError as exc:
            if exc.code == 4003:
                return None  # a node answers null for a block it does not have
            raise
        parent = self.blocks[number - 1][0] if number else "0x" + "00" * 32
        state_root = hashlib.blake2b(b"".join(k + v for k, v in sorted(
            self.blocks[number][1].items())), digest_size=32).hexdigest()
        return {"parentHash": parent, "number": hex(number), "stateRoot": "0x" + state_root,
                "extrinsicsRoot": "0x" + "00" * 32, "digest": {"logs": []}}

    def get_storage(self, params: list[Any]) -> str | None:
        if not params or not isinstance(params[0], str) or not _HEX.match(params[0]):
            raise _invalid_params("a storage key is 0x-prefixed hex")
        state = self.blocks[self._block_number(params[1] if len(params) > 1 else None)][1]
        value = state.get(bytes.fromhex(params[0][2:]))
        return None if value is None else "0x" + value.hex()

    def set_balance(self, params: list[Any]) -> str:
        """sandbox_setBalance [address, free, reserved = 0]: the new block's hash."""
        if len(params) not in (2, 3):
            raise _invalid_params("[address, free, reserved?]")
        account = account_id(self.chain, params[0]) if isinstance(params[0], str) else None
        if account is None:
            raise _invalid_params(f"not an SS58 address of {NAMES[self.chain]}")
        free, reserved = params[1], params[2] if len(params) > 2 else 0
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**128
                   for v in (free, reserved)):
            raise _invalid_params("amounts are integers (planck) of at most u128")
        self.credit(account, free, reserved)
        return self.blocks[-1][0]

    # -- state ---------------------------------------------------------------------------------

    def credit(self, account: bytes, free: int, reserved: int = 0) -> None:
        """Set the account's balance; below the existential deposit it is reaped."""
        key = account_key(account)
        old = self.storage.get(key)
        nonce, consumers, providers, sufficients, _, _, frozen, flags = (
            unscale_account_info(old) if old else (0, 0, 1, 0, 0, 0, 0, IS_NEW_LOGIC))
        if free + reserved < EXISTENTIAL_DEPOSIT[self.chain]:
            self.storage.pop(key, None)  # reaped: the entry is gone, not zero
        else:
            self.storage[key] = scale_account_info(nonce, consumers, providers, sufficients,
                                                   free, reserved, frozen, flags)
        parent = self.blocks[-1][0]
        number = len(self.blocks)
        new_hash = "0x" + hashlib.blake2b(bytes.fromhex(parent[2:]) + number.to_bytes(8, "little"),
                                          digest_size=32).hexdigest()
        self.blocks.append((new_hash, dict(self.storage)))


# -- HTTP ----------------------------------------------------------------------------------------


def create_app(node: SubstrateNode) -> Any:
    """JSON-RPC on POST / and GET /healthz, as a Starlette app."""
    import orjson
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    def answer(value: Any, status_code: int = 200) -> Response:
        return Response(orjson.dumps(value), status_code=status_code,
                        media_type="application/json")

    async def rpc(request: Request) -> Response:
        body = await request.body()
        try:
            if len(body) > MAX_REQUEST_BYTES:
                raise ValueError("too large")
            payload = orjson.loads(body)
        except (ValueError, orjson.JSONDecodeError):
            return answer({"jsonrpc": "2.0", "id": None,
                           "error": {"code": -32700, "message": "Parse error"}})
        if isinstance(payload, list):  # a batch
            return answer([node.handle(item) for item in payload[:100]])
        return answer(node.handle(payload))

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "kind": "substrate", "chain": node.chain,
                             "genesis": node.genesis})

    return Starlette(routes=[Route("/", rpc, methods=["POST"]),
                             Route("/healthz", healthz, methods=["GET"])])


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(
        prog="python -m bankwallet.connectors.chains.sandbox_substrate",
        description="A sandbox Polkadot or Kusama node (JSON-RPC over HTTP). TEST ONLY.")
    parser.add_argument("--chain", choices=sorted(DECIMALS), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--genesis", default="local",
                        help="local (a network of its own), mainnet (answer as the live "
                             "relay chain) or a 0x genesis hash")
    parser.add_argument("--balance", action="append", default=[], metavar="ADDRESS=PLANCK",
                        help="seed an account's free balance (repeatable)")
    args = parser.parse_args(argv)
    try:
        node = SubstrateNode(args.chain, genesis=args.genesis)
    except ValueError as exc:
        parser.error(str(exc))
    for seed in args.balance:
        address, _, amount = seed.partition("=")
        account = account_id(args.chain, address)
        if account is None or not amount.isdigit():
            parser.error(f"--balance {seed!r}: an SS58 address of {NAMES[args.chain]}=planck")
        node.credit(account, int(amount))
    print(f"sandbox {NAMES[args.chain]} node on http://{args.host}:{args.port}/ "
          f"(genesis {node.genesis}, TEST ONLY)", flush=True)
    uvicorn.run(create_app(node), host=args.host, port=args.port, log_config=None,
                access_log=False)


if __name__ == "__main__":
    main()
