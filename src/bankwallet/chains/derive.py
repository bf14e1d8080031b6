"""Keys and addresses from a recovery phrase, or from one imported private key.

Paths follow what mainstream wallets use (see ``registry``): BIP44/49/84 for Bitcoin, where
the path's purpose picks the address type; BIP44 for EVM, TRON and EOS; SLIP-10 ed25519 for
Solana (Phantom's path) and Aptos. Polkadot and Kusama default to polkadot.js's sr25519 key
made from the phrase's *entropy*; ``ed25519`` gives the SLIP-10 key of Trust Wallet and
bip-utils on the Ledger path, and ``ledger`` the BIP32-Ed25519 key the Ledger Polkadot app
itself derives on that path (the two differ; a customer moving from a Ledger needs ``ledger``).
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass

from bip_utils import (
    AptosAddrEncoder,
    Base58Decoder,
    Base58Encoder,
    Bip32KeyError,
    Bip32PathError,
    Bip32PathParser,
    Bip32Slip10Ed25519,
    Bip32Slip10Secp256k1,
    Bip44,
    Bip44Coins,
    Bip49,
    Bip49Coins,
    Bip84,
    Bip84Coins,
    EosAddrEncoder,
    EthAddrEncoder,
    P2PKHAddrEncoder,
    P2PKHPubKeyModes,
    P2SHAddrEncoder,
    P2WPKHAddrEncoder,
    Secp256k1PrivateKey,
    SolAddrEncoder,
    Substrate,
    SubstrateBip39SeedGenerator,
    SubstrateCoins,
    SubstrateEd25519AddrEncoder,
    SubstratePathError,
    SubstratePathParser,
    SubstrateSr25519AddrEncoder,
    TrxAddrEncoder,
    WifDecoder,
)
from bip_utils.utils.crypto import Ripemd160
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey as _Ed25519Key

from bankwallet.chains.errors import (
    DerivationPathInvalid,
    DerivationSchemeUnsupported,
    PrivateKeyInvalid,
)
from bankwallet.chains.mnemonic import Mnemonic
from bankwallet.chains.registry import MAX_INDEX, Chain, Family, Scheme, default_path, get_chain

BTC_PURPOSES = (44, 49, 84)
MAX_PATH_DEPTH = 10
MAX_KEY_TEXT_CHARS = 1_000
HARDENED = 0x8000_0000

_BIP32_PATH = re.compile(r"^m(/[0-9]{1,10}['hH]?)*$")


@dataclass(frozen=True, slots=True)
class DerivedAccount:
    """What may be shown and stored: no secret in here."""

    chain: str
    scheme: Scheme
    path: str
    address: str
    public_key: bytes


@dataclass(frozen=True, slots=True, repr=False)
class KeyPair:
    private_key: bytes  # 32 bytes; 64 (scalar and nonce) for sr25519
    public_key: bytes  # compressed secp256k1 (33) or ed25519/sr25519 (32)

    def __repr__(self) -> str:
        return "KeyPair(<secret>)"


@dataclass(frozen=True, slots=True, repr=False)
class ImportedKey:
    chain: str
    scheme: Scheme
    address: str
    keys: KeyPair

    def __repr__(self) -> str:
        return f"ImportedKey({self.chain}, {self.address})"


def derive_account(chain: str, mnemonic: Mnemonic, *, passphrase: str = "",
                   path: str | None = None, scheme: str | None = None,
                   index: int | None = None) -> DerivedAccount:
    """The address of one account: ``path`` or the chain's default path for ``index``."""
    account, _ = derive_keys(chain, mnemonic, passphrase=passphrase, path=path, scheme=scheme,
                             index=index)
    return account


