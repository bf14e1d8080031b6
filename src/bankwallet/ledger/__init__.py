"""The ledger: accounts and immutable transfers, the only writer of balances."""
