"""Async code reaches blocking work through one door: ``store.threads.run_blocking``
(issue 15). A hand-written thread hop elsewhere hides a data path from readers and from
tracing, and escapes the store's limiter. The model runtime (the engine's driver, which
waits on its process's pipe) and the models are the exceptions."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[2] / "src" / "daguerre"
DOOR = "store/threads.py"
MODEL_RUNTIME = (
    "models/",
    "workers/engine_client.py",
    "workers/engine.py",
    "workers/engine_main.py",
)
HOPS = {"to_thread", "run_in_executor", "run_sync_in_worker_thread"}


def thread_hops(source: str) -> list[int]:
    """Line numbers of ``*.to_thread(...)``, ``*.to_thread.run_sync(...)`` and
    ``loop.run_in_executor(...)`` calls in ``source``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in HOPS:
            lines.append(node.lineno)
    return lines


def test_the_checker_sees_a_hand_written_hop() -> None:
    assert thread_hops("import anyio\nawait anyio.to_thread.run_sync(f)\n") == [2]
    assert thread_hops("import asyncio\nawait asyncio.to_thread(f)\n") == [2]
    assert thread_hops("await loop.run_in_executor(None, f)\n") == [1]
    assert thread_hops("await run_blocking(f)\n") == []


def test_no_thread_hops_outside_the_store_door_and_the_model_runtime() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        name = path.relative_to(SRC).as_posix()
        if name == DOOR or name.startswith(MODEL_RUNTIME):
            continue
        found += [f"{name}:{line}" for line in thread_hops(path.read_text())]
    assert found == [], "use daguerre.store.threads.run_blocking (or Store.run) instead"


def test_no_route_or_dependency_runs_on_a_thread(tmp_path: Path) -> None:
    """FastAPI runs a plain ``def`` endpoint or dependency on a worker thread: a hidden
    hop per request, past the limiter (in a flood, ``get_services`` alone was a twentieth
    of the gateway's time). Every one is ``async def``."""
    from fastapi.routing import APIRoute

    from daguerre.config import Settings
    from daguerre.gateway.app import create_app

    app = create_app(Settings(data_dir=tmp_path, api_docs=True))
    plain: set[str] = set()

    def visit(dependant: Any) -> None:
        call = dependant.call
        if inspect.isfunction(call) and not inspect.iscoroutinefunction(call):
            plain.add(f"{call.__module__}.{call.__qualname__}")
        for sub in dependant.dependencies:
            visit(sub)

    def api_routes(routes: list[Any]) -> list[APIRoute]:
        found = []
        for route in routes:
            if isinstance(route, APIRoute):
                found.append(route)
            elif hasattr(route, "original_router"):  # an included router (FastAPI 0.16x)
                found.extend(api_routes(route.original_router.routes))
        return found

    routes = api_routes(app.routes)
    assert len(routes) > 40
    for route in routes:
        visit(route.dependant)
    assert not plain, f"plain functions FastAPI would run on a thread: {sorted(plain)}"
