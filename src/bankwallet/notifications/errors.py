from __future__ import annotations

from bankwallet.core.errors import InvalidInput, NotFound


class MessageNotFound(NotFound):
    """No such message in the caller's inbox (another user's message looks the same)."""

    code = "notification_not_found"
    title = "Notification not found"


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"
    title = "Invalid page cursor"


class SendFailed(Exception):
    """A provider failed to send but may succeed later: the outbox retries the consumer.

    The message names the channel and the provider's error code only, never the recipient.
    """
