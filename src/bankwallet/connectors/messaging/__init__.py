"""Messages to people outside the app: e-mail and SMS. ``base`` is the interface; ``smtp`` and
``dev_sink`` are providers (a real SMS provider is one more module implementing ``SmsSender``).
"""
