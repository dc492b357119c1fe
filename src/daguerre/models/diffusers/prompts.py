"""From requests to conditioning: each request checked and sized (``plan``), then every
prompt of a batch encoded in one pass and split back per request (``encode``).

Guidance is the backend's own setting (``guidance_scale``), the same for every request,
and the unconditional rows of classifier-free guidance encode the empty prompt.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import torch

from daguerre.models.base import ModelInputError, RenderRequest
from daguerre.models.diffusers.loading import Pipeline

# What ``encode`` returns per request: prompt and empty-prompt embeddings, and the added
# conditioning (SDXL's pooled embedding and time ids) of each.
Encoded = tuple[
    list[torch.Tensor],
    list[torch.Tensor],
    list[dict[str, torch.Tensor]],
    list[dict[str, torch.Tensor]],
]


@dataclass
class Plan:
    """A validated request, with the sizes and settings the loop will use."""

    key: str
    prompt: str
    seed: int
    steps: int
    guidance_scale: float
    cfg: bool
    out_size: tuple[int, int]
    render_size: tuple[int, int]


def plan(request: RenderRequest, pipeline: Pipeline, max_side: int | None, name: str) -> Plan:
    """Check ``request`` and work out the sizes it renders at."""
    if request.is_edit:
        raise ModelInputError(
            f"model {name!r} (diffusers text-to-image) cannot edit images; "
            "send a text-to-image request or use a backend that supports edits"
        )
    if not isinstance(request.prompt, str):
        raise ModelInputError("prompt must be a string")
    steps = request.steps
    if steps is None:  # quality scales the pipeline's own count: half, as is, double
        scale = {"low": 0.5, "high": 2.0}.get(request.quality, 1.0)
        steps = max(1, round(pipeline.default_steps * scale))
    limit = int(pipeline.scheduler.config.get("num_train_timesteps", 1000))
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= limit:
        raise ModelInputError(f"steps must be an integer from 1 to {limit}, got {steps!r}")
    seed = request.seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not -(2**63) <= seed < 2**64:
        raise ModelInputError(f"seed must be a 64-bit integer, got {seed!r}")
    width, height = request.width, request.height
    if not all(isinstance(v, int) and v > 0 for v in (width, height)):
        raise ModelInputError(f"width and height must be positive, got {width}x{height}")
    guidance = pipeline.guidance_scale
    # The empty string is where a negative prompt once sat: keys of checkpoints written
    # then must still match.
    key_source = json.dumps([request.prompt, "", request.seed, width, height])
    return Plan(
        key=hashlib.sha256(key_source.encode()).hexdigest()[:16],
        prompt=request.prompt,
        seed=seed,
        steps=steps,
        guidance_scale=guidance,
        # CFG-distilled (LCM) UNets get guidance through an embedding instead.
        cfg=guidance > 1.0 and pipeline.time_cond_dim is None,
        out_size=(width, height),
        render_size=_render_size(width, height, pipeline.vae_factor, max_side),
    )


def _render_size(width: int, height: int, factor: int, max_side: int | None) -> tuple[int, int]:
    """The size actually rendered: capped by ``max_side`` (same aspect), then rounded to
    the nearest whole block of ``factor`` pixels, the unit the VAE works in."""
    scale = 1.0
    if max_side is not None and max(width, height) > max_side:
        scale = max_side / max(width, height)
    return (
        max(factor, int(width * scale / factor + 0.5) * factor),
        max(factor, int(height * scale / factor + 0.5) * factor),
    )


def encode(pipeline: Pipeline, plans: list[Plan]) -> Encoded:
    """Encode all prompts (and the empty prompt for CFG) in one batch; split back per request."""
    pipe = pipeline.pipe
    out = pipe.encode_prompt(
        prompt=[p.prompt for p in plans],
        device=pipeline.device,
        num_images_per_prompt=1,
        do_classifier_free_guidance=any(p.cfg for p in plans),
        # None (rather than a list of "") lets SDXL use its zero negative embedding.
        negative_prompt=None,
    )
    cond, uncond = out[0], out[1]
    if uncond is None:
        uncond = torch.zeros_like(cond)
    n = len(plans)
    conds_added: list[dict[str, torch.Tensor]] = [{} for _ in range(n)]
    unconds_added: list[dict[str, torch.Tensor]] = [{} for _ in range(n)]
    if pipeline.sdxl:
        conds_added, unconds_added = _sdxl_added(pipeline, plans, out, cond.dtype)
    # Clone the slices: a view would keep (and torch.save would write) the whole batch.
    return (
        [cond[i : i + 1].clone() for i in range(n)],
        [uncond[i : i + 1].clone() for i in range(n)],
        conds_added,
        unconds_added,
    )


def _sdxl_added(
    pipeline: Pipeline, plans: list[Plan], out: tuple[torch.Tensor, ...], dtype: torch.dtype
) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, torch.Tensor]]]:
    """SDXL's added conditioning per request: its pooled prompt embedding, and time ids
    that describe its own render size."""
    pipe = pipeline.pipe
    pooled, uncond_pooled = out[2], out[3]
    if uncond_pooled is None:
        uncond_pooled = torch.zeros_like(pooled)
    projection_dim = (
        int(pipe.text_encoder_2.config.projection_dim)
        if getattr(pipe, "text_encoder_2", None) is not None
        else int(pooled.shape[-1])
    )
    conds: list[dict[str, torch.Tensor]] = []
    unconds: list[dict[str, torch.Tensor]] = []
    for i, p in enumerate(plans):
        width, height = p.render_size
        time_ids = pipe._get_add_time_ids(
            (height, width),
            (0, 0),
            (height, width),
            dtype=dtype,
            text_encoder_projection_dim=projection_dim,
        ).to(pipeline.device)
        conds.append({"text_embeds": pooled[i : i + 1].clone(), "time_ids": time_ids})
        unconds.append(
            {"text_embeds": uncond_pooled[i : i + 1].clone(), "time_ids": time_ids.clone()}
        )
    return conds, unconds
