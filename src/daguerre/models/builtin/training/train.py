"""Training the built-in model from a fixed seed: same seed and steps, same weights
(on the same machine and thread count)."""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from daguerre.models.builtin import weights
from daguerre.models.builtin.model import NetConfig, PatchTokenNet
from daguerre.models.builtin.text import WORDS
from daguerre.models.builtin.tokens import N_COLOUR_CLASSES, Tokenizer, enumerate_patterns
from daguerre.models.builtin.training import data

TRAIN_SEED = 0  # evaluation draws from other seeds (see evaluate.py)


def _loss(net: PatchTokenNet, batch: data.Batch) -> torch.Tensor:
    words = torch.from_numpy(batch.words)
    target = torch.from_numpy(batch.target)
    source = None if batch.source is None else torch.from_numpy(batch.source)
    pattern_logits, colour_logits = net(words, source, target)
    return F.cross_entropy(
        pattern_logits.reshape(-1, net.cfg.n_patterns), target[..., 0].reshape(-1)
    ) + F.cross_entropy(colour_logits.reshape(-1, N_COLOUR_CLASSES), target[..., 1].reshape(-1))


def train(
    out: Path,
    *,
    steps: int = 3600,
    seed: int = TRAIN_SEED,
    batch_size: int = 48,
    lr: float = 1.2e-3,
    warmup: int = 200,
    edit_fraction: float = 0.5,
    snapshot_every: int = 250,
    ema_decay: float = 0.998,
    threads: int = 1,
    log: Callable[[str], None] = print,
    config: dict[str, int] | None = None,
    init: Path | None = None,
    edit_weights: dict[str, float] | None = None,
) -> None:
    """Train and save EMA weights to ``out`` (snapshots along the way, final at the end).

    ``init`` starts from saved weights instead of a fresh network (a later phase).
    """
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    patterns = enumerate_patterns()
    tok = Tokenizer(patterns)
    net = _network(tok, patterns, config, init)
    ema = copy.deepcopy(net).requires_grad_(False)
    n_params = sum(p.numel() for p in net.parameters())
    log(
        f"seed={seed} steps={steps} batch={batch_size} lr={lr} params={n_params} "
        f"patterns={tok.n_patterns} config={net.cfg.to_dict()} init={init}"
    )
    opt = _optimizer(net, lr)
    started = time.monotonic()
    recent: dict[str, list[float]] = {"caption": [], "edit": []}
    for step in range(steps):
        is_edit, batch = _draw(rng, tok, batch_size, edit_fraction, edit_weights)
        step_lr = lr * _schedule(step, steps, warmup)
        loss = _update(net, ema, opt, batch, step_lr, ema_decay)
        recent["edit" if is_edit else "caption"].append(loss)
        done = step + 1
        if done % 50 == 0 or done == steps:
            log(_progress(done, steps, recent, step_lr, time.monotonic() - started))
            recent = {"caption": [], "edit": []}
        if done % snapshot_every == 0 or done == steps:
            run = {"seed": seed, "steps": done, "of_steps": steps, "batch_size": batch_size}
            info = {**run, "lr": lr, "edit_fraction": edit_fraction}
            weights.save(out, ema, patterns, WORDS, {**info, "elapsed_s": _since(started)})
    log(f"saved {out} ({out.stat().st_size / 1e6:.2f} MB) after {time.monotonic() - started:.0f}s")


def _draw(
    rng: random.Random,
    tok: Tokenizer,
    size: int,
    edit_fraction: float,
    edit_weights: dict[str, float] | None,
) -> tuple[bool, data.Batch]:
    """The next training batch: all edits (``edit_fraction`` of the time) or all captions."""
    if rng.random() < edit_fraction:
        return True, data.edit_batch(rng, tok, size, edit_weights)
    return False, data.t2i_batch(rng, tok, size)


def _since(started: float) -> int:
    return round(time.monotonic() - started)


