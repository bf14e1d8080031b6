from __future__ import annotations

from bankwallet.core.errors import BankwalletError, NotFound


class AccountNotFound(NotFound):
    code = "ledger_account_not_found"
    title = "Ledger account not found"


class TransferNotFound(NotFound):
    code = "ledger_transfer_not_found"
    title = "Ledger transfer not found"


class TransferRejected(BankwalletError):
    """A single transfer the ledger refused; ``code`` is the ledger's result code."""

    status = 422
    title = "Transfer refused"

    def __init__(self, result: str, detail: str) -> None:
        super().__init__(detail, result=result)
        self.code = result  # type: ignore[misc]
