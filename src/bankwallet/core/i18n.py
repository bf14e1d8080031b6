"""Translations (gettext, through Babel) and locale negotiation.

The ``.po`` files under ``bankwallet/locale`` are the only source: they are compiled in memory
on first use, so no ``.mo`` binaries live in the repository. After adding strings, run
``python -m bankwallet.core.i18n`` to extract them into every catalogue, then translate.
"""

from __future__ import annotations

import io
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Final

from babel.dates import format_date as _format_date
from babel.dates import format_datetime as _format_datetime
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from babel.support import Translations
from starlette.requests import Request

from bankwallet.core import money

LOCALES: Final = ("zh_CN", "en")
LOCALE_DIR: Final = Path(__file__).resolve().parent.parent / "locale"
LANG_COOKIE: Final = "lang"
DOMAIN: Final = "messages"
_MAX_ACCEPT_LANGUAGE_ITEMS = 20
# Any Chinese preference gets Simplified Chinese: for zh-TW/zh-HK readers it is still closer
# than English, and it is the only Chinese we ship.
_BY_LANGUAGE: Final = {"zh": "zh_CN", "en": "en"}


def N_(message: str) -> str:
    """Marks a string for extraction where it is defined; it is translated where shown."""
    return message


def po_path(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def load_catalog(locale: str) -> Catalog:
    with po_path(locale).open("rb") as f:
        return read_po(f, locale=locale, domain=DOMAIN)


@lru_cache(maxsize=len(LOCALES))
def get_translations(locale: str) -> Translations:
    assert locale in LOCALES, locale
    buffer = io.BytesIO()
    write_mo(buffer, load_catalog(locale))
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def gettext(message: str, locale: str) -> str:
    return get_translations(locale).gettext(message)


def supported(tag: str | None) -> str | None:
    """Maps a language tag ("zh-CN", "zh_Hans", "en-GB") to a locale we ship, or None."""
    if not tag:
        return None
    return _BY_LANGUAGE.get(tag.replace("-", "_").split("_", 1)[0].strip().lower())


def parse_accept_language(header: str) -> list[str]:
    """Language tags from an Accept-Language header, best first; q=0 means "not this"."""
    weighted: list[tuple[float, int, str]] = []
    for index, item in enumerate(header.split(",")[:_MAX_ACCEPT_LANGUAGE_ITEMS]):
        tag, _, params = item.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            weighted.append((-q, index, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]


def negotiate(*, cookie: str | None, accept_language: str | None, default: str) -> str:
    if cookie in LOCALES:
        return cookie
    for tag in parse_accept_language(accept_language or ""):
        if locale := supported(tag):
            return locale
    return default


def request_locale(request: Request) -> str:
    """The locale of one request: the ``lang`` cookie, else Accept-Language, else the default."""
    return negotiate(cookie=request.cookies.get(LANG_COOKIE),
                     accept_language=request.headers.get("accept-language"),
                     default=request.app.state.settings.default_locale)


def html_lang(locale: str) -> str:
    """The BCP 47 tag for ``<html lang>`` and the manifest."""
    return locale.replace("_", "-")


def format_money(amount_minor: int, currency: str, locale: str) -> str:
    return money.format_money(amount_minor, currency, locale)


def format_date(value: date, locale: str, format: str = "medium") -> str:
    return _format_date(value, format=format, locale=locale)


def format_datetime(value: datetime, locale: str, format: str = "medium",
                    tzinfo: str | None = None) -> str:
    """Stored datetimes are UTC; ``tzinfo`` (an IANA name) is the reader's zone."""
    return _format_datetime(value, format=format, tzinfo=tzinfo, locale=locale)


# -- maintenance: extract messages from the package into every catalogue --------------------

_METHOD_MAP = [("**/templates/**.html", "jinja2"), ("**/templates/**.js", "ignore"),
               ("**.py", "python")]


def extract_messages() -> Catalog:
    package_dir = LOCALE_DIR.parent
    template = Catalog(domain=DOMAIN, project="bankwallet")
    for filename, lineno, message, comments, context in extract_from_dir(
            package_dir, _METHOD_MAP, options_map={"**.html": {"trimmed": "true"}}):
        template.add(message, None, [(filename, lineno)], auto_comments=comments,
                     context=context)
    return template


def update_catalogs() -> None:
    template = extract_messages()
    for locale in LOCALES:
        catalog = load_catalog(locale)
        catalog.update(template, no_fuzzy_matching=True)
        with po_path(locale).open("wb") as f:
            write_po(f, catalog, width=100, omit_header=False, ignore_obsolete=True,
                     include_previous=False, include_lineno=False)


if __name__ == "__main__":
    update_catalogs()
