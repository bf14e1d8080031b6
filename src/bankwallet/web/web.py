"""The shell of the customer client: home, language switch, offline page, PWA manifest,
service worker, icons and static files."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from bankwallet import __version__
from bankwallet.core import i18n
from bankwallet.core.errors import InvalidInput, NotFound
from bankwallet.web.csrf import cookies_secure, require_same_origin, safe_next
from bankwallet.web.icons import ICONS, icon_png

SESSION_COOKIE = "bw_session"  # identity.deps.SESSION_COOKIE: the shell does not import domains
from bankwallet.web.templating import STATIC_DIR, environment, render, static_url

THEME_COLOUR = "#0b4f8a"
BACKGROUND_COLOUR = "#f4f6fa"
LANG_COOKIE_MAX_AGE_S = 365 * 24 * 3600
# What the service worker precaches: enough to show the offline page with its styles, and
# the camera scanner of /pay/scan (its QR decoder is 130 kB: fetched once per release, not
# on every scan over a shop's weak signal).
SHELL_STATIC = ("css/app.css", "js/app.js", "vendor/htmx.min.js", "img/icon.svg",
                "css/scan.css", "js/scan.js", "vendor/jsQR.min.js")

router = APIRouter(include_in_schema=False)


def mount(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    # Signed in (a session cookie): straight to the wallet, which checks the session.
    if request.cookies.get(SESSION_COOKIE):
        return RedirectResponse("/wallet", status_code=303)
    return render(request, "web/home.html", active="wallet")


@router.get("/offline", response_class=HTMLResponse)
async def offline(request: Request) -> HTMLResponse:
    return render(request, "web/offline.html")


@router.post("/lang")
async def switch_language(request: Request, lang: Annotated[str, Form(max_length=16)],
                          next_path: Annotated[str, Form(alias="next", max_length=2048)] = "/",
                          ) -> Response:
    require_same_origin(request)
    if lang not in i18n.LOCALES:
        raise InvalidInput(f"{lang!r} is not a supported language.", supported=i18n.LOCALES)
    response = RedirectResponse(safe_next(next_path), status_code=303)
    response.set_cookie(i18n.LANG_COOKIE, lang, max_age=LANG_COOKIE_MAX_AGE_S, path="/",
                        httponly=True, samesite="lax",
                        secure=cookies_secure(request))
    return response


@router.get("/manifest.webmanifest")
async def manifest(request: Request) -> JSONResponse:
    locale = i18n.request_locale(request)
    _ = i18n.get_translations(locale).gettext
    icons = [{"src": "/static/img/icon.svg", "sizes": "any", "type": "image/svg+xml"}]
    icons += [{"src": f"/icons/{name}.png", "sizes": f"{size}x{size}", "type": "image/png",
               "purpose": "maskable" if maskable else "any"}
              for name, (size, maskable) in ICONS.items()]
    body = {
        "id": "/", "name": "bankwallet", "short_name": "bankwallet",
        "description": _("Your bank's wallet: pay, send and save in one place."),
        "lang": i18n.html_lang(locale), "dir": "ltr",
        "start_url": "/", "scope": "/", "display": "standalone", "orientation": "portrait",
        "theme_color": THEME_COLOUR, "background_color": BACKGROUND_COLOUR,
        "categories": ["finance"], "icons": icons,
    }
    return JSONResponse(body, media_type="application/manifest+json",
                        headers={"Vary": "Accept-Language, Cookie"})


@lru_cache(maxsize=1)
def service_worker_source() -> str:
    shell = ["/offline", *(static_url(path) for path in SHELL_STATIC)]
    # A new cache name whenever a precached file (or the release) changes, so an update
    # replaces the shell instead of mixing old and new files.
    version = hashlib.sha256("\n".join([__version__, *shell]).encode()).hexdigest()[:12]
    return environment("en").get_template("web/sw.js").render(version=version, shell=shell)


@router.get("/sw.js")
async def service_worker() -> Response:
    # no-cache: browsers must check for a new worker on every visit.
    return Response(service_worker_source(), media_type="text/javascript",
                    headers={"Cache-Control": "no-cache"})


@router.get("/icons/{name}.png")
def icon(name: str) -> Response:  # sync: drawing the first time is CPU work for a thread
    if name not in ICONS:
        raise NotFound("No such icon.")
    return Response(icon_png(name), media_type="image/png",
                    headers={"Cache-Control": "public, max-age=86400"})
