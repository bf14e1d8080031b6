"""A customer's balances: one ledger account per currency, and the bank's own accounts."""
