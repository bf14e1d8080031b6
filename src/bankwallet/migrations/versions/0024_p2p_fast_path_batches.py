"""The P2P fast path in batches: many intents, or many outcomes, in one round trip and one
transaction (transfers/fast.py)

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

# Element i of every array is one call of bankwallet_p2p_intent; the answers come back in
# the same order. The caller orders the batch by payer, so two batches lock the payers'
# daily counters in one order. An error anywhere rolls the whole batch back (the caller then
# records the intents one by one).
INTENTS = """
CREATE OR REPLACE FUNCTION bankwallet_p2p_intents(
    p_scope text[], p_key text[], p_fingerprint bytea[], p_now timestamptz[],
    p_locked_until timestamptz[], p_transfer_id uuid[], p_ledger_transfer_id uuid[],
    p_payer uuid[], p_payee uuid[], p_amount bigint[], p_currency text[], p_code integer[],
    p_note text[], p_from text[], p_to text[], p_day date[], p_daily_limit bigint[],
    p_payee_account uuid[], p_payee_cap bigint[])
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    v_out text[] := '{}';
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_key, 1), 0) LOOP
        v_out := v_out || bankwallet_p2p_intent(
            p_scope[i], p_key[i], p_fingerprint[i], p_now[i], p_locked_until[i],
            p_transfer_id[i], p_ledger_transfer_id[i], p_payer[i], p_payee[i], p_amount[i],
            p_currency[i], p_code[i], p_note[i], p_from[i], p_to[i], p_day[i],
            p_daily_limit[i], p_payee_account[i], p_payee_cap[i]);
    END LOOP;
    RETURN v_out;
END
$$;
"""

# Element i is one call of bankwallet_p2p_outcome; true where the outcome was recorded.
OUTCOMES = """
CREATE OR REPLACE FUNCTION bankwallet_p2p_outcomes(
    p_transfer_id uuid[], p_status text[], p_failure_code text[], p_now timestamptz[],
    p_payer uuid[], p_day date[], p_currency text[], p_amount bigint[],
    p_event_id uuid[], p_topic text[], p_event_key text[], p_payload jsonb[],
    p_audit_id uuid[], p_audit_action text[], p_audit_subject text[], p_audit_data jsonb[],
    p_scope text[], p_key text[], p_response_status integer[], p_response_body jsonb[])
RETURNS boolean[] LANGUAGE plpgsql AS $$
DECLARE
    v_out boolean[] := '{}';
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_transfer_id, 1), 0) LOOP
        v_out := v_out || bankwallet_p2p_outcome(
            p_transfer_id[i], p_status[i], p_failure_code[i], p_now[i], p_payer[i], p_day[i],
            p_currency[i], p_amount[i], p_event_id[i], p_topic[i], p_event_key[i],
            p_payload[i], p_audit_id[i], p_audit_action[i], p_audit_subject[i],
            p_audit_data[i], p_scope[i], p_key[i], p_response_status[i],
            p_response_body[i]);
    END LOOP;
    RETURN v_out;
END
$$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(INTENTS)
    op.execute(OUTCOMES)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS bankwallet_p2p_outcomes(uuid[], text[], text[], "
               "timestamptz[], uuid[], date[], text[], bigint[], uuid[], text[], text[], "
               "jsonb[], uuid[], text[], text[], jsonb[], text[], text[], integer[], jsonb[])")
    op.execute("DROP FUNCTION IF EXISTS bankwallet_p2p_intents(text[], text[], bytea[], "
               "timestamptz[], timestamptz[], uuid[], uuid[], uuid[], uuid[], bigint[], "
               "text[], integer[], text[], text[], text[], date[], bigint[], uuid[], "
               "bigint[])")
