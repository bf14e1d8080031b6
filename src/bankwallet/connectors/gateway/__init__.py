"""The card gateway: the processor that tokenises cards and authorises, captures, voids and
refunds card payments. ``base`` is the interface (``CardGateway``) and the card-number facts
every gateway shares; ``sandbox`` is the provider that talks to the sandbox gateway, and
``sandbox_server`` is that gateway itself (``bankwallet sandbox-gateway``).
"""
