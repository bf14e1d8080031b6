from __future__ import annotations

import pytest
from bip_utils import (
    Base58Encoder,
    Bip44,
    Bip44Changes,
    Bip44Coins,
    SubstrateSr25519AddrEncoder,
)
from eth_account import Account

from bankwallet.chains.addresses import evm_address_from_public_key, validate_eos_public_key
from bankwallet.chains.derive import (
    btc_account_xpub,
    derive_account,
    derive_keys,
    eos_public_key_k1,
    import_private_key,
    substrate_mini_secret,
)
from bankwallet.chains.errors import (
    ChainUnknown,
    DerivationPathInvalid,
    DerivationSchemeUnsupported,
    PrivateKeyInvalid,
)
from bankwallet.chains.mnemonic import parse_mnemonic
from bankwallet.chains.registry import CHAINS, Scheme, default_path
from tests.chains.vectors import (
    ABANDON_ABOUT,
    KEY_46,
    KEY_46_ADDRESSES,
    KEY_46_ED25519_ADDRESSES,
    RIPPLE,
    SHOOT_ISLAND,
    TEAM_ENGINE,
)

ABANDON = parse_mnemonic(ABANDON_ABOUT)


# --- Bitcoin -----------------------------------------------------------------------------

def test_bip84_vector() -> None:
    # BIP84's test vectors: account 0 zpub and the first receiving address.
    assert btc_account_xpub(ABANDON) == (
        "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf"
        "31mGDtKsAYz2oz2AGutZYs")
    assert derive_account("BTC", ABANDON).address == "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"
    assert derive_account("BTC", ABANDON).path == "m/84'/0'/0'/0/0"


def test_bip44_and_bip49_extended_keys() -> None:
    # wallet-core TWHDWalletTests.cpp ExtendedKeys
    assert btc_account_xpub(ABANDON, purpose=44) == (
        "xpub6BosfCnifzxcFwrSzQiqu2DBVTshkCXacvNsWGYJVVhhawA7d4R5WSWGFNbi8Aw6ZRc1brxMyWMzG3DSSSSo"
        "ekkudhUd9yLb6qx39T9nMdj")
    assert btc_account_xpub(ABANDON, purpose=49) == (
        "ypub6Ww3ibxVfGzLrAH1PNcjyAWenMTbbAosGNB6VvmSEgytSER9azLDWCxoJwW7Ke7icmizBMXrzBx9979FfaHx"
        "HcrArf3zbeJJJUZPf663zsP")


@pytest.mark.parametrize(("path", "address"), [
    # wallet-core HDWalletTests.swift: testDeriveFromXPub / YPub / ZPub
    ("m/44'/0'/0'/0/2", "1MNF5RSaabFwcbtJirJwKnDytsXXEsVsNb"),
    ("m/44'/0'/0'/0/9", "1DUrqK4hj6vNNUTWXADpbqyjVWUYFD7xTZ"),
    ("m/49'/0'/0'/0/3", "38CahkVftQneLonbWtfWxiiaT2fdnzsEAN"),
    ("m/49'/0'/0'/0/10", "38mWd5D48ShYPJMZngtmxPQVYhQR5DGgfF"),
    ("m/84'/0'/0'/0/4", "bc1qm97vqzgj934vnaq9s53ynkyf9dgr05rargr04n"),
    ("m/84'/0'/0'/0/11", "bc1qxr4fjkvnxjqphuyaw5a08za9g6qqh65t8qwgum"),
])
def test_btc_path_purpose_picks_the_address_type(path: str, address: str) -> None:
    assert derive_account("BTC", ABANDON, path=path).address == address


def test_btc_index_uses_the_bip84_path() -> None:
    assert derive_account("BTC", ABANDON, index=4).address == (
        "bc1qm97vqzgj934vnaq9s53ynkyf9dgr05rargr04n")


def test_btc_other_wallet_core_vectors() -> None:
    trezor = parse_mnemonic(RIPPLE)
    assert derive_account("BTC", trezor, passphrase="TREZOR").address == (
        "bc1qumwjg8danv2vm29lp5swdux4r60ezptzz7ce85")
    team = parse_mnemonic(TEAM_ENGINE)
    assert derive_account("BTC", team).address == "bc1qturc268v0f2srjh4r2zu4t6zk4gdutqd5a6zny"
    assert derive_account("BTC", team, path="m/44'/0'/0'/0/0").address == (
        "1NyRyFewhZcWMa9XCj3bBxSXPXyoSg8dKz")
    assert derive_account("BTC", parse_mnemonic(RIPPLE), path="m/84'/0'/0'/0/2").address == (
        "bc1q7zddsunzaftf4zlsg9exhzlkvc5374a6v32jf6")


