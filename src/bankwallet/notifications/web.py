"""The development inbox: what the development sink "sent", including one-time codes.

Mounted only when ``settings.env`` is "dev" or "test"; in production the routes do not exist.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from bankwallet.core.deps import DbSession
from bankwallet.notifications import service
from bankwallet.notifications.schemas import DevMessageList
from bankwallet.settings import Settings
from bankwallet.web.templating import render

DEV_ENVS = ("dev", "test")
# Codes on these pages are secrets: no cache may keep them.
NO_STORE = {"Cache-Control": "no-store"}

dev_router = APIRouter(prefix="/dev", include_in_schema=False)


def mount(app: FastAPI, settings: Settings) -> None:
    if settings.env in DEV_ENVS:
        app.include_router(dev_router)


@dev_router.get("/inbox", response_class=HTMLResponse)
async def dev_inbox(request: Request, session: DbSession) -> HTMLResponse:
    messages = await service.list_dev_messages(session)
    return render(request, "notifications/dev_inbox.html", {"messages": messages},
                  headers=NO_STORE)


@dev_router.get("/inbox.json")
async def dev_inbox_json(session: DbSession, response: Response) -> DevMessageList:
    response.headers.update(NO_STORE)
    return DevMessageList(items=await service.list_dev_messages(session))