def derive_keys(chain: str, mnemonic: Mnemonic, *, passphrase: str = "",
                path: str | None = None, scheme: str | None = None,
                index: int | None = None) -> tuple[DerivedAccount, KeyPair]:
    spec = get_chain(chain)
    kind = resolve_scheme(spec, scheme)
    path = _resolve_path(spec, kind, path, index)
    keys = _KEY_MAKERS[kind](mnemonic, passphrase, path, spec)
    address = address_from_public_key(spec.symbol, keys.public_key, scheme=kind, path=path)
    return DerivedAccount(spec.symbol, kind, path, address, keys.public_key), keys


def resolve_scheme(chain: Chain, scheme: str | None) -> Scheme:
    if scheme is None:
        return chain.default_scheme
    try:
        kind = Scheme(scheme.strip().lower())
    except ValueError:
        kind = None
    if kind not in chain.schemes:
        allowed = ", ".join(s.value for s in chain.schemes)
        raise DerivationSchemeUnsupported(f"{chain.symbol} keys are {allowed}, not {scheme!r}")
    return kind


def address_from_public_key(chain: str, public_key: bytes, *, scheme: Scheme | None = None,
                            path: str | None = None) -> str:
    """Encode a public key as ``chain`` does; for Bitcoin the path's purpose picks the type."""
    spec = get_chain(chain)
    kind = scheme or spec.default_scheme
    if spec.family is Family.BTC:
        return _btc_address(public_key, btc_purpose(path) if path else 84)
    if spec.family is Family.SUBSTRATE:
        encoder = (SubstrateSr25519AddrEncoder if kind is Scheme.SR25519
                   else SubstrateEd25519AddrEncoder)
        return encoder.EncodeKey(public_key, ss58_format=spec.ss58_format)
    return _ENCODERS[spec.family](public_key)


def btc_account_xpub(mnemonic: Mnemonic, *, passphrase: str = "", purpose: int = 84,
                     account: int = 0) -> str:
    """The account's extended public key (xpub, ypub or zpub) for a watch-only wallet."""
    if purpose not in BTC_PURPOSES:
        raise DerivationPathInvalid("a Bitcoin account is BIP44, BIP49 or BIP84")
    if not 0 <= account <= MAX_INDEX:
        raise DerivationPathInvalid(f"the account must be between 0 and {MAX_INDEX}")
    bip_class, coin = _BIP_ACCOUNT[purpose]
    node = bip_class.FromSeed(mnemonic.seed(passphrase), coin).Purpose().Coin().Account(account)
    return node.PublicKey().ToExtended()


def btc_purpose(path: str) -> int:
    levels = _bip32_levels(path)
    purpose = levels[0] - HARDENED if levels and levels[0] >= HARDENED else None
    if purpose not in BTC_PURPOSES:
        raise DerivationPathInvalid(
            "a Bitcoin path starts with m/44' (legacy), m/49' (nested SegWit) or "
            "m/84' (native SegWit)")
    return purpose


def import_private_key(chain: str, text: str, *, scheme: str | None = None,
                       btc_address_purpose: int = 84) -> ImportedKey:
    """One private key as wallets export it: hex everywhere, plus WIF for Bitcoin and EOS,
    PVT_K1_ for EOS, and a base58 or JSON-array 64-byte keypair for Solana."""
    spec = get_chain(chain)
    kind = resolve_scheme(spec, scheme)
    text = text.strip()
    if not text or len(text) > MAX_KEY_TEXT_CHARS:
        raise PrivateKeyInvalid("no private key given")
    if spec.family is Family.BTC:
        return _import_btc(spec, text, btc_address_purpose)
    raw = _IMPORT_PARSERS.get(spec.family, _parse_hex_key)(text)
    keys = _keypair_from_raw(kind, raw)
    if spec.family is Family.SOL and len(raw) == 64 and raw[32:] != keys.public_key:
        raise PrivateKeyInvalid("the keypair's public half does not match its secret half")
    address = address_from_public_key(spec.symbol, keys.public_key, scheme=kind)
    return ImportedKey(spec.symbol, kind, address, keys)


# --- paths -------------------------------------------------------------------------------

