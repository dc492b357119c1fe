"""Capacity: how much of the model and of Temporal does the whole stack deliver?

All in one run on this machine (numbers, not pass/fail: the machine is shared):

1. ``model``: the built-in model alone, its batched peak in images/s.
2. ``ceiling``: Temporal's own ceiling: the GenerateImage workflow with the same (local)
   activity doing no work, on the stack's own dev server, in workflows/s.
3. ``stack``: the whole stack at saturation (the shipped model, 512x512, closed loops of
   concurrent clients on POST /v1/images/generations) for n=1 and n=4, with batching
   and with a batch budget of 1: images/s, p50 and p99 latency, CPU ms per job in each
   process.
4. ``idle``: end-to-end minus the model's own time, sequential requests.
5. ``costs``: what one job costs the service with the fake instant model at saturation:
   CPU ms per job in each process, SQL statements, blob writes, Temporal RPCs by type
   and history events.
6. the ratios: (3) over (1), and (3, n=1) over (2).

    .venv/bin/python bench/throughput.py                      # everything, ~8 minutes
    .venv/bin/python bench/throughput.py --only costs         # one section
    .venv/bin/python bench/throughput.py --seconds 10         # shorter windows
    .venv/bin/python bench/throughput.py --json out.json      # also write the figures
    git worktree add /tmp/before <commit>                       # costs before and after,
    .venv/bin/python bench/throughput.py --only costs --baseline /tmp/before   # one run

Each stack is a private `daguerre up` (temp data dir, free ports) with the counters of
bench/probe/ loaded into its gateway and worker. Prompts are drawn from the built-in
model's grammar, so no two requests in a window need to be alike.
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
ROLES = ("gateway", "worker", "engine", "temporal", "launcher", "bench")


def prompts(count: int, seed: int = 0) -> list[str]:
    """Captions from the built-in model's own grammar (1 to 3 objects)."""
    from daguerre.models.builtin.grammar import sample_caption
    from daguerre.models.builtin.scene import sample_scene

    rng = random.Random(seed)
    return [sample_caption(sample_scene(rng), rng)[0] for _ in range(count)]


# --- 1. the model alone ----------------------------------------------------------------
def model_peak(batches: list[int], repeats: int = 3) -> tuple[float, int, float]:
    """(peak images/s, at batch size, seconds for one image) of the built-in model, as
    a worker's engine runs it (one thread; 512x512 output)."""
    from daguerre.models.base import RenderRequest, render
    from daguerre.models.builtin.backend import BuiltinModel

    model = BuiltinModel(threads=1)
    model.setup("cpu")
    texts = prompts(max(batches), seed=1)

    def request(i: int) -> RenderRequest:
        return RenderRequest(texts[i], seed=i, width=SIZE, height=SIZE)

    render(model, [request(0)])
    one = min(_timed(lambda: render(model, [request(1)])) for _ in range(7))
    best, best_bs = 0.0, 1
    for bs in batches:
        reqs = [request(i) for i in range(bs)]
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
    out: Counter[str] = Counter()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:  # a baseline checkout whose launcher cannot open the metrics port
        return out
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


@dataclass
class BenchStack:
    """A private `daguerre up` with counters, for one model and pool configuration."""

    model: str
    pool: dict[str, Any]
    extra: dict[str, str] = field(default_factory=dict)
    code: Path | None = None  # another checkout to run instead of this one (--baseline)

    def __enter__(self) -> BenchStack:
        self._tmp = tempfile.TemporaryDirectory(prefix="daguerre-throughput-")
        root = Path(self._tmp.name)
        self.data_dir = root / "data"
        self.probe_dir = root / "probe"
        self.probe_dir.mkdir()
        self.metrics_port = free_port()
        env = {
            "PYTHONPATH": os.pathsep.join(
                ([str(self.code / "src")] if self.code else []) + [str(PROBE), str(REPO)]
            ),
            "DAGUERRE_BENCH_PROBE_DIR": str(self.probe_dir),
            "DAGUERRE_TEMPORAL_METRICS_PORT": str(self.metrics_port),
            "DAGUERRE_ACCESS": json.dumps(ACCESS),
            "DAGUERRE_POOLS": json.dumps({"api": {"task_queue": "bench-api", **self.pool}}),
            **self.extra,
        }
        self.stack = Stack(self.model, self.data_dir, 1, env)
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

    def temporal_address(self) -> str:
        """The stack's dev server, from the banner `daguerre up` prints."""
        for _ in range(100):
            match = re.search(r"Temporal:\s+(127\.0\.0\.1:\d+)", "".join(self.stack.tail))
            if match is not None:
                return match[1]
            time.sleep(0.1)
        raise SystemExit("could not find the stack's Temporal address in its banner")


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


def generation(model: str, prompt: str, n: int = 1) -> dict[str, Any]:
    """The body of one POST /v1/images/generations, as every section sends it."""
    return {
        "model": model,
        "prompt": prompt,
        "n": n,
        "size": f"{SIZE}x{SIZE}",
        "response_format": "url",
    }


