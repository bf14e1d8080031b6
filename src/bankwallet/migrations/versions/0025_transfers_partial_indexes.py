"""Transfers: partial indexes for pending rows and for rows that pay a request, so a posted
transfer without a request is not entered in either (fewer index writes per transfer)

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

TABLE = "transfers_transfer"
PENDING = sa.text("status = 'pending'")
PAYS_A_REQUEST = sa.text("request_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_transfers_transfer_status", table_name=TABLE)
    op.create_index("ix_transfers_transfer_pending", TABLE, ["created_at"],
                    postgresql_where=PENDING, sqlite_where=PENDING)
    op.drop_index("ix_transfers_transfer_request_id", table_name=TABLE)
    op.create_index("ix_transfers_transfer_request_id", TABLE, ["request_id"],
                    postgresql_where=PAYS_A_REQUEST, sqlite_where=PAYS_A_REQUEST)


def downgrade() -> None:
    op.drop_index("ix_transfers_transfer_request_id", table_name=TABLE)
    op.create_index("ix_transfers_transfer_request_id", TABLE, ["request_id"])
    op.drop_index("ix_transfers_transfer_pending", table_name=TABLE)
    op.create_index("ix_transfers_transfer_status", TABLE, ["status"])