def _resolve_path(chain: Chain, scheme: Scheme, path: str | None, index: int | None) -> str:
    if path is not None and index is not None:
        raise DerivationPathInvalid("give a path or an index, not both")
    if path is None:
        if not 0 <= (index or 0) <= MAX_INDEX:
            raise DerivationPathInvalid(f"the index must be between 0 and {MAX_INDEX}")
        return default_path(chain, index or 0, scheme)
    path = path.strip()
    if scheme is Scheme.SR25519:
        return _check_substrate_path(path)
    levels = _bip32_levels(path)
    if scheme in (Scheme.ED25519, Scheme.LEDGER) and any(v < HARDENED for v in levels):
        raise DerivationPathInvalid("ed25519 paths must be hardened at every level (0', 1', ...)")
    if chain.family is Family.BTC:
        btc_purpose(path)
    return path


def _bip32_levels(path: str) -> list[int]:
    if not _BIP32_PATH.match(path) or path.count("/") > MAX_PATH_DEPTH:
        raise DerivationPathInvalid(f"{path!r} is not a path like m/44'/60'/0'/0/0")
    try:
        return [int(level) for level in Bip32PathParser.Parse(path)]
    except Bip32PathError:
        raise DerivationPathInvalid(f"{path!r}: a level is out of range") from None


def _check_substrate_path(path: str) -> str:
    if path == "":
        return path
    if "///" in path or len(path) > 200:
        raise DerivationPathInvalid("give the password as the passphrase, not in the path")
    try:
        SubstratePathParser.Parse(path)
    except SubstratePathError:
        raise DerivationPathInvalid(
            f"{path!r} is not a substrate path like //hard/soft (or empty for the root key)"
        ) from None
    return path


# --- key making --------------------------------------------------------------------------

def _secp256k1_keys(mnemonic: Mnemonic, passphrase: str, path: str, chain: Chain) -> KeyPair:
    node = Bip32Slip10Secp256k1.FromSeed(mnemonic.seed(passphrase)).DerivePath(path)
    return KeyPair(node.PrivateKey().Raw().ToBytes(), node.PublicKey().RawCompressed().ToBytes())


def _slip10_ed25519_keys(mnemonic: Mnemonic, passphrase: str, path: str,
                         chain: Chain) -> KeyPair:
    try:
        node = Bip32Slip10Ed25519.FromSeed(mnemonic.seed(passphrase)).DerivePath(path)
    except Bip32KeyError:
        raise DerivationPathInvalid("ed25519 paths must be hardened at every level") from None
    return _ed25519_pair(node.PrivateKey().Raw().ToBytes())


def substrate_mini_secret(mnemonic: Mnemonic, passphrase: str = "") -> bytes:
    """polkadot.js/subkey: PBKDF2 of the phrase's *entropy* (not its words), first 32 bytes."""
    return SubstrateBip39SeedGenerator(mnemonic.phrase).Generate(passphrase)[:32]


def _sr25519_keys(mnemonic: Mnemonic, passphrase: str, path: str, chain: Chain) -> KeyPair:
    coin = SubstrateCoins.POLKADOT if chain.symbol == "DOT" else SubstrateCoins.KUSAMA
    node = Substrate.FromSeedAndPath(substrate_mini_secret(mnemonic, passphrase), path, coin)
    return KeyPair(node.PrivateKey().Raw().ToBytes(), node.PublicKey().RawCompressed().ToBytes())


def _ledger_keys(mnemonic: Mnemonic, passphrase: str, path: str, chain: Chain) -> KeyPair:
    xprv = _ledger_master(mnemonic.seed(passphrase))
    for level in _bip32_levels(path):
        xprv = _ledger_child(xprv, level | HARDENED)
    return _ed25519_pair(xprv[:32])


