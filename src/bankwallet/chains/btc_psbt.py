"""Native SegWit (P2WPKH, BIP84) Bitcoin payments as PSBTs (BIP174), built and signed offline.

``build_psbt`` needs only public keys (it takes the phrase to derive them and the account's
fingerprint; it never signs), so it can run where the customer reviews the payment;
``sign_psbt`` signs only inputs whose BIP32 derivation belongs to this phrase and whose
witness UTXO script is that key's own P2WPKH script, then finalizes to a raw transaction.
Transactions signal replace-by-fee (BIP125) so a stuck payment can be bumped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from embit import bip32, script
from embit.finalizer import finalize_psbt
from embit.psbt import PSBT, DerivationPath
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from bankwallet.chains.addresses import validate_address
from bankwallet.chains.derive import btc_purpose
from bankwallet.chains.errors import AddressInvalid, DerivationPathInvalid, PsbtInvalid
from bankwallet.chains.mnemonic import Mnemonic

MAX_INPUTS = 200
MAX_OUTPUTS = 50
MAX_PSBT_CHARS = 1_000_000
DUST_SAT = 294  # below this a P2WPKH output costs more to spend than it holds
MAX_MONEY_SAT = 21_000_000 * 100_000_000
MAX_FEE_SAT = 10_000_000  # 0.1 BTC: a larger fee is a mistake, not a choice
RBF_SEQUENCE = 0xFFFF_FFFD
CHANGE_PATH = "m/84'/0'/0'/1/{i}"
_TXID = re.compile(r"^[0-9a-f]{64}$")
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")


@dataclass(frozen=True, slots=True)
class Utxo:
    txid: str  # as block explorers show it
    vout: int
    amount_sat: int
    path: str  # of the key that owns it, e.g. m/84'/0'/0'/0/3


@dataclass(frozen=True, slots=True)
class Payment:
    address: str
    amount_sat: int


@dataclass(frozen=True, slots=True)
class PsbtDraft:
    psbt: str  # base64
    fee_sat: int  # includes change too small to keep (dust)
    change_sat: int


@dataclass(frozen=True, slots=True)
class SignedBitcoinTx:
    raw: str  # hex, for sendrawtransaction
    txid: str
    fee_sat: int


def build_psbt(mnemonic: Mnemonic, *, utxos: list[Utxo], payments: list[Payment],
               fee_sat: int, passphrase: str = "", change_index: int = 0) -> PsbtDraft:
    _check_sizes(utxos, payments, fee_sat)
    root = bip32.HDKey.from_seed(mnemonic.seed(passphrase))
    total_in = sum(u.amount_sat for u in utxos)
    total_out = sum(p.amount_sat for p in payments)
    change_sat = total_in - total_out - fee_sat
    if change_sat < 0:
        raise PsbtInvalid(f"the coins hold {total_in} sat; payments and fee need "
                          f"{total_out + fee_sat}")
    outputs = [TransactionOutput(p.amount_sat, _script_for(p.address)) for p in payments]
    keep_change = change_sat >= DUST_SAT
    change_path = CHANGE_PATH.format(i=change_index)
    if keep_change:
        outputs.append(TransactionOutput(change_sat, _p2wpkh(root, change_path)))
    tx = Transaction(version=2, locktime=0, vout=outputs, vin=[
        TransactionInput(bytes.fromhex(u.txid), u.vout, sequence=RBF_SEQUENCE) for u in utxos])
    psbt = PSBT(tx)
    for scope, utxo in zip(psbt.inputs, utxos, strict=True):
        key = _child(root, utxo.path)
        scope.witness_utxo = TransactionOutput(utxo.amount_sat, script.p2wpkh(key))
        scope.bip32_derivations[key] = _derivation(root, utxo.path)
    if keep_change:
        change_key = _child(root, change_path)
        psbt.outputs[-1].bip32_derivations[change_key] = _derivation(root, change_path)
    fee = total_in - sum(o.value for o in outputs)
    return PsbtDraft(psbt.to_string(), fee, change_sat if keep_change else 0)


def sign_psbt(psbt_base64: str, mnemonic: Mnemonic, *, passphrase: str = "") -> SignedBitcoinTx:
    psbt = _parse(psbt_base64)
    root = bip32.HDKey.from_seed(mnemonic.seed(passphrase))
    for i, scope in enumerate(psbt.inputs):
        _check_input_is_ours(root, i, scope)
    fee = psbt.fee()
    if not 0 < fee <= MAX_FEE_SAT:
        raise PsbtInvalid(f"the fee would be {fee} sat")
    if psbt.sign_with(root) != len(psbt.inputs):
        raise PsbtInvalid("not every input could be signed with this recovery phrase")
    tx = finalize_psbt(psbt)
    if tx is None:
        raise PsbtInvalid("the signed transaction could not be finalized")
    return SignedBitcoinTx(tx.serialize().hex(), tx.txid().hex(), fee)


def _check_sizes(utxos: list[Utxo], payments: list[Payment], fee_sat: int) -> None:
    if not 0 < len(utxos) <= MAX_INPUTS:
        raise PsbtInvalid(f"spend 1 to {MAX_INPUTS} coins")
    if not 0 < len(payments) <= MAX_OUTPUTS:
        raise PsbtInvalid(f"pay 1 to {MAX_OUTPUTS} addresses")
    if not 0 < fee_sat <= MAX_FEE_SAT:
        raise PsbtInvalid(f"the fee must be between 1 and {MAX_FEE_SAT} sat")
    for utxo in utxos:
        if not _TXID.match(utxo.txid) or not 0 <= utxo.vout < 2**32:
            raise PsbtInvalid("a coin is a 64-hex-digit txid and an output number")
        if not 0 < utxo.amount_sat <= MAX_MONEY_SAT:
            raise PsbtInvalid("a coin's amount is out of range")
        if btc_purpose(utxo.path) != 84:
            raise DerivationPathInvalid("only native SegWit (m/84') coins can be spent here")
    if len({(u.txid, u.vout) for u in utxos}) != len(utxos):
        raise PsbtInvalid("the same coin is spent twice")
    for payment in payments:
        if not DUST_SAT <= payment.amount_sat <= MAX_MONEY_SAT:
            raise PsbtInvalid(f"a payment must be at least {DUST_SAT} sat")


def _script_for(address: str) -> script.Script:
    try:
        return script.Script.from_address(validate_address("BTC", address))
    except AddressInvalid:
        raise
    except Exception:  # embit: a valid address of a kind it cannot pay to
        raise PsbtInvalid(f"cannot pay to {address}") from None


def _child(root: bip32.HDKey, path: str) -> object:
    return root.derive(path.replace("'", "h")).key.get_public_key()


def _p2wpkh(root: bip32.HDKey, path: str) -> script.Script:
    return script.p2wpkh(_child(root, path))


def _derivation(root: bip32.HDKey, path: str) -> DerivationPath:
    return DerivationPath(root.my_fingerprint, bip32.parse_path(path.replace("'", "h")))


def _parse(psbt_base64: str) -> PSBT:
    if len(psbt_base64) > MAX_PSBT_CHARS:
        raise PsbtInvalid("the PSBT is too large")
    try:
        psbt = PSBT.from_string(psbt_base64.strip())
    except Exception:  # embit raises assorted errors on malformed input
        raise PsbtInvalid("not a valid base64 PSBT") from None
    if not 0 < len(psbt.inputs) <= MAX_INPUTS:
        raise PsbtInvalid(f"a PSBT spends 1 to {MAX_INPUTS} coins")
    return psbt


def _check_input_is_ours(root: bip32.HDKey, index: int, scope: object) -> None:
    utxo = scope.witness_utxo  # type: ignore[attr-defined]
    if utxo is None:
        raise PsbtInvalid(f"input {index} has no witness UTXO (amount and script)")
    ours = [(key, d) for key, d in scope.bip32_derivations.items()  # type: ignore[attr-defined]
            if d.fingerprint == root.my_fingerprint]
    if len(ours) != 1:
        raise PsbtInvalid(f"input {index} is not a coin of this recovery phrase")
    key, derivation = ours[0]
    derived = root.derive(derivation.derivation).key.get_public_key()
    if derived != key or script.p2wpkh(derived).data != utxo.script_pubkey.data:
        raise PsbtInvalid(f"input {index}'s key or script does not match its derivation")


def raw_transaction(text: str) -> str:
    """The raw transaction (hex) to broadcast, from raw hex or from a signed PSBT (base64,
    finalized or with every signature), as another signer may hand it over."""
    text = text.strip()
    if _HEX.match(text):
        try:
            return Transaction.parse(bytes.fromhex(text)).serialize().hex()
        except Exception:  # embit raises assorted errors on malformed bytes
            raise PsbtInvalid("not a Bitcoin transaction") from None
    psbt = _parse(text)
    try:
        tx = finalize_psbt(psbt)
    except Exception:  # a script embit cannot finalize
        tx = None
    if tx is None:
        raise PsbtInvalid("the PSBT is not signed yet: sign every input first")
    return tx.serialize().hex()

