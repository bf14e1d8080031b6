"""The card vault: customers' debit and credit cards, kept as PCI DSS asks (the number only
envelope-encrypted and found by a keyed hash, the security code never stored), verified with
the card gateway and used through its token."""
