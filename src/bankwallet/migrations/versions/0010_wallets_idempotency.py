"""wallets: daily outflow counters; core: idempotency keys

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import bankwallet.core.db

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wallets_daily_outflow",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "day", "currency",
                                name=op.f("pk_wallets_daily_outflow")),
    )
    op.create_table(
        "core_idempotency_key",
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.LargeBinary(length=32), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.JSON().with_variant(
            postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("locked_until", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_core_idempotency_key")),
    )
    with op.batch_alter_table("core_idempotency_key", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_core_idempotency_key_created_at"), ["created_at"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("core_idempotency_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_core_idempotency_key_created_at"))
    op.drop_table("core_idempotency_key")
    op.drop_table("wallets_daily_outflow")
