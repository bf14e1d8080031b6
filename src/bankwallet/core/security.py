"""Shared request guards. Customer and staff sessions arrive with the identity domain; until
then the operator API is guarded by one bearer token from the settings."""

from __future__ import annotations

import hmac

from fastapi import Request

from bankwallet.core.errors import BankwalletError, Forbidden


class Unauthenticated(BankwalletError):
    code = "unauthenticated"
    status = 401
    title = "Authentication required"


def require_ops_token(request: Request) -> None:
    expected = request.app.state.settings.ops_token
    if not expected:
        raise Forbidden("The operator API is disabled: set BANKWALLET_OPS_TOKEN to enable it.")
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("Send the operator token as 'Authorization: Bearer <token>'.")
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise Forbidden("The operator token is not valid.")
