"""The FastAPI application factory: mounts every domain's API and web routers."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator
from types import ModuleType

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from bankwallet import __version__
from bankwallet.admin import api as admin_api
from bankwallet.admin import web as admin_web
from bankwallet.core import audit, outbox, routing
from bankwallet.core.crypto import get_keyring
from bankwallet.core.db import Database
from bankwallet.core.errors import install_error_handlers
from bankwallet.core.http import RequestContextMiddleware
from bankwallet.core.logging import configure_logging
from bankwallet.core.runtime import tune_gc
from bankwallet.domains import DOMAINS
from bankwallet.identity import api as identity_api
from bankwallet.identity import web as identity_web
from bankwallet.ledger import api as ledger_api
from bankwallet.ledger import tasks as ledger_tasks
from bankwallet.ledger.store import SqlLedgerStore
from bankwallet.notifications import api as notifications_api
from bankwallet.notifications import tasks as notifications_tasks  # registers consumers
from bankwallet.notifications import web as notifications_web
from bankwallet.settings import Settings, get_settings
from bankwallet.transfers.fast import FastPath, FastTransfersMiddleware


def _domain_modules(name: str, *, skip: tuple[str, ...] = ()) -> list[ModuleType]:
    """``bankwallet.<domain>.<name>`` for every domain that has one (see ``domains.py``)."""
    found = []
    for domain in DOMAINS:
        if domain in skip:
            continue
        try:
            found.append(importlib.import_module(f"bankwallet.{domain}.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name not in (f"bankwallet.{domain}", f"bankwallet.{domain}.{name}"):
                raise
    return found


def _domain_routers(*, skip: tuple[str, ...]) -> list[APIRouter]:
    return [module.router for name in ("api", "web")
            for module in _domain_modules(name, skip=skip) if hasattr(module, "router")]


def create_app(settings: Settings | None = None, *, run_workers: bool = True) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.log_json)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        get_keyring()  # production refuses to start without keys, not at the first request
        tune_gc()
        db = Database(settings.database_url, pool_size=settings.database_pool_size,
                      pre_ping=settings.database_pre_ping)
        ledger = SqlLedgerStore(db.engine, batch_max=settings.ledger_batch_max,
                                batch_wait_ms=settings.ledger_batch_wait_ms,
                                pipeline=settings.ledger_pipeline)
        app.state.db, app.state.ledger = db, ledger
        if settings.p2p_fast_path:
            await fast_p2p.start(settings.database_url, pool_size=settings.database_pool_size)
        notifications_tasks.configure(settings)
        workers: list[asyncio.Task[None]] = []
        if run_workers:
            workers.append(asyncio.create_task(ledger_tasks.expire_holds_forever(
                ledger, interval_s=settings.ledger_expiry_interval_s)))
            workers.append(asyncio.create_task(audit.chain_forever(db.engine)))
            workers.append(asyncio.create_task(outbox.dispatch_forever(
                db, interval_s=settings.outbox_interval_s,
                max_attempts=settings.outbox_max_attempts)))
        # Each domain's tasks module registers its outbox consumers on import and may start
        # background jobs: ``startup(app, run_workers=...)`` returns their coroutines.
        for module in _domain_modules("tasks", skip=("ledger", "notifications")):
            startup = getattr(module, "startup", None)
            jobs = startup(app, run_workers=run_workers) if startup else []
            workers.extend(asyncio.create_task(job) for job in jobs)
        try:
            yield
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await fast_p2p.close()
            await ledger.close()
            await db.dispose()

    app = FastAPI(title="bankwallet", version=__version__, lifespan=lifespan,
                  docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None)
    app.state.settings = settings
    install_error_handlers(app)
    # Inside the request context (ids, security headers, body limit): the P2P fast path,
    # on PostgreSQL only (transfers/fast.py).
    fast_p2p = FastPath()
    app.state.fast_p2p = fast_p2p
    app.add_middleware(FastTransfersMiddleware, fast=fast_p2p)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> JSONResponse:
        try:
            async with app.state.db.engine.connect() as conn:
                await conn.execute(text("SELECT seq FROM ledger_chain WHERE id = 1"))
        except Exception:
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        return JSONResponse({"status": "ready", "database": app.state.db.dialect})

    app.include_router(ledger_api.router)
    app.include_router(identity_api.router)
    app.include_router(identity_web.router)
    app.include_router(admin_api.router)
    app.include_router(admin_web.router)
    app.include_router(notifications_api.router)
    notifications_web.mount(app, settings)  # the development inbox: dev and test only
    for router in _domain_routers(skip=("ledger", "identity", "admin", "notifications")):
        app.include_router(router)
    if settings.bench_endpoints:
        from bankwallet.bench import echo

        app.include_router(echo.router)
    from bankwallet.web import web as web_routes

    web_routes.mount(app)
    routing.prefilter(app)  # last: every router is in
    return app
