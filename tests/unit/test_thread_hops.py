"""Async code reaches blocking work through one door: ``store.threads.run_blocking``
(issue 15). A hand-written thread hop elsewhere hides a data path from readers and from
tracing, and escapes the store's limiter. The model runtime (the engine's driver, which
waits on its process's pipe) and the models are the exceptions."""

from __future__ import annotations

import ast
from pathlib import Path

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
