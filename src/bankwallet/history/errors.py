from __future__ import annotations

from bankwallet.core.errors import Conflict, InvalidInput, NotFound


class EntryNotFound(NotFound):
    """No such movement on the caller's accounts (another customer's looks the same)."""

    code = "history_entry_not_found"
    title = "Transaction not found"


class InvalidFilter(InvalidInput):
    code = "invalid_history_filter"
    title = "Invalid filter"


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"
    title = "Invalid page cursor"


class InvalidPeriod(InvalidInput):
    code = "invalid_statement_period"
    title = "Invalid statement period"


class StatementTooLarge(InvalidInput):
    code = "statement_too_large"
    title = "Statement too large"


class StatementBusy(Conflict):
    """Money kept moving while the statement was read: asking again succeeds."""

    code = "statement_busy"
    title = "Balances changed while the statement was made"

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": "1"}
