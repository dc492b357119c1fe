"""Launch week, rehearsed: a launch curve against a real stack, with an operator on cue.

It runs a private `daguerre up` (as bench/surge.py: temp data dir, loopback ports, one
api worker, the shipped model by default), measures the stack's capacity, then replays,
scaled to that capacity and to --minutes of load:

- baseline: paid (pro) load at --paid-share of capacity; free accounts knock, but the
  `generate` flag is not rolled out to them yet (403);
- rollout 10% and rollout 50%: free users rolled in through the flag's percentage,
  free demand half the capacity, and for a while 1.2x at 50% (free work alone about
  fills the pool: deferrals);
- spike: the announcement, free demand ramping to --peak-factor (10) x capacity and
  falling back;
- waves: daily waves (free demand between 1x and 5x capacity), free rolled in at 100%;
- tail: quiet again; then drain: no new requests until every accepted job finished.

Operator actions go through the admin HTTP API on cue (and are recorded): roll out,
turn on the admission pace as the announcement goes out, tighten the free limits and
force degraded mode at the peak, loosen again afterwards. Every ~2 s it samples the
pool (GET /admin/pools) and the worker's /metrics (batch occupancy). It writes a report
folder (bench/launch_report.py: index.html, plots, summary.json) and prints the verdict:
paid p99 at the peak against the baseline's, 5xx, lost jobs, deferred jobs finished and
the share of free users served.

    .venv/bin/python bench/launch.py --minutes 2.5                 # a short rehearsal
    .venv/bin/python bench/launch.py --out docs/launch-rehearsal   # the full 10 minutes

Not part of `make test`: it needs the machine to itself for its duration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import gzip
import json
import math
import random
import re
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import launch_report as lr
from overhead import REPO, Stack, accounts, free_port
from surge import (
    Sent,
    cpu_times,
    fill_outcomes,
    machine_load,
    measure_capacity,
    process_cpu,
    process_load,
)

sys.path.insert(0, str(REPO / "src"))

STEPS = 8
POOL = "api"
# (name, start, end) as fractions of the load's duration.
PHASES = (
    ("baseline", 0.0, 0.15),
    ("rollout 10%", 0.15, 0.25),
    ("rollout 50%", 0.25, 0.35),
    ("spike", 0.35, 0.50),
    ("waves", 0.50, 0.85),
    ("tail", 0.85, 1.0),
)
FIRST_PERCENT = 10.0


def access() -> dict[str, object]:
    """Tiers for the rehearsal: free as shipped but deferring past a 1 s wait, with a
    degraded mode; pro above any paid load sent. `generate` is not yet rolled out to
    free accounts."""
    return {
        "tiers": {
            "free": {
                "priority": 3,
                "requests": "30/minute",
                "images": "40/minute",
                # Launch settings: defer past a short wait (shipped: 30 s).
                "wait_budget_s": 1,
                "over_budget": "defer",
                "admit_past_cap": False,
                "steps": STEPS,
                "degraded": {"steps": STEPS // 4, "partial_images": 0},
            },
            "pro": {
                "priority": 1,
                "fairness_weight": 4,
                "requests": "6000/minute",
                "images": "6000/minute",
                "wait_budget_s": 60,
                "over_budget": "reject",
                "admit_past_cap": True,
                "steps": STEPS,
            },
        },
        "features": {
            "generate": {"tiers": ["plus", "pro"], "percent": 100},
            "edit": {"tiers": ["plus", "pro"], "percent": 100},
        },
    }


@dataclass
class Cue:
    at: float  # s from the start of the load
    label: str
    method: str
    path: str
    body: dict[str, Any] | None = None


def cues(duration: float, pace: float, limit: str) -> list[Cue]:
    """The operator's script. Free users roll in through the flag's share for their
    tier (``tier_percent``); paid accounts keep the feature throughout."""
    at = {name: start * duration for name, start, _ in PHASES}
    peak = at["spike"] + ramp_s(duration)
    pool = f"/admin/pools/{POOL}"
    return [
        Cue(
            at["rollout 10%"],
            "roll free in: generate at 10%",
            "PATCH",
            "/admin/features/generate",
            {"tiers": ["free", "plus", "pro"], "tier_percent": {"free": FIRST_PERCENT}},
        ),
        Cue(at["rollout 50%"], "roll free in: 50%", "PATCH", "/admin/features/generate",
            {"tier_percent": {"free": 50}}),
        Cue(at["spike"] - 2, f"announcement: pace on ({pace:g}x throughput)", "PUT",
            f"{pool}/pace", {"pace": pace}),
        Cue(peak, f"peak: tighten free limits to {limit}", "PATCH", "/admin/tiers/free",
            {"requests": limit, "images": limit}),
        Cue(peak + 1, "peak: force degraded mode", "PUT", f"{pool}/degraded", {"mode": "on"}),
        Cue(at["waves"], "roll free in: 100%", "PATCH", "/admin/features/generate",
            {"tier_percent": {"free": 100}}),
        Cue(at["tail"], "loosen: free limits back", "DELETE", "/admin/tiers/free"),
        Cue(at["tail"] + 1, "loosen: degraded auto", "PUT", f"{pool}/degraded", {"mode": "auto"}),
        Cue(at["tail"] + 2, "loosen: pace back to configured (off)", "PUT", f"{pool}/pace",
            {"pace": None}),
    ]  # fmt: skip


def ramp_s(duration: float) -> float:
    """How long the announcement takes to reach its peak."""
    return min(20.0, 0.05 * duration)


def free_demand(t: float, duration: float, peak: float) -> float:
    """Free requests per second as a multiple of capacity, at ``t`` s into the load."""
    x = t / duration
    if x < 0.15:
        return 0.2
    if x < 0.25:
        return 0.5
    if x < 0.30:
        return 1.2  # word spreads: for a while the soft launch fills the pool
    if x < 0.35:
        return 0.5
    if x < 0.50:
        into = t - 0.35 * duration
        length = 0.15 * duration
        ramp = ramp_s(duration)
        fall = 0.3 * length
        if into < ramp:
            return 0.5 + (peak - 0.5) * into / ramp
        if into < length - fall:
            return peak
        return peak - (peak - 1.0) * (into - (length - fall)) / fall
    if x < 0.85:
        wave = (x - 0.50) / 0.35 * 2  # two "days"
        return 1.0 + 4.0 * (1 - math.cos(2 * math.pi * wave)) / 2
    return 0.3


def phase_at(t: float, duration: float) -> str:
    for name, start, end in PHASES:
        if start * duration <= t < end * duration:
            return name
    return PHASES[-1][0]


@dataclass
class Record(Sent):
    account: str = ""
    code: str = ""


class Rehearsal:
    def __init__(self, args: argparse.Namespace, stack: Stack, admin_key: str, wport: int):
        self.args, self.stack = args, stack
        self.admin = {"Authorization": f"Bearer {admin_key}"}
        self.worker_metrics = f"http://127.0.0.1:{wport}/metrics"
        self.records: list[Record] = []
        self.samples: list[lr.Sample] = []
        self.actions: list[lr.Action] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.t0 = 0.0  # time.time() at the load's start
        self.rng = random.Random(19)

    async def send(self, http: aiohttp.ClientSession, account: tuple[str, str], tier: str) -> None:
        now = time.time()
        record = Record(tier, phase_at(now - self.t0, self.duration), now, account=account[0])
        self.records.append(record)
        body = {"prompt": f"{tier} {len(self.records)}", "size": "64x64"}
        try:
            async with http.post(
                "/v1/jobs", json=body, headers={"Authorization": f"Bearer {account[1]}"}
            ) as response:
                record.status = response.status
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            record.status = record.status or 599
            record.code = type(err).__name__
            return
        record.answer_s = time.time() - record.sent_at
        if record.status == 202:
            record.job_id, record.job_status = data["id"], data["status"]
        elif isinstance(data, dict) and isinstance(data.get("error"), dict):
            record.code = str(data["error"].get("code") or "")

    def fire(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def generate(
        self,
        http: aiohttp.ClientSession,
        paid: list[tuple[str, str]],
        free: list[tuple[str, str]],
        capacity: float,
    ) -> None:
        """Open-loop arrivals at the curve's rates, ticking every 20 ms."""
        credit = {"pro": 0.0, "free": 0.0}
        start = time.monotonic()
        last = start
        turn = 0
        while (t := time.monotonic() - start) < self.duration:
            dt, last = time.monotonic() - last, time.monotonic()
            credit["pro"] += self.args.paid_share * capacity * dt
            credit["free"] += free_demand(t, self.duration, self.args.peak_factor) * capacity * dt
            while credit["pro"] >= 1:
                credit["pro"] -= 1
                turn += 1
                self.fire(self.send(http, paid[turn % len(paid)], "pro"))
            while credit["free"] >= 1:
                credit["free"] -= 1
                self.fire(self.send(http, self.rng.choice(free), "free"))
            await asyncio.sleep(0.02)

    async def operate(self, http: aiohttp.ClientSession, script: list[Cue]) -> None:
        for cue in script:
            delay = self.t0 + cue.at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            kwargs = {"json": cue.body} if cue.body is not None else {}
            try:
                async with http.request(cue.method, cue.path, headers=self.admin, **kwargs) as r:
                    status = r.status
                    await r.read()
            except (aiohttp.ClientError, TimeoutError):
                status = 599
            self.actions.append(lr.Action(round(time.time() - self.t0, 1), cue.label, status))
            print(f"  +{time.time() - self.t0:6.1f} s  {cue.label} -> {status}", flush=True)

    async def sample(self, http: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        before = cpu_times()
        last: dict[str, float] = {}
        while not stop.is_set():
            s = lr.Sample(round(time.time() - self.t0, 2))
            try:
                async with http.get("/admin/pools", headers=self.admin) as r:
                    pools = {p["pool"]: p for p in await r.json()}
                pool = pools[POOL]
                s.backlog, s.running = pool["backlog"], pool["running"]
                s.degraded, s.throughput = pool["degraded"], pool["throughput_per_s"]
            except (aiohttp.ClientError, TimeoutError, KeyError, ValueError):
                pass
            try:
                async with http.get(self.worker_metrics) as r:
                    metrics = worker_gauges(await r.text())
                s.batch_running = metrics.get("daguerre_worker_renders_running")
                s.batch_paused = metrics.get("daguerre_worker_renders_paused")
                s.batch_images = metrics.get("daguerre_worker_batch_images")
                s.occupancy_pct, s.stepping_pct = interval_shares(last, metrics, s.t)
                last = {**metrics, "t": s.t}
            except (aiohttp.ClientError, TimeoutError):
                pass
            after = cpu_times()
            s.busy_pct = busy_pct(before, after)
            before = after
            self.samples.append(s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)

    async def drained(self, http: aiohttp.ClientSession) -> bool:
        try:
            async with http.get("/admin/pools", headers=self.admin) as r:
                pool = {p["pool"]: p for p in await r.json()}[POOL]
        except (aiohttp.ClientError, TimeoutError, KeyError, ValueError):
            return False
        return bool(pool["backlog"] == 0 and pool["running"] == 0)

    @property
    def duration(self) -> float:
        return float(self.args.minutes) * 60


def worker_gauges(text: str) -> dict[str, float]:
    """Unlabelled samples of a Prometheus text page, summed by name."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+)(?:\{[^}]*\})?\s+([-+0-9.eE]+|NaN)$", line)
        if match:
            out[match.group(1)] = out.get(match.group(1), 0.0) + float(match.group(2))
    return out


def interval_shares(
    last: dict[str, float], now: dict[str, float], t: float
) -> tuple[float | None, float | None]:
    """Between two scrapes of a worker: the mean batch occupancy of its steps (%), where
    it exports daguerre_worker_batch_occupancy, and the share of the time it stepped."""
    if "t" not in last:
        return None, None

    def delta(name: str) -> float | None:
        if name not in now or name not in last:
            return None
        return now[name] - last[name]

    occupancy = None
    steps, shares = (
        delta("daguerre_worker_batch_occupancy_count"),
        delta("daguerre_worker_batch_occupancy_sum"),
    )
    if steps and shares is not None:
        occupancy = 100 * shares / steps
    stepping = delta("daguerre_worker_step_seconds_sum")
    seconds = t - last["t"]
    return occupancy, (100 * stepping / seconds if stepping is not None and seconds > 0 else None)


def busy_pct(before: list[int] | None, after: list[int] | None) -> float | None:
    if before is None or after is None:
        return None
    delta = [b - a for a, b in zip(before, after, strict=False)]
    total = sum(delta[:8]) or 1
    idle = delta[3] + delta[4]
    steal = delta[7] if len(delta) > 7 else 0
    return 100 * (total - idle - steal) / total


async def rehearse(r: Rehearsal, data_dir: Path, meta: dict[str, Any]) -> None:
    args = r.args
    paid = await asyncio.to_thread(accounts, data_dir, "pro", args.paid_accounts)
    free = await asyncio.to_thread(accounts, data_dir, "free", args.free_accounts)
    meta.update(paid_accounts=len(paid), free_accounts=len(free))
    connector = aiohttp.TCPConnector(limit=400)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(r.stack.url, connector=connector, timeout=timeout) as http:
        # The median of three bursts: one burst of 20 jobs varied by a third here.
        bursts = [await measure_capacity(http, [paid[0][1]], data_dir) for _ in range(3)]
        capacity = sorted(bursts)[1]
        meta["capacity_bursts"] = [round(b, 1) for b in bursts]
        if args.capacity:
            capacity = args.capacity
        meta["capacity_jobs_per_s"] = round(capacity, 2)
        meta["paid_rate_per_s"] = round(args.paid_share * capacity, 2)
        meta["free_peak_per_s"] = round(args.peak_factor * capacity, 1)
        print(
            f"capacity ~{capacity:.2f} jobs/s; paid {args.paid_share * capacity:.2f}/s; "
            f"free up to {args.peak_factor * capacity:.0f}/s; {r.duration:.0f} s of load",
            flush=True,
        )
        await asyncio.sleep(2)  # let the capacity burst's rows settle
        stop = asyncio.Event()
        r.t0 = time.time()
        sampler = asyncio.create_task(r.sample(http, stop))
        script = cues(r.duration, args.pace, args.peak_limit)
        operator = asyncio.create_task(r.operate(http, script))
        marks = [(cpu_times(), process_cpu(r.stack.proc.pid), time.monotonic())]
        boundaries = asyncio.create_task(phase_marks(r, marks))
        await r.generate(http, paid, free, capacity)
        await operator
        await boundaries
        await asyncio.gather(*list(r.tasks))
        load_end = time.time()
        while time.time() - load_end < args.drain_s and not await r.drained(http):
            await asyncio.sleep(1.0)
        meta["drain_s"] = round(time.time() - load_end, 1)
        await asyncio.sleep(2)
        stop.set()
        await sampler
    names = [name for name, _, _ in PHASES]
    meta["machine"] = {
        name: machine_load(a[0], b[0]) for name, a, b in zip(names, marks, marks[1:], strict=False)
    }
    meta["processes (of one core)"] = {
        name: process_load(a[1], b[1], b[2] - a[2])
        for name, a, b in zip(names, marks, marks[1:], strict=False)
    }


async def phase_marks(r: Rehearsal, marks: list[Any]) -> None:
    """CPU readings at each phase's end: the machine's load per phase."""
    for _, _, end in PHASES:
        delay = r.t0 + end * r.duration - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        marks.append((cpu_times(), process_cpu(r.stack.proc.pid), time.monotonic()))


def to_report(r: Rehearsal, meta: dict[str, Any]) -> lr.Rehearsal:
    requests = [
        lr.Request(
            tier=x.tier,
            account=x.account,
            t=round(x.sent_at - r.t0, 3),
            phase=x.phase,
            status=x.status,
            code=x.code,
            deferred=(x.job_status or "").startswith("deferred"),
            done_s=x.done_s,
        )
        for x in r.records
    ]
    phases = [lr.Phase(n, s * r.duration, e * r.duration) for n, s, e in PHASES]
    phases.append(lr.Phase("drain", r.duration, r.duration + float(meta.get("drain_s", 0))))
    return lr.Rehearsal(requests, r.samples, r.actions, phases, meta)


def write_raw(r: Rehearsal, out: Path, log_tail: list[str]) -> None:
    """Every request (requests.csv.gz) and the stack's last log lines (WARNING and up),
    for a look at what the plots sum up."""
    with gzip.open(out / "requests.csv.gz", "wt", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["t", "tier", "account", "phase", "status", "code", "job_status",
                         "answer_s", "wait_s", "done_s", "preemptions"])  # fmt: skip
        for x in r.records:
            writer.writerow([
                round(x.sent_at - r.t0, 3), x.tier, x.account, x.phase, x.status, x.code,
                x.job_status or "", *(round(v, 3) if v is not None else "" for v in
                (x.answer_s, x.wait_s, x.done_s)), x.preemptions,
            ])  # fmt: skip
    # The stack's demo key is printed at start: no key goes into a report.
    text = re.sub(r"dg-[A-Za-z0-9_-]{8,}", "dg-...", "".join(log_tail))
    (out / "stack-log-tail.txt").write_text(text)


def print_verdict(summary: dict[str, Any]) -> None:
    for row in summary["by_phase"]:
        print(
            f"  {row['phase']:<12} {row['tier']:<4} {row['requests']:>6} req "
            f"({row['per_s']:5.1f}/s): served {row['served']}, deferred {row['deferred']}, "
            f"429 {row['429 rate limit'] + row['429 paced'] + row['429 queue full']}, "
            f"403 {row['403 not rolled in']}, 5xx {row['5xx or no answer']}; "
            f"p50 {row['p50_s']:.2f} s, p99 {row['p99_s']:.2f} s, lost {row['lost']}"
        )
    for row in lr.verdict_rows(summary["verdict"]):
        print(f"  {row['check']:<38} {row['target']:>7}  {row['measured']}  {row['result']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="of load (2 to 30)")
    parser.add_argument("--out", type=Path, help="the report's folder (default: a temp one)")
    parser.add_argument("--model", choices=["builtin", "fake"], default="builtin")
    parser.add_argument("--paid-share", type=float, default=0.3, help="of capacity")
    parser.add_argument("--peak-factor", type=float, default=10, help="x capacity")
    parser.add_argument("--pace", type=float, default=0.1, help="the operator's, x throughput")
    parser.add_argument("--peak-limit", default="3/minute", help="free limits at the peak")
    parser.add_argument("--capacity", type=float, help="jobs/s, instead of measuring it")
    parser.add_argument("--paid-accounts", type=int, default=4)
    parser.add_argument("--free-accounts", type=int, default=600)
    parser.add_argument("--drain-s", type=float, default=300, help="the most to wait after")
    parser.add_argument("--keep", type=Path, help="data dir to keep (job table, logs)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a DAGUERRE_ setting for the stack")  # fmt: skip
    parser.add_argument("--pool-set", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting of the pool (VALUE in JSON)")  # fmt: skip
    args = parser.parse_args(argv)
    args.minutes = min(max(args.minutes, 2.0), 30.0)
    args.drain_s = min(args.drain_s, 900)
    out = args.out or Path(tempfile.mkdtemp(prefix="daguerre-launch-"))

    with tempfile.TemporaryDirectory(prefix="daguerre-launch-data-") as tmp:
        data_dir = args.keep or Path(tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        pool: dict[str, Any] = {
            "task_queue": "bench-api",
            "max_backlog": 60,
            "degrade_backlog": 20,
            # While paid work runs, at most 4 images a step: the built-in model pads a
            # step to 4 rows, so a paid render then steps as fast as alone (16, what
            # the model advises, doubles a step's time on this CPU).
            "express_batch_images": 4,
        }
        if args.model == "fake":
            pool["batch_images"] = 2
        for setting in args.pool_set:
            name, _, value = setting.partition("=")
            pool[name] = json.loads(value)
        admin_key = "dg-admin-" + secrets.token_hex(16)
        wport = free_port()
        env = {
            "DAGUERRE_ACCESS": json.dumps(access()),
            "DAGUERRE_POOLS": json.dumps({POOL: pool}),
            "DAGUERRE_PROGRESS_INTERVAL_S": "1",
            "DAGUERRE_ADMIN_KEY": admin_key,
            "DAGUERRE_WORKER_METRICS_PORT": str(wport),
        }
        if args.model == "fake":
            env["DAGUERRE_MODEL_OPTIONS"] = json.dumps({"step_delay_s": 0.04})
        for setting in args.set:
            name, _, value = setting.partition("=")
            env[f"DAGUERRE_{name.upper()}"] = value
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        stack = Stack(args.model, data_dir, 1, env)
        r = Rehearsal(args, stack, admin_key, wport)
        meta: dict[str, Any] = {
            "started": started,
            "model": args.model,
            "minutes_of_load": args.minutes,
            "pool": pool,
            "paid_share": args.paid_share,
            "peak_factor": args.peak_factor,
            "pace_at_announcement": args.pace,
            "free_limit_at_peak": args.peak_limit,
        }
        limit = args.minutes * 60 + args.drain_s + 300
        try:
            asyncio.run(asyncio.wait_for(rehearse(r, data_dir, meta), limit))
        finally:
            stack.stop()
        print("reading the job table ...", flush=True)
        fill_outcomes(data_dir, r.records)
    summary = lr.write_report(to_report(r, meta), out)
    write_raw(r, out, list(stack.tail))
    print_verdict(summary)
    print(f"report: {out / 'index.html'}")


if __name__ == "__main__":
    main()
