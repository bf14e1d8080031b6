from __future__ import annotations

import pytest

from bankwallet.chains.errors import AddressInvalid, AmountInvalid
from bankwallet.chains.uri import minor_to_decimal, qr_png, qr_svg, receive_uri

ETH = "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"
BTC = "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"


def test_eip681_with_chain_id_and_wei() -> None:
    uri = receive_uri("ETH", ETH.lower(), amount_minor=10**18)
    assert uri == f"ethereum:{ETH}@1?value={10**18}"
    assert receive_uri("BSC", ETH) == f"ethereum:{ETH}@56"
    assert receive_uri("POLYGON", ETH).endswith("@137")
    assert receive_uri("OKX", ETH).endswith("@196")


def test_bip21_amount_label_and_message() -> None:
    uri = receive_uri("BTC", BTC, amount_minor=150_000_000, label="Luke-Jr",
                      message="Donation for 项目 & more")
    assert uri == (f"bitcoin:{BTC}?amount=1.5&label=Luke-Jr"
                   "&message=Donation%20for%20%E9%A1%B9%E7%9B%AE%20%26%20more")


def test_other_chains() -> None:
    sol = "H4JcMPicKkHcxxDjkyyrLoQj7Kcibd9t815ak4UvTr9M"
    assert receive_uri("SOL", sol, amount_minor=1) == f"solana:{sol}?amount=0.000000001"
    assert receive_uri("TRON", "TQLCsShbQNXMTVCjprY64qZmEA4rBarpQp", amount_minor=2_500_000) == (
        "tron:TQLCsShbQNXMTVCjprY64qZmEA4rBarpQp?amount=2.5")
    assert receive_uri("EOS", "eosio.token") == "eos:eosio.token"


@pytest.mark.parametrize(("minor", "decimals", "text"), [
    (1, 8, "0.00000001"), (100_000_000, 8, "1"), (123_456_789, 8, "1.23456789"),
    (10**18, 18, "1"), (5, 0, "5"), (2**256 - 1, 18,
                                     "115792089237316195423570985008687907853269984665640564039457.584007913129639935"),
])
def test_minor_to_decimal(minor: int, decimals: int, text: str) -> None:
    assert minor_to_decimal(minor, decimals) == text


def test_bad_input() -> None:
    with pytest.raises(AddressInvalid):
        receive_uri("BTC", ETH)
    with pytest.raises(AmountInvalid):
        receive_uri("BTC", BTC, amount_minor=0)
    with pytest.raises(AmountInvalid):
        receive_uri("BTC", BTC, amount_minor=-5)


def test_qr_codes() -> None:
    uri = receive_uri("BTC", BTC, amount_minor=1000)
    assert qr_svg(uri).startswith("<svg")
    assert qr_png(uri).startswith(b"\x89PNG")
