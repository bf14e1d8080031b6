"""PostgreSQL functions behind the P2P fast path (transfers/fast.py): the intent and the
outcome of a transfer, each in one round trip

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

# Step 2 of docs/money-movement.md in one statement: claim the key, check the payee's balance
# cap and the payer's daily limit (the counter row is locked by the upsert), insert the
# pending row. Anything but 'ok' leaves nothing behind: the caller then hands the request to
# the general path, which decides it and stores its answer.
INTENT = """
CREATE OR REPLACE FUNCTION bankwallet_p2p_intent(
    p_scope text, p_key text, p_fingerprint bytea, p_now timestamptz, p_locked_until timestamptz,
    p_transfer_id uuid, p_ledger_transfer_id uuid, p_payer uuid, p_payee uuid,
    p_amount bigint, p_currency text, p_code integer, p_note text, p_from text, p_to text,
    p_day date, p_daily_limit bigint, p_payee_account uuid, p_payee_cap bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_payee_after bigint;
    v_counted bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM transfers_transfer WHERE id = p_transfer_id) THEN
        RETURN 'exists';
    END IF;
    SELECT credits_posted - debits_posted + credits_pending + p_amount INTO v_payee_after
      FROM ledger_account WHERE id = p_payee_account;
    IF v_payee_after IS NULL OR v_payee_after > p_payee_cap THEN
        RETURN 'cap';  -- no wallet yet (the general path opens it) or over the cap
    END IF;
    INSERT INTO core_idempotency_key (scope, key, fingerprint, state, response_status,
                                      response_body, created_at, locked_until)
    VALUES (p_scope, p_key, p_fingerprint, 'started', NULL, NULL, p_now, p_locked_until)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'claimed';
    END IF;
    INSERT INTO wallets_daily_outflow AS c (user_id, day, currency, amount_minor)
    VALUES (p_payer, p_day, p_currency, p_amount)
    ON CONFLICT (user_id, day, currency) DO UPDATE
        SET amount_minor = c.amount_minor + EXCLUDED.amount_minor
        WHERE c.amount_minor + EXCLUDED.amount_minor <= p_daily_limit
    RETURNING amount_minor INTO v_counted;
    IF v_counted IS NULL OR v_counted > p_daily_limit THEN
        -- Over the daily limit: undo this transaction's claim and count (nobody saw them).
        IF v_counted IS NOT NULL THEN
            DELETE FROM wallets_daily_outflow
             WHERE user_id = p_payer AND day = p_day AND currency = p_currency
               AND amount_minor = p_amount;
        END IF;
        DELETE FROM core_idempotency_key WHERE scope = p_scope AND key = p_key;
        RETURN 'daily';
    END IF;
    INSERT INTO transfers_transfer (id, payer_user_id, payee_user_id, amount_minor, currency,
                                    code, note, status, failure_code, ledger_transfer_id,
                                    request_id, from_display, to_display, outflow_day,
                                    created_at, finished_at)
    VALUES (p_transfer_id, p_payer, p_payee, p_amount, p_currency, p_code, p_note, 'pending',
            NULL, p_ledger_transfer_id, NULL, p_from, p_to, p_day, p_now, NULL);
    RETURN 'ok';
END
$$;
"""

# Step 4 in one statement: the outcome, the released outflow of a failure, the money.moved
# event, the audit event (chained after commit) and the stored answer of the key. Returns
# false, writing nothing, when the row had already left 'pending' (the healing job).
OUTCOME = """
CREATE OR REPLACE FUNCTION bankwallet_p2p_outcome(
    p_transfer_id uuid, p_status text, p_failure_code text, p_now timestamptz,
    p_payer uuid, p_day date, p_currency text, p_amount bigint,
    p_event_id uuid, p_topic text, p_event_key text, p_payload jsonb,
    p_audit_id uuid, p_audit_action text, p_audit_subject text, p_audit_data jsonb,
    p_scope text, p_key text, p_response_status integer, p_response_body jsonb)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    UPDATE transfers_transfer SET status = p_status, failure_code = p_failure_code,
                                  finished_at = p_now
     WHERE id = p_transfer_id AND status = 'pending';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF p_status <> 'posted' THEN
        UPDATE wallets_daily_outflow SET amount_minor = amount_minor - p_amount
         WHERE user_id = p_payer AND day = p_day AND currency = p_currency;
    END IF;
    INSERT INTO core_outbox_event (id, topic, key, payload, sealed, created_at, attempts,
                                   next_attempt_at, dispatched_at, last_error)
    VALUES (p_event_id, p_topic, p_event_key, p_payload, NULL, p_now, 0, p_now, NULL, NULL);
    INSERT INTO core_audit_event (id, seq, at, actor_type, actor_id, action, subject_type,
                                  subject_id, ip, user_agent, data, hash)
    VALUES (p_audit_id, NULL, p_now, 'user', p_payer::text, p_audit_action, 'transfer',
            p_audit_subject, NULL, NULL, p_audit_data, NULL);
    UPDATE core_idempotency_key SET state = 'done', response_status = p_response_status,
                                    response_body = p_response_body
     WHERE scope = p_scope AND key = p_key;
    RETURN true;
END
$$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(INTENT)
    op.execute(OUTCOME)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS bankwallet_p2p_outcome(uuid, text, text, timestamptz, "
               "uuid, date, text, bigint, uuid, text, text, jsonb, uuid, text, text, jsonb, "
               "text, text, integer, jsonb)")
    op.execute("DROP FUNCTION IF EXISTS bankwallet_p2p_intent(text, text, bytea, timestamptz, "
               "timestamptz, uuid, uuid, uuid, uuid, bigint, text, integer, text, text, text, "
               "date, bigint, uuid, bigint)")