def _ledger_master(seed: bytes) -> bytes:
    """BIP32-Ed25519 root as Ledger's Polkadot app (and polkadot.js ``hdLedger``) make it."""
    chain_code = hmac.digest(b"ed25519 seed", b"\x01" + seed, "sha256")
    secret = hmac.digest(b"ed25519 seed", seed, "sha512")
    while secret[31] & 0b0010_0000:  # retry until the third-highest bit is clear
        secret = hmac.digest(b"ed25519 seed", secret, "sha512")
    clamped = bytearray(secret)
    clamped[0] &= 0b1111_1000
    clamped[31] &= 0b0111_1111
    clamped[31] |= 0b0100_0000
    return bytes(clamped) + chain_code


def _ledger_child(xprv: bytes, index: int) -> bytes:
    """Hardened BIP32-Ed25519 (Khovratovich-Law) child: kl + 8*zl, kr + zr, new chain code."""
    kl, kr, chain_code = xprv[:32], xprv[32:64], xprv[64:96]
    data = kl + kr + index.to_bytes(4, "little")
    z = hmac.digest(chain_code, b"\x00" + data, "sha512")
    child_kl = (_le(kl) + 8 * _le(z[:28])) % 2**256
    child_kr = (_le(kr) + _le(z[32:])) % 2**256
    child_chain_code = hmac.digest(chain_code, b"\x01" + data, "sha512")[32:]
    return child_kl.to_bytes(32, "little") + child_kr.to_bytes(32, "little") + child_chain_code


def _le(data: bytes) -> int:
    return int.from_bytes(data, "little")


def _ed25519_pair(seed32: bytes) -> KeyPair:
    public = _Ed25519Key.from_private_bytes(seed32).public_key().public_bytes_raw()
    return KeyPair(seed32, public)


_KEY_MAKERS = {
    Scheme.SECP256K1: _secp256k1_keys,
    Scheme.ED25519: _slip10_ed25519_keys,
    Scheme.SR25519: _sr25519_keys,
    Scheme.LEDGER: _ledger_keys,
}


# --- addresses ---------------------------------------------------------------------------

def _btc_address(public_key: bytes, purpose: int) -> str:
    if purpose == 44:
        mode = (P2PKHPubKeyModes.UNCOMPRESSED if len(public_key) == 65
                else P2PKHPubKeyModes.COMPRESSED)
        return P2PKHAddrEncoder.EncodeKey(public_key, net_ver=b"\x00", pub_key_mode=mode)
    if len(public_key) != 33:
        raise PrivateKeyInvalid("SegWit addresses need a compressed public key")
    if purpose == 49:
        return P2SHAddrEncoder.EncodeKey(public_key, net_ver=b"\x05")
    return P2WPKHAddrEncoder.EncodeKey(public_key, hrp="bc")


_BIP_ACCOUNT = {
    44: (Bip44, Bip44Coins.BITCOIN),
    49: (Bip49, Bip49Coins.BITCOIN),
    84: (Bip84, Bip84Coins.BITCOIN),
}

_ENCODERS = {
    Family.EVM: EthAddrEncoder.EncodeKey,
    Family.TRON: TrxAddrEncoder.EncodeKey,
    Family.SOL: SolAddrEncoder.EncodeKey,
    Family.APT: AptosAddrEncoder.EncodeKey,
    Family.EOS: EosAddrEncoder.EncodeKey,
}


def eos_public_key_k1(public_key: bytes) -> str:
    """The newer EOS key format, ``PUB_K1_`` + base58(key + ripemd160(key + "K1")[:4])."""
    assert len(public_key) == 33, "a compressed secp256k1 key"
    check = Ripemd160.QuickDigest(public_key + b"K1")[:4]
    return "PUB_K1_" + Base58Encoder.Encode(public_key + check)


# --- private key import ------------------------------------------------------------------

def _import_btc(chain: Chain, text: str, purpose: int) -> ImportedKey:
    if purpose not in BTC_PURPOSES:
        raise DerivationPathInvalid("a Bitcoin address type is 44, 49 or 84")
    if _is_hex_key(text):
        keys = _keypair_from_raw(Scheme.SECP256K1, _parse_hex_key(text))
    else:
        keys = _keypair_from_wif(text)
    address = _btc_address(keys.public_key, purpose)
    return ImportedKey(chain.symbol, Scheme.SECP256K1, address, keys)


