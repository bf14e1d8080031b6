"""Funding: linked bank accounts, and money in (top-up) and out (withdrawal) through the
bank's core banking (``connectors.corebanking``).

Every top-up and withdrawal follows ``docs/money-movement.md`` with a two-phase ledger hold:
the intent is committed first (its id derived from the idempotency key, its ledger transfer
ids derived from its id), then the hold, then the bank instruction (its idempotency key
derived from the movement's id), then the outcome — from the bank's answer, its webhook, the
polling job or ``bankwallet reconcile``, whichever comes first; the others find it applied.
"""
