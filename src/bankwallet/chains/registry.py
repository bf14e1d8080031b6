"""The chains the wallet supports, and what differs between them.

A chain's ``default_path`` has an ``{i}`` where the account (or address) index goes. EVM chains
share Ethereum's coin type 60 and keys, as MetaMask, TokenPocket and Trust Wallet do, so one
mnemonic gives the same 0x address on each of them; only the EIP-155 chain id differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bankwallet.chains.errors import ChainUnknown


class Family(StrEnum):
    BTC = "btc"
    EVM = "evm"
    TRON = "tron"
    SOL = "sol"
    APT = "apt"
    SUBSTRATE = "substrate"
    EOS = "eos"


class Scheme(StrEnum):
    """How a key is made from the recovery phrase."""

    SECP256K1 = "secp256k1"  # BIP32 from the BIP39 seed
    ED25519 = "ed25519"  # SLIP-10 ed25519 from the BIP39 seed (Phantom, Trust Wallet)
    SR25519 = "sr25519"  # substrate: mini-secret from the BIP39 *entropy* (polkadot.js)
    LEDGER = "ledger"  # BIP32-Ed25519 as the Ledger Polkadot app and polkadot.js hdLedger do


@dataclass(frozen=True, slots=True)
class Chain:
    symbol: str
    name: str
    family: Family
    coin_type: int  # SLIP-44
    native_symbol: str
    decimals: int
    default_scheme: Scheme
    default_path: str  # for the default scheme; "{i}" is the index
    uri_scheme: str
    evm_chain_id: int | None = None
    ss58_format: int | None = None

    @property
    def schemes(self) -> tuple[Scheme, ...]:
        if self.family is Family.SUBSTRATE:
            return (Scheme.SR25519, Scheme.ED25519, Scheme.LEDGER)
        return (self.default_scheme,)


def _evm(symbol: str, name: str, native: str, chain_id: int) -> Chain:
    return Chain(symbol, name, Family.EVM, 60, native, 18, Scheme.SECP256K1,
                 "m/44'/60'/0'/0/{i}", "ethereum", evm_chain_id=chain_id)


def _substrate(symbol: str, name: str, coin_type: int, decimals: int, ss58: int) -> Chain:
    # The default (polkadot.js, Nova, Talisman) is the root sr25519 key: no path.
    return Chain(symbol, name, Family.SUBSTRATE, coin_type, symbol, decimals, Scheme.SR25519,
                 "", name.lower(), ss58_format=ss58)


CHAINS: dict[str, Chain] = {c.symbol: c for c in (
    Chain("BTC", "Bitcoin", Family.BTC, 0, "BTC", 8, Scheme.SECP256K1,
          "m/84'/0'/0'/0/{i}", "bitcoin"),
    _evm("ETH", "Ethereum", "ETH", 1),
    _evm("BSC", "BNB Smart Chain", "BNB", 56),
    _evm("POLYGON", "Polygon PoS", "POL", 137),
    # OKX's EVM network is X Layer (chain id 196, gas token OKB); OKTC is being retired.
    _evm("OKX", "X Layer (OKX)", "OKB", 196),
    Chain("TRON", "TRON", Family.TRON, 195, "TRX", 6, Scheme.SECP256K1,
          "m/44'/195'/0'/0/{i}", "tron"),
    # Phantom and Solflare put the index in the account level, all hardened (SLIP-10).
    Chain("SOL", "Solana", Family.SOL, 501, "SOL", 9, Scheme.ED25519,
          "m/44'/501'/{i}'/0'", "solana"),
    Chain("APT", "Aptos", Family.APT, 637, "APT", 8, Scheme.ED25519,
          "m/44'/637'/{i}'/0'/0'", "aptos"),
    _substrate("DOT", "Polkadot", 354, 10, 0),
    _substrate("KSM", "Kusama", 434, 12, 2),
    Chain("EOS", "EOS", Family.EOS, 194, "EOS", 4, Scheme.SECP256K1,
          "m/44'/194'/0'/0/{i}", "eos"),
)}

MAX_INDEX = 2**31 - 1  # an index must fit a (hardened) BIP32 child number


def get_chain(symbol: str) -> Chain:
    chain = CHAINS.get(symbol.strip().upper())
    if chain is None:
        raise ChainUnknown(f"{symbol!r} is not one of {', '.join(CHAINS)}")
    return chain


def evm_chains() -> tuple[Chain, ...]:
    return tuple(c for c in CHAINS.values() if c.family is Family.EVM)


def default_path(chain: Chain, index: int = 0, scheme: Scheme | None = None) -> str:
    """The path a mainstream wallet uses for account ``index`` of ``chain`` under ``scheme``."""
    assert 0 <= index <= MAX_INDEX, "index out of range"
    scheme = scheme or chain.default_scheme
    if chain.family is Family.SUBSTRATE and scheme is not Scheme.SR25519:
        # Ledger's Polkadot and Kusama apps: the account index is the third level.
        return f"m/44'/{chain.coin_type}'/{index}'/0'/0'"
    if chain.family is Family.SUBSTRATE:
        # sr25519 accounts have no standard index; this wallet's further accounts are the
        # hard junctions //1, //2, ... of the root key (a path polkadot.js can import).
        return "" if index == 0 else f"//{index}"
    return chain.default_path.format(i=index)
