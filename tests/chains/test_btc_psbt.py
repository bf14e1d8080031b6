"""PSBT building and signing, checked against a BIP143 signature hash computed here by hand."""

from __future__ import annotations

import hashlib

import coincurve
import pytest
from bip_utils.utils.crypto import Ripemd160
from embit.psbt import PSBT
from embit.transaction import Transaction

from bankwallet.chains.btc_psbt import Payment, Utxo, build_psbt, sign_psbt
from bankwallet.chains.derive import derive_keys
from bankwallet.chains.errors import AddressInvalid, DerivationPathInvalid, PsbtInvalid
from bankwallet.chains.mnemonic import parse_mnemonic
from tests.chains.vectors import ABANDON_ABOUT, RIPPLE

ABANDON = parse_mnemonic(ABANDON_ABOUT)
TXID_A = "aa" * 31 + "01"
TXID_B = "bb" * 31 + "02"
PAY_TO = "bc1qhkfq3zahaqkkzx5mjnamwjsfpq2jk7z00ppggv"
COINS = [Utxo(TXID_A, 0, 60_000, "m/84'/0'/0'/0/0"), Utxo(TXID_B, 3, 50_000, "m/84'/0'/0'/0/1")]


def _dsha(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def _bip143_sighash(tx: Transaction, index: int, utxos: list[Utxo], pubkey: bytes) -> bytes:
    prevouts = b"".join(bytes.fromhex(u.txid)[::-1] + u.vout.to_bytes(4, "little")
                        for u in utxos)
    sequences = b"".join(inp.sequence.to_bytes(4, "little") for inp in tx.vin)
    outputs = b"".join(o.value.to_bytes(8, "little") + bytes([len(o.script_pubkey.data)])
                       + o.script_pubkey.data for o in tx.vout)
    key_hash = Ripemd160.QuickDigest(hashlib.sha256(pubkey).digest())
    utxo = utxos[index]
    preimage = (tx.version.to_bytes(4, "little") + _dsha(prevouts) + _dsha(sequences)
                + bytes.fromhex(utxo.txid)[::-1] + utxo.vout.to_bytes(4, "little")
                + b"\x19\x76\xa9\x14" + key_hash + b"\x88\xac"
                + utxo.amount_sat.to_bytes(8, "little")
                + tx.vin[index].sequence.to_bytes(4, "little") + _dsha(outputs)
                + tx.locktime.to_bytes(4, "little") + (1).to_bytes(4, "little"))
    return _dsha(preimage)


def test_build_and_sign_p2wpkh_payment() -> None:
    draft = build_psbt(ABANDON, utxos=COINS, payments=[Payment(PAY_TO, 70_000)], fee_sat=1_000)
    assert (draft.fee_sat, draft.change_sat) == (1_000, 39_000)
    signed = sign_psbt(draft.psbt, ABANDON)
    assert signed.fee_sat == 1_000
    tx = Transaction.parse(bytes.fromhex(signed.raw))
    assert signed.txid == tx.txid().hex()
    assert [o.value for o in tx.vout] == [70_000, 39_000]
    assert all(inp.sequence == 0xFFFF_FFFD for inp in tx.vin)  # replace-by-fee
    change_address = derive_keys("BTC", ABANDON, path="m/84'/0'/0'/1/0")[0].address
    assert tx.vout[1].script_pubkey.address() == change_address
    for index, coin in enumerate(COINS):
        _, keys = derive_keys("BTC", ABANDON, path=coin.path)
        der_signature, pubkey = tx.vin[index].witness.items
        assert pubkey == keys.public_key
        assert der_signature[-1] == 0x01  # SIGHASH_ALL
        sighash = _bip143_sighash(tx, index, COINS, pubkey)
        assert coincurve.PublicKey(pubkey).verify(der_signature[:-1], sighash, hasher=None)


def test_dust_change_goes_to_the_fee() -> None:
    draft = build_psbt(ABANDON, utxos=COINS[:1], payments=[Payment(PAY_TO, 58_800)],
                       fee_sat=1_000)
    assert (draft.fee_sat, draft.change_sat) == (1_200, 0)
    assert len(PSBT.from_string(draft.psbt).outputs) == 1


def test_another_phrase_cannot_sign() -> None:
    draft = build_psbt(ABANDON, utxos=COINS, payments=[Payment(PAY_TO, 70_000)], fee_sat=1_000)
    with pytest.raises(PsbtInvalid, match="not a coin of this recovery phrase"):
        sign_psbt(draft.psbt, parse_mnemonic(RIPPLE))
    with pytest.raises(PsbtInvalid):
        sign_psbt(draft.psbt, ABANDON, passphrase="another wallet")


@pytest.mark.parametrize(("utxos", "payments", "fee", "error"), [
    (COINS, [Payment(PAY_TO, 200_000)], 1_000, PsbtInvalid),
    (COINS, [Payment(PAY_TO, 100)], 1_000, PsbtInvalid),
    (COINS, [Payment("tb1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu", 1_000)], 1_000, AddressInvalid),
    (COINS, [Payment(PAY_TO, 1_000)], 0, PsbtInvalid),
    (COINS, [Payment(PAY_TO, 1_000)], 50_000_000, PsbtInvalid),
    ([COINS[0], COINS[0]], [Payment(PAY_TO, 1_000)], 1_000, PsbtInvalid),
    ([Utxo("xyz", 0, 1_000, "m/84'/0'/0'/0/0")], [Payment(PAY_TO, 500)], 100, PsbtInvalid),
    ([Utxo(TXID_A, 0, 60_000, "m/44'/0'/0'/0/0")], [Payment(PAY_TO, 500)], 100,
     DerivationPathInvalid),
    ([], [Payment(PAY_TO, 500)], 100, PsbtInvalid),
])
def test_bad_payments(utxos: list[Utxo], payments: list[Payment], fee: int,
                      error: type[Exception]) -> None:
    with pytest.raises(error):
        build_psbt(ABANDON, utxos=utxos, payments=payments, fee_sat=fee)


def test_garbage_psbt() -> None:
    with pytest.raises(PsbtInvalid):
        sign_psbt("not a psbt", ABANDON)
