"""Transaction records, receipts and monthly statements: everything the customer's wallet
accounts took part in, read from the ledger (the system of record) through the ``user_data``
every movement carries (``docs/money-movement.md``). History owns no tables."""
