"""Progressive rendering and edit costs. Prints:

- time to the first partial image and to the final image of a streamed generation
  (OpenAI's ``stream: true`` with ``partial_images``), for 1 stream and for N
  concurrent streams (default 8);
- the cost of an edit that reuses the model's stored encoding of its source image
  against one that encodes the source pixels again: in the model alone (``start()``
  of the edit) and end to end (a conversation edit turn, which reuses the encoding,
  against POST /v1/images/edits of the same picture, which cannot).

It runs a private `daguerre up` (temp data dir, free loopback ports, one worker) and
stops it afterwards. Counts and total time are bounded.

    .venv/bin/python bench/progress.py
    .venv/bin/python bench/progress.py --redis redis://127.0.0.1:6379/0   # events via Redis
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import Stack

PROMPT = "a large red circle in the center, on a white background"


async def one_stream(http: httpx.AsyncClient, size: int, partials: int) -> tuple[float, float]:
    """(seconds to the first partial image, seconds to the completed image)."""
    body = {"prompt": PROMPT, "size": f"{size}x{size}", "stream": True, "partial_images": partials}
    started = time.perf_counter()
    first = final = float("nan")
    async with http.stream("POST", "/v1/images/generations", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("event: ") and line.endswith(".partial_image") and first != first:
                first = time.perf_counter() - started
            elif line.startswith("event: ") and line.endswith(".completed"):
                final = time.perf_counter() - started
    return first, final


async def streams(stack: Stack, size: int, partials: int, rounds: int, concurrent: int) -> dict:
    headers = {"Authorization": f"Bearer {stack.key}"}
    limits = httpx.Limits(max_connections=concurrent + 4)
    async with httpx.AsyncClient(
        base_url=stack.url, headers=headers, timeout=300, limits=limits
    ) as http:
        await one_stream(http, size, partials)  # warm up
        single = [await one_stream(http, size, partials) for _ in range(rounds)]
        burst: list[tuple[float, float]] = []
        for _ in range(max(1, rounds // 2)):
            burst += await asyncio.gather(
                *(one_stream(http, size, partials) for _ in range(concurrent))
            )
    return {"single": single, "burst": burst}


def model_edit_costs(runs: int) -> dict[str, tuple[float, float]]:
    """Median seconds in the model alone, each as (reusing the stored encoding, encoding
    the source pixels again): ``start`` (where the source is taken in, the only part the
    encoding changes) and the whole edit render."""
    from daguerre.models.base import RenderRequest, render
    from daguerre.models.registry import create_model

    model = create_model("builtin", threads=1)
    model.setup("cpu")
    made = render(model, [RenderRequest(PROMPT, seed=1, width=512, height=512)])[0]
    assert made.encoding is not None
    edit = "make the circle blue"

    def request(i: int, reuse: bool) -> RenderRequest:
        encoding = made.encoding if reuse else None
        return RenderRequest(edit, seed=i, source=made.image, source_encoding=encoding)

    def median_of(fn: Callable[[list[RenderRequest]], object], reuse: bool) -> float:
        times = []
        for i in range(runs):
            started = time.perf_counter()
            fn([request(i, reuse)])
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    def whole(requests: list[RenderRequest]) -> None:
        render(model, requests)

    return {
        "start": (median_of(model.start, True), median_of(model.start, False)),
        "render": (median_of(whole, True), median_of(whole, False)),
    }


async def service_edit_costs(stack: Stack, runs: int) -> tuple[float, float]:
    """Median end-to-end seconds of an edit: a conversation turn (stored encoding) and
    POST /v1/images/edits of the same picture (pixels encoded again)."""
    headers = {"Authorization": f"Bearer {stack.key}"}
    async with httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=300) as http:
        conv = (await http.post("/v1/conversations", json={"title": "bench"})).json()
        turns = f"/v1/conversations/{conv['id']}/turns"

        async def turn_done(body: dict) -> tuple[dict, float]:
            started = time.perf_counter()
            turn = (await http.post(turns, json=body)).json()
            while True:
                job = (await http.get(f"/v1/jobs/{turn['job']['id']}")).json()
                if job["status"] == "succeeded":
                    return job, time.perf_counter() - started
                if job["status"] in ("failed", "cancelled"):
                    raise SystemExit(f"turn failed: {job}")
                await asyncio.sleep(0.01)

        source_job, _ = await turn_done({"prompt": PROMPT, "size": "512x512", "mode": "new"})
        picture = (await http.get(source_job["images"][0]["url"])).content
        reuse, encode = [], []
        for _ in range(runs):
            _, seconds = await turn_done(
                {"prompt": "make the circle blue", "mode": "edit", "from_turn": 1}
            )
            reuse.append(seconds)
            started = time.perf_counter()
            response = await http.post(
                "/v1/images/edits",
                files={"image": ("source.png", picture, "image/png")},
                data={"prompt": "make the circle blue"},
            )
            response.raise_for_status()
            encode.append(time.perf_counter() - started)
    return statistics.median(reuse), statistics.median(encode)


def summary(pairs: list[tuple[float, float]]) -> str:
    firsts = [a for a, _ in pairs if a == a]
    finals = [b for _, b in pairs]
    first = f"{statistics.median(firsts) * 1000:7.1f} ms" if firsts else "    n/a   "
    return (
        f"first partial p50 {first}   final p50 {statistics.median(finals) * 1000:7.1f} ms"
        f"   final max {max(finals) * 1000:7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--partials", type=int, default=3, choices=[1, 2, 3])
    parser.add_argument("--rounds", type=int, default=6, help="sequential streams")
    parser.add_argument("--concurrent", type=int, default=8)
    parser.add_argument("--edit-runs", type=int, default=20)
    parser.add_argument("--redis", default=None, help="DAGUERRE_REDIS_URL for the stack")
    parser.add_argument(
        "--step-delay",
        type=float,
        default=0.0,
        help="DAGUERRE_RENDER_STEP_DELAY_S: a slower model, to see partials arrive early",
    )
    parser.add_argument("--max-seconds", type=float, default=300)
    args = parser.parse_args()
    rounds, concurrent = min(args.rounds, 30), min(args.concurrent, 32)
    runs = min(args.edit_runs, 30)

    model_costs = model_edit_costs(runs)
    extra = {"DAGUERRE_REDIS_URL": args.redis} if args.redis else {}
    if args.step_delay:
        extra["DAGUERRE_RENDER_STEP_DELAY_S"] = str(min(args.step_delay, 1.0))
    with tempfile.TemporaryDirectory(prefix="daguerre-bench-") as tmp:
        stack = Stack("builtin", Path(tmp), 1, extra)
        try:

            async def everything() -> tuple[dict, tuple[float, float]]:
                timing = await streams(stack, args.size, args.partials, rounds, concurrent)
                return timing, await service_edit_costs(stack, runs)

            timing, (svc_reuse, svc_encode) = asyncio.run(
                asyncio.wait_for(everything(), args.max_seconds)
            )
        finally:
            stack.stop()

    feed = f"Redis pub/sub ({args.redis})" if args.redis else "database polling"
    delay = f", {args.step_delay * 1000:.0f} ms pause per step" if args.step_delay else ""
    print(
        f"\nbuiltin model{delay}, {args.size}x{args.size}, partial_images={args.partials}, "
        f"progress events via {feed}; one worker, loopback"
    )
    print(f"  1 stream  ({rounds} sequential):        {summary(timing['single'])}")
    print(
        f"  {concurrent} streams ({len(timing['burst'])} in bursts of {concurrent}): "
        f"{summary(timing['burst'])}"
    )
    print("edit cost, reusing the stored encoding vs encoding the source pixels again:")
    for name, (reuse, encode) in model_costs.items():
        label = "model start()" if name == "start" else "model whole edit"
        print(
            f"  {label:<17} (median of {runs}): reuse {reuse * 1000:7.2f} ms   "
            f"re-encode {encode * 1000:7.2f} ms   saving {(encode - reuse) * 1000:6.2f} ms "
            f"({(1 - reuse / encode) * 100:5.1f}%)"
        )
    print(
        f"  end to end (median of {runs}): conversation edit turn (reuses; 202 + polling the "
        f"job) {svc_reuse * 1000:6.1f} ms, upload edit (re-encodes; synchronous) "
        f"{svc_encode * 1000:6.1f} ms: not like for like, for scale only"
    )


if __name__ == "__main__":
    main()