@pytest.mark.parametrize("path", ["m/86'/0'/0'/0/0", "m/0/0", "m/44/0'/0'/0/0"])
def test_btc_purpose_must_be_44_49_or_84(path: str) -> None:
    with pytest.raises(DerivationPathInvalid):
        derive_account("BTC", ABANDON, path=path)


# --- EVM ---------------------------------------------------------------------------------

def test_bip44_ethereum_vector() -> None:
    account = derive_account("ETH", ABANDON)
    assert account.address == "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"
    assert account.path == "m/44'/60'/0'/0/0"


def test_wallet_core_ethereum_vectors() -> None:
    trezor = parse_mnemonic(RIPPLE)
    assert derive_account("ETH", trezor, passphrase="TREZOR").address == (
        "0x27Ef5cDBe01777D62438AfFeb695e33fC2335979")
    assert derive_account("ETH", trezor, passphrase="TREZOR", index=1).address == (
        "0x98f5438cDE3F0Ff6E11aE47236e93481899d1C47")


@pytest.mark.parametrize("index", [0, 1, 7])
def test_evm_matches_eth_account_mnemonic_route(index: int) -> None:
    Account.enable_unaudited_hdwallet_features()
    path = f"m/44'/60'/0'/0/{index}"
    expected = Account.from_mnemonic(ABANDON_ABOUT, passphrase="pw", account_path=path)
    account, keys = derive_keys("ETH", ABANDON, passphrase="pw", index=index)
    assert account.address == expected.address
    assert keys.private_key == bytes(expected.key)


def test_every_evm_chain_has_the_same_address() -> None:
    addresses = {derive_account(c, ABANDON).address for c in ("ETH", "BSC", "POLYGON", "OKX")}
    assert addresses == {"0x9858EfFD232B4033E47d90003D41EC34EcaEda94"}


# --- TRON --------------------------------------------------------------------------------

def test_tron_wallet_core_vector() -> None:
    trezor = parse_mnemonic(RIPPLE)
    assert derive_account("TRON", trezor, passphrase="TREZOR").address == (
        "THJrqfbBhoB1vX97da6S6nXWkafCxpyCNB")


@pytest.mark.parametrize("index", [0, 3])
def test_tron_is_base58check_of_0x41_and_the_evm_address(index: int) -> None:
    account, keys = derive_keys("TRON", ABANDON, index=index)
    assert account.path == f"m/44'/195'/0'/0/{index}"
    uncompressed = _uncompressed(keys.private_key)
    evm = evm_address_from_public_key(uncompressed)
    assert account.address == Base58Encoder.CheckEncode(b"\x41" + bytes.fromhex(evm[2:]))


def _uncompressed(private_key: bytes) -> bytes:
    from bip_utils import Secp256k1PrivateKey

    return Secp256k1PrivateKey.FromBytes(private_key).PublicKey().RawUncompressed().ToBytes()[1:]


# --- Solana, Aptos -----------------------------------------------------------------------

def test_solana_phantom_path_vector() -> None:
    team = parse_mnemonic(TEAM_ENGINE)
    account = derive_account("SOL", team)
    assert account.path == "m/44'/501'/0'/0'"
    assert account.address == "CgWJeEWkiYqosy1ba7a3wn9HAQuHyK48xs3LM4SSDc1C"
    assert account.public_key.hex() == (
        "ad8f57924dce62f9040f93b4f6ce3c3d39afde7e29bcb4013dad59db7913c4c7")


def test_solana_trust_wallet_path_vectors() -> None:
    team = parse_mnemonic(TEAM_ENGINE)
    assert derive_account("SOL", team, path="m/44'/501'/0'").address == (
        "HiipoCKL8hX2RVmJTz3vaLy34hS2zLhWWMkUWtw85TmZ")
    shoot = parse_mnemonic(SHOOT_ISLAND)
    assert derive_account("SOL", shoot, path="m/44'/501'/0'").address == (
        "2bUBiBNZyD29gP1oV6de7nxowMLoDBtopMMTGgMvjG5m")


