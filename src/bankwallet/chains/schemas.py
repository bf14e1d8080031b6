"""API shapes of the crypto wallet. Secrets come in as ``SecretStr`` (never in a repr or a
log); the only secret that goes out is the recovery phrase, when it is explicitly shown.

Amounts are integers in the chain's smallest unit (wei, a token's base unit) and may exceed
2^53: JavaScript clients should read them as big integers (``amount`` has the decimal text).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints

from bankwallet.chains import service
from bankwallet.chains.models import AddressBookEntry, ChainTransaction
from bankwallet.chains.registry import get_chain

Name = Annotated[str, StringConstraints(min_length=1, max_length=service.MAX_NAME_CHARS)]
ChainSymbol = Annotated[str, StringConstraints(min_length=2, max_length=16)]
AddressText = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Pin = Annotated[SecretStr, Field(min_length=6, max_length=64)]
AmountMinor = Annotated[int, Field(gt=0, le=service.MAX_UINT256)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewWalletCreate(_In):
    kind: Literal["new"]
    name: Name
    pin: Pin
    word_count: Literal[12, 24] = 12
    language: Literal["en", "zh-CN"] = "en"
    passphrase: SecretStr = Field(default=SecretStr(""), max_length=256)


class MnemonicImport(_In):
    kind: Literal["mnemonic"]
    name: Name
    pin: Pin
    mnemonic: SecretStr = Field(min_length=1, max_length=1000)
    passphrase: SecretStr = Field(default=SecretStr(""), max_length=256)


class PrivateKeyImport(_In):
    kind: Literal["private_key"]
    name: Name
    pin: Pin
    chain: ChainSymbol = "ETH"
    private_key: SecretStr = Field(min_length=1, max_length=1000)


class WatchAddressIn(_In):
    chain: ChainSymbol
    address: AddressText


class WatchOnlyImport(_In):
    kind: Literal["watch_only"]
    name: Name
    addresses: list[WatchAddressIn] = Field(min_length=1,
                                            max_length=service.MAX_WATCH_ADDRESSES)


WalletCreate = Annotated[NewWalletCreate | MnemonicImport | PrivateKeyImport | WatchOnlyImport,
                         Field(discriminator="kind")]


class AddressRead(BaseModel):
    chain: str
    chain_name: str
    native_symbol: str
    address: str
    path: str | None
    scheme: str | None
    uri: str | None  # the receive link (EIP-681, BIP21, ...); None for an EOS public key

    @classmethod
    def of(cls, row: Any) -> AddressRead:
        spec = get_chain(row.chain)
        return cls(chain=spec.symbol, chain_name=spec.name, native_symbol=spec.native_symbol,
                   address=row.address, path=row.path, scheme=row.scheme,
                   uri=service.receive_link(row))


class AddressList(BaseModel):
    addresses: list[AddressRead]


class WalletRead(BaseModel):
    id: uuid.UUID
    name: str
    kind: Literal["mnemonic", "private_key", "watch_only"]
    origin: Literal["created", "imported"]
    language: str | None
    word_count: int | None
    has_passphrase: bool
    backed_up: bool
    created_at: dt.datetime
    addresses: list[AddressRead]

    @classmethod
    def of(cls, view: service.WalletView) -> WalletRead:
        w = view.wallet
        return cls(id=w.id, name=w.name, kind=w.kind, origin=w.origin, language=w.language,
                   word_count=w.word_count, has_passphrase=w.has_passphrase,
                   backed_up=w.backed_up_at is not None, created_at=w.created_at,
                   addresses=[AddressRead.of(a) for a in view.addresses])


class WalletCreated(WalletRead):
    # Only for a new wallet, this once: write the words down, then check them.
    mnemonic: list[str] | None = None


class WalletList(BaseModel):
    wallets: list[WalletRead]


class PinIn(_In):
    pin: Pin


class RevealRead(BaseModel):
    mnemonic: list[str] | None
    language: str | None
    private_key: str | None


class BackupCheckRead(BaseModel):
    id: uuid.UUID
    positions: list[int]  # 1-based: "word 3, word 7, word 11"
    attempts_left: int
    expires_at: dt.datetime

    @classmethod
    def of(cls, check: Any) -> BackupCheckRead:
        return cls(id=check.id, positions=list(check.positions),
                   attempts_left=max(0, service.BACKUP_CHECK_MAX_ATTEMPTS - check.attempts),
                   expires_at=check.expires_at)


class BackupCheckAnswer(_In):
    pin: Pin
    words: list[Annotated[SecretStr, Field(max_length=64)]] = Field(
        min_length=service.BACKUP_WORDS_ASKED, max_length=service.BACKUP_WORDS_ASKED)


class BackupCheckResult(BaseModel):
    backed_up: bool


class AssetBalanceRead(BaseModel):
    symbol: str
    decimals: int
    token: str | None
    amount_minor: int | None
    amount: str | None

    @classmethod
    def of(cls, asset: service.AssetBalance) -> AssetBalanceRead:
        return cls(symbol=asset.symbol, decimals=asset.decimals, token=asset.token,
                   amount_minor=asset.amount_minor,
                   amount=None if asset.amount_minor is None
                   else service.format_amount(asset.amount_minor, asset.decimals))


class HoldingRead(BaseModel):
    chain: str
    chain_name: str
    address: str
    status: Literal["ok", "not_configured", "unreachable", "wrong_network", "error",
                    "no_account"]
    native: AssetBalanceRead
    tokens: list[AssetBalanceRead]

    @classmethod
    def of(cls, holding: service.Holding) -> HoldingRead:
        return cls(chain=holding.chain, chain_name=get_chain(holding.chain).name,
                   address=holding.address, status=holding.status,
                   native=AssetBalanceRead.of(holding.native),
                   tokens=[AssetBalanceRead.of(t) for t in holding.tokens])


class PortfolioRead(BaseModel):
    wallet_id: uuid.UUID
    chains: list[HoldingRead]


class SendIn(_In):
    chain: ChainSymbol
    to: AddressText
    amount_minor: AmountMinor
    token: AddressText | None = None  # an ERC-20 contract the bank offers; None: the coin


class SendCreate(SendIn):
    pin: Pin
    # The most network fee the customer agreed to in the preview; above it nothing is sent.
    max_fee_wei: Annotated[int, Field(gt=0, le=service.MAX_UINT256)] | None = None

    def fingerprint_body(self) -> dict[str, Any]:
        """What identifies the request for its Idempotency-Key: everything but the PIN."""
        return self.model_dump(mode="json", exclude={"pin"})


class SendPreviewRead(BaseModel):
    chain: str
    chain_id: int
    from_address: str
    to: str
    token: str | None
    symbol: str
    decimals: int
    amount_minor: int
    amount: str
    nonce: int
    gas_limit: int
    max_fee_per_gas_wei: int
    max_priority_fee_per_gas_wei: int
    max_fee_wei: int
    max_fee: str  # in the chain's coin

    @classmethod
    def of(cls, plan: service.SendPlan) -> SendPreviewRead:
        return cls(chain=plan.chain, chain_id=plan.chain_id, from_address=plan.from_address,
                   to=plan.to_address, token=plan.token.address if plan.token else None,
                   symbol=plan.symbol, decimals=plan.decimals, amount_minor=plan.amount_minor,
                   amount=service.format_amount(plan.amount_minor, plan.decimals),
                   nonce=plan.nonce, gas_limit=plan.gas_limit,
                   max_fee_per_gas_wei=plan.max_fee_per_gas_wei,
                   max_priority_fee_per_gas_wei=plan.max_priority_fee_per_gas_wei,
                   max_fee_wei=plan.max_fee_wei,
                   max_fee=service.format_amount(plan.max_fee_wei, 18))


class TransactionRead(BaseModel):
    id: uuid.UUID
    wallet_id: uuid.UUID
    chain: str
    chain_id: int
    status: Literal["signed", "pending", "confirmed", "failed"]
    tx_hash: str
    from_address: str
    to: str
    token: str | None
    symbol: str
    decimals: int
    amount_minor: int
    amount: str
    nonce: int
    gas_limit: int
    max_fee_per_gas_wei: int
    fee_wei: int | None
    block_number: int | None
    failure_code: str | None
    created_at: dt.datetime
    broadcast_at: dt.datetime | None
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, row: ChainTransaction) -> TransactionRead:
        return cls(id=row.id, wallet_id=row.wallet_id, chain=row.chain, chain_id=row.chain_id,
                   status=row.status, tx_hash=row.tx_hash, from_address=row.from_address,
                   to=row.to_address, token=row.token_address, symbol=row.symbol,
                   decimals=row.decimals, amount_minor=int(row.amount_minor),
                   amount=service.format_amount(int(row.amount_minor), row.decimals),
                   nonce=row.nonce, gas_limit=row.gas_limit,
                   max_fee_per_gas_wei=int(row.max_fee_per_gas_wei),
                   fee_wei=None if row.fee_wei is None else int(row.fee_wei),
                   block_number=row.block_number, failure_code=row.failure_code,
                   created_at=row.created_at, broadcast_at=row.broadcast_at,
                   finished_at=row.finished_at)


class TransactionList(BaseModel):
    transactions: list[TransactionRead]


class MessageSign(_In):
    pin: Pin
    message: Annotated[str, StringConstraints(min_length=1, max_length=64 * 1024)]
    encoding: Literal["text", "hex"] = "text"


class MessageSignatureRead(BaseModel):
    address: str
    signature: str


class TypedDataIn(_In):
    typed_data: dict[str, Any]


class TypedDataSign(TypedDataIn):
    pin: Pin


class PreviewFieldRead(BaseModel):
    path: str
    type: str
    value: str


class TypedDataPreviewRead(BaseModel):
    primary_type: str
    domain: list[PreviewFieldRead]
    fields: list[PreviewFieldRead]
    warnings: list[str]

    @classmethod
    def of(cls, preview: Any) -> TypedDataPreviewRead:
        return cls(primary_type=preview.primary_type,
                   domain=[PreviewFieldRead(path=f.path, type=f.type, value=f.value)
                           for f in preview.domain],
                   fields=[PreviewFieldRead(path=f.path, type=f.type, value=f.value)
                           for f in preview.fields],
                   warnings=list(preview.warnings))


class TypedDataSignatureRead(BaseModel):
    address: str
    digest: str
    signature: str


class AddressBookEntryCreate(_In):
    chain: ChainSymbol
    address: AddressText
    label: Name


class AddressBookEntryRead(BaseModel):
    id: uuid.UUID
    chain: str
    address: str
    label: str
    created_at: dt.datetime

    @classmethod
    def of(cls, entry: AddressBookEntry) -> AddressBookEntryRead:
        return cls(id=entry.id, chain=entry.chain, address=entry.address, label=entry.label,
                   created_at=entry.created_at)


class OwnAddressRead(BaseModel):
    wallet_id: uuid.UUID
    wallet_name: str
    chain: str
    address: str


class AddressBookRead(BaseModel):
    own: list[OwnAddressRead]
    saved: list[AddressBookEntryRead]


class BroadcastIn(_In):
    """A transaction signed offline: Bitcoin raw hex or a signed PSBT (base64), TRON's signed
    protobuf in hex (``raw_hex``), Solana's wire transaction in base64."""

    signed: Annotated[str, StringConstraints(min_length=1, max_length=service.MAX_RELAY_CHARS)]


class RelayedRead(BaseModel):
    chain: str
    txid: str
    status: Literal["pending", "confirmed", "failed"]
    already_known: bool = False
    block_number: int | None = None
    confirmations: int = 0

    @classmethod
    def of(cls, relayed: service.Relayed) -> RelayedRead:
        return cls(chain=relayed.chain, txid=relayed.txid, status=relayed.status,
                   already_known=relayed.already_known, block_number=relayed.block_number,
                   confirmations=relayed.confirmations)


class NodeRead(BaseModel):
    chain: str
    configured: bool


class NodeList(BaseModel):
    nodes: list[NodeRead]
