"""Which routes serve a path, for answers about a request that is not routed: the
methods for a 405's ``Allow`` (errors.py), the path parameter that holds odd text
(text_guard.py).

FastAPI 0.16x keeps an included router as one branch in ``app.routes``, which yields
its effective routes (prefix applied) through ``effective_route_contexts``; a plain
Starlette or FastAPI route is its own entry. Both carry ``path_regex`` and ``methods``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PathMatch:
    methods: frozenset[str]
    params: dict[str, str]  # the path parameters, as the path spells them


def _flat(routes: Iterable[Any]) -> Iterator[Any]:
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            yield from _flat(contexts())
        else:
            yield route


def matching(app: Any, path: str) -> list[PathMatch]:
    """Every HTTP route of ``app`` whose path pattern matches ``path``, any method."""
    found = []
    for route in _flat(getattr(app, "routes", ())):
        regex = getattr(route, "path_regex", None)
        methods = getattr(route, "methods", None)
        if regex is None or not methods:
            continue  # a mount, a websocket
        match = regex.match(path)
        if match is not None:
            found.append(PathMatch(frozenset(methods), match.groupdict()))
    return found
