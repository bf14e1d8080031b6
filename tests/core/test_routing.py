"""core.routing.prefilter: routers a path cannot be in are skipped by a prefix test; what
matches a request, fully or partly, is what matched without it, for every route of the app."""

from __future__ import annotations

import uuid

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Match

from bankwallet.app import create_app
from bankwallet.core import routing
from bankwallet.settings import Settings

SAMPLE = {"string": "x1", "integer": "7", "uuid": str(uuid.UUID(int=5)), "path": "a/b.txt",
          "float": "1.5"}


def _paths(app: FastAPI) -> list[tuple[str, str]]:
    """A concrete path and method for every route of every included router."""
    found = []
    for route in app.router.routes:
        for context in getattr(route, "effective_route_contexts", lambda: [])():
            path = context.path_format or getattr(context.starlette_route, "path_format", "")
            convertors = context.param_convertors or getattr(
                context.starlette_route, "param_convertors", {})
            for name, convertor in convertors.items():
                kind = type(convertor).__name__.removesuffix("Convertor").lower()
                path = path.replace("{" + name + "}", SAMPLE[kind])
            methods = getattr(context, "methods", None) or {"GET"}
            found += [(path, method) for method in sorted(methods)]
    return found


def _scope(path: str, method: str) -> dict:
    return {"type": "http", "path": path, "root_path": "", "method": method, "headers": [],
            "query_string": b""}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    folder = tmp_path_factory.mktemp("routing")
    return create_app(Settings(database_url=f"sqlite+aiosqlite:///{folder}/r.db",
                               key_file=str(folder / "keys.json")))


def test_every_route_matches_as_without_the_prefilter(app: FastAPI) -> None:
    filtered = [r for r in app.router.routes if hasattr(r, routing.UNFILTERED)]
    assert len(filtered) >= 20  # the domains' routers
    paths = _paths(app)
    assert len(paths) > 250
    misses = [f"/{p.strip('/')}x/y" for p, _ in paths[::7]] + ["/", "/nothing", "/api/v2/x"]
    for path, method in paths + [(p, "GET") for p in misses] + [(p, "PATCH") for p, _ in paths]:
        for route in app.router.routes:
            if not hasattr(route, routing.UNFILTERED):
                continue
            before = getattr(route, routing.UNFILTERED)(_scope(path, method))[0]
            after = route.matches(_scope(path, method))[0]
            assert after == before, (path, method, route.original_router.prefix)
    # and every route's own path finds a full match somewhere
    for path, method in paths:
        assert any(r.matches(_scope(path, method))[0] is Match.FULL
                   for r in app.router.routes), (path, method)


def test_a_router_skips_paths_outside_its_prefixes_and_sees_routes_added_later() -> None:
    app = FastAPI()
    router = APIRouter(prefix="/api/v1/things")

    @router.get("/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    app.include_router(router)
    assert routing.prefilter(app) == 1
    (included,) = [r for r in app.router.routes if hasattr(r, routing.UNFILTERED)]
    assert included.matches(_scope("/api/v1/other", "GET"))[0] is Match.NONE
    assert included.matches(_scope("/api/v1/things/7", "GET"))[0] is Match.FULL
    assert included.matches(_scope("/api/v1/things/7", "POST"))[0] is Match.PARTIAL

    client = TestClient(app)
    assert client.get("/api/v1/things/9").json() == {"id": "9"}
    assert client.post("/api/v1/things/9").status_code == 405
    assert client.get("/api/v1/elsewhere").status_code == 404
    assert client.get("/api/v1/things").status_code == 404  # outside "/api/v1/things/"

    @router.get("")  # into the router after the prefilter, widening its prefixes
    async def listing() -> dict[str, list[str]]:
        return {"things": []}

    assert client.get("/api/v1/things").json() == {"things": []}
