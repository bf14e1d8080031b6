"""Exchange-rate sources: mid-market rates for the currencies the wallet holds. ``base`` is
the interface; ``static`` is a configured provider for development, tests and demos (a
market-data feed is another module behind the same interface)."""
