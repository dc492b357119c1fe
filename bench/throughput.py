"""Capacity: how much of the model and of Temporal does the whole stack deliver?

All in one run on this machine (numbers, not pass/fail; the machine is shared):

1. ``model``: the built-in model alone, its batched peak in images/s.
2. ``ceiling``: Temporal's own ceiling: the GenerateImage workflow with the same
   activities doing no work, on the stack's own dev server, in workflows/s.
3. ``stack``: the whole stack at saturation (the shipped model, 512x512, closed loop of
   concurrent clients on POST /v1/images/generations) for n=1 and n=4, with batching
   and with a batch budget of 1: images/s, p50 and p99 latency, CPU ms per job in each
   process.
4. ``idle``: end-to-end minus the model's own time, sequential requests.
5. ``costs``: what one job costs the service with the fake instant model at saturation:
   CPU ms per job in each process, SQL statements, blob writes, Temporal RPCs by type
   and history events.

    .venv/bin/python bench/throughput.py                      # everything, ~6 minutes
    .venv/bin/python bench/throughput.py --only costs         # one section
    .venv/bin/python bench/throughput.py --seconds 10         # shorter windows

Each stack is a private `daguerre up` (temp data dir, free ports) with the counters of
bench/probe/ loaded into its gateway and worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from temporalio import activity

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import REPO, Stack, free_port
from surge import process_cpu

sys.path.insert(0, str(REPO / "src"))
from daguerre.engine.contracts import (
    FINALIZE_ACTIVITY,
    RENDER_ACTIVITY,
    FinalizeInput,
    FinalizeOutput,
    RenderInput,
    RenderOutput,
)

PROBE = Path(__file__).resolve().parent / "probe"
SIZE = 512
ROLES = ("gateway", "worker", "temporal", "launcher", "bench")


# --- 1. the model alone ----------------------------------------------------------------
def model_peak(batches: list[int], repeats: int = 2) -> tuple[float, int, float]:
    """(peak images/s, at batch size, seconds for one image) of the built-in model."""
    from daguerre.models.base import RenderRequest, render
    from daguerre.models.builtin.backend import BuiltinModel
    from daguerre.models.builtin.grammar import sample_caption
    from daguerre.models.builtin.scene import sample_scene

    model = BuiltinModel(threads=1)
    model.setup("cpu")
    rng = random.Random(0)
    prompts = [sample_caption(sample_scene(rng), rng)[0] for _ in range(max(batches))]
    render(model, [RenderRequest(prompts[0])])
    one = min(_timed(lambda: render(model, [RenderRequest(prompts[1], seed=1)])) for _ in range(5))
    best, best_bs = 0.0, 1
    for bs in batches:
        reqs = [RenderRequest(p, seed=i) for i, p in enumerate(prompts[:bs])]
        seconds = min(_timed(lambda reqs=reqs: render(model, reqs)) for _ in range(repeats))
        if bs / seconds > best:
            best, best_bs = bs / seconds, bs
    return best, best_bs, one


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# --- reading the stack's counters ------------------------------------------------------
def temporal_rpcs(metrics_port: int) -> Counter[str]:
    """Requests the Temporal frontend served, by operation, plus persistence calls."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("service_requests{") and 'service_name="frontend"' in line:
            match = re.search(r'operation="([^"]+)"', line)
            if match:
                out[match[1]] += int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("persistence_requests{"):
            out["(persistence)"] += int(float(line.rsplit(" ", 1)[1]))
    return out


def probe_counts(folder: Path) -> dict[str, Counter[str]]:
    """What bench/probe counted so far, per role."""
    out: dict[str, Counter[str]] = {}
    for path in folder.glob("*.json"):
        role = path.name.split(".")[0]
        try:
            counts = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        out.setdefault(role, Counter()).update(counts)
    return out


@dataclass
class Reading:
    at: float
    cpu: dict[str, int]
    rpcs: Counter[str]
    probes: dict[str, Counter[str]]


@dataclass
class BenchStack:
    """A private `daguerre up` with counters, for one model and pool configuration."""

    model: str
    pool: dict[str, Any]
    extra: dict[str, str] = field(default_factory=dict)

    def __enter__(self) -> BenchStack:
        self._tmp = tempfile.TemporaryDirectory(prefix="daguerre-throughput-")
        root = Path(self._tmp.name)
        self.probe_dir = root / "probe"
        self.probe_dir.mkdir()
        self.metrics_port = free_port()
        env = {
            "PYTHONPATH": f"{PROBE}{os.pathsep}{REPO}",
            "DAGUERRE_BENCH_PROBE_DIR": str(self.probe_dir),
            "DAGUERRE_TEMPORAL_METRICS_PORT": str(self.metrics_port),
            "DAGUERRE_ACCESS": json.dumps(ACCESS),
            "DAGUERRE_POOLS": json.dumps({"api": {"task_queue": "bench-api", **self.pool}}),
            **self.extra,
        }
        self.stack = Stack(self.model, root / "data", 1, env)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.stop()
        self._tmp.cleanup()

    def read(self) -> Reading:
        return Reading(
            time.monotonic(),
            process_cpu(self.stack.proc.pid),
            temporal_rpcs(self.metrics_port),
            probe_counts(self.probe_dir),
        )


# The bench's single account must never meet a rate limit or a wait budget.
ACCESS = {
    "tiers": {
        "pro": {
            "priority": 1,
            "requests": "100000/minute",
            "images": "100000/minute",
            "wait_budget_s": 3600,
            "over_budget": "reject",
        }
    },
    "features": {"generate": {"percent": 100}, "edit": {"percent": 100}},
}


# --- 3. the stack at saturation --------------------------------------------------------
@dataclass
class Window:
    jobs: int
    images: int
    seconds: float
    latencies: list[float]
    errors: Counter[int]
    before: Reading
    after: Reading

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.seconds

    def cpu_ms_per_job(self) -> dict[str, float]:
        hz = os.sysconf("SC_CLK_TCK")
        return {
            role: (self.after.cpu.get(role, 0) - self.before.cpu.get(role, 0))
            / hz
            * 1000
            / max(self.jobs, 1)
            for role in ROLES
        }

    def per_job(self, role: str, name: str) -> float:
        after = self.after.probes.get(role, Counter())[name]
        before = self.before.probes.get(role, Counter())[name]
        return (after - before) / max(self.jobs, 1)

    def rpcs_per_job(self) -> dict[str, float]:
        delta = self.after.rpcs - self.before.rpcs
        return {op: n / max(self.jobs, 1) for op, n in sorted(delta.items()) if n}


async def saturate(
    bench: BenchStack, n: int, clients: int, seconds: float, warm_s: float, size: int = SIZE
) -> Window:
    """A closed loop: ``clients`` users, each sending its next request when its last one
    is answered. Counts what finishes inside the window after a warm-up."""
    stack = bench.stack
    headers = {"Authorization": f"Bearer {stack.key}"}
    done: list[tuple[float, float]] = []  # (finished at, latency)
    errors: Counter[int] = Counter()
    stop_at = time.monotonic() + warm_s + seconds
    connector = aiohttp.TCPConnector(limit=clients + 8)
    timeout = aiohttp.ClientTimeout(total=600)

    async def user(index: int, http: aiohttp.ClientSession) -> None:
        sent = 0
        while time.monotonic() < stop_at:
            body = {
                "model": stack_model(bench.model),
                "prompt": PROMPTS[(index + sent) % len(PROMPTS)],
                "n": n,
                "size": f"{size}x{size}",
                "response_format": "url",
            }
            sent += 1
            started = time.monotonic()
            async with http.post("/v1/images/generations", json=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    errors[resp.status] += 1
                    await asyncio.sleep(0.1)
                    continue
            now = time.monotonic()
            done.append((now, now - started))

    async with aiohttp.ClientSession(stack.url, connector=connector, timeout=timeout) as http:
        users = [asyncio.create_task(user(i, http)) for i in range(clients)]
        await asyncio.sleep(warm_s)
        before = await asyncio.to_thread(bench.read)
        count_at_start = len(done)
        await asyncio.sleep(seconds)
        after = await asyncio.to_thread(bench.read)
        inside = done[count_at_start:]
        await asyncio.gather(*users)
    window = after.at - before.at
    return Window(
        len(inside), len(inside) * n, window, [lat for _, lat in inside], errors, before, after
    )


def stack_model(model: str) -> str:
    return model


PROMPTS = [
    "a large red circle in the center, on a white background",
    "a small blue square on the left and a green triangle on the right",
    "a yellow star at the top, on a black background",
    "a purple circle at the bottom right",
    "a big orange square in the middle with a small white circle at the top",
]


async def idle(bench: BenchStack, count: int, size: int = SIZE) -> list[float]:
    stack = bench.stack
    headers = {"Authorization": f"Bearer {stack.key}"}
    out = []
    async with aiohttp.ClientSession(stack.url) as http:
        for i in range(count + 2):
            body = {
                "model": bench.model,
                "prompt": PROMPTS[i % len(PROMPTS)],
                "size": f"{size}x{size}",
                "response_format": "url",
            }
            started = time.monotonic()
            async with http.post("/v1/images/generations", json=body, headers=headers) as resp:
                await resp.read()
                resp.raise_for_status()
            if i >= 2:  # the first two warm connections and caches
                out.append(time.monotonic() - started)
            await asyncio.sleep(0.2)
    return out


async def history_events(address: str, job_ids: list[str]) -> float:
    from temporalio.client import Client

    client = await Client.connect(address)
    counts = []
    for job_id in job_ids:
        history = await client.get_workflow_handle(job_id).fetch_history()
        counts.append(len(history.events))
    return statistics.mean(counts) if counts else float("nan")


def recent_job_ids(data_dir: Path, count: int) -> list[str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{data_dir / 'daguerre.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id FROM jobs WHERE status='succeeded' ORDER BY finished_at DESC LIMIT :n"),
            {"n": count},
        ).all()
    engine.dispose()
    return [r[0] for r in rows]


# --- 2. Temporal's own ceiling ---------------------------------------------------------
CEILING_QUEUE = "bench-ceiling"


class _NoWork:
    """GenerateImage's activities, doing nothing: what Temporal alone can sustain."""

    def __init__(self, done: Any) -> None:
        self.done = done

    @activity.defn(name=RENDER_ACTIVITY)
    async def render(self, inp: RenderInput) -> RenderOutput:
        with self.done.get_lock():
            self.done.value += 1
        return RenderOutput(inp.job_id, "succeeded", [f"img-{inp.job_id}-0"])

    @activity.defn(name=FINALIZE_ACTIVITY)
    async def finalize(self, inp: FinalizeInput) -> FinalizeOutput:
        return FinalizeOutput(changed=True)


def _ceiling_worker(address: str, done: Any, ready: Any) -> None:
    """A worker of the GenerateImage workflow whose activities do nothing, configured
    as the stack's workers are."""
    from temporalio.client import Client
    from temporalio.worker import Worker

    from daguerre.engine.workflows import GenerateImage
    from daguerre.priority import control_queue
    from daguerre.workers.worker import WORKFLOW_RUNNERS

    acts = _NoWork(done)

    async def main() -> None:
        client = await Client.connect(address)
        jobs = Worker(
            client,
            task_queue=CEILING_QUEUE,
            workflows=[GenerateImage],
            activities=[acts.render],
            workflow_runner=WORKFLOW_RUNNERS[os.environ.get("CEILING_SANDBOX", "fast")],
            # As the stack's workers: a render holds its workflow task (a local activity).
            max_concurrent_workflow_tasks=260,
            max_concurrent_local_activities=256,
            disable_eager_activity_execution=True,
        )
        controls = Worker(
            client, task_queue=control_queue(CEILING_QUEUE), activities=[acts.finalize]
        )
        async with jobs, controls:
            ready.set()
            await asyncio.Event().wait()

    asyncio.run(main())


def _ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


async def ceiling(
    address: str, stack_pid: int, in_flight: int, seconds: float, warm_s: float
) -> dict[str, Any]:
    """Workflows per second of GenerateImage with do-nothing activities, on the stack's
    dev server (its gateway and worker idle meanwhile), with ``in_flight`` workflows
    kept running; and the CPU each takes per workflow."""
    from temporalio.client import Client
    from temporalio.common import Priority

    from daguerre.domain import JobSpec
    from daguerre.engine.contracts import WORKFLOW, GenerateImageInput
    from daguerre.priority import control_queue

    done = multiprocessing.Value("q", 0)
    ready = multiprocessing.Event()
    proc = multiprocessing.Process(target=_ceiling_worker, args=(address, done, ready))
    proc.start()
    try:
        await asyncio.to_thread(ready.wait, 60)
        client = await Client.connect(address)
        started = 0
        spec = JobSpec(prompt=PROMPTS[0], model="builtin", width=SIZE, height=SIZE)

        async def start_one() -> None:
            nonlocal started
            started += 1
            job_id = f"ceiling-{os.getpid()}-{started}"
            await client.start_workflow(
                WORKFLOW,
                GenerateImageInput(
                    job_id=job_id,
                    spec=spec,
                    control_queue=control_queue(CEILING_QUEUE),
                    account_id="bench",
                ),
                id=job_id,
                task_queue=CEILING_QUEUE,
                priority=Priority(priority_key=1, fairness_key="bench", fairness_weight=1.0),
                rpc_timeout=timedelta(seconds=10),
            )

        async def keep_full(until: float) -> None:
            while time.monotonic() < until:
                gap = in_flight - (started - done.value)
                if gap > 0:
                    await asyncio.gather(*(start_one() for _ in range(gap)))
                else:
                    await asyncio.sleep(0.005)

        def cpu() -> dict[str, int]:
            stack = process_cpu(stack_pid)
            return {
                "temporal": stack.get("temporal", 0),
                "worker": _ticks(proc.pid),  # type: ignore[arg-type]
                "bench": _ticks(os.getpid()),
            }

        await keep_full(time.monotonic() + warm_s)
        count_before, cpu_before, t_before = done.value, cpu(), time.monotonic()
        await keep_full(t_before + seconds)
        count_after, cpu_after, t_after = done.value, cpu(), time.monotonic()
        count = max(1, count_after - count_before)
        hz = os.sysconf("SC_CLK_TCK")
        per_job = {k: (cpu_after[k] - cpu_before[k]) / hz * 1000 / count for k in cpu_after}
        return {"workflows_per_s": count / (t_after - t_before), "cpu_ms_per_job": per_job}
    finally:
        proc.terminate()
        proc.join(10)


# --- printing --------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def describe(name: str, w: Window) -> dict[str, Any]:
    cpu = w.cpu_ms_per_job()
    row = {
        "images_per_s": w.images_per_s,
        "jobs_per_s": w.jobs_per_s,
        "p50_s": percentile(w.latencies, 0.5),
        "p99_s": percentile(w.latencies, 0.99),
        "jobs": w.jobs,
        "errors": dict(w.errors),
        "cpu_ms_per_job": cpu,
    }
    print(
        f"  {name:<26} {w.images_per_s:7.2f} img/s  {w.jobs_per_s:6.2f} jobs/s  "
        f"p50 {row['p50_s']:.2f} s  p99 {row['p99_s']:.2f} s  ({w.jobs} jobs"
        f"{', errors ' + str(dict(w.errors)) if w.errors else ''})"
    )
    print("      CPU ms/job: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items() if v >= 0.05))
    return row


def describe_costs(w: Window, events: float) -> dict[str, Any]:
    cpu = w.cpu_ms_per_job()
    orchestration = sum(v for k, v in cpu.items() if k != "bench")
    rpcs = w.rpcs_per_job()
    persistence = rpcs.pop("(persistence)", 0.0)
    costs = {
        "jobs_per_s": w.jobs_per_s,
        "cpu_ms_per_job": cpu,
        "orchestration_cpu_ms_per_job": orchestration,
        "history_events": events,
        "temporal_rpcs": rpcs,
        "temporal_rpcs_total": sum(rpcs.values()),
        "temporal_persistence_calls": persistence,
        "db_statements": {r: w.per_job(r, "db_statements") for r in ("gateway", "worker")},
        "blob_writes": {r: w.per_job(r, "blob_writes") for r in ("gateway", "worker")},
    }
    print(f"  jobs/s at saturation: {w.jobs_per_s:.2f} ({w.jobs} jobs)")
    print(
        "  CPU ms/job: "
        + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
        + f"; orchestration (all but the bench) {orchestration:.1f}"
    )
    print(f"  Temporal history events per job: {events:.1f}")
    print(
        f"  Temporal RPCs per job: {costs['temporal_rpcs_total']:.2f} ("
        + ", ".join(f"{k} {v:.2f}" for k, v in rpcs.items())
        + f"); persistence calls {persistence:.1f}"
    )
    print(
        "  SQL statements per job: "
        + ", ".join(f"{k} {v:.2f}" for k, v in costs["db_statements"].items())
    )
    print(
        "  blob writes per job: "
        + ", ".join(f"{k} {v:.2f}" for k, v in costs["blob_writes"].items())
    )
    return costs


# --- main ------------------------------------------------------------------------------
async def run_stack_section(args: argparse.Namespace, out: dict[str, Any]) -> None:
    configs = {"batching": {}, "budget 1": {"batch_images": 1}}
    for label, pool in configs.items():
        with BenchStack("builtin", pool) as bench:
            if "ceiling" in args.sections and label == "batching":
                address = f"127.0.0.1:{_temporal_port(bench)}"
                result = await ceiling(
                    address, bench.stack.proc.pid, args.ceiling_in_flight, args.seconds, args.warm_s
                )
                out["ceiling_workflows_per_s"] = result["workflows_per_s"]
                out["ceiling_cpu_ms_per_job"] = result["cpu_ms_per_job"]
                print(
                    f"Temporal ceiling: {result['workflows_per_s']:.2f} workflows/s; CPU ms per "
                    "workflow: "
                    + ", ".join(f"{k} {v:.1f}" for k, v in result["cpu_ms_per_job"].items())
                )
            if "stack" in args.sections:
                for n in (1, 4):
                    clients = args.clients if n == 1 else max(8, args.clients // 4)
                    w = await saturate(bench, n, clients, args.seconds, args.warm_s)
                    out.setdefault("stack", {})[f"{label} n={n}"] = describe(
                        f"{label}, n={n}, {clients} clients", w
                    )
            if "idle" in args.sections and label == "batching":
                latencies = await idle(bench, args.idle)
                out["idle_p50_s"] = statistics.median(latencies)
                print(f"idle end to end p50: {out['idle_p50_s'] * 1000:.1f} ms")


def _temporal_port(bench: BenchStack) -> int:
    """The stack's dev server port, from the banner `daguerre up` prints."""
    for _ in range(100):
        match = re.search(r"Temporal:\s+127\.0\.0\.1:(\d+)", "".join(bench.stack.tail))
        if match is not None:
            return int(match[1])
        time.sleep(0.1)
    raise SystemExit("could not find the stack's Temporal address in its banner")


async def run_costs(args: argparse.Namespace, out: dict[str, Any]) -> None:
    extra = {"DAGUERRE_MODEL_OPTIONS": json.dumps({})}
    with BenchStack("fake", args.fake_pool, extra) as bench:
        w = await saturate(bench, 1, args.clients, args.seconds, args.warm_s)
        ids = recent_job_ids(Path(bench._tmp.name) / "data", 5)
        events = await history_events(f"127.0.0.1:{_temporal_port(bench)}", ids)
        print("\nwhat one job costs (fake instant model, saturation, 512x512, n=1):")
        out["costs"] = describe_costs(w, events)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "model" in args.sections:
        peak, at, one = await asyncio.to_thread(model_peak, [16, 32, 64, 128])
        out["model_peak_images_per_s"], out["model_peak_batch"] = peak, at
        out["model_one_image_s"] = one
        print(f"model alone: peak {peak:.1f} images/s at batch {at}; one image {one * 1000:.1f} ms")
    if {"ceiling", "stack", "idle"} & set(args.sections):
        await run_stack_section(args, out)
    if "costs" in args.sections:
        await run_costs(args, out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sections = ["model", "ceiling", "stack", "idle", "costs"]
    parser.add_argument("--only", action="append", choices=sections, help="run these sections")
    parser.add_argument("--seconds", type=float, default=20, help="each measured window")
    parser.add_argument("--warm-s", type=float, default=5, help="before each window")
    parser.add_argument("--clients", type=int, default=128, help="concurrent users for n=1")
    parser.add_argument("--ceiling-in-flight", type=int, default=128)
    parser.add_argument("--idle", type=int, default=20, help="sequential requests")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    args.sections = args.only or sections
    args.fake_pool = {}
    out = asyncio.run(main_async(args))
    if "model_peak_images_per_s" in out and "stack" in out:
        peak = out["model_peak_images_per_s"]
        for name, row in out["stack"].items():
            print(f"  {name}: {row['images_per_s'] / peak:.2f}x the model's batched peak")
    if "ceiling_workflows_per_s" in out and "stack" in out:
        ceil = out["ceiling_workflows_per_s"]
        for name, row in out["stack"].items():
            if name.endswith("n=1"):
                print(f"  {name}: {row['jobs_per_s'] / ceil:.2f}x Temporal's ceiling")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
