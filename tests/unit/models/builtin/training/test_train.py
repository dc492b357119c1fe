"""Training is reproducible: the same seed and steps give identical weights."""

from pathlib import Path

import torch
from safetensors.torch import load_file

from daguerre.models.builtin import weights
from daguerre.models.builtin.training.train import train

TINY = {"d": 32, "layers": 1, "heads": 2, "text_layers": 1}


def test_same_seed_same_weights_and_a_second_phase_loads_the_first(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    try:
        for name in ("a", "b"):
            train(
                tmp_path / f"{name}.safetensors",
                steps=3,
                batch_size=4,
                config=TINY,
                log=lambda _: None,
            )
        # Compare tensors, not files: the metadata records the wall-clock time taken.
        a = load_file(str(tmp_path / "a.safetensors"))
        b = load_file(str(tmp_path / "b.safetensors"))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)

        lines: list[str] = []
        train(
            tmp_path / "c.safetensors",
            steps=2,
            batch_size=4,
            seed=1,
            init=tmp_path / "a.safetensors",
            log=lines.append,
        )
        net, _, _, info = weights.load(tmp_path / "c.safetensors")
        assert net.cfg.d == 32 and info["steps"] == 2
        assert any("init=" in line for line in lines)
    finally:
        torch.set_num_threads(threads)
