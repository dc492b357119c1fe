"""The shipped weights: one safetensors file with the network, its pattern vocabulary
and its word list, so that loading needs nothing but this file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from daguerre.models.builtin.model import NetConfig, PatchTokenNet

FORMAT = "daguerre-builtin-v1"
SHIPPED = Path(__file__).parent / "weights" / "builtin.safetensors"


def save(
    path: Path,
    net: PatchTokenNet,
    patterns: np.ndarray,
    words: tuple[str, ...],
    info: dict[str, object],
) -> None:
    # fp16 halves the file; the network runs in fp32 after loading.
    tensors = {
        f"net.{k}": v.detach().to(torch.float16).contiguous() for k, v in net.state_dict().items()
    }
    tensors["patterns"] = torch.from_numpy(patterns.astype(np.uint8))
    meta = {
        "format": FORMAT,
        "config": json.dumps(net.cfg.to_dict()),
        "words": json.dumps(list(words)),
        "info": json.dumps(info),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def load(
    path: Path = SHIPPED,
) -> tuple[PatchTokenNet, np.ndarray, tuple[str, ...], dict[str, object]]:
    """Network (fp32, eval mode), pattern vocabulary, words and training info."""
    if not path.exists():
        raise FileNotFoundError(
            f"built-in model weights not found at {path}; train them with `daguerre train builtin`"
        )
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} weights file (format={meta.get('format')!r})")
    tensors = load_file(str(path))
    cfg = NetConfig(**json.loads(meta["config"]))
    net = PatchTokenNet(cfg)
    state = {k[4:]: v.float() for k, v in tensors.items() if k.startswith("net.")}
    net.load_state_dict(state)
    net.eval()
    patterns = tensors["patterns"].numpy().astype(np.uint8)
    return net, patterns, tuple(json.loads(meta["words"])), json.loads(meta.get("info", "{}"))
