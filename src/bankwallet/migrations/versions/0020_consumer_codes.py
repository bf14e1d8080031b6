"""payments: consumer-presented payment codes and the per-merchant brake on unknown codes

Revision ID: 0020
Revises: 0018
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bankwallet.core.db

revision = "0020"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payments_consumer_code",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("code_index", sa.LargeBinary(length=32), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("merchant_id", sa.Uuid(), nullable=True),
        sa.Column("intent_id", sa.Uuid(), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["identity_user.id"],
            name=op.f("fk_payments_consumer_code_user_id_identity_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_consumer_code")),
        sa.UniqueConstraint("code_index", name=op.f("uq_payments_consumer_code_code_index")),
    )
    with op.batch_alter_table("payments_consumer_code", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_consumer_code_user_id"), ["user_id"],
                              unique=False)
    op.create_table(
        "payments_consumer_code_miss",
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("window_started_at", bankwallet.core.db.UTCDateTime(timezone=True),
                  nullable=False),
        sa.Column("misses", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", name=op.f("pk_payments_consumer_code_miss")),
    )


def downgrade() -> None:
    op.drop_table("payments_consumer_code_miss")
    with op.batch_alter_table("payments_consumer_code", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_consumer_code_user_id"))
    op.drop_table("payments_consumer_code")
