"""`daguerre generate` against a running stack: progress from SSE, then the PNG(s)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from PIL import Image
from rich.console import Console

from daguerre.commands.generate import GenerateOptions, run_generate
from tests.integration.conftest import Stack
from tests.support.stack import REPO

PROMPT = "a small blue square on the left, on a black background"


def generate(stack: Stack, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "daguerre", "generate", PROMPT, *args]
    command += ["--server", stack.url, "--model", stack.model]
    env = {"DAGUERRE_API_KEY": key, "PATH": "/usr/bin:/bin"}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_generate_writes_a_png_and_shows_progress(stack: Stack, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    done = generate(stack, stack.new_key(), "-o", str(out), "--size", "256x256")
    assert done.returncode == 0, done.stderr
    image = Image.open(out)
    assert image.format == "PNG" and image.size == (256, 256)
    lines = done.stderr.splitlines()
    steps = [line for line in lines if line.startswith("running step")]
    assert steps, done.stderr  # progress came from the event stream
    assert any(line.startswith("succeeded step") for line in lines)
    assert f"wrote {out}" in done.stderr


def test_generate_n_images(stack: Stack, tmp_path: Path) -> None:
    out = tmp_path / "pic.webp"
    done = generate(stack, stack.new_key(), "-o", str(out), "--n", "2", "--size", "64x64")
    assert done.returncode == 0, done.stderr
    for name in ("pic-1.webp", "pic-2.webp"):
        assert Image.open(tmp_path / name).format == "WEBP"


def test_generate_reports_errors(stack: Stack, tmp_path: Path) -> None:
    done = generate(stack, "dg-wrong", "-o", str(tmp_path / "x.png"))
    assert done.returncode == 1
    assert "401" in done.stderr and "API key" in done.stderr
    done = generate(stack, stack.new_key(), "-o", str(tmp_path / "x.png"), "--size", "13x7")
    assert done.returncode == 1 and "Supported sizes" in done.stderr


def test_rich_progress_bar_on_a_terminal(stack: Stack, tmp_path: Path) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    options = GenerateOptions(
        prompt=PROMPT, output=tmp_path / "tty.png", size="64x64", model=stack.model,
        server=stack.url, key=stack.new_key(),
    )  # fmt: skip
    assert run_generate(options, console) == 0
    text = screen.getvalue()
    assert "━" in text  # the bar
    assert "succeeded" in text and "wrote" in text
