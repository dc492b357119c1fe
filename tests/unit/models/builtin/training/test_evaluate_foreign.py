"""The foreign-source and chain evaluations: every kind per renderer, pooled rows that add
up, and chains whose expected final scene follows every turn."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from daguerre.cli import app
from daguerre.models.builtin import grammar
from daguerre.models.builtin.backend import BuiltinModel
from daguerre.models.builtin.scene import Scene, SceneObject
from daguerre.models.builtin.training.evaluate_foreign import (
    _Chain,
    evaluate_chains,
    evaluate_foreign,
)
from daguerre.models.builtin.training.foreign import RENDERERS


@pytest.fixture(scope="module")
def model() -> BuiltinModel:
    m = BuiltinModel()
    m.setup("cpu")
    return m


def test_foreign_rows_cover_every_renderer_and_kind(model: BuiltinModel) -> None:
    lines: list[str] = []
    scores = evaluate_foreign(model, per_kind=1, seed=5, log=lines.append)
    for name in RENDERERS:
        for kind in grammar.EDIT_KINDS:
            assert scores[f"foreign_{name}_{kind}"].n == 1
        pooled = scores[f"foreign_{name}_all"]
        parts = [scores[f"foreign_{name}_{k}"] for k in grammar.EDIT_KINDS]
        assert pooled.n == len(grammar.EDIT_KINDS)
        assert pooled.ok == sum(p.ok for p in parts)
    everything = scores["foreign_all"]
    assert everything.n == len(RENDERERS) * len(grammar.EDIT_KINDS)
    assert 0.0 <= everything.rate <= 1.0
    assert len(lines) == len(scores)
    assert all(line.startswith("set=foreign_") for line in lines)


def test_chains_score_only_the_final_pictures(model: BuiltinModel) -> None:
    lines: list[str] = []
    score = evaluate_chains(model, chains=3, turns=2, seed=5, log=lines.append)
    assert score.name == "chains_2_turns" and score.n == 3
    assert all(text.count(" / ") == 1 for text, _, _ in score.samples)  # two turns each
    assert lines and lines[0].startswith("set=chains_2_turns")


def test_a_chain_follows_its_edits_and_frees_unstated_sizes() -> None:
    chain = _Chain(Scene("white", (SceneObject("red", "circle", "large", "left"),)))
    rng = random.Random(0)
    for _ in range(12):
        before = chain.scene
        edit = chain.next_edit(rng)
        # Jitter and unstated sizes come from the chain's stream; the rest is the edit's.
        expected = grammar.spec_of(grammar.apply_edit(before, edit, random.Random(0)))
        spec = chain.spec()
        assert spec.background == expected.background
        assert [(o.colour, o.shape, o.position) for o in spec.objects] == [
            (o.colour, o.shape, o.position) for o in expected.objects
        ]
        assert chain.free_size <= {o.colour for o in chain.scene.objects}
        assert all((o.size is None) == (o.colour in chain.free_size) for o in spec.objects)
    assert len(chain.edits) == 12


def test_the_cli_runs_the_foreign_sets_and_chains(tmp_path: Path) -> None:
    grid, table = tmp_path / "grid.png", tmp_path / "table.json"
    args = ["eval", "builtin", "--sources", "foreign", "--per-edit-kind", "1", "--chains", "2"]
    result = CliRunner().invoke(app, [*args, "--grid", str(grid), "--json", str(table)])
    assert result.exit_code == 0, result.output
    names = [row["set"] for row in json.loads(table.read_text())]
    assert names[-2:] == ["foreign_all", "chains_5_turns"]
    assert "set=foreign_coverage_recolour" in result.output and grid.exists()


def test_the_cli_refuses_an_unknown_source_set() -> None:
    result = CliRunner().invoke(app, ["eval", "builtin", "--sources", "web"])
    assert result.exit_code != 0
    assert "own" in result.output and "foreign" in result.output
