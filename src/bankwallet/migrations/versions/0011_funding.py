"""funding: linked bank accounts, top-ups and withdrawals, bank webhook events, link attempts

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bankwallet.core.db

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "funding_bank_account",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("number_enc", sa.LargeBinary(), nullable=False),
        sa.Column("number_index", sa.LargeBinary(length=32), nullable=False),
        sa.Column("number_claim", sa.LargeBinary(length=32), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("verified_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("removed_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["identity_user.id"],
                                name=op.f("fk_funding_bank_account_user_id_identity_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_funding_bank_account")),
        sa.UniqueConstraint("number_claim", name=op.f("uq_funding_bank_account_number_claim")),
    )
    with op.batch_alter_table("funding_bank_account", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_funding_bank_account_user_id"), ["user_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_funding_bank_account_number_index"),
                              ["number_index"], unique=False)

    op.create_table(
        "funding_movement",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("bank_account_id", sa.Uuid(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("bank_status", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.String(length=140), nullable=False),
        sa.Column("instruction_id", sa.String(length=64), nullable=True),
        sa.Column("bank_attempts", sa.Integer(), nullable=False),
        sa.Column("failure_mode", sa.String(length=32), nullable=True),
        sa.Column("failure_reason", sa.String(length=64), nullable=True),
        sa.Column("hold_transfer_id", sa.Uuid(), nullable=False),
        sa.Column("post_transfer_id", sa.Uuid(), nullable=False),
        sa.Column("void_transfer_id", sa.Uuid(), nullable=False),
        sa.Column("reversal_transfer_id", sa.Uuid(), nullable=True),
        sa.Column("reversal_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("shortfall_minor", sa.BigInteger(), nullable=False),
        sa.Column("outflow_day", sa.Date(), nullable=True),
        sa.Column("from_display", sa.String(length=140), nullable=False),
        sa.Column("to_display", sa.String(length=140), nullable=False),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("settled_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_check_at", bankwallet.core.db.UTCDateTime(timezone=True),
                  nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bank_account_id"], ["funding_bank_account.id"],
            name=op.f("fk_funding_movement_bank_account_id_funding_bank_account")),
        sa.ForeignKeyConstraint(["user_id"], ["identity_user.id"],
                                name=op.f("fk_funding_movement_user_id_identity_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_funding_movement")),
        sa.UniqueConstraint("reference", name=op.f("uq_funding_movement_reference")),
    )
    with op.batch_alter_table("funding_movement", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_funding_movement_bank_account_id"),
                              ["bank_account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_funding_movement_instruction_id"),
                              ["instruction_id"], unique=False)
        batch_op.create_index("ix_funding_movement_user_kind_created",
                              ["user_id", "kind", "created_at"], unique=False)
        batch_op.create_index("ix_funding_movement_due", ["status", "next_check_at"],
                              unique=False)

    op.create_table(
        "funding_webhook_event",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("instruction_id", sa.String(length=64), nullable=False),
        sa.Column("reference", sa.String(length=140), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("movement_id", sa.Uuid(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("received_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("processed_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_funding_webhook_event")),
    )
    with op.batch_alter_table("funding_webhook_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_funding_webhook_event_received_at"),
                              ["received_at"], unique=False)

    op.create_table(
        "funding_link_attempt",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["identity_user.id"],
                                name=op.f("fk_funding_link_attempt_user_id_identity_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_funding_link_attempt")),
    )
    with op.batch_alter_table("funding_link_attempt", schema=None) as batch_op:
        batch_op.create_index("ix_funding_link_attempt_user_at", ["user_id", "at"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("funding_link_attempt", schema=None) as batch_op:
        batch_op.drop_index("ix_funding_link_attempt_user_at")
    op.drop_table("funding_link_attempt")
    with op.batch_alter_table("funding_webhook_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_funding_webhook_event_received_at"))
    op.drop_table("funding_webhook_event")
    with op.batch_alter_table("funding_movement", schema=None) as batch_op:
        batch_op.drop_index("ix_funding_movement_due")
        batch_op.drop_index("ix_funding_movement_user_kind_created")
        batch_op.drop_index(batch_op.f("ix_funding_movement_instruction_id"))
        batch_op.drop_index(batch_op.f("ix_funding_movement_bank_account_id"))
    op.drop_table("funding_movement")
    with op.batch_alter_table("funding_bank_account", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_funding_bank_account_number_index"))
        batch_op.drop_index(batch_op.f("ix_funding_bank_account_user_id"))
    op.drop_table("funding_bank_account")
