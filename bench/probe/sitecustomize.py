"""Counters for bench/throughput.py, loaded into every process of a bench stack.

Python imports ``sitecustomize`` at start-up from the path, so putting this folder on
the stack's PYTHONPATH counts, in each process, without a line of product code:

- the SQL statements it sent (SQLAlchemy's ``before_cursor_execute``);
- the blobs it wrote (``LocalBlobStore.put``).

Each process rewrites ``$DAGUERRE_BENCH_PROBE_DIR/<role>.<pid>.json`` twice a second,
so a process killed at the end still leaves its last counts. Nothing happens unless
that variable is set.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

_DIR = os.environ.get("DAGUERRE_BENCH_PROBE_DIR")


def _role() -> str:
    args = " ".join(sys.argv)
    for role in ("gateway", "worker", "up"):
        if f" {role}" in f" {args}":
            return "launcher" if role == "up" else role
    return "other"


def _install(folder: Path) -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from daguerre.store import blobs

    counts: Counter[str] = Counter()

    def on_statement(*_args: object) -> None:
        counts["db_statements"] += 1

    event.listen(Engine, "before_cursor_execute", on_statement)
    put = blobs.LocalBlobStore.put

    def counted_put(self: blobs.LocalBlobStore, key: str, data: bytes) -> None:
        counts["blob_writes"] += 1
        counts["blob_bytes"] += len(data)
        put(self, key, data)

    blobs.LocalBlobStore.put = counted_put  # type: ignore[method-assign]
    path = folder / f"{_role()}.{os.getpid()}.json"

    def dump() -> None:
        while True:
            time.sleep(0.5)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(dict(counts)))
            tmp.replace(path)

    threading.Thread(target=dump, name="bench-probe", daemon=True).start()


if _DIR and _role() in ("gateway", "worker"):
    _install(Path(_DIR))
