"""`daguerre render`: local renders, one PNG per prompt, in argument order."""

from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from daguerre.cli import app
from daguerre.models.builtin.checker import check
from daguerre.models.builtin.grammar import parse_caption

CAPTIONS = [
    "a large red circle on the left, on a white background",
    "a black background with a small yellow square at the top",
]


def test_render_writes_one_png_per_caption_then_edits_one(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["render", *CAPTIONS, "--out-dir", str(out), "--size", "256"])
    assert result.exit_code == 0, result.output
    for i, caption in enumerate(CAPTIONS):
        image = Image.open(out / f"{i}.png")
        assert image.size == (256, 256)
        spec = parse_caption(caption)
        assert spec is not None and check(image, spec).ok

    edited = tmp_path / "edited"
    args = [
        "render",
        "make the background gray",
        "--edit",
        str(out / "0.png"),
        "--out-dir",
        str(edited),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    spec = parse_caption("a large red circle on the left, on a gray background")
    assert spec is not None and check(Image.open(edited / "0.png"), spec).ok


def test_render_rejects_a_mask_without_a_source(tmp_path: Path) -> None:
    mask = tmp_path / "mask.png"
    Image.new("RGBA", (64, 64)).save(mask)
    result = CliRunner().invoke(
        app, ["render", "x", "--out-dir", str(tmp_path), "--mask", str(mask)]
    )
    assert result.exit_code != 0
    assert "--edit" in result.output
