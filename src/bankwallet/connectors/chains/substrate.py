"""Polkadot (DOT) and Kusama (KSM) balances through a Substrate node's JSON-RPC (HTTP POST).

The balance is the ``free`` field of the account's ``System.Account`` storage entry, read with
``state_getStorage``. Its key is what FRAME's ``StorageMap<_, Blake2_128Concat, AccountId,
AccountInfo>`` stores it under::

    twox128("System") ‖ twox128("Account") ‖ blake2b_128(account_id) ‖ account_id

(``twox128`` is xxHash64 of the bytes with seed 0, then with seed 1, each little-endian;
the prefix is the well-known ``0x26aa394e…71da9``). The value is the SCALE encoding of
``AccountInfo``: ``nonce, consumers, providers, sufficients`` (u32 each) and ``AccountData``:
``free, reserved, frozen, flags`` (u128 each, little-endian), 80 bytes. An account the chain
has never seen (or reaped) has no entry: the node answers ``null``, a balance of 0. Runtimes
from before 2023 call the last two u128 ``misc_frozen, fee_frozen``: same size, ``free`` is
read the same way. ``free`` includes what is frozen or locked (staking, governance); the
transferable part is smaller.

The network is checked before a balance is read: ``chain_getBlockHash [0]`` (the genesis hash)
must be the configured chain's, the Polkadot or Kusama relay chain or its Asset Hub (where
balances moved in the 2025 Asset Hub migration, with the same ``System.Account`` layout), or
the genesis of a local/test network configured for it: passed as ``genesis_hash`` or appended
to the node URL as ``#genesis=0x…`` (a fragment is never sent to the node). Anything else is
``WrongNetwork``: a Westend or a Kusama node configured as Polkadot shows no balance.
``system_chain`` names the chain in that message.

The client holds no key and relays nothing: DOT and KSM are read-only here.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import struct
import urllib.parse
from dataclasses import dataclass
from typing import ClassVar, Final

import httpx

from bankwallet.connectors.chains._http import DEFAULT_TIMEOUT_S, JsonRpcClient, new_http
from bankwallet.connectors.chains.base import (
    ChainFailure,
    InvalidRequest,
    NativeBalance,
    ProviderError,
)

DECIMALS: Final = {"DOT": 10, "KSM": 12}
SS58_FORMATS: Final = {"DOT": 0, "KSM": 2}
NAMES: Final = {"DOT": "Polkadot", "KSM": "Kusama"}
# Genesis hashes of the live networks that hold DOT and KSM accounts: the relay chain and,
# since the Asset Hub migration, its Asset Hub (system parachain 1000).
KNOWN_GENESIS: Final[dict[str, dict[str, str]]] = {
    "DOT": {
        "0x91b171bb158e2d3848fa23a9f1c25182fb8e20313b2c1eb49219da7a70ce90c3": "Polkadot",
        "0x68d56f15f85d3136970ec16946040bc1752654e906147f7e43e9d539d7c3de2f":
            "Polkadot Asset Hub",
    },
    "KSM": {
        "0xb0a8d493285c2df73290dfb7e61f870f17b41801197a149ca93654499ea3dafe": "Kusama",
        "0x48239ef607d7928874027a43a67689209727dfb3d3dc5e5b03a39bdc2eda771a":
            "Kusama Asset Hub",
    },
}
ACCOUNT_INFO_BYTES: Final = 4 * 4 + 4 * 16
_HASH: Final = re.compile(r"^0x[0-9a-f]{64}$")
_HEX_VALUE: Final = re.compile(r"^0x(?:[0-9a-fA-F]{2})*$")
_BASE58: Final = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{40,60}$")


# -- hashing -----------------------------------------------------------------------------------

_P1: Final = 0x9E3779B185EBCA87
_P2: Final = 0xC2B2AE3D27D4EB4F
_P3: Final = 0x165667B19E3779F9
_P4: Final = 0x85EBCA77C2B2AE63
_P5: Final = 0x27D4EB2F165667C5
_M64: Final = 2**64 - 1


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (64 - bits))) & _M64


def _round(acc: int, lane: int) -> int:
    return (_rotl((acc + lane * _P2) & _M64, 31) * _P1) & _M64


def _merge(acc: int, lane: int) -> int:
    return ((acc ^ _round(0, lane)) * _P1 + _P4) & _M64


def xxh64(data: bytes, seed: int = 0) -> int:
    """xxHash64 (XXH64) of ``data``: the reference algorithm, in Python (the storage keys
    hash a few dozen bytes, so speed does not matter here)."""
    size, at = len(data), 0
    if size >= 32:
        v1, v2 = (seed + _P1 + _P2) & _M64, (seed + _P2) & _M64
        v3, v4 = seed & _M64, (seed - _P1) & _M64
        while at + 32 <= size:
            a, b, c, d = struct.unpack_from("<4Q", data, at)
            v1, v2, v3, v4 = _round(v1, a), _round(v2, b), _round(v3, c), _round(v4, d)
            at += 32
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M64
        for lane in (v1, v2, v3, v4):
            h = _merge(h, lane)
    else:
        h = (seed + _P5) & _M64
    h = (h + size) & _M64
    while at + 8 <= size:
        (lane,) = struct.unpack_from("<Q", data, at)
        h = (_rotl(h ^ _round(0, lane), 27) * _P1 + _P4) & _M64
        at += 8
    if at + 4 <= size:
        (word,) = struct.unpack_from("<I", data, at)
        h = (_rotl(h ^ (word * _P1 & _M64), 23) * _P2 + _P3) & _M64
        at += 4
    while at < size:
        h = (_rotl(h ^ (data[at] * _P5 & _M64), 11) * _P1) & _M64
        at += 1
    h = ((h ^ (h >> 33)) * _P2) & _M64
    h = ((h ^ (h >> 29)) * _P3) & _M64
    return h ^ (h >> 32)


def twox128(data: bytes) -> bytes:
    """Substrate's ``twox_128``: XXH64 with seeds 0 and 1, each 8 bytes little-endian."""
    return b"".join(xxh64(data, seed).to_bytes(8, "little") for seed in (0, 1))


