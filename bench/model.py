"""Speed of a model on this machine: one image, and batched throughput.

    .venv/bin/python bench/model.py [--threads 1] [--repeats 5]
    .venv/bin/python bench/model.py --against '{"retries": 0}'   # the same run, A/B
    .venv/bin/python bench/model.py --model diffusers --device cuda \
        --options '{"pipeline": "/models/sd-turbo", "steps": 4}' --batches 1,2,4,8,16,32

Prints the latency of one image at the service's default settings, then two tables:

- one request of n images (``render``), for the built-in model;
- n independent requests stepped together with ``step_many``, as a worker's engine
  runs them: images per second and the time of one shared step. The batch size where
  images per second stops growing is the pool's ``batch_images``; the largest batch
  whose step is still short enough for paid work is its ``express_batch_images`` (see
  docs/performance.md, "Sizing a pool's batch budget").

That table steps a closed batch until its last request is done. Under a backlog the
engine never waits for the last one: a request that finishes makes room for the next at
once (continuous batching). The two differ where requests take different times, as the
built-in model's do once a miss is drawn again: in a closed batch a miss's redraws run
after the others, a few rows a pass; under a backlog they ride in full passes. So each
run also prints the images per second of a backlog of ``--backlog`` batches' worth of
requests served that way (``backlog`` columns).

Numbers, not pass/fail: the machine is shared and noisy, so each figure is the best of
several repeats. ``--against OPTIONS`` loads a second instance of the model with other
options and measures both in the same run, alternating repeats so that drift in the
machine's speed lands on both (for the built-in model, ``{"retries": 0}`` is the model
without its result check and redraws).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

from daguerre.models.base import ImageModel, RenderRequest, render
from daguerre.models.builtin.grammar import sample_caption
from daguerre.models.builtin.scene import sample_scene
from daguerre.models.registry import create_model


def best_time(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def stepped_together(model: ImageModel, requests: list[RenderRequest]) -> tuple[float, float]:
    """Independent requests, one state each, stepped with ``step_many`` until all are
    done (the engine's way): the seconds in all, and the longest shared step."""
    started = time.perf_counter()
    states = [model.start([request]) for request in requests]
    longest = 0.0
    while any(s.step < s.total_steps for s in states):
        # By position, taken before the step: a backend may return new state objects,
        # and states that finish at different steps must keep their places.
        running = [i for i, s in enumerate(states) if s.step < s.total_steps]
        t = time.perf_counter()
        stepped = model.step_many([states[i] for i in running])
        longest = max(longest, time.perf_counter() - t)
        for i, state in zip(running, stepped, strict=True):
            states[i] = state
    for state in states:
        model.finish(state)
    return time.perf_counter() - started, longest


def backlogged(model: ImageModel, requests: list[RenderRequest], room: int) -> float:
    """Images per second while a backlog lasts, served the engine's way: ``room``
    requests run at a time, and each one that finishes makes room for the next at the
    very next step. Counted until the last request has started: the drain after it is a
    closed batch, the other table's business."""
    started = time.perf_counter()
    queue, running, done = list(requests), [], 0
    while queue:
        while queue and len(running) < room:
            running.append(model.start([queue.pop(0)]))
        stepped = model.step_many(running)
        running = [s for s in stepped if s.step < s.total_steps]
        for state in stepped:
            if state.step >= state.total_steps:
                model.finish(state)
                done += 1
    return done / (time.perf_counter() - started)


def backlog_of(prompts: list[str], room: int, batches: int) -> list[RenderRequest]:
    return [RenderRequest(prompts[i % len(prompts)], seed=i) for i in range(room * batches)]


def engine_table(
    model: ImageModel, prompts: list[str], batches: list[int], repeats: int, backlog: int
) -> None:
    print("independent requests stepped together (step_many, as a worker's engine does):")
    print(f"{'batch':>6} {'ms/image':>9} {'images/s':>9} {'step ms':>9} {'backlog/s':>10}")
    peak, peak_backlog = (1, 0.0), (1, 0.0)
    for bs in batches:
        reqs = [RenderRequest(p, seed=i) for i, p in enumerate(prompts[:bs])]
        runs = [stepped_together(model, reqs) for _ in range(repeats)]
        total, step = min(r[0] for r in runs), min(r[1] for r in runs)
        many = backlog_of(prompts, bs, backlog)
        flowing = max(backlogged(model, many, bs) for _ in range(repeats))
        peak = max(peak, (bs, bs / total), key=lambda p: p[1])
        peak_backlog = max(peak_backlog, (bs, flowing), key=lambda p: p[1])
        print(
            f"{bs:>6} {total / bs * 1000:>9.1f} {bs / total:>9.1f} {step * 1000:>9.1f}"
            f" {flowing:>10.1f}"
        )
    print(
        f"peak: {peak[1]:.1f} images/s at batch size {peak[0]} (closed batches), "
        f"{peak_backlog[1]:.1f} at {peak_backlog[0]} (a backlog)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="builtin", help="a registered backend")
    parser.add_argument("--options", default="{}", help="the backend's options, as JSON")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="built-in model only")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", default="1,2,4,8,16,32,64,128")
    parser.add_argument("--against", default=None, help="options of a second instance (A/B)")
    parser.add_argument(
        "--backlog", type=int, default=8, help="a backlog's requests, in batches' worth"
    )
    args = parser.parse_args()
    if args.against is not None:
        compare(args)
        return
    options: dict[str, Any] = json.loads(args.options)
    if args.model == "builtin":
        options.setdefault("threads", args.threads)
    model = create_model(args.model, **options)
    model.setup(args.device)
    rng = random.Random(0)
    prompts = [sample_caption(sample_scene(rng), rng)[0] for _ in range(256)]
    batches = [int(b) for b in args.batches.split(",")]

    render(model, [RenderRequest(prompts[0])])  # warm-up
    one = best_time(lambda: render(model, [RenderRequest(prompts[1], seed=1)]), args.repeats * 2)
    print(f"model={args.model} options={options} device={args.device}")
    print(f"one image, default settings: {one * 1000:.1f} ms")
    if args.model != "builtin":
        engine_table(model, prompts, batches, args.repeats, args.backlog)
        return

    best_bs, best_rate = 1, 0.0
    print("one request of n images (render):")
    print(f"{'batch':>6} {'s/batch':>9} {'ms/image':>9} {'images/s':>9}")
    for bs in batches:
        reqs = [RenderRequest(p, seed=i) for i, p in enumerate(prompts[:bs])]
        t = best_time(lambda reqs=reqs: render(model, reqs), args.repeats)
        rate = bs / t
        if rate > best_rate:
            best_bs, best_rate = bs, rate
        print(f"{bs:>6} {t:>9.3f} {t / bs * 1000:>9.1f} {rate:>9.1f}")
    print(f"peak throughput: {best_rate:.1f} images/s at batch size {best_bs}")
    engine_table(model, prompts, batches, args.repeats, args.backlog)

    src = render(model, [RenderRequest(prompts[2], seed=2)])[0]
    edit_px = best_time(
        lambda: render(
            model, [RenderRequest("make the background black", seed=3, source=src.image)]
        ),
        args.repeats,
    )
    edit_tok = best_time(
        lambda: render(
            model,
            [RenderRequest("make the background black", seed=3, source_encoding=src.encoding)],
        ),
        args.repeats,
    )
    print(
        f"one edit: {edit_px * 1000:.1f} ms from pixels, "
        f"{edit_tok * 1000:.1f} ms from stored tokens"
    )


def compare(args: argparse.Namespace) -> None:
    """One image and the engine's batched throughput of two instances, repeats alternated."""
    variants = {"A": json.loads(args.options), "B": json.loads(args.against)}
    models = {}
    for name, options in variants.items():
        if args.model == "builtin":
            options.setdefault("threads", args.threads)
        models[name] = create_model(args.model, **options)
        models[name].setup(args.device)
        print(f"{name}: model={args.model} options={options}")
    rng = random.Random(0)
    prompts = [sample_caption(sample_scene(rng), rng)[0] for _ in range(256)]
    for model in models.values():
        render(model, [RenderRequest(prompts[0])])  # warm-up
    one: dict[str, float] = {name: float("inf") for name in models}
    for i in range(args.repeats * 2):
        for name, model in models.items():
            t = time.perf_counter()
            render(model, [RenderRequest(prompts[1 + i % 8], seed=i)])
            one[name] = min(one[name], time.perf_counter() - t)
    print(
        f"one image (best of {args.repeats * 2}, 8 prompts): "
        + ", ".join(f"{name} {one[name] * 1000:.1f} ms" for name in models)
    )
    print("images/s: a closed batch, and a backlog (continuous batching)")
    print(
        f"{'batch':>6} {'A':>7} {'B':>7} {'A/B':>6} {'A backlog':>10} {'B backlog':>10} {'A/B':>6}"
    )
    peak = {(name, kind): 0.0 for name in models for kind in ("closed", "backlog")}
    for bs in [int(b) for b in args.batches.split(",")]:
        reqs = [RenderRequest(p, seed=i) for i, p in enumerate(prompts[:bs])]
        many = backlog_of(prompts, bs, args.backlog)
        rate = {key: 0.0 for key in peak}  # the best of the repeats, images/s
        for _ in range(args.repeats):
            for name, model in models.items():
                closed = bs / stepped_together(model, reqs)[0]
                rate[name, "closed"] = max(rate[name, "closed"], closed)
                rate[name, "backlog"] = max(rate[name, "backlog"], backlogged(model, many, bs))
        for key in peak:
            peak[key] = max(peak[key], rate[key])
        a, b = rate["A", "closed"], rate["B", "closed"]
        fa, fb = rate["A", "backlog"], rate["B", "backlog"]
        print(f"{bs:>6} {a:>7.1f} {b:>7.1f} {a / b:>6.3f} {fa:>10.1f} {fb:>10.1f} {fa / fb:>6.3f}")
    print(
        f"peak, closed batches: A {peak['A', 'closed']:.1f}, B {peak['B', 'closed']:.1f}; "
        f"a backlog: A {peak['A', 'backlog']:.1f}, B {peak['B', 'backlog']:.1f} images/s"
    )


if __name__ == "__main__":
    main()
