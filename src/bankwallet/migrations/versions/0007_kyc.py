"""identity: KYC applications

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bankwallet.core.db

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_kyc_application",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("legal_name_enc", sa.LargeBinary(), nullable=False),
        sa.Column("national_id_enc", sa.LargeBinary(), nullable=False),
        sa.Column("national_id_index", sa.LargeBinary(length=32), nullable=False),
        sa.Column("national_id_claim", sa.LargeBinary(length=32), nullable=True),
        sa.Column("birth_date_enc", sa.LargeBinary(), nullable=False),
        sa.Column("submitted_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["identity_user.id"],
                                name=op.f("fk_identity_kyc_application_user_id_identity_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_kyc_application")),
        sa.UniqueConstraint("national_id_claim",
                            name=op.f("uq_identity_kyc_application_national_id_claim")),
    )
    with op.batch_alter_table("identity_kyc_application", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_kyc_application_user_id"), ["user_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_identity_kyc_application_status"), ["status"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_identity_kyc_application_national_id_index"),
                              ["national_id_index"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("identity_kyc_application", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_kyc_application_national_id_index"))
        batch_op.drop_index(batch_op.f("ix_identity_kyc_application_status"))
        batch_op.drop_index(batch_op.f("ix_identity_kyc_application_user_id"))
    op.drop_table("identity_kyc_application")
