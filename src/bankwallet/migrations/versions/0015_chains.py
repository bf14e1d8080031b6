"""chains: self-custody wallets, their addresses, backup checks, PIN guard, address book and
outgoing transactions

Revision ID: 0015
Revises: 0010
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import bankwallet.core.db

revision = "0015"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chains_wallet",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("word_count", sa.Integer(), nullable=True),
        sa.Column("has_passphrase", sa.Boolean(), nullable=False),
        sa.Column("sealed_enc", sa.LargeBinary(), nullable=True),
        sa.Column("backed_up_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["identity_user.id"],
                                name=op.f("fk_chains_wallet_user_id_identity_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chains_wallet")),
    )
    with op.batch_alter_table("chains_wallet", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chains_wallet_user_id"), ["user_id"], unique=False)

    op.create_table(
        "chains_address",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("wallet_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("chain", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("path", sa.String(length=64), nullable=True),
        sa.Column("scheme", sa.String(length=16), nullable=True),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["wallet_id"], ["chains_wallet.id"],
                                name=op.f("fk_chains_address_wallet_id_chains_wallet")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chains_address")),
        sa.UniqueConstraint("wallet_id", "chain", "address",
                            name=op.f("uq_chains_address_wallet_id")),
    )
    with op.batch_alter_table("chains_address", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chains_address_wallet_id"), ["wallet_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_chains_address_user_id"), ["user_id"],
                              unique=False)

    op.create_table(
        "chains_backup_check",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("wallet_id", sa.Uuid(), nullable=False),
        sa.Column("positions", sa.JSON().with_variant(
            postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("passed_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["wallet_id"], ["chains_wallet.id"],
                                name=op.f("fk_chains_backup_check_wallet_id_chains_wallet")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chains_backup_check")),
    )
    with op.batch_alter_table("chains_backup_check", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chains_backup_check_wallet_id"), ["wallet_id"],
                              unique=False)

    op.create_table(
        "chains_pin_guard",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_chains_pin_guard")),
    )

    op.create_table(
        "chains_address_book_entry",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("chain", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["identity_user.id"],
                                name=op.f("fk_chains_address_book_entry_user_id_identity_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chains_address_book_entry")),
        sa.UniqueConstraint("user_id", "chain", "address",
                            name=op.f("uq_chains_address_book_entry_user_id")),
    )
    with op.batch_alter_table("chains_address_book_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chains_address_book_entry_user_id"), ["user_id"],
                              unique=False)

    op.create_table(
        "chains_transaction",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("wallet_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("chain", sa.String(length=16), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("from_address", sa.String(length=64), nullable=False),
        sa.Column("to_address", sa.String(length=64), nullable=False),
        sa.Column("token_address", sa.String(length=64), nullable=True),
        sa.Column("symbol", sa.String(length=16), nullable=False),
        sa.Column("decimals", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.String(length=80), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("gas_limit", sa.BigInteger(), nullable=False),
        sa.Column("max_fee_per_gas_wei", sa.String(length=80), nullable=False),
        sa.Column("max_priority_fee_per_gas_wei", sa.String(length=80), nullable=False),
        sa.Column("raw_tx", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure_code", sa.String(length=40), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("fee_wei", sa.String(length=80), nullable=True),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("broadcast_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["wallet_id"], ["chains_wallet.id"],
                                name=op.f("fk_chains_transaction_wallet_id_chains_wallet")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chains_transaction")),
        sa.UniqueConstraint("tx_hash", name=op.f("uq_chains_transaction_tx_hash")),
    )
    with op.batch_alter_table("chains_transaction", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chains_transaction_wallet_id"), ["wallet_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_chains_transaction_user_id"), ["user_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_chains_transaction_status"), ["status"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("chains_transaction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chains_transaction_status"))
        batch_op.drop_index(batch_op.f("ix_chains_transaction_user_id"))
        batch_op.drop_index(batch_op.f("ix_chains_transaction_wallet_id"))
    op.drop_table("chains_transaction")
    with op.batch_alter_table("chains_address_book_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chains_address_book_entry_user_id"))
    op.drop_table("chains_address_book_entry")
    op.drop_table("chains_pin_guard")
    with op.batch_alter_table("chains_backup_check", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chains_backup_check_wallet_id"))
    op.drop_table("chains_backup_check")
    with op.batch_alter_table("chains_address", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chains_address_user_id"))
        batch_op.drop_index(batch_op.f("ix_chains_address_wallet_id"))
    op.drop_table("chains_address")
    with op.batch_alter_table("chains_wallet", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chains_wallet_user_id"))
    op.drop_table("chains_wallet")
