"""Foreign exchange between a customer's own balances: quotes with the bank's spread and a
short validity, executed as two linked ledger legs through the bank's currency position."""
