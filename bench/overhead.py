"""How much does the service add to the model? Prints, per image:

- the model's own time (in this process, no service: start/step/finish);
- end-to-end time through HTTP, Temporal, the worker and storage, at idle
  (sequential requests) and at saturation (many concurrent requests);
- the ratio of each to the model's time.

It runs a private `daguerre up` (temp data dir, free loopback ports, one worker) and
stops it afterwards. Counts and the total time are bounded.

    .venv/bin/python bench/overhead.py                 # builtin model, 512x512
    .venv/bin/python bench/overhead.py --model fake    # the test model, no torch
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accounts(data_dir: Path, tier: str, count: int) -> list[tuple[str, str]]:
    """``count`` new accounts of ``tier`` in a stack's data dir: (account id, API key)."""
    from daguerre.config import Settings
    from daguerre.store import open_store

    store = open_store(Settings(data_dir=data_dir), migrate=False)
    try:
        made = [store.accounts.create_account(f"{tier}-{i}", tier, "api") for i in range(count)]
        return [(account.id, store.accounts.create_api_key(account.id)) for account in made]
    finally:
        store.close()


def model_options(model_name: str, threads: int) -> dict[str, int]:
    return {"threads": threads} if model_name == "builtin" and threads else {}


def model_seconds_per_image(model_name: str, size: int, count: int, threads: int) -> float:
    """The bare model loop for one image at a time, as the worker runs it (batch of 1)."""
    if model_name == "fake":
        sys.path.insert(0, str(REPO))
        import tests.support.fake_model  # noqa: F401
    from daguerre.models.base import RenderRequest, render
    from daguerre.models.registry import create_model

    model = create_model(model_name, **model_options(model_name, threads))
    model.setup("cpu")
    render(model, [RenderRequest("warm up", seed=0, width=size, height=size)])
    times = []
    for i in range(count):
        prompt = "a large red circle in the center, on a white background"
        started = time.perf_counter()
        render(model, [RenderRequest(prompt, seed=i + 1, width=size, height=size)])
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class Stack:
    """A private `daguerre up` with one api worker."""

    def __init__(
        self,
        model: str,
        data_dir: Path,
        threads: int,
        extra_env: dict[str, str] | None = None,
        repo: Path = REPO,
    ) -> None:
        """``repo``: the checkout whose code runs (another one: the code before a change)."""
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAGUERRE_")}
        env.update(
            # This checkout's code first, whatever the venv has installed: a bench run
            # from another checkout (the code before a change) measures that code.
            PYTHONPATH=os.pathsep.join([str(repo / "src"), str(repo)]),
            DAGUERRE_DATA_DIR=str(data_dir),
            DAGUERRE_PORT=str(self.port),
            DAGUERRE_TEMPORAL_PORT=str(free_port()),
            DAGUERRE_MODEL=model,
            DAGUERRE_LOG_LEVEL="WARNING",
            DAGUERRE_POOLS=json.dumps({"api": {"task_queue": "bench-api"}}),
            DAGUERRE_PRODUCT_POOLS=json.dumps({"api": "api", "chat": "api"}),
            DAGUERRE_MODEL_OPTIONS=json.dumps(model_options(model, threads)),
        )
        env.update(extra_env or {})
        if model == "fake":
            env["DAGUERRE_MODEL_PLUGINS"] = "tests.support.fake_model"
            env["DAGUERRE_MODELS"] = json.dumps({"fake": {"sizes": [64, 128, 256, 512]}})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daguerre", "up"],
            env=env,
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.key = self._read_key()
        # Keep reading the stack's output (its processes' logs): a full pipe would block
        # them mid-write. The last lines are kept for a post-mortem.
        self.tail: collections.deque[str] = collections.deque(maxlen=200)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.tail.append(line)

    def _read_key(self, timeout_s: float = 120.0) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        seen = []
        for line in self.proc.stdout:
            seen.append(line)
            match = re.search(r"API key:\s+(\S+)", line)
            if match:
                return match.group(1)
            if time.monotonic() > deadline:
                break
        self.stop()
        raise SystemExit("`daguerre up` did not start:\n" + "".join(seen))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def one_request(http: httpx.AsyncClient, model: str, size: int, index: int) -> float:
    body = {"model": model, "prompt": f"a small blue square on the left #{index}"}
    body["size"] = f"{size}x{size}"
    started = time.perf_counter()
    response = await http.post("/v1/images/generations", json=body)
    response.raise_for_status()
    return time.perf_counter() - started


async def measure(stack: Stack, model: str, size: int, idle: int, burst: int) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {stack.key}"}
    limits = httpx.Limits(max_connections=burst + 4)
    async with httpx.AsyncClient(
        base_url=stack.url, headers=headers, timeout=600, limits=limits
    ) as http:
        await one_request(http, model, size, -1)  # warm: connections, caches, first render
        sequential = [await one_request(http, model, size, i) for i in range(idle)]
        started = time.perf_counter()
        latencies = await asyncio.gather(
            *(one_request(http, model, size, 1000 + i) for i in range(burst))
        )
        wall = time.perf_counter() - started
    return {
        "idle_latency": statistics.median(sequential),
        "sat_per_image": wall / burst,
        "sat_p50": statistics.median(latencies),
        "sat_max": max(latencies),
        "sat_throughput": burst / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--model-runs", type=int, default=10)
    parser.add_argument("--idle", type=int, default=10, help="sequential requests")
    parser.add_argument("--burst", type=int, default=24, help="concurrent requests")
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads for builtin (0: its default)"
    )
    args = parser.parse_args()
    args.idle, args.burst = min(args.idle, 50), min(args.burst, 200)

    runs = min(args.model_runs, 50)
    model_s = model_seconds_per_image(args.model, args.size, runs, args.threads)
    with tempfile.TemporaryDirectory(prefix="daguerre-bench-") as tmp:
        stack = Stack(args.model, Path(tmp), args.threads)
        try:
            results = asyncio.run(
                asyncio.wait_for(
                    measure(stack, args.model, args.size, args.idle, args.burst), args.max_seconds
                )
            )
        finally:
            stack.stop()

    def row(name: str, seconds: float) -> str:
        return f"  {name:<44} {seconds * 1000:8.1f} ms   {seconds / model_s:5.2f}x model"

    options = model_options(args.model, args.threads) or "default options"
    print(f"\nmodel {args.model} ({options}), {args.size}x{args.size}, 1 image/request")
    print("one worker process, everything on this machine over loopback")
    print(row("model alone (median)", model_s))
    print(row(f"end to end, idle (median of {args.idle} sequential)", results["idle_latency"]))
    print(
        row(f"end to end, saturated ({args.burst} concurrent): wall/img", results["sat_per_image"])
    )
    print(row("  saturated latency p50", results["sat_p50"]))
    print(row("  saturated latency max", results["sat_max"]))
    overhead = results["idle_latency"] - model_s
    print(f"  service overhead per image at idle: {overhead * 1000:.1f} ms")
    print(f"  throughput at saturation: {results['sat_throughput']:.2f} images/s")


if __name__ == "__main__":
    main()