def _network(
    tok: Tokenizer, patterns: np.ndarray, config: dict[str, int] | None, init: Path | None
) -> PatchTokenNet:
    """A fresh network of ``config`` (drawn from torch's seeded RNG), or the one at ``init``."""
    if init is None:
        cfg = NetConfig(n_patterns=tok.n_patterns, n_words=len(WORDS), **(config or {}))
        return PatchTokenNet(cfg)
    net, saved_patterns, _, _ = weights.load(init)
    if not np.array_equal(saved_patterns, patterns):
        raise ValueError(f"{init} was trained on another pattern vocabulary")
    return net


def _optimizer(net: PatchTokenNet, lr: float) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices only: not on biases, norms, embeddings or
    the learned vectors (positions, kinds, ``bos``, ``no_source``)."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in net.named_parameters():
        (
            no_decay
            if p.ndim < 2 or "emb" in name or name in {"pos", "kind", "bos", "no_source"}
            else decay
        ).append(p)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.98),
    )


def _schedule(step: int, steps: int, warmup: int) -> float:
    """The learning-rate factor at ``step``: linear warm-up, then cosine down to 5%."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))


def _update(
    net: PatchTokenNet,
    ema: PatchTokenNet,
    opt: torch.optim.Optimizer,
    batch: data.Batch,
    lr: float,
    ema_decay: float,
) -> float:
    """One optimiser step on ``batch`` at ``lr``, then the EMA; returns the loss."""
    for group in opt.param_groups:
        group["lr"] = lr
    net.train()
    loss = _loss(net, batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    with torch.no_grad():
        for e, p in zip(ema.parameters(), net.parameters(), strict=True):
            e.lerp_(p, 1 - ema_decay)
    return loss.item()


def _progress(
    done: int, steps: int, recent: dict[str, list[float]], lr: float, elapsed: float
) -> str:
    """The log line of the losses since the previous one."""
    means = {k: float(np.mean(v)) if v else float("nan") for k, v in recent.items()}
    return (
        f"step {done}/{steps} caption_loss={means['caption']:.4f} "
        f"edit_loss={means['edit']:.4f} lr={lr:.2e} "
        f"elapsed={elapsed:.0f}s"
    )


@dataclass(frozen=True)
class Phase:
    """One stage of the shipped recipe; a later phase starts from the previous one's weights."""

    steps: int
    seed: int
    lr: float = 1.2e-3
    warmup: int = 200
    edit_fraction: float = 0.5
    edit_weights: dict[str, float] | None = None


# The recipe that produced the shipped weights (docs/model.md has its log).
# Phase 2 spends more of its batches on the edits phase 1 left weakest (change shape, add,
# recolour) at a lower learning rate, and keeps 45% captions so they do not regress.
RECIPE: tuple[Phase, ...] = (
    Phase(steps=3600, seed=TRAIN_SEED),
    Phase(
        steps=1500,
        seed=TRAIN_SEED + 1,
        lr=5e-4,
        warmup=100,
        edit_fraction=0.55,
        edit_weights={
            "recolour": 1.3,
            "shape": 1.5,
            "move": 1.0,
            "remove": 0.6,
            "add": 1.3,
            "background": 0.3,
        },
    ),
)


def train_recipe(out: Path, *, log: Callable[[str], None] = print) -> None:
    """Run every phase of ``RECIPE``; intermediate weights sit next to ``out``."""
    previous: Path | None = None
    for number, phase in enumerate(RECIPE, start=1):
        target = out if number == len(RECIPE) else out.with_suffix(f".phase{number}.safetensors")
        log(f"phase {number}/{len(RECIPE)}: {phase}")
        train(
            target,
            steps=phase.steps,
            seed=phase.seed,
            lr=phase.lr,
            warmup=phase.warmup,
            edit_fraction=phase.edit_fraction,
            edit_weights=phase.edit_weights,
            init=previous,
            log=log,
        )
        previous = target
