"""payments: merchants, API keys, payment intents, charges, refunds, settlements, webhooks

Revision ID: 0017
Revises: 0010
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import bankwallet.core.db

revision = "0017"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payments_merchant",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("mcc", sa.String(length=4), nullable=False),
        sa.Column("city", sa.String(length=64), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("bank_account_enc", sa.LargeBinary(), nullable=False),
        sa.Column("bank_account_kind", sa.String(length=8), nullable=False),
        sa.Column("bank_account_last4", sa.String(length=4), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["identity_user.id"],
            name=op.f("fk_payments_merchant_created_by_identity_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_merchant")),
    )
    op.create_table(
        "payments_api_key",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON().with_variant(
            postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["merchant_id"], ["payments_merchant.id"],
            name=op.f("fk_payments_api_key_merchant_id_payments_merchant")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_api_key")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_payments_api_key_key_hash")),
    )
    with op.batch_alter_table("payments_api_key", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_api_key_merchant_id"),
            ["merchant_id"], unique=False)
    op.create_table(
        "payments_event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON().with_variant(
            postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False),
        sa.Column("api_version", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["payments_merchant.id"],
            name=op.f("fk_payments_event_merchant_id_payments_merchant")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_event")),
    )
    with op.batch_alter_table("payments_event", schema=None) as batch_op:
        batch_op.create_index("ix_payments_event_merchant_created",
            ["merchant_id", "created_at", "id"], unique=False)
    op.create_table(
        "payments_merchant_user",
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["payments_merchant.id"],
            name=op.f("fk_payments_merchant_user_merchant_id_payments_merchant")),
        sa.ForeignKeyConstraint(["user_id"], ["identity_user.id"],
            name=op.f("fk_payments_merchant_user_user_id_identity_user")),
        sa.PrimaryKeyConstraint("merchant_id", "user_id", name=op.f("pk_payments_merchant_user")),
    )
    with op.batch_alter_table("payments_merchant_user", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_merchant_user_user_id"),
            ["user_id"], unique=False)
    op.create_table(
        "payments_payment_intent",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("capture_method", sa.String(length=16), nullable=False),
        sa.Column("payment_method_types", sa.JSON().with_variant(
            postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False),
        sa.Column("payment_method", sa.String(length=32), nullable=True),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("metadata", sa.JSON().with_variant(
            postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False),
        sa.Column("return_url", sa.String(length=2048), nullable=True),
        sa.Column("payer_user_id", sa.Uuid(), nullable=True),
        sa.Column("latest_charge_id", sa.Uuid(), nullable=True),
        sa.Column("amount_received_minor", sa.BigInteger(), nullable=False),
        sa.Column("amount_capturable_minor", sa.BigInteger(), nullable=False),
        sa.Column("amount_refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("last_payment_error", sa.JSON().with_variant(
            postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True),
        sa.Column("cancellation_reason", sa.String(length=32), nullable=True),
        sa.Column("canceled_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["payments_merchant.id"],
            name=op.f("fk_payments_payment_intent_merchant_id_payments_merchant")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_payment_intent")),
    )
    with op.batch_alter_table("payments_payment_intent", schema=None) as batch_op:
        batch_op.create_index("ix_payments_payment_intent_merchant_created",
            ["merchant_id", "created_at", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payments_payment_intent_payer_user_id"),
            ["payer_user_id"], unique=False)
    op.create_table(
        "payments_settlement",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("hold_transfer_id", sa.Uuid(), nullable=False),
        sa.Column("bank_account_last4", sa.String(length=4), nullable=False),
        sa.Column("instruction_id", sa.String(length=64), nullable=True),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["payments_merchant.id"],
            name=op.f("fk_payments_settlement_merchant_id_payments_merchant")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_settlement")),
    )
    with op.batch_alter_table("payments_settlement", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_settlement_merchant_id"),
            ["merchant_id"], unique=False)
        batch_op.create_index("ix_payments_settlement_status_updated",
            ["status", "updated_at"], unique=False)
    op.create_table(
        "payments_webhook_endpoint",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("secret_enc", sa.LargeBinary(), nullable=False),
        sa.Column("enabled_events", sa.JSON().with_variant(
            postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["payments_merchant.id"],
            name=op.f("fk_payments_webhook_endpoint_merchant_id_payments_merchant")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_webhook_endpoint")),
    )
    with op.batch_alter_table("payments_webhook_endpoint", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_webhook_endpoint_merchant_id"),
            ["merchant_id"], unique=False)
    op.create_table(
        "payments_charge",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("intent_id", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("payer_user_id", sa.Uuid(), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("capture_method", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("amount_captured_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payment_transfer_id", sa.Uuid(), nullable=False),
        sa.Column("fee_transfer_id", sa.Uuid(), nullable=False),
        sa.Column("payer_display", sa.String(length=140), nullable=False),
        sa.Column("merchant_display", sa.String(length=140), nullable=False),
        sa.Column("outflow_day", sa.Date(), nullable=False),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("failure_message", sa.String(length=255), nullable=True),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["intent_id"], ["payments_payment_intent.id"],
            name=op.f("fk_payments_charge_intent_id_payments_payment_intent")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_charge")),
    )
    with op.batch_alter_table("payments_charge", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_charge_intent_id"),
            ["intent_id"], unique=False)
        batch_op.create_index("ix_payments_charge_status_updated",
            ["status", "updated_at"], unique=False)
    op.create_table(
        "payments_refund",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("intent_id", sa.Uuid(), nullable=False),
        sa.Column("charge_id", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("payee_user_id", sa.Uuid(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_refund_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("metadata", sa.JSON().with_variant(
            postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False),
        sa.Column("refund_transfer_id", sa.Uuid(), nullable=False),
        sa.Column("fee_transfer_id", sa.Uuid(), nullable=False),
        sa.Column("payee_display", sa.String(length=140), nullable=False),
        sa.Column("merchant_display", sa.String(length=140), nullable=False),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["intent_id"], ["payments_payment_intent.id"],
            name=op.f("fk_payments_refund_intent_id_payments_payment_intent")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_refund")),
    )
    with op.batch_alter_table("payments_refund", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_refund_intent_id"),
            ["intent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payments_refund_merchant_id"),
            ["merchant_id"], unique=False)
        batch_op.create_index("ix_payments_refund_status_updated",
            ["status", "updated_at"], unique=False)
    op.create_table(
        "payments_webhook_delivery",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("attempts_allowed", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=255), nullable=True),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["endpoint_id"], ["payments_webhook_endpoint.id"],
            name=op.f("fk_payments_webhook_delivery_endpoint_id_payments_webhook_endpoint")),
        sa.ForeignKeyConstraint(["event_id"], ["payments_event.id"],
            name=op.f("fk_payments_webhook_delivery_event_id_payments_event")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_webhook_delivery")),
        sa.UniqueConstraint("event_id", "endpoint_id",
                            name="uq_payments_webhook_delivery_event_endpoint"),
    )
    with op.batch_alter_table("payments_webhook_delivery", schema=None) as batch_op:
        batch_op.create_index("ix_payments_webhook_delivery_due",
            ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_payments_webhook_delivery_merchant_id"),
            ["merchant_id"], unique=False)
    op.create_table(
        "payments_webhook_attempt",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=255), nullable=True),
        sa.Column("created_at", bankwallet.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["payments_webhook_delivery.id"],
            name=op.f("fk_payments_webhook_attempt_delivery_id_payments_webhook_delivery")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_webhook_attempt")),
    )
    with op.batch_alter_table("payments_webhook_attempt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_webhook_attempt_delivery_id"),
            ["delivery_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payments_webhook_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_webhook_attempt_delivery_id"))
    op.drop_table("payments_webhook_attempt")
    with op.batch_alter_table("payments_webhook_delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_webhook_delivery_due")
        batch_op.drop_index(batch_op.f("ix_payments_webhook_delivery_merchant_id"))
    op.drop_table("payments_webhook_delivery")
    with op.batch_alter_table("payments_refund", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_refund_intent_id"))
        batch_op.drop_index(batch_op.f("ix_payments_refund_merchant_id"))
        batch_op.drop_index("ix_payments_refund_status_updated")
    op.drop_table("payments_refund")
    with op.batch_alter_table("payments_charge", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_charge_intent_id"))
        batch_op.drop_index("ix_payments_charge_status_updated")
    op.drop_table("payments_charge")
    with op.batch_alter_table("payments_webhook_endpoint", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_webhook_endpoint_merchant_id"))
    op.drop_table("payments_webhook_endpoint")
    with op.batch_alter_table("payments_settlement", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_settlement_merchant_id"))
        batch_op.drop_index("ix_payments_settlement_status_updated")
    op.drop_table("payments_settlement")
    with op.batch_alter_table("payments_payment_intent", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_payment_intent_merchant_created")
        batch_op.drop_index(batch_op.f("ix_payments_payment_intent_payer_user_id"))
    op.drop_table("payments_payment_intent")
    with op.batch_alter_table("payments_merchant_user", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_merchant_user_user_id"))
    op.drop_table("payments_merchant_user")
    with op.batch_alter_table("payments_event", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_event_merchant_created")
    op.drop_table("payments_event")
    with op.batch_alter_table("payments_api_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_api_key_merchant_id"))
    op.drop_table("payments_api_key")
    op.drop_table("payments_merchant")
