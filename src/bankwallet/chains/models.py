"""The self-custody crypto wallet's tables.

The bank never holds a usable key: a wallet's secret (its recovery phrase's entropy and
passphrase, or one private key) is sealed under the customer's PIN (``vault``) and that blob is
envelope-encrypted again with the bank's keyring, so neither a database copy nor the bank's
keys alone open it. Public addresses are stored in the clear: receiving and balances need no
PIN. Amounts on chains outgrow 64 bits (wei), so they are stored as decimal text.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from bankwallet.core.crypto import register_encrypted_column
from bankwallet.core.db import Base, JSONType, UTCDateTime

SEALED_CONTEXT = "chains_wallet.sealed"


class Wallet(Base):
    __tablename__ = "chains_wallet"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identity_user.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # mnemonic | private_key | watch_only
    origin: Mapped[str] = mapped_column(String(16))  # created | imported
    language: Mapped[str | None] = mapped_column(String(8))  # en | zh-CN (mnemonic wallets)
    word_count: Mapped[int | None] = mapped_column(Integer)
    has_passphrase: Mapped[bool] = mapped_column(Boolean)
    # vault.seal_secret(secret, PIN), then envelope-encrypted (SEALED_CONTEXT); None when
    # watch-only.
    sealed_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    backed_up_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


register_encrypted_column(Wallet.__tablename__, "sealed_enc", context=SEALED_CONTEXT)


class Address(Base):
    """A wallet's public address on one chain (its default account)."""

    __tablename__ = "chains_address"
    __table_args__ = (UniqueConstraint("wallet_id", "chain", "address"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    wallet_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("chains_wallet.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    chain: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(128))  # EOS: the public key (no account yet)
    path: Mapped[str | None] = mapped_column(String(64))  # None: imported key or watch-only
    scheme: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class BackupCheck(Base):
    """An attempt to prove the recovery phrase is written down: the server picks the positions."""

    __tablename__ = "chains_backup_check"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    wallet_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("chains_wallet.id"), index=True)
    positions: Mapped[list[int]] = mapped_column(JSONType)  # 1-based word positions
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    passed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class PinGuard(Base):
    """Wallet PIN attempts per user. An attempt is counted before the PIN is checked (so
    concurrent guesses cannot slip past the limit) and the count is cleared by a right PIN."""

    __tablename__ = "chains_pin_guard"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class AddressBookEntry(Base):
    __tablename__ = "chains_address_book_entry"
    __table_args__ = (UniqueConstraint("user_id", "chain", "address"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identity_user.id"), index=True)
    chain: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(128))  # canonical form (EIP-55 for EVM)
    label: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ChainTransaction(Base):
    """An outgoing EVM transaction: recorded signed (the intent) before it is broadcast, so a
    crash in between is healed by broadcasting the same bytes again."""

    __tablename__ = "chains_transaction"

    # Derived from the user and the Idempotency-Key: a retry finds the same row.
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    wallet_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("chains_wallet.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    chain: Mapped[str] = mapped_column(String(16))
    chain_id: Mapped[int] = mapped_column(BigInteger)
    from_address: Mapped[str] = mapped_column(String(64))
    to_address: Mapped[str] = mapped_column(String(64))  # the recipient, also for a token
    token_address: Mapped[str | None] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(16))
    decimals: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[str] = mapped_column(String(80))  # decimal digits: wei outgrow int64
    nonce: Mapped[int] = mapped_column(BigInteger)
    gas_limit: Mapped[int] = mapped_column(BigInteger)
    max_fee_per_gas_wei: Mapped[str] = mapped_column(String(80))
    max_priority_fee_per_gas_wei: Mapped[str] = mapped_column(String(80))
    raw_tx: Mapped[str] = mapped_column(Text)  # signed bytes: public once broadcast
    tx_hash: Mapped[str] = mapped_column(String(66), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # signed|pending|confirmed|failed
    failure_code: Mapped[str | None] = mapped_column(String(40))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    fee_wei: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    broadcast_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
