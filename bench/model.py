"""Speed of the built-in model on this machine: one image, and batched throughput.

    .venv/bin/python bench/model.py [--threads 1] [--repeats 5]

Prints the latency of one image at the service's default settings (8 steps, 64
tokens), then images per second for a range of batch sizes, and the batch size
where throughput peaks. Numbers, not pass/fail: the machine is shared and noisy,
so each figure is the best of several repeats.
"""

from __future__ import annotations

import argparse
import random
import time

from daguerre.models.base import RenderRequest, render
from daguerre.models.builtin.backend import BuiltinModel
from daguerre.models.builtin.grammar import sample_caption
from daguerre.models.builtin.scene import sample_scene


def best_time(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", default="1,2,4,8,16,32,64,128")
    args = parser.parse_args()
    model = BuiltinModel(threads=args.threads)
    model.setup("cpu")
    rng = random.Random(0)
    prompts = [sample_caption(sample_scene(rng), rng)[0] for _ in range(256)]

    render(model, [RenderRequest(prompts[0])])  # warm-up
    one = best_time(lambda: render(model, [RenderRequest(prompts[1], seed=1)]), args.repeats * 2)
    print(f"threads={args.threads}")
    print(f"one image, default settings (8 steps, 64 tokens): {one * 1000:.1f} ms")

    best_bs, best_rate = 1, 0.0
    print(f"{'batch':>6} {'s/batch':>9} {'ms/image':>9} {'images/s':>9}")
    for bs in (int(b) for b in args.batches.split(",")):
        reqs = [RenderRequest(p, seed=i) for i, p in enumerate(prompts[:bs])]
        t = best_time(lambda reqs=reqs: render(model, reqs), args.repeats)
        rate = bs / t
        if rate > best_rate:
            best_bs, best_rate = bs, rate
        print(f"{bs:>6} {t:>9.3f} {t / bs * 1000:>9.1f} {rate:>9.1f}")
    print(f"peak throughput: {best_rate:.1f} images/s at batch size {best_bs}")

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


if __name__ == "__main__":
    main()
