"""The README's own tweak, many times: does "make the circle green" ever miss?

Starts a private `daguerre up`, draws the README's picture (512×512, "a large red circle on
the left and a small blue square at the top, on a white background") once through
``images.generate``, then sends the README's edit ``--calls`` times (default 100) through
``images.edit`` with the official `openai` client. Each call is a new job with its own
seed. Every result is read back by the built-in model's pixel checker against the scene
the edit should give, and the distinct ``revised_prompt`` values are printed.

    .venv/bin/python bench/readme_edit.py [--calls 100] [--model-options '{"retries": 0}']

Copied into an older checkout (bench/ there), it measures that checkout's code: its Stack
puts the script's own checkout first on the path.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import openai
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import Stack, model_options

try:
    from daguerre.models.builtin import checker, grammar
except ImportError:  # a checkout from before the checker moved out of training/
    from daguerre.models.builtin.training import checker, grammar  # type: ignore[no-redef]

CAPTION = "a large red circle on the left and a small blue square at the top, on a white background"
EDIT = "make the circle green"


def expected_after() -> grammar.CaptionSpec:
    before = grammar.parse_caption(CAPTION)
    assert before is not None
    circle, square = before.objects
    return grammar.CaptionSpec(before.background, (replace(circle, colour="green"), square))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--model-options", default="{}", help="extra built-in model options")
    args = parser.parse_args()
    options = {**model_options("builtin", 1), **json.loads(args.model_options)}
    with tempfile.TemporaryDirectory(prefix="daguerre-bench-") as tmp:
        stack = Stack(
            "builtin",
            Path(tmp),
            1,
            extra_env={"DAGUERRE_MODEL_OPTIONS": json.dumps(options)},
        )
        try:
            right, revised = run(stack, args.calls)
        finally:
            stack.stop()
    print(f"model options: {options}")
    print(f'"{EDIT}" on the README picture: {right}/{args.calls} right')
    for text, count in revised.most_common():
        print(f"  revised_prompt {text!r}: {count}")


def run(stack: Stack, calls: int) -> tuple[int, Counter[str]]:
    api = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=stack.key, timeout=300)
    made = api.images.generate(
        model="builtin", prompt=CAPTION, size="512x512", response_format="b64_json"
    )
    assert made.data and made.data[0].b64_json
    scene_png = base64.b64decode(made.data[0].b64_json)
    source_ok = checker.check(Image.open(io.BytesIO(scene_png)), grammar.parse_caption(CAPTION))
    print(f"the README picture drawn right: {source_ok.ok} {source_ok.reasons}")
    expected = expected_after()

    def one(_: int) -> tuple[bool, str]:
        result = api.images.edit(
            model="builtin",
            image=("scene.png", scene_png, "image/png"),
            prompt=EDIT,
            response_format="b64_json",
        )
        assert result.data and result.data[0].b64_json
        image = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json)))
        return checker.check(image, expected).ok, str(result.data[0].revised_prompt)

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(one, range(calls)))
    return sum(ok for ok, _ in outcomes), Counter(text for _, text in outcomes)


if __name__ == "__main__":
    main()