def _keypair_from_wif(text: str) -> KeyPair:
    try:
        raw, mode = WifDecoder.Decode(text, net_ver=b"\x80")
    except (ValueError, TypeError):
        raise PrivateKeyInvalid("not a hex key nor a mainnet WIF key") from None
    key = Secp256k1PrivateKey.FromBytes(raw)
    public = (key.PublicKey().RawUncompressed() if mode is P2PKHPubKeyModes.UNCOMPRESSED
              else key.PublicKey().RawCompressed())
    return KeyPair(raw, public.ToBytes())


def _keypair_from_raw(scheme: Scheme, raw: bytes) -> KeyPair:
    if scheme is Scheme.SR25519:
        if len(raw) != 32:
            raise PrivateKeyInvalid("an sr25519 key is imported as its 32-byte seed (0x...)")
        node = Substrate.FromSeed(raw, SubstrateCoins.POLKADOT)
        return KeyPair(node.PrivateKey().Raw().ToBytes(),
                       node.PublicKey().RawCompressed().ToBytes())
    if scheme in (Scheme.ED25519, Scheme.LEDGER):
        if len(raw) not in (32, 64):
            raise PrivateKeyInvalid("an ed25519 key has 32 bytes (or 64 with its public key)")
        return _ed25519_pair(raw[:32])
    if len(raw) != 32:
        raise PrivateKeyInvalid("a secp256k1 private key has 32 bytes (64 hex digits)")
    try:
        key = Secp256k1PrivateKey.FromBytes(raw)
    except ValueError:
        raise PrivateKeyInvalid("the number is outside the secp256k1 key range") from None
    return KeyPair(raw, key.PublicKey().RawCompressed().ToBytes())


_HEX_KEY = re.compile(r"^(0x)?([0-9a-fA-F]{2})+$")


def _is_hex_key(text: str) -> bool:
    return bool(_HEX_KEY.match(text))


def _parse_hex_key(text: str) -> bytes:
    text = text.removeprefix("ed25519-priv-")  # AIP-80 (Aptos) prefix
    if not _is_hex_key(text):
        raise PrivateKeyInvalid("expected the key as hexadecimal digits")
    return bytes.fromhex(text.removeprefix("0x"))


def _parse_sol_key(text: str) -> bytes:
    if _is_hex_key(text):
        return _parse_hex_key(text)
    if text.startswith("["):  # solana-keygen's JSON file: 64 numbers
        try:
            numbers = json.loads(text)
            raw = bytes(numbers)
        except (ValueError, TypeError):
            raise PrivateKeyInvalid("not a JSON array of 64 bytes") from None
    else:
        try:
            raw = Base58Decoder.Decode(text)
        except ValueError:
            raise PrivateKeyInvalid("not a base58 Solana keypair") from None
    if len(raw) != 64:
        raise PrivateKeyInvalid("a Solana keypair has 64 bytes")
    return raw


def _parse_eos_key(text: str) -> bytes:
    if _is_hex_key(text):
        return _parse_hex_key(text)
    if text.startswith("PVT_K1_"):
        try:
            data = Base58Decoder.Decode(text.removeprefix("PVT_K1_"))
        except ValueError:
            raise PrivateKeyInvalid("not a base58 PVT_K1_ key") from None
        raw, check = data[:-4], data[-4:]
        if len(raw) != 32 or Ripemd160.QuickDigest(raw + b"K1")[:4] != check:
            raise PrivateKeyInvalid("the PVT_K1_ key's checksum does not match")
        return raw
    return _keypair_from_wif(text).private_key  # legacy EOS keys are Bitcoin WIF


_IMPORT_PARSERS = {Family.SOL: _parse_sol_key, Family.EOS: _parse_eos_key}
