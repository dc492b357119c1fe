"""Local model commands: `daguerre render`, `daguerre train builtin`, `daguerre eval builtin`.

They run the model in this process with no server, for trying prompts, evaluation and
reproducing the shipped weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

train_app = typer.Typer(help="Train a model's weights.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate a model on fresh test sets.", no_args_is_help=True)


def render(
    captions: Annotated[list[str], typer.Argument(help="One or more prompts; one PNG each.")],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Folder for 0.png, 1.png, ...")],
    seed: Annotated[int, typer.Option(help="Seed of the first image; image i uses seed + i.")] = 0,
    steps: Annotated[int | None, typer.Option(help="Render steps (1-64; default 8).")] = None,
    edit: Annotated[
        Path | None,
        typer.Option("--edit", help="Source PNG: the prompts become edit instructions."),
    ] = None,
    mask: Annotated[
        Path | None, typer.Option(help="RGBA mask for --edit: transparent pixels may change.")
    ] = None,
    size: Annotated[
        int, typer.Option(help="Output side in pixels (nearest-neighbour upscale).")
    ] = 512,
    weights: Annotated[Path | None, typer.Option(help="Weights file (default: shipped).")] = None,
) -> None:
    """Render prompts locally with the built-in model, no server needed."""
    from PIL import Image

    from daguerre.models.base import RenderRequest
    from daguerre.models.base import render as run
    from daguerre.models.builtin.backend import BuiltinModel

    if mask is not None and edit is None:
        raise typer.BadParameter("--mask needs --edit SOURCE.png", param_hint="--mask")
    source = Image.open(edit).convert("RGB") if edit else None
    mask_image = Image.open(mask) if mask else None
    model = BuiltinModel(weights_path=weights)
    model.setup("cpu")
    requests = [
        RenderRequest(
            c, seed=seed + i, steps=steps, width=size, height=size, source=source, mask=mask_image
        )
        for i, c in enumerate(captions)
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, result in enumerate(run(model, requests)):
        result.image.save(out_dir / f"{i}.png")
    typer.echo(f"wrote {len(requests)} image(s) to {out_dir}")


@train_app.command("builtin")
def train_builtin(
    out: Annotated[Path, typer.Option(help="Where to write the weights.")] = Path(
        "builtin.safetensors"
    ),
    steps: Annotated[
        int | None, typer.Option(help="Training steps (default: the shipped run's).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed, with --steps (the recipe fixes its own).")] = 0,
    log_file: Annotated[Path | None, typer.Option(help="Also write the log here.")] = None,
) -> None:
    """Train the built-in model from a fixed seed (the shipped weights came from the defaults)."""
    from daguerre.models.builtin.training.train import train, train_recipe

    log_handle = log_file.open("w", buffering=1) if log_file else None

    def log(line: str) -> None:
        typer.echo(line)
        if log_handle:
            print(line, file=log_handle)

    if steps:
        train(out, seed=seed, log=log, steps=steps)
    else:
        train_recipe(out, log=log)


@eval_app.command("builtin")
def eval_builtin(
    per_set: Annotated[int, typer.Option(help="Captions per caption set.")] = 200,
    per_edit_kind: Annotated[int, typer.Option(help="Edits per edit kind.")] = 100,
    masked: Annotated[int, typer.Option(help="Masked edits.")] = 100,
    seed: Annotated[
        int | None, typer.Option(help="Test-set seed (default: the evaluation seed).")
    ] = None,
    grid: Annotated[Path, typer.Option(help="Where to write the sample grid PNG.")] = Path(
        "eval-grid.png"
    ),
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the table as JSON.")
    ] = None,
    weights: Annotated[Path | None, typer.Option(help="Weights file (default: shipped).")] = None,
    sources: Annotated[
        str,
        typer.Option(
            help="'own': captions and edits of our own renders; 'foreign': edits of sources"
            " drawn by the evaluation's held-out renderers (--per-edit-kind per kind each)."
        ),
    ] = "own",
    chains: Annotated[
        int, typer.Option(help="Also score this many 5-turn edit chains (0: none).")
    ] = 0,
    retries: Annotated[
        int | None,
        typer.Option(
            help="Redraws per image that fails its check (default: the service's; 0 scores"
            " first attempts alone)."
        ),
    ] = None,
) -> None:
    """Score the built-in model on fresh captions, held-out combinations and edits."""
    from daguerre.models.builtin.training.evaluate import EVAL_SEED, sample_grid

    if sources not in ("own", "foreign"):
        raise typer.BadParameter("--sources must be 'own' or 'foreign'")
    scores = _builtin_scores(
        weights,
        sources,
        seed=EVAL_SEED if seed is None else seed,
        sizes=(per_set, per_edit_kind, masked, chains),
        retries=retries,
    )
    sample_grid(scores, grid)
    typer.echo(f"sample grid: {grid}")
    if json_out:
        rows = [s.row() for s in scores.values()]
        json_out.write_text(json.dumps(rows, indent=2))


def _builtin_scores(
    weights: Path | None,
    sources: str,
    *,
    seed: int,
    sizes: tuple[int, int, int, int],
    retries: int | None = None,
) -> dict[str, Any]:
    """Run the chosen sets; ``sizes`` is (per_set, per_edit_kind, masked, chains)."""
    from daguerre.models.builtin.backend import BuiltinModel
    from daguerre.models.builtin.training.evaluate import evaluate
    from daguerre.models.builtin.training.evaluate_foreign import (
        evaluate_chains,
        evaluate_foreign,
    )

    per_set, per_edit_kind, masked, chains = sizes
    model = BuiltinModel(weights_path=weights)
    if retries is not None:
        model.retries = retries
    model.setup("cpu")
    if sources == "own":
        scores = evaluate(
            model,
            per_set=per_set,
            per_edit_kind=per_edit_kind,
            masked=masked,
            seed=seed,
            log=typer.echo,
        )
    else:
        scores = evaluate_foreign(model, per_kind=per_edit_kind, seed=seed, log=typer.echo)
    if chains:
        chain_score = evaluate_chains(model, chains=chains, seed=seed, log=typer.echo)
        scores[chain_score.name] = chain_score
    v = model.verified
    typer.echo(
        f"verification (retries={model.retries}): {v.checked} images checked, "
        f"{v.missed_first} missed at first, {v.retries} redraws, {v.still_wrong} still wrong"
    )
    return scores