def test_solana_index_is_the_account_level() -> None:
    assert derive_account("SOL", ABANDON, index=2).path == "m/44'/501'/2'/0'"


def test_aptos_key_vector() -> None:
    account, keys = derive_keys("APT", parse_mnemonic(RIPPLE))
    assert account.path == "m/44'/637'/0'/0'/0'"
    assert keys.private_key.hex() == (
        "7f2634c0e2414a621e96e39c41d09021700cee12ee43328ed094c5580cd0bd6f")
    assert account.public_key.hex() == (
        "633e5c7e355bdd484706436ce1f06fdf280bd7c2229a7f9b6489684412c6967c")
    assert len(account.address) == 66


@pytest.mark.parametrize("chain", ["SOL", "APT"])
def test_ed25519_paths_must_be_hardened(chain: str) -> None:
    with pytest.raises(DerivationPathInvalid):
        derive_account(chain, ABANDON, path="m/44'/501'/0'/0")


# --- Polkadot and Kusama -----------------------------------------------------------------

def test_substrate_mini_secret_vector() -> None:
    # polkadot-js/common util-crypto mnemonic/toMiniSecret.spec.ts
    mnemonic = parse_mnemonic("seed sock milk update focus rotate barely fade car face "
                              "mechanic mercy")
    assert substrate_mini_secret(mnemonic).hex() == (
        "4d1ab2a57929edfd018aaa974e62ed557e3f54b4104acabedf73c8f5a1dbb029")


# Substrate's secret URI test vectors (polkadot-js/common keyring suri.spec.ts), format 42.
BOTTOM_DRIVE = "bottom drive obey lake curtain smoke basket hold race lonely fit walk"


@pytest.mark.parametrize(("path", "public_key", "generic_address"), [
    ("", "46ebddef8cd9bb167dc30878d7113b7e168e6f0646beffd77d69d39bad76b47a",
     "5DfhGyQdFobKM8NsWvEeAKk5EQQgYe9AydgJ7rMB6E1EqRzV"),
    ("//Alice", "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d",
     "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"),
    ("//foo/bar", "3841947ffcde6f5fef26fb68b59bb8665637e30e32ec2051f99cf6b9c674fe09",
     "5DLU27is5iViNopQb2KxsTyPx6j4vCu8X3sk3j3NNLkPCqKM"),
])
def test_sr25519_secret_uri_vectors(path: str, public_key: str, generic_address: str) -> None:
    account = derive_account("DOT", parse_mnemonic(BOTTOM_DRIVE), path=path)
    assert account.scheme is Scheme.SR25519
    assert account.public_key.hex() == public_key
    assert SubstrateSr25519AddrEncoder.EncodeKey(account.public_key, ss58_format=42) == (
        generic_address)
    assert account.address.startswith("1")  # Polkadot's SS58 format 0


def test_kusama_subkey_vector() -> None:
    # `subkey -n kusama inspect "favorite liar zebra ..."` (sr25519, no derivation path)
    mnemonic = parse_mnemonic("favorite liar zebra assume hurt cage any damp inherit rescue "
                              "delay panic")
    account = derive_account("KSM", mnemonic)
    assert account.public_key.hex() == (
        "6ce96ae5c300096b09dbd4567b0574f6a1281ae0e5cfe4f6b0233d1821f6206b")
    assert account.address == "F382dFg2DpXsEeCn1FBf6nTz5LAJcEL5aWrG4mmob1ndPqd"


def test_sr25519_uses_entropy_so_passphrase_changes_the_key() -> None:
    plain = derive_account("DOT", ABANDON)
    with_passphrase = derive_account("DOT", ABANDON, passphrase="x")
    assert plain.address != with_passphrase.address


# polkadot-js/common util-crypto hd/ledger/index.spec.ts: the ed25519 seed (secret key's
# first 32 bytes) that Ledger's app derives.
OPEN_JELLY = ("open jelly jeans corn ketchup supreme brief element armed lens vault weather "
              "original scissors rug priority vicious lesson raven spot gossip powder person "
              "volcano")


