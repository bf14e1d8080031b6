"""audit log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import bankwallet.core.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC = bankwallet.core.db.UTCDateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "core_audit_event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=True),
        sa.Column("subject_id", sa.String(length=128), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=256), nullable=True),
        sa.Column("data", JSON, nullable=True),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_core_audit_event")),
        sa.UniqueConstraint("seq", name=op.f("uq_core_audit_event_seq")),
    )
    with op.batch_alter_table("core_audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_core_audit_event_actor_seq", ["actor_id", "seq"],
                              unique=False)
        batch_op.create_index("ix_core_audit_event_subject_seq",
                              ["subject_type", "subject_id", "seq"], unique=False)

    op.create_table(
        "core_audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_core_audit_head")),
    )
    # The chain starts at the genesis hash; this row's lock serialises audit writers.
    head = sa.table("core_audit_head", sa.column("id", sa.Integer),
                    sa.column("seq", sa.BigInteger), sa.column("hash", sa.LargeBinary))
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": bytes(32)}])


def downgrade() -> None:
    op.drop_table("core_audit_head")
    with op.batch_alter_table("core_audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_core_audit_event_subject_seq")
        batch_op.drop_index("ix_core_audit_event_actor_seq")
    op.drop_table("core_audit_event")
