"""The domains, in the order their routers are mounted. Each is a folder with the same shape
(``models``, ``service``, ``api``, ``web``, ``tasks`` — only the modules it needs); the app
and Alembic find those modules from this list."""

DOMAINS: tuple[str, ...] = (
    "ledger", "identity", "admin", "notifications", "wallets", "funding", "transfers", "fx",
    "history", "cards", "payments", "qr", "chains", "risk",
)