async def saturate(
    bench: BenchStack, n: int, clients: int, seconds: float, warm_s: float
) -> Window:
    """A closed loop: ``clients`` users, each sending its next request when its last one
    is answered. Counts what finishes inside the window after a warm-up."""
    stack = bench.stack
    headers = {"Authorization": f"Bearer {stack.key}"}
    texts = prompts(1000, seed=n)
    done: list[tuple[float, float]] = []  # (finished at, latency)
    errors: Counter[int] = Counter()
    stop_at = time.monotonic() + warm_s + seconds
    sent = iter(range(10**9))

    async def user(http: aiohttp.ClientSession) -> None:
        while time.monotonic() < stop_at:
            body = generation(bench.model, texts[next(sent) % len(texts)], n)
            started = time.monotonic()
            async with http.post("/v1/images/generations", json=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    errors[resp.status] += 1
                    await asyncio.sleep(0.1)
                    continue
            now = time.monotonic()
            done.append((now, now - started))

    connector = aiohttp.TCPConnector(limit=clients + 8)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(stack.url, connector=connector, timeout=timeout) as http:
        users = [asyncio.create_task(user(http)) for _ in range(clients)]
        await asyncio.sleep(warm_s)
        before = await asyncio.to_thread(bench.read)
        count_at_start = len(done)
        await asyncio.sleep(seconds)
        after = await asyncio.to_thread(bench.read)
        inside = done[count_at_start:]
        await asyncio.gather(*users)
    return Window(
        len(inside),
        len(inside) * n,
        after.at - before.at,
        [latency for _, latency in inside],
        errors,
        before,
        after,
    )


# --- 4. idle ---------------------------------------------------------------------------
async def idle(bench: BenchStack, count: int) -> dict[str, float]:
    """Sequential requests on the idle stack, each followed by the same render through
    the model alone in this process (the stack idle meanwhile), so that both see the
    machine in the same state: the median of their difference is what the service adds."""
    from daguerre.models.base import RenderRequest, render
    from daguerre.models.registry import create_model

    model = create_model(bench.model, threads=1)
    model.setup("cpu")
    stack = bench.stack
    headers = {"Authorization": f"Bearer {stack.key}"}
    texts = prompts(count + 3, seed=7)
    e2e, alone = [], []
    async with aiohttp.ClientSession(stack.url) as http:
        for i, text in enumerate(texts):
            body = generation(bench.model, text)
            started = time.perf_counter()
            async with http.post("/v1/images/generations", json=body, headers=headers) as resp:
                await resp.read()
                resp.raise_for_status()
            took = time.perf_counter() - started
            await asyncio.sleep(0.1)
            request = RenderRequest(text, width=SIZE, height=SIZE)
            model_s = _timed(lambda request=request: render(model, [request]))
            if i >= 3:  # the first ones warm connections and caches
                e2e.append(took)
                alone.append(model_s)
            await asyncio.sleep(0.1)
    overhead = [a - b for a, b in zip(e2e, alone, strict=True)]
    return {
        "e2e_p50_s": statistics.median(e2e),
        "model_p50_s": statistics.median(alone),
        "overhead_p50_s": statistics.median(overhead),
    }


# --- 5. what a job costs ---------------------------------------------------------------
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
            workflow_runner=WORKFLOW_RUNNERS["fast"],
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
        spec = JobSpec(prompt=prompts(1)[0], model="builtin", width=SIZE, height=SIZE)

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
                task_timeout=timedelta(seconds=10),
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
            return {
                "temporal": process_cpu(stack_pid).get("temporal", 0),
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


def cpu_line(cpu: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in cpu.items() if v >= 0.05)


def describe(name: str, w: Window) -> dict[str, Any]:
    row = {
        "images_per_s": w.images_per_s,
        "jobs_per_s": w.jobs_per_s,
        "p50_s": percentile(w.latencies, 0.5),
        "p99_s": percentile(w.latencies, 0.99),
        "jobs": w.jobs,
        "errors": dict(w.errors),
        "cpu_ms_per_job": w.cpu_ms_per_job(),
    }
    errors = f", errors {dict(w.errors)}" if w.errors else ""
    print(
        f"  {name:<28} {w.images_per_s:7.2f} img/s {w.jobs_per_s:6.2f} jobs/s  "
        f"p50 {row['p50_s']:5.2f} s  p99 {row['p99_s']:5.2f} s  ({w.jobs} jobs{errors})\n"
        f"      CPU ms/job: {cpu_line(row['cpu_ms_per_job'])}",
        flush=True,
    )
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
    rpc_text = ", ".join(f"{k} {v:.2f}" for k, v in rpcs.items())
    sql = ", ".join(f"{k} {v:.2f}" for k, v in costs["db_statements"].items())
    blobs = ", ".join(f"{k} {v:.2f}" for k, v in costs["blob_writes"].items())
    print(
        f"  jobs/s at saturation: {w.jobs_per_s:.2f} ({w.jobs} jobs)\n"
        f"  CPU ms/job: {cpu_line(cpu)}; orchestration (all but the bench) {orchestration:.1f}\n"
        f"  Temporal history events per job: {events:.1f}\n"
        f"  Temporal RPCs per job: {costs['temporal_rpcs_total']:.2f} ({rpc_text}); "
        f"persistence calls {persistence:.1f}\n"
        f"  SQL statements per job: {sql}\n"
        f"  blob writes per job: {blobs}",
        flush=True,
    )
    return costs


# --- main ------------------------------------------------------------------------------
async def run_stacks(args: argparse.Namespace, out: dict[str, Any]) -> None:
    """The shipped model's stacks: batching (the model's own budget) and a budget of 1."""
    configs: dict[str, dict[str, Any]] = {"batching": {}, "budget 1": {"batch_images": 1}}
    for label, pool in configs.items():
        if label == "budget 1" and "stack" not in args.sections:
            continue
        with BenchStack("builtin", pool) as bench:
            if "ceiling" in args.sections and label == "batching":
                result = await ceiling(
                    bench.temporal_address(),
                    bench.stack.proc.pid,
                    args.ceiling_in_flight,
                    args.seconds,
                    args.warm_s,
                )
                out["ceiling"] = result
                print(
                    f"Temporal ceiling: {result['workflows_per_s']:.2f} workflows/s; CPU ms "
                    f"per workflow: {cpu_line(result['cpu_ms_per_job'])}",
                    flush=True,
                )
            if "idle" in args.sections and label == "batching":
                out["idle"] = await idle(bench, args.idle)
                idle_row = out["idle"]
                print(
                    f"idle: end to end p50 {idle_row['e2e_p50_s'] * 1000:.1f} ms, model alone "
                    f"p50 {idle_row['model_p50_s'] * 1000:.1f} ms, end to end minus model "
                    f"p50 {idle_row['overhead_p50_s'] * 1000:.1f} ms",
                    flush=True,
                )
            if "stack" in args.sections:
                for n, clients in ((1, args.clients), (4, args.clients // 2)):
                    w = await saturate(bench, n, clients, args.seconds, args.warm_s)
                    name = f"{label} n={n}"
                    out.setdefault("stack", {})[name] = describe(f"{name}, {clients} clients", w)


async def run_costs(args: argparse.Namespace, out: dict[str, Any]) -> None:
    runs = [("costs", None)] + ([("costs_baseline", args.baseline)] if args.baseline else [])
    for name, code in runs:
        with BenchStack("fake", {}, code=code) as bench:
            w = await saturate(bench, 1, args.cost_clients, args.seconds, args.warm_s)
            ids = recent_job_ids(bench.data_dir, 5)
            events = await history_events(bench.temporal_address(), ids)
            which = f"the checkout at {code}" if code else "this checkout"
            print(
                f"\nwhat one job costs, {which} (fake instant model, saturation, 512x512, n=1):",
                flush=True,
            )
            out[name] = describe_costs(w, events)


def ratios(out: dict[str, Any]) -> None:
    stack = out.get("stack", {})
    peak = out.get("model", {}).get("peak_images_per_s")
    ceiling_rate = out.get("ceiling", {}).get("workflows_per_s")
    lines = []
    for name, row in stack.items():
        if peak:
            lines.append(f"  {name}: {row['images_per_s'] / peak:.2f}x the model's batched peak")
        if ceiling_rate and name.endswith("n=1"):
            lines.append(f"  {name}: {row['jobs_per_s'] / ceiling_rate:.2f}x Temporal's ceiling")
    for n in (1, 4):
        batched, single = stack.get(f"batching n={n}"), stack.get(f"budget 1 n={n}")
        if batched and single:
            gain = batched["images_per_s"] / single["images_per_s"]
            lines.append(f"  n={n}: batching delivers {gain:.2f}x a batch budget of 1")
    if lines:
        print("\nratios (one run):\n" + "\n".join(lines), flush=True)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "model" in args.sections:
        peak, at, one = await asyncio.to_thread(model_peak, [16, 32, 64, 128])
        out["model"] = {"peak_images_per_s": peak, "peak_batch": at, "one_image_s": one}
        print(
            f"model alone: peak {peak:.1f} images/s at batch {at}; one image {one * 1000:.1f} ms",
            flush=True,
        )
    if {"ceiling", "stack", "idle"} & set(args.sections):
        await run_stacks(args, out)
    if "costs" in args.sections:
        await run_costs(args, out)
    ratios(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sections = ["model", "ceiling", "stack", "idle", "costs"]
    parser.add_argument("--only", action="append", choices=sections, help="run these sections")
    parser.add_argument("--seconds", type=float, default=20, help="each measured window")
    parser.add_argument("--warm-s", type=float, default=5, help="before each window")
    parser.add_argument("--clients", type=int, default=128, help="concurrent users for n=1")
    parser.add_argument("--cost-clients", type=int, default=64, help="users for the costs")
    parser.add_argument("--ceiling-in-flight", type=int, default=128)
    parser.add_argument("--idle", type=int, default=20, help="sequential requests")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="also measure the costs of the checkout in this folder (a git worktree of an "
        "older commit), in the same run; its Temporal RPCs are counted only if its "
        "launcher takes DAGUERRE_TEMPORAL_METRICS_PORT",
    )
    args = parser.parse_args()
    args.sections = args.only or sections
    out = asyncio.run(main_async(args))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
