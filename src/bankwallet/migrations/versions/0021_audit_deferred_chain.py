"""audit events are chained after commit on PostgreSQL: seq and hash may be empty until then

Revision ID: 0021
Revises: 0018
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("core_audit_event", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), nullable=True)
        batch_op.alter_column("hash", existing_type=sa.LargeBinary(length=32), nullable=True)
    # The chainer's queue: events not yet in the chain, oldest first.
    op.create_index("ix_core_audit_event_unchained", "core_audit_event", ["at", "id"],
                    unique=False, postgresql_where=sa.text("seq IS NULL"),
                    sqlite_where=sa.text("seq IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_core_audit_event_unchained", table_name="core_audit_event")
    with op.batch_alter_table("core_audit_event", schema=None) as batch_op:
        batch_op.alter_column("hash", existing_type=sa.LargeBinary(length=32), nullable=False)
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
