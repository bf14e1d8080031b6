from __future__ import annotations

import pytest

from bankwallet.chains.errors import SealedSecretInvalid, WalletPinInvalid, WalletPinWrong
from bankwallet.chains.vault import (
    MAX_COST,
    PRODUCTION_COST,
    KdfCost,
    needs_reseal,
    open_secret,
    seal_secret,
)

# Production parameters are the default; tests pass a cheap cost so they stay fast.
CHEAP = KdfCost(time_cost=1, memory_kib=64, parallelism=1)
SECRET = bytes(range(32))


def test_round_trip() -> None:
    blob = seal_secret(SECRET, "246813", cost=CHEAP)
    assert open_secret(blob, "246813") == SECRET
    assert SECRET not in blob


def test_each_seal_is_different() -> None:
    assert seal_secret(SECRET, "246813", cost=CHEAP) != seal_secret(SECRET, "246813", cost=CHEAP)


def test_wrong_pin() -> None:
    blob = seal_secret(SECRET, "246813", cost=CHEAP)
    with pytest.raises(WalletPinWrong) as caught:
        open_secret(blob, "246814")
    assert caught.value.code == "wallet_pin_wrong"


def test_full_width_digits_are_the_same_pin() -> None:
    blob = seal_secret(SECRET, "２４６８１３", cost=CHEAP)
    assert open_secret(blob, "246813") == SECRET


@pytest.mark.parametrize("position", [-1, -20, -40])
def test_tampered_ciphertext_is_detected(position: int) -> None:
    blob = bytearray(seal_secret(SECRET, "246813", cost=CHEAP))
    blob[position] ^= 0x01
    with pytest.raises(SealedSecretInvalid):
        open_secret(bytes(blob), "246813")


def test_tampered_nonce_is_detected() -> None:
    blob = bytearray(seal_secret(SECRET, "246813", cost=CHEAP))
    blob[3 + 1 + 1 + 4 + 4 + 1 + 16 + 16] ^= 0x01  # the nonce's first byte
    with pytest.raises(SealedSecretInvalid):
        open_secret(bytes(blob), "246813")


def test_tampered_cost_changes_the_key() -> None:
    blob = bytearray(seal_secret(SECRET, "246813", cost=CHEAP))
    blob[8] ^= 0x02  # time_cost 1 -> 3: another key, so the PIN check fails
    with pytest.raises((WalletPinWrong, SealedSecretInvalid)):
        open_secret(bytes(blob), "246813")


@pytest.mark.parametrize("blob", [b"", b"BWV", b"XXX" + bytes(100)])
def test_garbage_is_refused(blob: bytes) -> None:
    with pytest.raises(SealedSecretInvalid):
        open_secret(blob, "246813")


def test_unknown_version_is_refused() -> None:
    blob = bytearray(seal_secret(SECRET, "246813", cost=CHEAP))
    blob[3] = 2
    with pytest.raises(SealedSecretInvalid, match="version 1"):
        open_secret(bytes(blob), "246813")


def test_a_blob_cannot_demand_huge_memory() -> None:
    blob = bytearray(seal_secret(SECRET, "246813", cost=CHEAP))
    blob[9:13] = (MAX_COST.memory_kib + 1).to_bytes(4, "big")
    with pytest.raises(SealedSecretInvalid, match="out of bounds"):
        open_secret(bytes(blob), "246813")


@pytest.mark.parametrize("pin", ["", "12345", "１２３４５"])
def test_short_pins_are_refused(pin: str) -> None:
    with pytest.raises(WalletPinInvalid):
        seal_secret(SECRET, pin, cost=CHEAP)


def test_empty_and_huge_secrets_are_refused() -> None:
    with pytest.raises(SealedSecretInvalid):
        seal_secret(b"", "246813", cost=CHEAP)
    with pytest.raises(SealedSecretInvalid):
        seal_secret(bytes(5000), "246813", cost=CHEAP)


def test_production_cost_is_strong_and_cheap_blobs_ask_for_reseal() -> None:
    assert PRODUCTION_COST.memory_kib >= 64 * 1024 and PRODUCTION_COST.time_cost >= 3
    blob = seal_secret(SECRET, "246813", cost=CHEAP)
    assert needs_reseal(blob)
    assert not needs_reseal(blob, CHEAP)
