"""outbox and notifications

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import bankwallet.core.db

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC = bankwallet.core.db.UTCDateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "core_outbox_event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=True),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC, nullable=False),
        sa.Column("dispatched_at", UTC, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_core_outbox_event")),
    )
    with op.batch_alter_table("core_outbox_event", schema=None) as batch_op:
        batch_op.create_index("ix_core_outbox_event_due", ["next_attempt_at"], unique=False,
                              postgresql_where=sa.text("dispatched_at IS NULL"),
                              sqlite_where=sa.text("dispatched_at IS NULL"))

    op.create_table(
        "core_outbox_delivery",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("delivered_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["core_outbox_event.id"],
                                name=op.f("fk_core_outbox_delivery_event_id_core_outbox_event"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("event_id", "consumer", name=op.f("pk_core_outbox_delivery")),
    )

    op.create_table(
        "notifications_message",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("read_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications_message")),
    )
    with op.batch_alter_table("notifications_message", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_message_user_id_id", ["user_id", "id"],
                              unique=False)

    op.create_table(
        "notifications_dev_message",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications_dev_message")),
    )
    with op.batch_alter_table("notifications_dev_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notifications_dev_message_created_at"),
                              ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notifications_dev_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifications_dev_message_created_at"))
    op.drop_table("notifications_dev_message")
    with op.batch_alter_table("notifications_message", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_message_user_id_id")
    op.drop_table("notifications_message")
    op.drop_table("core_outbox_delivery")
    with op.batch_alter_table("core_outbox_event", schema=None) as batch_op:
        batch_op.drop_index("ix_core_outbox_event_due",
                            postgresql_where=sa.text("dispatched_at IS NULL"),
                            sqlite_where=sa.text("dispatched_at IS NULL"))
    op.drop_table("core_outbox_event")