def blake2_128_concat(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest() + data


SYSTEM_ACCOUNT_PREFIX: Final = twox128(b"System") + twox128(b"Account")


def system_account_key(account_id: bytes) -> bytes:
    """The storage key of ``System.Account(account_id)`` (a 32-byte AccountId32)."""
    if len(account_id) != 32:
        raise ValueError("an AccountId32 is 32 bytes")
    return SYSTEM_ACCOUNT_PREFIX + blake2_128_concat(account_id)


# -- SCALE -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """``frame_system::AccountInfo<u32, pallet_balances::AccountData<u128>>``."""

    nonce: int = 0
    consumers: int = 0
    providers: int = 0
    sufficients: int = 0
    free: int = 0
    reserved: int = 0
    frozen: int = 0  # misc_frozen on runtimes before 2023
    flags: int = 0   # fee_frozen on runtimes before 2023; the top bit marks the new logic


NEW_LOGIC_FLAG: Final = 1 << 127  # pallet_balances::ExtraFlags::IS_NEW_LOGIC


def decode_account_info(raw: bytes) -> AccountInfo:
    """SCALE-decode an ``AccountInfo``; ``ValueError`` if it is not exactly one."""
    if len(raw) != ACCOUNT_INFO_BYTES:
        raise ValueError(f"an AccountInfo is {ACCOUNT_INFO_BYTES} bytes, not {len(raw)}")
    counters = struct.unpack_from("<4I", raw, 0)
    amounts = [int.from_bytes(raw[16 + 16 * i:32 + 16 * i], "little") for i in range(4)]
    return AccountInfo(*counters, *amounts)


def encode_account_info(info: AccountInfo) -> bytes:
    """SCALE-encode an ``AccountInfo`` (what a node stores; the sandbox node uses it)."""
    counters = (info.nonce, info.consumers, info.providers, info.sufficients)
    amounts = (info.free, info.reserved, info.frozen, info.flags)
    if not all(0 <= c < 2**32 for c in counters) or not all(0 <= a < 2**128 for a in amounts):
        raise ValueError("a counter is a u32 and an amount a u128")
    return struct.pack("<4I", *counters) + b"".join(a.to_bytes(16, "little") for a in amounts)


# -- addresses ---------------------------------------------------------------------------------


def account_id(chain: str, address: str) -> bytes | None:
    """The 32-byte account id of an SS58 address of ``chain`` (DOT: format 0, KSM: 2), or None
    if it is not one (checksum, length, another network's prefix)."""
    from bip_utils import SS58Decoder
    from bip_utils.ss58.ss58_ex import SS58ChecksumError

    if not isinstance(address, str) or not _BASE58.match(address):
        return None
    try:
        ss58_format, public_key = SS58Decoder.Decode(address)
    except (SS58ChecksumError, ValueError):
        return None
    if ss58_format != SS58_FORMATS[chain] or len(public_key) != 32:
        return None
    return bytes(public_key)


def ss58_address(chain: str, account: bytes) -> str:
    from bip_utils import SS58Encoder

    return SS58Encoder.Encode(account, SS58_FORMATS[chain])


# -- the client --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WrongNetwork(ChainFailure):
    """The node serves another chain than the one configured (its genesis hash differs)."""

    code: ClassVar[str] = "wrong_network"


@dataclass(frozen=True, slots=True)
class ChainIdentity:
    name: str          # system_chain: "Polkadot", "Kusama", "Development", ...
    genesis_hash: str  # 0x + 64 lowercase hex digits


def split_node_url(url: str) -> tuple[str, str | None]:
    """(URL without its fragment, the ``#genesis=0x…`` of a local/test network or None)."""
    parts = urllib.parse.urlsplit(url)
    genesis = urllib.parse.parse_qs(parts.fragment).get("genesis", [None])[0]
    return urllib.parse.urlunsplit(parts._replace(fragment="")), genesis


class SubstrateRpcClient(JsonRpcClient):
    """DOT or KSM balances from one Substrate node's JSON-RPC. Close it with ``aclose``."""

    def __init__(self, chain: str, url: str, timeout_s: float = DEFAULT_TIMEOUT_S, *,
                 genesis_hash: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if chain not in DECIMALS:
            raise ValueError(f"not a Substrate chain here: {chain!r}")
        self.chain = chain
        self.url, in_url = split_node_url(url)
        allowed = genesis_hash or in_url
        if allowed is not None and not _HASH.match(allowed.lower()):
            raise ValueError("a genesis hash is 0x and 64 hex digits")
        self.allowed_genesis = dict(KNOWN_GENESIS[chain])
        if allowed is not None:
            self.allowed_genesis[allowed.lower()] = f"{NAMES[chain]} (configured test network)"
        self._identity: ChainIdentity | None = None
        self._http = new_http(timeout_s, transport)
        self._ids = itertools.count(1)

    @property
    def decimals(self) -> int:
        return DECIMALS[self.chain]

    async def identify(self) -> ChainIdentity | ChainFailure:
        """What the node says it is: ``system_chain`` and the genesis hash (block 0)."""
        name = await self._rpc("system_chain", [])
        if isinstance(name, ChainFailure):
            return name
        genesis = await self._rpc("chain_getBlockHash", [0])
        if isinstance(genesis, ChainFailure):
            return genesis
        if not isinstance(name, str) or not isinstance(genesis, str) \
                or not _HASH.match(genesis.lower()):
            return ProviderError("system_chain / chain_getBlockHash: malformed answer")
        return ChainIdentity(name[:100], genesis.lower())

    async def check_network(self) -> ChainIdentity | ChainFailure:
        """The node's identity if it serves the configured chain, else ``WrongNetwork``."""
        if self._identity is not None:
            return self._identity
        identity = await self.identify()
        if isinstance(identity, ChainFailure):
            return identity
        if identity.genesis_hash not in self.allowed_genesis:
            return WrongNetwork(f"the node serves {identity.name!r} (genesis "
                                f"{identity.genesis_hash[:10]}…), not {NAMES[self.chain]}")
        self._identity = identity
        return identity

    async def best_block_number(self) -> int | ChainFailure:
        header = await self._rpc("chain_getHeader", [])
        if isinstance(header, ChainFailure):
            return header
        try:
            return int(header["number"], 16)
        except (KeyError, TypeError, ValueError):
            return ProviderError("chain_getHeader: malformed answer")

    async def get_account(self, address: str) -> AccountInfo | ChainFailure:
        """The account's ``System.Account`` entry (all zero if the chain has none)."""
        account = account_id(self.chain, address)
        if account is None:
            return InvalidRequest(f"not a {NAMES[self.chain]} address (SS58 format "
                                  f"{SS58_FORMATS[self.chain]})")
        checked = await self.check_network()
        if isinstance(checked, ChainFailure):
            return checked
        key = "0x" + system_account_key(account).hex()
        value = await self._rpc("state_getStorage", [key])
        if isinstance(value, ChainFailure):
            return value
        if value is None:
            return AccountInfo()
        if not isinstance(value, str) or not _HEX_VALUE.match(value):
            return ProviderError("state_getStorage: not hex")
        try:
            return decode_account_info(bytes.fromhex(value[2:]))
        except ValueError as exc:
            return ProviderError(f"state_getStorage: {exc}")

    async def get_balance(self, address: str) -> NativeBalance | ChainFailure:
        """The free balance in planck (DOT: 10 decimals, KSM: 12)."""
        info = await self.get_account(address)
        if isinstance(info, ChainFailure):
            return info
        return NativeBalance(address, info.free)

