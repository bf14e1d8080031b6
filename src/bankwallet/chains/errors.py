"""Typed errors of the multi-chain wallet, each with a stable code.

Some carry a fragment of what the customer typed (a mistyped mnemonic word) so the UI can say
which word is wrong; such errors are shown to that customer and must never be logged with
their ``extra``.
"""

from __future__ import annotations

from bankwallet.core.errors import BankwalletError, InvalidInput


class ChainUnknown(InvalidInput):
    code = "chain_unknown"
    title = "Unknown or unsupported chain"


class MnemonicBadLength(InvalidInput):
    code = "mnemonic_bad_length"
    title = "A recovery phrase has 12, 15, 18, 21 or 24 words"


class MnemonicInvalidWord(InvalidInput):
    code = "mnemonic_invalid_word"
    title = "A word is not in the recovery phrase word list"


class MnemonicBadChecksum(InvalidInput):
    code = "mnemonic_bad_checksum"
    title = "The recovery phrase checksum does not match"


class MnemonicLanguageUnsupported(InvalidInput):
    code = "mnemonic_language_unsupported"
    title = "Recovery phrases are supported in English and simplified Chinese"


class PrivateKeyInvalid(InvalidInput):
    code = "private_key_invalid"
    title = "Not a valid private key for this chain"


class DerivationPathInvalid(InvalidInput):
    code = "derivation_path_invalid"
    title = "Not a valid derivation path for this chain"


class DerivationSchemeUnsupported(InvalidInput):
    code = "derivation_scheme_unsupported"
    title = "This key scheme is not available for this chain"


class AddressInvalid(InvalidInput):
    code = "address_invalid"
    title = "Not a valid address for this chain"

    def __init__(self, chain: str, reason: str, why: str) -> None:
        # ``reason`` is a stable machine word (checksum, length, charset, prefix, network,
        # format) for translated UI messages; ``why`` is the English explanation.
        super().__init__(f"{chain} address invalid: {why}", chain=chain, reason=reason)
        self.reason = reason


class AmountInvalid(InvalidInput):
    code = "amount_invalid"
    title = "Not a valid amount"


class TransactionInvalid(InvalidInput):
    code = "transaction_invalid"
    title = "The transaction cannot be signed"


class TypedDataInvalid(InvalidInput):
    code = "typed_data_invalid"
    title = "Not valid EIP-712 typed data"


class WalletPinInvalid(InvalidInput):
    code = "wallet_pin_invalid"
    title = "The wallet PIN must have at least 6 characters"


class WalletPinWrong(BankwalletError):
    code = "wallet_pin_wrong"
    status = 403
    title = "Wrong wallet PIN"


class SealedSecretInvalid(InvalidInput):
    code = "sealed_secret_invalid"
    title = "The sealed wallet secret is damaged or of an unknown format"


class PsbtInvalid(InvalidInput):
    code = "psbt_invalid"
    title = "The Bitcoin transaction cannot be built or signed"
