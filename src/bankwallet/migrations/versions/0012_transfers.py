"""transfers: transfers between customers, money requests, split bills

Revision ID: 0012
Revises: 0010
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bankwallet.core.db

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transfers_split",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("requester_user_id", sa.Uuid(), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("my_share_minor", sa.BigInteger(), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("note", sa.String(length=140), nullable=True),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["requester_user_id"], ["identity_user.id"],
                                name=op.f("fk_transfers_split_requester_user_id_identity_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers_split")),
    )
    with op.batch_alter_table("transfers_split", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_transfers_split_requester_user_id"),
                              ["requester_user_id"], unique=False)

    op.create_table(
        "transfers_request",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("requester_user_id", sa.Uuid(), nullable=False),
        sa.Column("payer_user_id", sa.Uuid(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("note", sa.String(length=140), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("split_id", sa.Uuid(), nullable=True),
        sa.Column("split_position", sa.Integer(), nullable=True),
        sa.Column("transfer_id", sa.Uuid(), nullable=True),
        sa.Column("requester_display", sa.String(length=64), nullable=False),
        sa.Column("payer_display", sa.String(length=64), nullable=False),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["payer_user_id"], ["identity_user.id"],
                                name=op.f("fk_transfers_request_payer_user_id_identity_user")),
        sa.ForeignKeyConstraint(
            ["requester_user_id"], ["identity_user.id"],
            name=op.f("fk_transfers_request_requester_user_id_identity_user")),
        sa.ForeignKeyConstraint(["split_id"], ["transfers_split.id"],
                                name=op.f("fk_transfers_request_split_id_transfers_split")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers_request")),
    )
    with op.batch_alter_table("transfers_request", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_transfers_request_payer_user_id"),
                              ["payer_user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_transfers_request_requester_user_id"),
                              ["requester_user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_transfers_request_split_id"), ["split_id"],
                              unique=False)

    op.create_table(
        "transfers_transfer",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("payer_user_id", sa.Uuid(), nullable=False),
        sa.Column("payee_user_id", sa.Uuid(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(length=140), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("ledger_transfer_id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=True),
        sa.Column("from_display", sa.String(length=64), nullable=False),
        sa.Column("to_display", sa.String(length=64), nullable=False),
        sa.Column("outflow_day", sa.Date(), nullable=False),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["payee_user_id"], ["identity_user.id"],
                                name=op.f("fk_transfers_transfer_payee_user_id_identity_user")),
        sa.ForeignKeyConstraint(["payer_user_id"], ["identity_user.id"],
                                name=op.f("fk_transfers_transfer_payer_user_id_identity_user")),
        sa.ForeignKeyConstraint(
            ["request_id"], ["transfers_request.id"],
            name=op.f("fk_transfers_transfer_request_id_transfers_request")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers_transfer")),
        sa.UniqueConstraint("ledger_transfer_id",
                            name=op.f("uq_transfers_transfer_ledger_transfer_id")),
    )
    with op.batch_alter_table("transfers_transfer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_transfers_transfer_created_at"), ["created_at"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_transfers_transfer_payee_user_id"),
                              ["payee_user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_transfers_transfer_payer_user_id"),
                              ["payer_user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_transfers_transfer_request_id"), ["request_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_transfers_transfer_status"), ["status"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("transfers_transfer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transfers_transfer_status"))
        batch_op.drop_index(batch_op.f("ix_transfers_transfer_request_id"))
        batch_op.drop_index(batch_op.f("ix_transfers_transfer_payer_user_id"))
        batch_op.drop_index(batch_op.f("ix_transfers_transfer_payee_user_id"))
        batch_op.drop_index(batch_op.f("ix_transfers_transfer_created_at"))
    op.drop_table("transfers_transfer")
    with op.batch_alter_table("transfers_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transfers_request_split_id"))
        batch_op.drop_index(batch_op.f("ix_transfers_request_requester_user_id"))
        batch_op.drop_index(batch_op.f("ix_transfers_request_payer_user_id"))
    op.drop_table("transfers_request")
    with op.batch_alter_table("transfers_split", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transfers_split_requester_user_id"))
    op.drop_table("transfers_split")