@pytest.mark.parametrize(("chain", "phrase", "passphrase", "path", "seed"), [
    ("KSM", ABANDON_ABOUT, "", "m/44'/434'/0'/0'/0'",
     "98cb4e14e0e08ea876f88d728545ea7572dc07dbbe69f1731c418fb827e69d41"),
    ("KSM", OPEN_JELLY, "", "m/44'/434'/0'/0'/0'",
     "70e9010e84c81095aaa5f63b1c5a6a66a1dcbec017a23c2f3b7a1b08fe5ea65a"),
    ("KSM", OPEN_JELLY, "", "m/44'/434'/5'/0'/7'",
     "f06730efb1e6ea59ac752a7c3620fade3909062fb88597856cc3af72045fa65a"),
    ("DOT", ABANDON_ABOUT, "", "m/44'/354'/0'/0'/0'",
     "e8c68348586d53e4e8d1a864b0e4e17c75e4eb06e0c63c1432bef2ba29e69d41"),
    ("DOT", OPEN_JELLY, "testing", "m/44'/354'/0'/0'/0'",
     "3890e8db837eba3f8f25215c753e1091062298ce671a51441e7ef89a7adc4f48"),
])
def test_ledger_scheme_vectors(chain: str, phrase: str, passphrase: str, path: str,
                               seed: str) -> None:
    account, keys = derive_keys(chain, parse_mnemonic(phrase), passphrase=passphrase,
                                path=path, scheme="ledger")
    assert keys.private_key.hex() == seed
    assert account.address == import_private_key(chain, seed, scheme="ed25519").address


def test_ledger_default_path() -> None:
    assert derive_account("DOT", ABANDON, scheme="ledger").path == "m/44'/354'/0'/0'/0'"
    assert derive_account("KSM", ABANDON, scheme="ledger", index=3).path == (
        "m/44'/434'/3'/0'/0'")


@pytest.mark.parametrize(("chain", "coin"), [("DOT", Bip44Coins.POLKADOT_ED25519_SLIP),
                                             ("KSM", Bip44Coins.KUSAMA_ED25519_SLIP)])
def test_slip10_ed25519_matches_bip_utils_bip44_route(chain: str, coin: Bip44Coins) -> None:
    # No published vector found for this scheme: cross-check with bip-utils' own BIP44 class.
    expected = (Bip44.FromSeed(ABANDON.seed(), coin).Purpose().Coin().Account(0)
                .Change(Bip44Changes.CHAIN_EXT).AddressIndex(0).PublicKey().ToAddress())
    account = derive_account(chain, ABANDON, scheme="ed25519")
    assert account.path == f"m/44'/{CHAINS[chain].coin_type}'/0'/0'/0'"
    assert account.address == expected


def test_the_three_substrate_schemes_differ() -> None:
    addresses = {derive_account("DOT", ABANDON, scheme=s).address
                 for s in ("sr25519", "ed25519", "ledger")}
    assert len(addresses) == 3


# --- EOS ---------------------------------------------------------------------------------

def test_eos_public_key_formats_agree() -> None:
    account = derive_account("EOS", ABANDON)
    assert account.path == "m/44'/194'/0'/0/0"
    assert account.address.startswith("EOS")
    assert validate_eos_public_key(account.address) == account.public_key
    k1 = eos_public_key_k1(account.public_key)
    assert k1.startswith("PUB_K1_")
    assert validate_eos_public_key(k1) == account.public_key


def test_eos_matches_bip_utils_bip44_route() -> None:
    expected = (Bip44.FromSeed(ABANDON.seed(), Bip44Coins.EOS).Purpose().Coin().Account(0)
                .Change(Bip44Changes.CHAIN_EXT).AddressIndex(0).PublicKey().ToAddress())
    assert derive_account("EOS", ABANDON).address == expected


# --- one private key ---------------------------------------------------------------------

@pytest.mark.parametrize(("chain", "address"), sorted(KEY_46_ADDRESSES.items()))
def test_import_private_key_wallet_core_vectors(chain: str, address: str) -> None:
    imported = import_private_key(chain, KEY_46)
    assert imported.address == address
    assert "46" * 4 not in repr(imported)


@pytest.mark.parametrize(("chain", "address"), sorted(KEY_46_ED25519_ADDRESSES.items()))
def test_import_ed25519_substrate_key_wallet_core_vectors(chain: str, address: str) -> None:
    assert import_private_key(chain, "0x" + KEY_46, scheme="ed25519").address == address


