from __future__ import annotations

from bankwallet.core.errors import BankwalletError, InvalidInput
from bankwallet.core.security import Unauthenticated  # noqa: F401 - one 401 for every domain


class InvalidLogin(InvalidInput):
    code = "invalid_login"
    title = "Not a valid phone number or e-mail address"


class WeakPassword(InvalidInput):
    code = "weak_password"
    title = "Password too weak"


class BadCredentials(BankwalletError):
    """Wrong login or password; deliberately silent about which."""

    code = "bad_credentials"
    status = 401
    title = "Wrong login or password"


class Throttled(BankwalletError):
    code = "too_many_attempts"
    status = 429
    title = "Too many attempts"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"Try again in {retry_after_s} seconds.", retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class InvalidCode(BankwalletError):
    code = "invalid_code"
    status = 400
    title = "Wrong or expired code"


class AccountLocked(BankwalletError):
    code = "account_locked"
    status = 403
    title = "This account is locked"


class CsrfFailed(BankwalletError):
    code = "csrf_failed"
    status = 403
    title = "The form is out of date; reload the page and try again"


class WrongPassword(InvalidInput):
    code = "wrong_password"
    status = 400
    title = "The current password is wrong"
