"""The bank's core banking system: account ownership checks, debits (top-up) and credits
(withdrawal). ``base`` is the interface; ``sandbox`` is the provider that talks to the sandbox
bank, and ``sandbox_server`` is that bank itself (``bankwallet sandbox-bank``).
"""
