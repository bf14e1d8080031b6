"""Address checks per chain, each failure saying why, and watch-only accounts.

``validate_address`` returns the address in its canonical form (EIP-55 checksummed for EVM,
lower-case bech32 for Bitcoin, the long 0x form for Aptos) or raises ``AddressInvalid`` with
a stable ``reason``: charset, length, checksum, prefix, network or format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bip_utils import Base58Decoder, SegwitBech32Decoder, SS58Decoder
from bip_utils.base58.base58_ex import Base58ChecksumError
from bip_utils.bech32.bech32_ex import Bech32ChecksumError
from bip_utils.ss58.ss58_ex import SS58ChecksumError
from bip_utils.utils.crypto import Ripemd160
from eth_utils import keccak, to_checksum_address

from bankwallet.chains.errors import AddressInvalid
from bankwallet.chains.registry import CHAINS, Chain, Family, get_chain

MAX_ADDRESS_CHARS = 128
_BASE58 = re.compile(r"^[1-9A-HJ-NP-Za-km-z]+$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_EOS_ACCOUNT = re.compile(r"^[a-z1-5.]{0,11}[a-z1-5]$|^[a-z1-5.]{12}[a-j1-5]$")
# What other networks' SS58 prefixes are called, to name them in errors.
_SS58_NETWORKS = {c.ss58_format: c.name for c in CHAINS.values() if c.ss58_format is not None}
_SS58_NETWORKS[42] = "generic Substrate"


@dataclass(frozen=True, slots=True)
class WatchOnlyAccount:
    """An address the customer follows without holding its key."""

    chain: str
    address: str


def watch_only(chain: str, address: str) -> WatchOnlyAccount:
    spec = get_chain(chain)
    return WatchOnlyAccount(spec.symbol, validate_address(spec.symbol, address))


def validate_address(chain: str, text: str) -> str:
    spec = get_chain(chain)
    address = text.strip()
    if not address:
        raise AddressInvalid(spec.symbol, "format", "no address given")
    if len(address) > MAX_ADDRESS_CHARS:
        raise AddressInvalid(spec.symbol, "length", "far too long for an address")
    return _VALIDATORS[spec.family](spec, address)


def is_valid_address(chain: str, text: str) -> bool:
    try:
        validate_address(chain, text)
    except AddressInvalid:
        return False
    return True


def _evm(chain: Chain, address: str) -> str:
    if not address.startswith(("0x", "0X")):
        raise AddressInvalid(chain.symbol, "format", "an EVM address starts with 0x")
    digits = address[2:]
    if not _HEX.match(digits):
        raise AddressInvalid(chain.symbol, "charset", "only 0-9 and a-f may follow 0x")
    if len(digits) != 40:
        raise AddressInvalid(chain.symbol, "length",
                             f"an EVM address has 40 hex digits after 0x, not {len(digits)}")
    checksummed = to_checksum_address("0x" + digits.lower())
    mixed_case = digits != digits.lower() and digits != digits.upper()
    if mixed_case and "0x" + digits != checksummed:
        # A wrong EIP-55 checksum means a mistyped character: never "correct" it.
        raise AddressInvalid(chain.symbol, "checksum",
                             "the EIP-55 capitalisation checksum does not match")
    return checksummed


def _tron(chain: Chain, address: str) -> str:
    payload = _base58check(chain, address)
    if len(payload) != 21:
        raise AddressInvalid(chain.symbol, "length", "a TRON address holds 21 bytes")
    if payload[0] != 0x41:
        raise AddressInvalid(chain.symbol, "prefix", "a TRON mainnet address starts with T")
    return address


def _btc(chain: Chain, address: str) -> str:
    lowered = address.lower()
    if lowered.startswith(("tb1", "bcrt1")):
        raise AddressInvalid(chain.symbol, "network", "this is a Bitcoin testnet address")
    if lowered.startswith("bc1"):
        return _btc_segwit(chain, address)
    payload = _base58check(chain, address)
    if len(payload) == 21 and payload[0] in (0x6F, 0xC4):
        raise AddressInvalid(chain.symbol, "network", "this is a Bitcoin testnet address")
    if len(payload) != 21 or payload[0] not in (0x00, 0x05):
        raise AddressInvalid(chain.symbol, "prefix",
                             "a Bitcoin address starts with 1, 3 or bc1")
    return address


def _btc_segwit(chain: Chain, address: str) -> str:
    if address != address.lower() and address != address.upper():
        raise AddressInvalid(chain.symbol, "format", "bech32 addresses are not mixed case")
    try:
        witness_version, _program = SegwitBech32Decoder.Decode("bc", address.lower())
    except Bech32ChecksumError:
        raise AddressInvalid(chain.symbol, "checksum",
                             "the bech32 checksum does not match") from None
    except ValueError:
        raise AddressInvalid(chain.symbol, "format", "not a valid bech32 address") from None
    assert 0 <= witness_version <= 16
    return address.lower()


def _sol(chain: Chain, address: str) -> str:
    if not _BASE58.match(address):
        raise AddressInvalid(chain.symbol, "charset", "a Solana address is base58 "
                             "(no 0, O, I or l)")
    if len(Base58Decoder.Decode(address)) != 32:
        raise AddressInvalid(chain.symbol, "length", "a Solana address encodes 32 bytes")
    # Program-derived addresses are off the curve yet valid, so no curve check here.
    return address


def _apt(chain: Chain, address: str) -> str:
    if not address.startswith("0x"):
        raise AddressInvalid(chain.symbol, "format", "an Aptos address starts with 0x")
    digits = address[2:]
    if not digits or not _HEX.match(digits):
        raise AddressInvalid(chain.symbol, "charset", "only 0-9 and a-f may follow 0x")
    if len(digits) > 64:
        raise AddressInvalid(chain.symbol, "length", "an Aptos address has at most 64 hex digits")
    return "0x" + digits.lower().rjust(64, "0")  # AIP-40 long form


def _substrate(chain: Chain, address: str) -> str:
    if not _BASE58.match(address):
        raise AddressInvalid(chain.symbol, "charset", "an SS58 address is base58")
    try:
        ss58_format, public_key = SS58Decoder.Decode(address)
    except SS58ChecksumError:
        raise AddressInvalid(chain.symbol, "checksum",
                             "the SS58 checksum does not match") from None
    except ValueError:
        raise AddressInvalid(chain.symbol, "format", "not a valid SS58 address") from None
    if ss58_format != chain.ss58_format:
        other = _SS58_NETWORKS.get(ss58_format, f"SS58 format {ss58_format}")
        raise AddressInvalid(chain.symbol, "network",
                             f"this is a {other} address, not a {chain.name} one")
    assert len(public_key) == 32
    return address


def _eos(chain: Chain, address: str) -> str:
    if address.startswith(("EOS", "PUB_")):
        raise AddressInvalid(chain.symbol, "format",
                             "EOS transfers go to an account name; this is a public key")
    if not _EOS_ACCOUNT.match(address):
        raise AddressInvalid(chain.symbol, "format",
                             "an EOS account name has up to 12 characters a-z, 1-5 and "
                             "dots (a 13th may be a-j or 1-5) and does not end with a dot")
    return address


def validate_eos_public_key(text: str) -> bytes:
    """The 33-byte key of a legacy ``EOS...`` or a ``PUB_K1_...`` public key."""
    if text.startswith("EOS"):
        encoded, suffix = text[3:], b""
    elif text.startswith("PUB_K1_"):
        encoded, suffix = text[7:], b"K1"
    else:
        raise AddressInvalid("EOS", "prefix", "an EOS public key starts with EOS or PUB_K1_")
    if not encoded or not _BASE58.match(encoded):
        raise AddressInvalid("EOS", "charset", "an EOS public key is base58")
    data = Base58Decoder.Decode(encoded)
    key, check = data[:-4], data[-4:]
    if len(key) != 33:
        raise AddressInvalid("EOS", "length", "an EOS public key holds 33 bytes")
    if Ripemd160.QuickDigest(key + suffix)[:4] != check:
        raise AddressInvalid("EOS", "checksum", "the EOS key checksum does not match")
    return key


def _base58check(chain: Chain, address: str) -> bytes:
    if not _BASE58.match(address):
        raise AddressInvalid(chain.symbol, "charset", "base58 has no 0, O, I or l")
    try:
        return Base58Decoder.CheckDecode(address)
    except Base58ChecksumError:
        raise AddressInvalid(chain.symbol, "checksum",
                             "the base58check checksum does not match") from None
    except ValueError:
        raise AddressInvalid(chain.symbol, "format", "not a valid base58check string") from None


def evm_address_from_public_key(public_key_uncompressed: bytes) -> str:
    """keccak256 of the 64-byte key, last 20 bytes, EIP-55: used to cross-check TRON."""
    assert len(public_key_uncompressed) == 64
    return to_checksum_address(keccak(public_key_uncompressed)[-20:])


_VALIDATORS = {
    Family.EVM: _evm,
    Family.TRON: _tron,
    Family.BTC: _btc,
    Family.SOL: _sol,
    Family.APT: _apt,
    Family.SUBSTRATE: _substrate,
    Family.EOS: _eos,
}
