"""Route matching that skips, in one string test, the routers a path cannot be in.

FastAPI matches a request against every route of every included router in turn (a regular
expression and some bookkeeping each); with this app's ~300 routes that cost more than
everything else a small request does (``bench http``'s bare endpoint spent ~65 % of its CPU
there). A route's path can only match paths that start with its text before the first
``{``, so an included router whose routes' static prefixes none start the path cannot
match it, fully or partly: ``prefilter`` gives each such router a ``matches`` that says so
before trying its routes. What matches, and in what order, is unchanged (tests/core/
test_routing.py compares both for every route of the app).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette._utils import get_route_path
from starlette.routing import Match, Mount, Route
from starlette.types import Scope

UNFILTERED = "_bankwallet_unfiltered_matches"


def prefilter(app: FastAPI) -> int:
    """Give the app's included routers a prefix test in front of their matching; returns
    how many got one. Left alone: a router with a route of a kind this does not know (a
    Host, say) or with routers of its own included in it."""
    done = 0
    for route in app.router.routes:
        if hasattr(route, UNFILTERED) or static_prefixes(route) is None:
            continue
        setattr(route, UNFILTERED, route.matches)
        route.matches = _Filtered(route)  # type: ignore[method-assign]
        done += 1
    return done


class _Filtered:
    """``matches`` of one included router, behind the prefix test. Routes added to the
    router later (its version moves) are taken into account at the next request."""

    def __init__(self, route: Any) -> None:
        self.route = route
        self.original = route.matches
        self.version = -1
        self.prefixes: tuple[str, ...] = ()

    def __call__(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http":
            router = self.route.original_router
            if router._routes_version != self.version:
                self.version = router._routes_version
                self.prefixes = static_prefixes(self.route) or ("",)  # "": try them all
            if not get_route_path(scope).startswith(self.prefixes):
                return Match.NONE, {}
        return self.original(scope)  # type: ignore[no-any-return]


def static_prefixes(route: Any) -> tuple[str, ...] | None:
    """The texts before the first ``{`` of an included router's routes, or None when one of
    them is of a kind this does not know."""
    router = getattr(route, "original_router", None)
    if router is None or not hasattr(route, "effective_route_contexts") \
            or not isinstance(getattr(router, "_routes_version", None), int):
        return None  # not the FastAPI this was written against: matching stays as it was
    if any(hasattr(r, "original_router") for r in router.routes):
        return None  # routers within the router: their changes are not seen here
    found: set[str] = set()
    for context in route.effective_route_contexts():
        original = context.original_route
        if isinstance(original, APIRoute):
            path = context.path_format
        elif isinstance(original, Route | Mount) and context.starlette_route is not None:
            path = getattr(context.starlette_route, "path_format", "")
        else:
            return None
        if not path.startswith("/"):
            return None
        found.add(path.split("{", 1)[0])
    return tuple(sorted(found)) if found else None
