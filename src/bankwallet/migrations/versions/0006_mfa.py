"""identity: TOTP authenticators and recovery codes

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bankwallet.core.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_totp",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("secret_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_step", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["identity_user.id"],
                                name=op.f("fk_identity_totp_user_id_identity_user")),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_identity_totp")),
    )
    op.create_table(
        "identity_recovery_code",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["identity_user.id"],
                                name=op.f("fk_identity_recovery_code_user_id_identity_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_recovery_code")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_identity_recovery_code_code_hash")),
    )
    with op.batch_alter_table("identity_recovery_code", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_recovery_code_user_id"), ["user_id"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("identity_recovery_code", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_recovery_code_user_id"))
    op.drop_table("identity_recovery_code")
    op.drop_table("identity_totp")
