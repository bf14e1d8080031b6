"""Money between customers: send (by phone, e-mail, wallet id or a signed contact card),
request money, split a bill. Every movement follows docs/money-movement.md."""
