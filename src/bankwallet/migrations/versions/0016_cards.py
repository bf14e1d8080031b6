"""cards: the card vault and the card gateway's handled webhook events

Revision ID: 0016
Revises: 0010
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bankwallet.core.db

revision = "0016"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cards_card",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("brand", sa.String(length=16), nullable=False),
        sa.Column("funding", sa.String(length=8), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("exp_month", sa.SmallInteger(), nullable=False),
        sa.Column("exp_year", sa.SmallInteger(), nullable=False),
        sa.Column("pan_enc", sa.LargeBinary(), nullable=True),
        sa.Column("pan_index", sa.LargeBinary(length=32), nullable=True),
        sa.Column("holder_name_enc", sa.LargeBinary(), nullable=True),
        sa.Column("gateway_token", sa.String(length=64), nullable=True),
        sa.Column("verification_payment_id", sa.String(length=64), nullable=True),
        sa.Column("challenge_url", sa.String(length=2048), nullable=True),
        sa.Column("failure_reason", sa.String(length=64), nullable=True),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("verified_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("removed_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["identity_user.id"],
                                name=op.f("fk_cards_card_user_id_identity_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cards_card")),
        sa.UniqueConstraint("user_id", "pan_index", name=op.f("uq_cards_card_user_id")),
    )
    with op.batch_alter_table("cards_card", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cards_card_user_id"), ["user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_cards_card_verification_payment_id"),
                              ["verification_payment_id"], unique=False)
    op.create_table(
        "cards_gateway_event",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("payment_id", sa.String(length=64), nullable=False),
        sa.Column("received_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cards_gateway_event")),
    )


def downgrade() -> None:
    op.drop_table("cards_gateway_event")
    with op.batch_alter_table("cards_card", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cards_card_verification_payment_id"))
        batch_op.drop_index(batch_op.f("ix_cards_card_user_id"))
    op.drop_table("cards_card")
