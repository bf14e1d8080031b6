"""card payments: a charge names the saved card it was paid with (brand and last four kept
for history), the gateway's payment and the 3-D Secure page; a refund names the gateway's
refund

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payments_charge", schema=None) as batch_op:
        batch_op.add_column(sa.Column("card_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("card_brand", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("card_last4", sa.String(length=4), nullable=True))
        batch_op.add_column(sa.Column("gateway_payment_id", sa.String(length=64),
                                      nullable=True))
        batch_op.add_column(sa.Column("next_action_url", sa.String(length=2048),
                                      nullable=True))
        batch_op.create_index(batch_op.f("ix_payments_charge_gateway_payment_id"),
                              ["gateway_payment_id"], unique=False)
    with op.batch_alter_table("payments_refund", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gateway_refund_id", sa.String(length=64),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payments_refund", schema=None) as batch_op:
        batch_op.drop_column("gateway_refund_id")
    with op.batch_alter_table("payments_charge", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_charge_gateway_payment_id"))
        batch_op.drop_column("next_action_url")
        batch_op.drop_column("gateway_payment_id")
        batch_op.drop_column("card_last4")
        batch_op.drop_column("card_brand")
        batch_op.drop_column("card_id")
