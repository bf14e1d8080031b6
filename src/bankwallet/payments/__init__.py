"""Merchants, payment intents, refunds, settlement and merchant webhooks (and a
Stripe-compatible wire API for them, ``stripe_api``)."""