def test_import_solana_keypair_formats() -> None:
    secret = bytes.fromhex(KEY_46)
    public = import_private_key("SOL", KEY_46).keys.public_key
    base58 = Base58Encoder.Encode(secret + public)
    assert import_private_key("SOL", base58).address == KEY_46_ADDRESSES["SOL"]
    as_json = "[" + ",".join(str(b) for b in secret + public) + "]"
    assert import_private_key("SOL", as_json).address == KEY_46_ADDRESSES["SOL"]
    with pytest.raises(PrivateKeyInvalid):
        import_private_key("SOL", Base58Encoder.Encode(secret + bytes(32)))


def test_import_bitcoin_wif_and_address_types() -> None:
    from bip_utils import WifEncoder

    wif = WifEncoder.Encode(bytes.fromhex(KEY_46), net_ver=b"\x80")
    assert import_private_key("BTC", wif).address == KEY_46_ADDRESSES["BTC"]
    legacy = import_private_key("BTC", KEY_46, btc_address_purpose=44).address
    assert legacy.startswith("1")
    assert import_private_key("BTC", KEY_46, btc_address_purpose=49).address.startswith("3")


def test_import_eos_legacy_wif_and_pvt_k1() -> None:
    from bip_utils import WifEncoder
    from bip_utils.utils.crypto import Ripemd160

    raw = bytes.fromhex(KEY_46)
    legacy = WifEncoder.Encode(raw, net_ver=b"\x80",
                               pub_key_mode=__import__("bip_utils").P2PKHPubKeyModes.UNCOMPRESSED)
    assert import_private_key("EOS", legacy).address == KEY_46_ADDRESSES["EOS"]
    k1 = "PVT_K1_" + Base58Encoder.Encode(raw + Ripemd160.QuickDigest(raw + b"K1")[:4])
    assert import_private_key("EOS", k1).address == KEY_46_ADDRESSES["EOS"]
    with pytest.raises(PrivateKeyInvalid):
        import_private_key("EOS", k1[:-1] + ("1" if k1[-1] != "1" else "2"))


@pytest.mark.parametrize("text", ["", "zz", "00" * 31, "00" * 32, "ff" * 32, "0x" + "46" * 33])
def test_import_rejects_bad_keys(text: str) -> None:
    with pytest.raises(PrivateKeyInvalid):
        import_private_key("ETH", text)


# --- paths and schemes -------------------------------------------------------------------

@pytest.mark.parametrize("path", ["44'/60'/0'/0/0", "m/44'/60'/x", "m//0", "m/4294967296",
                                  "m/44'/60'/0'/0/0/1/2/3/4/5/6"])
def test_bad_paths(path: str) -> None:
    with pytest.raises(DerivationPathInvalid):
        derive_account("ETH", ABANDON, path=path)


def test_hardened_may_be_written_h() -> None:
    assert derive_account("ETH", ABANDON, path="m/44h/60h/0h/0/0").address == (
        derive_account("ETH", ABANDON).address)


@pytest.mark.parametrize("path", ["foo", "///password", "m/44'/354'"])
def test_bad_substrate_paths(path: str) -> None:
    with pytest.raises(DerivationPathInvalid):
        derive_account("DOT", ABANDON, path=path)


def test_path_and_index_together_are_refused() -> None:
    with pytest.raises(DerivationPathInvalid):
        derive_account("ETH", ABANDON, path="m/44'/60'/0'/0/0", index=1)


def test_scheme_must_fit_the_chain() -> None:
    with pytest.raises(DerivationSchemeUnsupported):
        derive_account("ETH", ABANDON, scheme="sr25519")
    with pytest.raises(DerivationSchemeUnsupported):
        derive_account("DOT", ABANDON, scheme="rsa")


def test_unknown_chain() -> None:
    with pytest.raises(ChainUnknown) as caught:
        derive_account("DOGE", ABANDON)
    assert caught.value.code == "chain_unknown"


def test_every_chain_derives_by_default() -> None:
    for symbol, chain in CHAINS.items():
        account = derive_account(symbol, ABANDON)
        assert account.path == default_path(chain)
        assert account.address


def test_keypair_repr_hides_the_secret() -> None:
    _, keys = derive_keys("ETH", ABANDON)
    assert keys.private_key.hex() not in repr(keys)
