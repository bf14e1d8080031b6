"""identity: passkeys (WebAuthn credentials) and WebAuthn ceremonies

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import bankwallet.core.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_passkey",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("credential_id", sa.LargeBinary(length=1023), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("transports", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()),
                                                      "postgresql"), nullable=True),
        sa.Column("backed_up", sa.Boolean(), nullable=False),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["identity_user.id"],
                                name=op.f("fk_identity_passkey_user_id_identity_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_passkey")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_identity_passkey_credential_id")),
    )
    with op.batch_alter_table("identity_passkey", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_passkey_user_id"), ["user_id"],
                              unique=False)
    op.create_table(
        "identity_webauthn_ceremony",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("challenge", sa.LargeBinary(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("consumed_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_webauthn_ceremony")),
    )
    with op.batch_alter_table("identity_webauthn_ceremony", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_webauthn_ceremony_expires_at"),
                              ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("identity_webauthn_ceremony", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_webauthn_ceremony_expires_at"))
    op.drop_table("identity_webauthn_ceremony")
    with op.batch_alter_table("identity_passkey", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_passkey_user_id"))
    op.drop_table("identity_passkey")
