"""The app's route table, flattened: every path and method it serves.

Suites that must cover every route (the isolation sweep, the 405 check) walk this
rather than a list written by hand, so a route added later is covered, or fails the
suite until someone decides how it should be covered.

FastAPI (0.16x) keeps included routers as branches in ``app.routes``, resolved lazily;
each branch yields its effective routes (with the router's prefix applied).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from fastapi import FastAPI

PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")


@dataclass(frozen=True)
class RouteInfo:
    path: str  # as declared, e.g. /v1/jobs/{job_id}
    methods: frozenset[str]
    in_schema: bool

    @property
    def params(self) -> list[str]:
        return PARAM.findall(self.path)

    def fill(self, values: dict[str, str]) -> str:
        """The path with each {param} replaced by ``values[param]`` (already quoted)."""
        return PARAM.sub(lambda m: values[m.group(1)], self.path)


def _walk(routes: Iterable[object]) -> Iterator[RouteInfo]:
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:  # an included router
            yield from _walk(contexts())
            continue
        nested = getattr(route, "routes", None)
        path = getattr(route, "path", None)
        if nested is not None and path is not None and not hasattr(route, "methods"):
            # A mount: its routes under its path.
            for inner in _walk(nested):
                yield RouteInfo(path + inner.path, inner.methods, inner.in_schema)
            continue
        methods = getattr(route, "methods", None)
        if path is None or not methods:
            continue  # a websocket or something else without HTTP methods
        yield RouteInfo(path, frozenset(methods), bool(getattr(route, "include_in_schema", True)))


def http_routes(app: FastAPI) -> list[RouteInfo]:
    """Every HTTP route, one entry per path (methods merged), in declaration order."""
    merged: dict[str, RouteInfo] = {}
    for info in _walk(app.routes):
        known = merged.get(info.path)
        if known is None:
            merged[info.path] = info
        else:
            merged[info.path] = RouteInfo(
                info.path, known.methods | info.methods, known.in_schema or info.in_schema
            )
    return list(merged.values())
