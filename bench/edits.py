"""Do edits through the service follow their instruction? Prints the success rate of
N edits (default 60, at least 50) sent as OpenAI image edits to a private
`daguerre up`, read back by the built-in model's own checker, next to the model alone
on the same examples.

Each example is a held-out scene, an instruction of one kind (recolour, shape, move,
remove, add, background) and the scene the instruction should produce, from
``daguerre.models.builtin.training.data.sample_edit_example(rng, kind, training=False)``; the
source picture is ``scene.render`` of the first scene, uploaded as a PNG. Bounded
and loopback only.

    .venv/bin/python bench/edits.py [--edits 60] [--seed 0]
"""

from __future__ import annotations

import argparse
import base64
import io
import random
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import Stack

from daguerre.models.builtin import grammar
from daguerre.models.builtin.checker import check, check_scene
from daguerre.models.builtin.scene import Scene, render
from daguerre.models.builtin.training.data import sample_edit_example

# (kind, source scene, instruction, what the result must match)
Case = tuple[str, Scene, str, grammar.CaptionSpec]


def examples(count: int, seed: int) -> list[Case]:
    """(kind, source scene, instruction, expected scene), the kinds in turn."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        kind = grammar.EDIT_KINDS[i % len(grammar.EDIT_KINDS)]
        source, edit, result = sample_edit_example(rng, kind, training=False)
        # Scored by what the instruction says: an added object's size only if it was named.
        out.append((kind, source, edit.text(), grammar.expected_spec(result, edit)))
    return out


def png(scene: Scene) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(render(scene)).save(buffer, format="PNG")
    return buffer.getvalue()


def through_service(stack: Stack, cases: list[Case]) -> list[bool]:
    api = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=stack.key, timeout=120)

    def one(case: Case) -> bool:
        _, source, text, expected = case
        result = api.images.edit(
            model="builtin", image=("source.png", png(source), "image/png"), prompt=text
        )
        assert result.data and result.data[0].b64_json
        image = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json)))
        return check(image, expected).ok

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, cases))


def model_alone(cases: list[Case]) -> list[bool]:
    from daguerre.models.base import RenderRequest
    from daguerre.models.base import render as render_all
    from daguerre.models.registry import create_model

    model = create_model("builtin", threads=1)
    model.setup("cpu")
    requests = [
        RenderRequest(text, seed=i, source=Image.fromarray(render(source)))
        for i, (_, source, text, _) in enumerate(cases)
    ]
    results = []
    for start in range(0, len(requests), 16):
        results += render_all(model, requests[start : start + 16])
    return [check(r.image, case[3]).ok for r, case in zip(results, cases, strict=True)]


def through_conversations(
    stack: Stack, cases: list[Case], seed: int
) -> tuple[list[Case], list[bool]]:
    """Edit *turns*: turn 1 draws the source from its full caption, turn 2 edits it in place.

    The edit works on the model's own image through its stored tokens, so it is scored
    only where turn 1 drew the source exactly (that rate is printed too).
    """
    http = httpx.Client(
        base_url=stack.url, headers={"Authorization": f"Bearer {stack.key}"}, timeout=120
    )
    rng = random.Random(seed)
    drawn: list[bool] = []

    def finished_turn(conversation: str, body: dict[str, object]) -> dict[str, Any]:
        turn = http.post(f"/v1/conversations/{conversation}/turns", json=body)
        turn.raise_for_status()
        index = turn.json()["index"]
        for _ in range(600):
            turns = http.get(f"/v1/conversations/{conversation}").json()["turns"]
            current: dict[str, Any] = next(t for t in turns if t["index"] == index)
            if current["job"]["status"] in {"succeeded", "failed", "cancelled"}:
                return current
            time.sleep(0.05)
        raise TimeoutError(f"turn {index} of {conversation} did not finish")

    def image_of(turn: dict[str, Any]) -> Image.Image:
        return Image.open(io.BytesIO(httpx.get(turn["image"]["url"], timeout=60).content))

    scored: list[Case] = []
    results: list[bool] = []
    for case in cases:
        _, source, text, expected = case
        conversation = http.post("/v1/conversations", json={}).json()["id"]
        caption = grammar.caption_text(grammar.spec_of(source), rng.randrange(2))
        first = finished_turn(conversation, {"prompt": caption, "mode": "new", "size": "64x64"})
        if first["image"] is None or not check_scene(image_of(first), source).ok:
            drawn.append(False)
            continue
        drawn.append(True)
        scored.append(case)
        second = finished_turn(conversation, {"prompt": text, "mode": "edit"})
        results.append(second["image"] is not None and check(image_of(second), expected).ok)
    print(f"  conversation turn 1 drew its source exactly: {sum(drawn)}/{len(drawn)}")
    http.close()
    return scored, results


def report(name: str, cases: list[Case], ok: list[bool]) -> None:
    per_kind: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for (kind, *_), good in zip(cases, ok, strict=True):
        totals[kind] += 1
        per_kind[kind] += good
    kinds = "  ".join(f"{k} {per_kind[k]}/{totals[k]}" for k in grammar.EDIT_KINDS if totals[k])
    print(f"  {name:<14} {sum(ok)}/{len(ok)} = {sum(ok) / len(ok):6.1%}   ({kinds})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    count = max(50, min(args.edits, 600))
    cases = examples(count, args.seed)
    alone = model_alone(cases)
    with tempfile.TemporaryDirectory(prefix="daguerre-bench-") as tmp:
        stack = Stack("builtin", Path(tmp), 1)
        try:
            served = through_service(stack, cases)
            print(
                f"\nconversations: turn 1 draws the source, turn 2 is the edit ({count} held-out)"
            )
            turned_cases, turned = through_conversations(stack, cases, args.seed)
        finally:
            stack.stop()
    print(
        f"\nedits that follow their instruction (checker: check, expected_spec), {count} held-out"
    )
    report("model alone", cases, alone)
    report("through service", cases, served)
    report("edit turns", turned_cases, turned)


if __name__ == "__main__":
    main()
