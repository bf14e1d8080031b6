from __future__ import annotations

import pytest

from bankwallet.chains.addresses import is_valid_address, validate_address, watch_only
from bankwallet.chains.errors import AddressInvalid, ChainUnknown
from tests.chains.vectors import KEY_46_ADDRESSES, KEY_46_ED25519_ADDRESSES

ETH = "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"


# EOS sends to account names, not keys: its published key is checked in test_derive.
PUBLISHED = {**KEY_46_ADDRESSES, **KEY_46_ED25519_ADDRESSES}
PUBLISHED.pop("EOS")


@pytest.mark.parametrize(("chain", "address"), sorted(PUBLISHED.items()))
def test_published_addresses_are_valid(chain: str, address: str) -> None:
    assert validate_address(chain, address) == address


@pytest.mark.parametrize(("chain", "text", "canonical"), [
    ("ETH", ETH.lower(), ETH),
    ("BSC", " " + ETH.upper().replace("0X", "0x") + "\n", ETH),
    ("BTC", "BC1QCR8TE4KR609GCAWUTMRZA0J4XV80JY8Z306FYU",
     "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"),
    ("BTC", "1MNF5RSaabFwcbtJirJwKnDytsXXEsVsNb", "1MNF5RSaabFwcbtJirJwKnDytsXXEsVsNb"),
    ("BTC", "38CahkVftQneLonbWtfWxiiaT2fdnzsEAN", "38CahkVftQneLonbWtfWxiiaT2fdnzsEAN"),
    ("APT", "0x1", "0x" + "0" * 63 + "1"),
    ("APT", "0xCE2FD04AC9EFA74F17595E5785E847A2399D7E637F5E8179244F76191F653276",
     KEY_46_ADDRESSES["APT"]),
    ("EOS", "eosio.token", "eosio.token"),
    ("EOS", "a", "a"),
])
def test_canonical_forms(chain: str, text: str, canonical: str) -> None:
    assert validate_address(chain, text) == canonical


@pytest.mark.parametrize(("chain", "text", "reason"), [
    ("ETH", "0x9858efFD232B4033E47d90003D41EC34EcaEda94", "checksum"),  # one letter's case
    ("ETH", "9858EfFD232B4033E47d90003D41EC34EcaEda94", "format"),
    ("ETH", "0x9858EfFD232B4033E47d90003D41EC34EcaEda9", "length"),
    ("ETH", "0x9858EfFD232B4033E47d90003D41EC34EcaEdaZZ", "charset"),
    ("TRON", "TQLCsShbQNXMTVCjprY64qZmEA4rBarpQq", "checksum"),
    ("TRON", "TQLCsShbQNXMTVCjprY64qZmEA4rBarpQ0", "charset"),
    ("TRON", "1MNF5RSaabFwcbtJirJwKnDytsXXEsVsNb", "prefix"),  # a Bitcoin address
    ("BTC", "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyv", "checksum"),
    ("BTC", "bc1qCR8te4kr609gcawutmrza0j4xv80jy8z306fyu", "format"),
    ("BTC", "tb1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu", "network"),
    ("BTC", "1MNF5RSaabFwcbtJirJwKnDytsXXEsVsNc", "checksum"),
    ("BTC", "TQLCsShbQNXMTVCjprY64qZmEA4rBarpQp", "prefix"),  # a TRON address
    ("SOL", "H4JcMPicKkHcxxDjkyyrLoQj7Kcibd9t815ak4Uv", "length"),
    ("SOL", "0x9858EfFD232B4033E47d90003D41EC34EcaEda94", "charset"),
    ("APT", "ce2fd04ac9efa74f17595e5785e847a2399d7e637f5e8179244f76191f653276", "format"),
    ("APT", "0x" + "1" * 65, "length"),
    ("APT", "0xg1", "charset"),
    ("DOT", KEY_46_ED25519_ADDRESSES["KSM"], "network"),
    ("KSM", KEY_46_ED25519_ADDRESSES["DOT"], "network"),
    ("DOT", KEY_46_ED25519_ADDRESSES["DOT"][:-1] + "9", "checksum"),
    ("EOS", "EOS5TrYnZP1RkDSUMzBY4GanCy6AP68kCMdkAb5EACkAwkdgRLShz", "format"),
    ("EOS", "Eosio", "format"),
    ("EOS", "abcdefghijklmn", "format"),
    ("EOS", "eosio.", "format"),
    ("EOS", "abcdefghijklz", "format"),  # a 13th character beyond j
    ("ETH", "", "format"),
    ("ETH", "0x" + "a" * 500, "length"),
])
def test_invalid_addresses_say_why(chain: str, text: str, reason: str) -> None:
    with pytest.raises(AddressInvalid) as caught:
        validate_address(chain, text)
    assert caught.value.reason == reason
    assert caught.value.code == "address_invalid"
    assert caught.value.extra == {"chain": chain, "reason": reason}
    assert not is_valid_address(chain, text)


def test_network_error_names_the_other_network() -> None:
    with pytest.raises(AddressInvalid) as caught:
        validate_address("DOT", KEY_46_ED25519_ADDRESSES["KSM"])
    assert "Kusama" in caught.value.detail


def test_wrong_checksum_is_never_corrected() -> None:
    with pytest.raises(AddressInvalid) as caught:
        validate_address("ETH", "0x9858efFD232B4033E47d90003D41EC34EcaEda94")
    assert ETH not in caught.value.detail


def test_watch_only() -> None:
    account = watch_only("eth", ETH.lower())
    assert (account.chain, account.address) == ("ETH", ETH)
    with pytest.raises(AddressInvalid):
        watch_only("BTC", ETH)
    with pytest.raises(ChainUnknown):
        watch_only("XRP", ETH)
