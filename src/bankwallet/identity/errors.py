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


class StepUpRequired(BankwalletError):
    """A sensitive action needs a second factor proven in the last few minutes."""

    code = "step_up_required"
    status = 403
    title = "Confirm it is you with your second factor"
    decides = False


class TotpAlreadyActive(BankwalletError):
    code = "totp_already_active"
    status = 409
    title = "An authenticator app is already set up; remove it first"


class TotpNotEnrolled(BankwalletError):
    code = "totp_not_enrolled"
    status = 409
    title = "No authenticator app is set up"


class SecondFactorUnavailable(BankwalletError):
    code = "second_factor_unavailable"
    status = 409
    title = "This second factor is not available for your account"


class PasskeyRejected(BankwalletError):
    """The browser's WebAuthn answer did not verify (wrong challenge, origin, signature…)."""

    code = "passkey_rejected"
    status = 400
    title = "The passkey could not be verified"


class PasskeyNotFound(BankwalletError):
    code = "passkey_not_found"
    status = 404
    title = "No such passkey"


class PasskeysNotConfigured(BankwalletError):
    code = "passkeys_not_configured"
    status = 503
    title = "Passkeys are not configured on this server (BANKWALLET_WEBAUTHN_RP_ID)"


class AccountNotEmpty(BankwalletError):
    code = "account_not_empty"
    status = 409
    title = "Move out every balance before closing the account"
