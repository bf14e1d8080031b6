"""fx: quotes and exchanges

Revision ID: 0013
Revises: 0010
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bankwallet.core.db

revision = "0013"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fx_quote",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("sell_currency", sa.String(length=3), nullable=False),
        sa.Column("sell_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("buy_currency", sa.String(length=3), nullable=False),
        sa.Column("buy_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("rate", sa.String(length=40), nullable=False),
        sa.Column("mid_rate", sa.String(length=40), nullable=False),
        sa.Column("spread_bps", sa.Integer(), nullable=False),
        sa.Column("limits_value_minor", sa.BigInteger(), nullable=False),
        sa.Column("rates_source", sa.String(length=32), nullable=False),
        sa.Column("rates_as_of", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("exchange_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["identity_user.id"],
                                name=op.f("fk_fx_quote_user_id_identity_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fx_quote")),
    )
    with op.batch_alter_table("fx_quote", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fx_quote_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_fx_quote_user_id"), ["user_id"], unique=False)
    op.create_table(
        "fx_exchange",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("quote_id", sa.Uuid(), nullable=False),
        sa.Column("sell_currency", sa.String(length=3), nullable=False),
        sa.Column("sell_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("buy_currency", sa.String(length=3), nullable=False),
        sa.Column("buy_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("rate", sa.String(length=40), nullable=False),
        sa.Column("sell_transfer_id", sa.Uuid(), nullable=False),
        sa.Column("buy_transfer_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("failure_reason", sa.String(length=64), nullable=True),
        sa.Column("outflow_minor", sa.BigInteger(), nullable=False),
        sa.Column("outflow_day", sa.Date(), nullable=False),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["quote_id"], ["fx_quote.id"],
                                name=op.f("fk_fx_exchange_quote_id_fx_quote")),
        sa.ForeignKeyConstraint(["user_id"], ["identity_user.id"],
                                name=op.f("fk_fx_exchange_user_id_identity_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fx_exchange")),
        sa.UniqueConstraint("quote_id", name=op.f("uq_fx_exchange_quote_id")),
    )
    with op.batch_alter_table("fx_exchange", schema=None) as batch_op:
        batch_op.create_index("ix_fx_exchange_status_created_at", ["status", "created_at"],
                              unique=False)
        batch_op.create_index("ix_fx_exchange_user_id_created_at", ["user_id", "created_at"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("fx_exchange", schema=None) as batch_op:
        batch_op.drop_index("ix_fx_exchange_user_id_created_at")
        batch_op.drop_index("ix_fx_exchange_status_created_at")
    op.drop_table("fx_exchange")
    with op.batch_alter_table("fx_quote", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fx_quote_user_id"))
        batch_op.drop_index(batch_op.f("ix_fx_quote_expires_at"))
    op.drop_table("fx_quote")
