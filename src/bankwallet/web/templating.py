"""Server-side rendering shared by every domain's pages.

    from bankwallet.web.templating import render

    @router.get("/pay")
    async def pay(request: Request) -> HTMLResponse:
        return render(request, "payments/pay.html", {"intent": intent}, active="pay")

Templates are looked up in every ``bankwallet/<domain>/templates`` folder, so a domain keeps
its pages in ``<domain>/templates/<domain>/`` and extends ``base.html``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Final

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from bankwallet.core import i18n
from bankwallet.core.i18n import N_

PACKAGE_DIR: Final = Path(__file__).resolve().parent.parent
STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
STATIC_PREFIX: Final = "/static/"


@dataclass(frozen=True, slots=True)
class NavItem:
    key: str
    label: str
    href: str | None  # None until the domain behind it ships its page


# The tabs the customer client grows into; a domain sets its href when its page exists.
NAV: Final = (
    NavItem("wallet", N_("Wallet"), "/wallet"),
    NavItem("pay", N_("Pay"), "/wallet/send"),
    NavItem("cards", N_("Cards"), "/me/cards"),
    NavItem("crypto", N_("Crypto"), "/crypto"),
    NavItem("me", N_("Me"), "/me"),
)

# Language names are shown in their own language, so they are not translated.
LANGUAGE_NAMES: Final = {"zh_CN": "中文", "en": "English"}


@lru_cache(maxsize=256)
def static_url(path: str) -> str:
    """URL of a file under ``web/static`` with a content hash, so caches never serve stale."""
    digest = hashlib.sha256((STATIC_DIR / path).read_bytes()).hexdigest()[:12]
    return f"{STATIC_PREFIX}{path}?v={digest}"


def template_dirs() -> list[Path]:
    return sorted(PACKAGE_DIR.glob("*/templates"))


@lru_cache(maxsize=len(i18n.LOCALES))
def environment(locale: str) -> Environment:
    """One environment per locale: translations and formatting filters are bound to it, so
    concurrent requests in different languages never share gettext state."""
    env = Environment(loader=FileSystemLoader(template_dirs()),
                      autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                      extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(i18n.get_translations(locale), newstyle=True)
    env.filters.update(money=partial(i18n.format_money, locale=locale),
                       date=partial(i18n.format_date, locale=locale),
                       datetime=partial(i18n.format_datetime, locale=locale))
    env.globals.update(locale=locale, html_lang=i18n.html_lang(locale), nav=NAV,
                       languages=LANGUAGE_NAMES, static_url=static_url)
    return env


def render(request: Request, template: str, context: dict[str, Any] | None = None, *,
           active: str | None = None, status_code: int = 200,
           headers: dict[str, str] | None = None) -> HTMLResponse:
    """Render ``template`` in the request's locale.

    The context always has ``request``, ``locale``, ``html_lang``, ``csrf_token`` (empty until
    sessions exist), ``active`` (the highlighted nav tab), ``nav``, ``languages`` and
    ``static_url()``; filters ``money(currency)``, ``date`` and ``datetime`` format for the
    locale. Pages vary by language, so shared caches must key on it.
    """
    locale = i18n.request_locale(request)
    html = environment(locale).get_template(template).render(
        request=request, active=active,
        csrf_token=getattr(request.state, "csrf_token", ""),
        **(context or {}))
    response = HTMLResponse(html, status_code=status_code, headers=headers)
    response.headers["Vary"] = "Accept-Language, Cookie"
    response.headers.setdefault("Cache-Control", "no-cache")
    return response
