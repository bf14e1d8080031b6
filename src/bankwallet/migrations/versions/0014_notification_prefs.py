"""notifications: money notification preferences

Revision ID: 0014
Revises: 0010
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bankwallet.core.db

revision = "0014"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifications_money_preference",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("sms_withdrawals", sa.Boolean(), nullable=False),
        sa.Column("sms_money_out", sa.Boolean(), nullable=False),
        sa.Column("sms_money_out_min_minor", sa.BigInteger(), nullable=False),
        sa.Column("sms_money_in", sa.Boolean(), nullable=False),
        sa.Column("email", sa.Boolean(), nullable=False),
        sa.Column("updated_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_notifications_money_preference")),
    )


def downgrade() -> None:
    op.drop_table("notifications_money_preference")
