"""The launch surge: does a free-tier stampede leave paying users alone?

It runs a private `daguerre up` (temp data dir, free loopback ports, one api worker,
the admission pace an operator turns on for a launch) with either the fake test model
(a fixed time a step, two images a step: a compute-bound service) or, with --model
builtin, the shipped model at its own batch budget, and over loopback only:

1. baseline: a steady paid (pro) load at about half the stack's capacity;
2. surge: the paid load goes on, and free accounts add about ten times the stack's
   capacity on top (measured from the baseline), for a bounded time;
3. drain: no new requests; it waits for every accepted job to finish.

It prints, per tier and phase: requests; 202 (accepted), of which deferred; 429; 403;
5xx; p50 and p99 seconds from sending the request to the final image; and lost jobs
(accepted, and not succeeded when the drain ends). Targets: paid p99 during the surge
at most 1.5x paid p99 at baseline, no 5xx, no lost jobs, every deferred job finished.

    .venv/bin/python bench/surge.py                   # about 4-5 minutes
    .venv/bin/python bench/surge.py --model builtin   # the shipped model
    .venv/bin/python bench/surge.py --surge-s 10      # shorter (a noisier p99)
    .venv/bin/python bench/surge.py --set MAX_PREEMPTIONS=0   # renders never pause
    .venv/bin/python bench/surge.py --pool-set express_priority=0   # no express lane
    .venv/bin/python bench/surge.py --pool-set admit_pace=0   # no admission pace
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import REPO, Stack

sys.path.insert(0, str(REPO / "src"))

STEPS = 8
FREE_ACCOUNTS = 200


def access(step_delay_s: float) -> dict[str, object]:
    """Tiers for the bench: pro as shipped; free defers past a short wait budget, with a
    per-account limit that a few of the surging accounts hit, and a degraded mode."""
    return {
        "tiers": {
            "free": {
                "priority": 3,
                "requests": "3/minute",
                "images": "3/minute",
                "wait_budget_s": 10,
                "over_budget": "defer",
                "admit_past_cap": False,
                "steps": STEPS,
                "degraded": {"steps": STEPS // 4, "partial_images": 0},
            },
            "pro": {
                "priority": 1,
                "fairness_weight": 4,
                # Above any paid load the bench sends (half the measured capacity).
                "requests": "6000/minute",
                "images": "6000/minute",
                "wait_budget_s": 60,
                "over_budget": "reject",
                "steps": STEPS,
            },
        },
        "features": {"generate": {"percent": 100}, "edit": {"percent": 100}},
    }


@dataclass
class Sent:
    tier: str
    phase: str
    sent_at: float  # time.time(), to compare with the job table's timestamps
    status: int = 0
    job_id: str | None = None
    job_status: str | None = None
    done_s: float | None = None
    answer_s: float | None = None  # how long the gateway took to answer
    wait_s: float | None = None  # from sending to the start of its render
    preemptions: int = 0  # times its render paused for higher-priority work


@dataclass
class Load:
    results: list[Sent] = field(default_factory=list)
    surge_at: float = 0.0  # time.time() when the surge began
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def send(self, http: aiohttp.ClientSession, key: str, tier: str, phase: str) -> None:
        sent = Sent(tier, phase, time.time())
        self.results.append(sent)
        body = {"prompt": f"{tier} {len(self.results)}", "size": "64x64", "steps": STEPS}
        try:
            async with http.post(
                "/v1/jobs", json=body, headers={"Authorization": f"Bearer {key}"}
            ) as response:
                sent.status = response.status
                data = await response.json() if response.status == 202 else None
                await response.read()
        except (aiohttp.ClientError, TimeoutError):
            sent.status = 599  # no answer at all counts as a server failure
            return
        sent.answer_s = time.time() - sent.sent_at
        if data is not None:
            sent.job_id, sent.job_status = data["id"], data["status"]

    async def steady(
        self,
        http: aiohttp.ClientSession,
        keys: list[str],
        tier: str,
        phase: str,
        rate: float,
        seconds: float,
    ) -> None:
        """Open-loop arrivals: one request every 1/rate s, whatever the answers take."""
        start = time.monotonic()
        count = int(rate * seconds)
        for i in range(count):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self.send(http, keys[i % len(keys)], tier, phase))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)


def make_keys(data_dir: Path, tier: str, count: int) -> list[str]:
    from daguerre.config import Settings
    from daguerre.store import open_store

    store = open_store(Settings(data_dir=data_dir), migrate=False)
    try:
        keys = []
        for i in range(count):
            account = store.accounts.create_account(f"{tier}-{i}", tier, "api")
            keys.append(store.accounts.create_api_key(account.id))
        return keys
    finally:
        store.close()


def fill_outcomes(data_dir: Path, results: list[Sent]) -> None:
    from daguerre.config import Settings
    from daguerre.store import open_store

    store = open_store(Settings(data_dir=data_dir), migrate=False)
    try:
        for sent in results:
            if sent.job_id is None:
                continue
            job = store.jobs.get(sent.job_id)
            if job is None:
                continue
            if job.status.value == "succeeded" and job.finished_at is not None:
                sent.done_s = job.finished_at - sent.sent_at
            if job.started_at is not None:
                sent.wait_s = job.started_at - sent.sent_at
            sent.preemptions = job.preemptions
            sent.job_status = f"{sent.job_status}->{job.status.value}"
    finally:
        store.close()


def pending(data_dir: Path, results: list[Sent]) -> int:
    from daguerre.config import Settings
    from daguerre.store import open_store

    store = open_store(Settings(data_dir=data_dir), migrate=False)
    try:
        ids = [s.job_id for s in results if s.job_id is not None]
        return sum(1 for i in ids if (j := store.jobs.get(i)) is None or not j.is_terminal)
    finally:
        store.close()


def cpu_times() -> list[int] | None:
    """The machine's CPU counters (/proc/stat, in ticks), or None off Linux."""
    try:
        with open("/proc/stat") as stat:
            return [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def machine_load(before: list[int] | None, after: list[int] | None) -> str:
    """How busy the machine was between two readings, and how much CPU other virtual
    machines took (steal): a noisy neighbour shows up in the latency percentiles."""
    if before is None or after is None:
        return "unknown"
    delta = [b - a for a, b in zip(before, after, strict=False)]
    total = sum(delta[:8]) or 1  # user nice system idle iowait irq softirq steal
    idle, steal = delta[3] + delta[4], delta[7] if len(delta) > 7 else 0
    return f"busy {100 * (total - idle - steal) / total:.0f}%, steal {100 * steal / total:.0f}%"


def process_cpu(root: int) -> dict[str, int]:
    """CPU ticks so far of the stack's processes (by role) and of this bench, from
    /proc; empty off Linux. Tells which process a slow phase was short of."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    names: dict[int, str] = {}
    out: dict[str, int] = Counter()
    if not Path("/proc/self/stat").exists():
        return out
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime
        names[pid] = cmdline
    out["bench"] = ticks.get(os.getpid(), 0)
    for pid, cmdline in names.items():
        ancestor = pid
        while ancestor not in (0, 1, root) and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor != root:
            continue
        roles = {
            "start-dev": "temporal",
            "engine_main": "engine",  # a worker's engine process (its model)
            " gateway": "gateway",
            " worker": "worker",
        }
        role = next((r for mark, r in roles.items() if mark in cmdline), "launcher")
        out[role] += ticks[pid]
    return out


def process_load(before: dict[str, int], after: dict[str, int], seconds: float) -> str:
    """Each process's share of one core between two readings."""
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    shares = {k: (after.get(k, 0) - before.get(k, 0)) / hz / max(seconds, 1e-9) for k in after}
    return ", ".join(f"{k} {100 * v:.0f}%" for k, v in sorted(shares.items()) if v >= 0.005)


def p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def slowest(results: list[Sent], surge_at: float, count: int = 4) -> None:
    """Where the paid tail is: a tail at the surge's first seconds is its onset (the
    burst of free work reaching Temporal); one spread over the surge is steady load."""
    paid = [s for s in results if s.tier == "pro" and s.phase == "surge" and s.done_s]
    paid.sort(key=lambda s: s.done_s or 0.0, reverse=True)
    print("\nslowest paid in the surge (s after its start: answer, wait, done):")
    for s in paid[:count]:
        print(
            f"  +{s.sent_at - surge_at:5.1f}: {s.answer_s or 0:.3f}, {s.wait_s or 0:.2f}, "
            f"{s.done_s or 0:.2f}"
        )


def report(results: list[Sent]) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {}
    print(
        f"\n{'tier':<5} {'phase':<9} {'requests':>8} {'202':>5} {'deferred':>8} {'429':>5} "
        f"{'403':>4} {'5xx':>4} {'p50 s':>7} {'p99 s':>7} {'lost':>5} {'deferred done':>13} "
        f"{'answer p50/p99 s':>16} {'wait p50/p99 s':>14} {'pauses':>6}"
    )
    for tier in ("pro", "free"):
        for phase in ("baseline", "surge"):
            group = [s for s in results if s.tier == tier and s.phase == phase]
            if not group:
                continue
            codes = Counter(s.status for s in group)
            accepted = [s for s in group if s.status == 202]
            deferred = [s for s in accepted if (s.job_status or "").startswith("deferred")]
            times = [s.done_s for s in accepted if s.done_s is not None]
            lost = sum(1 for s in accepted if s.done_s is None)
            server_errors = sum(n for code, n in codes.items() if code >= 500)
            deferred_done = sum(1 for s in deferred if s.done_s is not None)
            answers = [s.answer_s for s in group if s.answer_s is not None]
            waits = [s.wait_s for s in accepted if s.wait_s is not None]
            row = {
                "requests": len(group),
                "accepted": len(accepted),
                "deferred": len(deferred),
                "429": codes[429],
                "403": codes[403],
                "5xx": server_errors,
                "p50": p(times, 0.5),
                "p99": p(times, 0.99),
                "lost": lost,
                "deferred_done": deferred_done,
                "answer_p50": p(answers, 0.5),
                "answer_p99": p(answers, 0.99),
                "wait_p50": p(waits, 0.5),
                "wait_p99": p(waits, 0.99),
                "preemptions": sum(s.preemptions for s in accepted),
            }
            rows[f"{tier}/{phase}"] = row
            print(
                f"{tier:<5} {phase:<9} {len(group):>8} {len(accepted):>5} {len(deferred):>8} "
                f"{codes[429]:>5} {codes[403]:>4} {server_errors:>4} {row['p50']:>7.2f} "
                f"{row['p99']:>7.2f} {lost:>5} {deferred_done:>6}/{len(deferred):<6} "
                f"{row['answer_p50']:>7.3f}/{row['answer_p99']:<7.3f} "
                f"{row['wait_p50']:>6.2f}/{row['wait_p99']:<6.2f} {row['preemptions']:>6}"
            )
    return rows


async def measure_capacity(http: aiohttp.ClientSession, keys: list[str], data_dir: Path) -> float:
    """Warm up (first render, connections), then measure the stack's capacity: a burst
    of paid jobs on the idle stack, finished per second."""
    warm = Load()
    await warm.steady(http, keys, "pro", "warm", 50, 0.4)
    await asyncio.gather(*warm.tasks)
    while await asyncio.to_thread(pending, data_dir, warm.results):
        await asyncio.sleep(0.2)
    started = time.time()
    burst = Load()
    await burst.steady(http, keys, "pro", "burst", 200, 0.1)
    await asyncio.gather(*burst.tasks)
    while await asyncio.to_thread(pending, data_dir, burst.results):
        await asyncio.sleep(0.1)
    return len(burst.results) / (time.time() - started)


async def run(args: argparse.Namespace, stack: Stack, data_dir: Path) -> Load:
    pro_keys = [stack.key]
    free_keys = await asyncio.to_thread(make_keys, data_dir, "free", FREE_ACCOUNTS)
    load = Load()
    # aiohttp, not httpx: httpx's pool spent a core on bookkeeping once a few hundred
    # requests waited in it, and a stalled load generator measures itself, not the stack.
    connector = aiohttp.TCPConnector(limit=400)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(stack.url, connector=connector, timeout=timeout) as http:
        capacity = await measure_capacity(http, pro_keys, data_dir)
        paid_rate = capacity * args.paid_share
        surge_rate = capacity * args.surge_factor
        print(
            f"capacity ~{capacity:.2f} jobs/s; paid load {paid_rate:.2f}/s; "
            f"free surge {surge_rate:.1f}/s for {args.surge_s:.0f} s",
            flush=True,
        )

        at_baseline, procs_baseline, t_baseline = (
            cpu_times(),
            process_cpu(stack.proc.pid),
            time.monotonic(),
        )
        await load.steady(http, pro_keys, "pro", "baseline", paid_rate, args.baseline_s)
        at_surge, procs_surge, t_surge = cpu_times(), process_cpu(stack.proc.pid), time.monotonic()
        load.surge_at = time.time()
        surge_paid = asyncio.create_task(
            load.steady(http, pro_keys, "pro", "surge", paid_rate, args.surge_s)
        )
        await load.steady(http, free_keys, "free", "surge", surge_rate, args.surge_s)
        await surge_paid
        await asyncio.gather(*list(load.tasks))
        at_end, procs_end, t_end = cpu_times(), process_cpu(stack.proc.pid), time.monotonic()
        print(
            f"machine (all cores): baseline {machine_load(at_baseline, at_surge)}; "
            f"surge {machine_load(at_surge, at_end)}\n"
            f"processes (of one core): baseline "
            f"{process_load(procs_baseline, procs_surge, t_surge - t_baseline)}; "
            f"surge {process_load(procs_surge, procs_end, t_end - t_surge)}",
            flush=True,
        )
        surge_end = time.monotonic()
        while time.monotonic() - surge_end < args.drain_s:
            left = await asyncio.to_thread(pending, data_dir, load.results)
            if not left:
                break
            await asyncio.sleep(1.0)
        print(f"drained in {time.monotonic() - surge_end:.1f} s", flush=True)
        async with http.get("/metrics") as response:
            metrics = await response.text()
    degraded = [
        line for line in metrics.splitlines() if line.startswith("daguerre_jobs_degraded_total")
    ]
    print("\n".join(degraded) or "no degraded jobs")
    return load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # A minute each: about 150 paid requests per phase, so that p99 is a percentile and
    # not just the slowest request (it was, with 60-odd).
    parser.add_argument("--baseline-s", type=float, default=60)
    parser.add_argument("--surge-s", type=float, default=60)
    parser.add_argument("--drain-s", type=float, default=90, help="the most to wait after")
    parser.add_argument("--paid-share", type=float, default=0.5, help="of capacity")
    parser.add_argument("--surge-factor", type=float, default=10, help="x capacity")
    parser.add_argument("--model", choices=["fake", "builtin"], default="fake")
    parser.add_argument("--step-delay-s", type=float, default=0.04, help="fake render pace")
    parser.add_argument(
        "--batch-images",
        type=int,
        help="the worker's batch budget (default: 2 for fake, the model's own for builtin)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", type=Path, help="data dir to keep (job table, logs)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a DAGUERRE_ setting for the stack, e.g. --set MAX_PREEMPTIONS=0",
    )
    parser.add_argument(
        "--pool-set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the bench's pool (VALUE in JSON), e.g. --pool-set express_priority=0",
    )
    args = parser.parse_args()
    args.baseline_s = min(args.baseline_s, 60)
    args.surge_s = min(args.surge_s, 60)
    args.drain_s = min(args.drain_s, 120)

    with tempfile.TemporaryDirectory(prefix="daguerre-surge-") as tmp:
        data_dir = args.keep or Path(tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        budget = args.batch_images or (2 if args.model == "fake" else None)
        pools = {
            "api": {
                "task_queue": "bench-api",
                **({"batch_images": budget} if budget else {}),
                "max_backlog": 60,
                "degrade_backlog": 20,
                # What an operator turns on for a launch (`daguerre admin pace api 2`):
                # free work gets in at most twice as fast as the pool finishes work.
                "admit_pace": 2,
            }
        }
        for setting in args.pool_set:
            name, _, value = setting.partition("=")
            pools["api"][name] = json.loads(value)
        env = {
            "DAGUERRE_ACCESS": json.dumps(access(args.step_delay_s)),
            "DAGUERRE_POOLS": json.dumps(pools),
            "DAGUERRE_PROGRESS_INTERVAL_S": "1",
        }
        if args.model == "fake":  # a step takes this long, whatever the batch
            env["DAGUERRE_MODEL_OPTIONS"] = json.dumps({"step_delay_s": args.step_delay_s})
        for setting in args.set:
            name, _, value = setting.partition("=")
            env[f"DAGUERRE_{name.upper()}"] = value
        stack = Stack(args.model, data_dir, 1, env)
        try:
            load = asyncio.run(asyncio.wait_for(run(args, stack, data_dir), 300))
        finally:
            stack.stop()
        results = load.results
        fill_outcomes(data_dir, results)
        rows = report(results)
        slowest(results, load.surge_at)
    base, surge = rows.get("pro/baseline"), rows.get("pro/surge")
    if base and surge:
        ratio = surge["p99"] / base["p99"]
        print(
            f"\npaid p99: baseline {base['p99']:.2f} s, surge {surge['p99']:.2f} s ({ratio:.2f}x)"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
