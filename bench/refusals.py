"""What a flood of refused requests costs the gateway, and the paid requests beside it.

A launch's free flood is mostly refusals: at the rehearsal's peak (bench/launch.py) about
400 free requests a second were answered 429 (rate limit), and paid requests waited
behind them in the gateway's event loop (paid answer p99 0.02 s at baseline, 0.10-0.19 s
in the flood). This bench starts a private `daguerre up` (fake model), spends a free
account's budget, then for each setting asked (--modes) sends --rate refused requests a
second for --seconds, with paid jobs at --paid-rate beside them, and prints the
gateway's CPU per request and the paid answers' latency. Each mode has a stack of its
own, all up for the whole run, flooded in turn --rounds times: `off` and `on` are this
checkout with DAGUERRE_REPLAY_REFUSALS false and true; `before` is the checkout given
by --against (the code before a change, e.g. a `git worktree`):

    .venv/bin/python bench/refusals.py                        # replay_refusals off vs on
    git worktree add /tmp/before <rev>
    .venv/bin/python bench/refusals.py --against /tmp/before --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import REPO, Stack, accounts
from surge import p, process_cpu

sys.path.insert(0, str(REPO / "src"))

MODES = ["before", "off", "on"]
ACCESS = {
    "tiers": {
        "free": {"requests": "1/hour", "images": "1/hour", "over_budget": "reject"},
        "pro": {"requests": "6000/minute", "images": "6000/minute"},
    },
}


async def post(http: aiohttp.ClientSession, key: str, out: list[tuple[int, float]]) -> None:
    started = time.perf_counter()
    body = {"prompt": "a red circle", "size": "64x64"}
    async with http.post("/v1/jobs", json=body, headers={"Authorization": f"Bearer {key}"}) as r:
        await r.read()
        out.append((r.status, time.perf_counter() - started))


async def flood(
    http: aiohttp.ClientSession,
    free: list[str],
    paid: list[str],
    args: argparse.Namespace,
    seconds: float,
) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """Open-loop: --rate free and --paid-rate paid requests a second, ticking every 10 ms."""
    refused: list[tuple[int, float]] = []
    served: list[tuple[int, float]] = []
    tasks = []
    credit = {"free": 0.0, "paid": 0.0}
    start = last = time.monotonic()
    turn = 0
    while time.monotonic() - start < seconds:
        now = time.monotonic()
        credit["free"] += args.rate * (now - last)
        credit["paid"] += args.paid_rate * (now - last)
        last = now
        while credit["free"] >= 1:
            credit["free"] -= 1
            turn += 1
            tasks.append(asyncio.create_task(post(http, free[turn % len(free)], refused)))
        while credit["paid"] >= 1:
            credit["paid"] -= 1
            tasks.append(asyncio.create_task(post(http, paid[turn % len(paid)], served)))
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    return refused, served


async def prepare(
    stack: Stack, data_dir: Path, args: argparse.Namespace
) -> tuple[list[str], list[str]]:
    """The stack's free keys, each with its budget spent, and its paid keys; then a
    short flood, not measured: the first requests of a stack read keys and warm up."""
    free = [
        key for _, key in await asyncio.to_thread(accounts, data_dir, "free", args.free_accounts)
    ]
    paid = [key for _, key in await asyncio.to_thread(accounts, data_dir, "pro", 4)]
    async with aiohttp.ClientSession(stack.url) as http:
        spent: list[tuple[int, float]] = []
        await asyncio.gather(*(post(http, key, spent) for key in free))
    connector = aiohttp.TCPConnector(limit=args.connections)
    async with aiohttp.ClientSession(stack.url, connector=connector) as http:
        await flood(http, free, paid, args, seconds=3)
    return free, paid


Row = tuple[float, float, float, float]  # ms of CPU a request, share of a core, p50, p99


async def one_flood(
    stack: Stack, keys: tuple[list[str], list[str]], args: argparse.Namespace
) -> Row:
    connector = aiohttp.TCPConnector(limit=args.connections)
    async with aiohttp.ClientSession(stack.url, connector=connector) as http:
        before, t0 = process_cpu(stack.proc.pid), time.monotonic()
        refused, served = await flood(http, *keys, args, args.seconds)
        after, t1 = process_cpu(stack.proc.pid), time.monotonic()
    bad = [s for s, _ in refused if s != 429] + [s for s, _ in served if s != 202]
    if bad:
        raise SystemExit(f"unexpected answers: {sorted(set(bad))}")
    gateway_s = (after["gateway"] - before["gateway"]) / os.sysconf("SC_CLK_TCK")
    paid_s = [t for _, t in served]
    return (
        1000 * gateway_s / max(1, len(refused) + len(served)),
        gateway_s / (t1 - t0),
        p(paid_s, 0.5),
        p(paid_s, 0.99),
    )


def show(label: str, row: Row) -> str:
    return (
        f"  {label:<6}: gateway {row[0]:.3f} ms of CPU a request, "
        f"{100 * row[1]:.0f}% of a core; paid answers p50 {1000 * row[2]:.1f} ms, "
        f"p99 {1000 * row[3]:.1f} ms"
    )


async def run(stacks: dict[str, tuple[Stack, Path]], args: argparse.Namespace) -> None:
    keys = {
        mode: await prepare(stack, data_dir, args) for mode, (stack, data_dir) in stacks.items()
    }
    results: dict[str, list[Row]] = {mode: [] for mode in stacks}
    for _ in range(args.rounds):
        for mode, (stack, _) in stacks.items():
            await asyncio.sleep(2)  # the last flood's paid jobs finish
            row = await one_flood(stack, keys[mode], args)
            results[mode].append(row)
            print(show(mode, row), flush=True)
    print("\nmedians over the rounds:")
    for mode, rows in results.items():
        medians = [statistics.median(column) for column in zip(*rows, strict=True)]
        print(show(mode, (medians[0], medians[1], medians[2], medians[3])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=400, help="refused requests a second")
    parser.add_argument("--paid-rate", type=float, default=10, help="paid jobs a second")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--modes", nargs="+", default=["off", "on"], choices=MODES)
    parser.add_argument("--against", type=Path, help="the checkout that `before` runs")
    parser.add_argument("--free-accounts", type=int, default=600)
    parser.add_argument("--connections", type=int, default=400)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a DAGUERRE_ setting for both stacks")  # fmt: skip
    args = parser.parse_args()
    if args.against is not None and "before" not in args.modes:
        args.modes.insert(0, "before")
    if "before" in args.modes and args.against is None:
        parser.error("the mode `before` needs --against CHECKOUT")
    with contextlib.ExitStack() as cleanup:
        stacks = {}
        for mode in args.modes:
            data_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
            env = {
                "DAGUERRE_ACCESS": json.dumps(ACCESS),
                "DAGUERRE_MODEL_OPTIONS": json.dumps({"step_delay_s": 0.001}),
            }
            if mode != "before":  # (a setting the code before may not have)
                env["DAGUERRE_REPLAY_REFUSALS"] = "false" if mode == "off" else "true"
            for setting in args.set:
                name, _, value = setting.partition("=")
                env[f"DAGUERRE_{name.upper()}"] = value
            repo = args.against if mode == "before" else REPO
            stack = Stack("fake", data_dir, 1, env, repo=repo)
            cleanup.callback(stack.stop)
            stacks[mode] = (stack, data_dir)
        asyncio.run(run(stacks, args))


if __name__ == "__main__":
    main()
