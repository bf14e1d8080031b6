"""Cross-site request checks for the web client's forms.

Until sessions carry a CSRF token (identity), state-changing forms accept only same-origin
posts. Browsers send ``Sec-Fetch-Site`` (and ``Origin`` on POST); clients that send neither
are not browsers, so they cannot be tricked into a cross-site request.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request

from bankwallet.core.errors import Forbidden


def require_same_origin(request: Request) -> None:
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        if site not in ("same-origin", "none"):
            raise Forbidden("Cross-site form submissions are refused.")
        return
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise Forbidden("Cross-site form submissions are refused.")


def safe_next(target: str) -> str:
    """A redirect target that stays on this site: a local path, never ``//host`` or a URL."""
    parts = urlsplit(target)
    if (parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//")
            or "\\" in target or any(ord(c) < 0x20 for c in target)):
        return "/"
    return target


def cookies_secure(request: Request) -> bool:
    """Whether cookies get the Secure flag: always over HTTPS and in production (behind a
    TLS-terminating proxy); not on plain-HTTP development servers, where browsers would drop
    them."""
    return request.url.scheme == "https" or request.app.state.settings.env == "prod"
