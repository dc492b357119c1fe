"""The denoising loop of ``StableDiffusionPipeline.__call__``, taken apart so the worker
can drive it one step at a time, for many requests at once.

``start_item`` gives a request its own scheduler (timesteps set) and its starting noise,
drawn from its own seeded CPU generator. ``denoise`` runs one UNet pass for a group of
requests, each at its own loop index (the UNet takes one timestep per row), combines the
guidance, and steps each request's own scheduler. The price of a scheduler per request
is a Python-level call per request per step, which is nothing next to a UNet pass.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from daguerre.models.base import ModelInputError
from daguerre.models.diffusers.loading import Pipeline
from daguerre.models.diffusers.prompts import Plan
from daguerre.models.diffusers.state import Item

# One request at its loop index: the unit ``denoise`` works on.
Work = tuple[Item, int]


def start_item(
    pipeline: Pipeline,
    plan: Plan,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    cond_added: dict[str, torch.Tensor],
    uncond_added: dict[str, torch.Tensor],
) -> Item:
    """A request at step 0: its own scheduler with timesteps set, and its starting noise."""
    scheduler = copy.deepcopy(pipeline.scheduler)
    try:
        scheduler.set_timesteps(plan.steps, device=pipeline.device)
    except ValueError as exc:
        # e.g. LCM refuses more steps than it was distilled for.
        raise ModelInputError(f"steps={plan.steps}: {exc}") from exc
    # Noise is drawn on the CPU so a seed gives the same image on any device.
    generator = torch.Generator("cpu").manual_seed(plan.seed)
    shape = (
        1,
        pipeline.latent_channels,
        plan.render_size[1] // pipeline.vae_factor,
        plan.render_size[0] // pipeline.vae_factor,
    )
    noise = torch.randn(shape, generator=generator, dtype=torch.float32)
    latents = noise.to(pipeline.device, pipeline.dtype) * scheduler.init_noise_sigma
    return Item(
        key=plan.key,
        out_size=plan.out_size,
        latents=latents,
        cond=cond,
        uncond=uncond if plan.cfg else None,
        cond_added=cond_added,
        uncond_added=uncond_added if plan.cfg else {},
        guidance_scale=plan.guidance_scale,
        scheduler=scheduler,
        generator=generator,
        num_steps=len(scheduler.timesteps),
    )


def denoise(pipeline: Pipeline, eta: float, group: list[Work]) -> None:
    """One UNet pass for ``group``, each request at its own loop index, then each
    request's own scheduler step.

    The rows of a UNet batch never interact (convolutions, group norms and attention
    all work within a row), so stacking requests changes nothing but float rounding:
    a request's image does not depend on what it was batched with.
    """
    noise_pred = _unet_pass(pipeline, group)
    row = 0
    for item, k in group:
        if item.uncond is not None:
            uncond, text = noise_pred[row : row + 1], noise_pred[row + 1 : row + 2]
            eps = uncond + item.guidance_scale * (text - uncond)
            row += 2
        else:
            eps = noise_pred[row : row + 1]
            row += 1
        _scheduler_step(pipeline, eta, item, k, eps)


def _unet_pass(pipeline: Pipeline, group: list[Work]) -> torch.Tensor:
    """The UNet's noise prediction for every row of ``group``, in one forward pass."""
    pipe = pipeline.pipe
    inputs: list[torch.Tensor] = []
    timesteps: list[torch.Tensor] = []
    embeds: list[torch.Tensor] = []
    added: list[dict[str, torch.Tensor]] = []
    guidance: list[float] = []
    for item, k in group:
        t = item.scheduler.timesteps[k]
        x = item.latents
        if hasattr(item.scheduler, "scale_model_input"):
            x = item.scheduler.scale_model_input(x, t)
        # Unconditional and conditional rows go in the same forward pass, as diffusers
        # does, so CFG costs one (twice as wide) UNet call rather than two. Requests
        # without CFG bring one row: rows are independent, so the two kinds mix.
        rows = [(item.uncond, item.uncond_added)] if item.uncond is not None else []
        rows.append((item.cond, item.cond_added))
        for embed, extra in rows:
            inputs.append(x)
            # A timestep per row: this is what lets requests at different steps
            # (and with different schedules) share the pass.
            timesteps.append(torch.as_tensor(t, device=pipeline.device).reshape(()))
            embeds.append(embed)
            added.append(extra)
            guidance.append(item.guidance_scale)
    added_cond_kwargs = None
    if added[0]:
        # batch_key put only requests with the same added conditioning in a group,
        # so every row has every key.
        added_cond_kwargs = {key: torch.cat([a[key] for a in added]) for key in added[0]}
    prediction: torch.Tensor = pipe.unet(
        torch.cat(inputs),
        torch.stack(timesteps),
        encoder_hidden_states=torch.cat(embeds),
        timestep_cond=_guidance_embedding(pipeline, guidance),
        added_cond_kwargs=added_cond_kwargs,
        return_dict=False,
    )[0]
    return prediction


def _guidance_embedding(pipeline: Pipeline, guidance: list[float]) -> torch.Tensor | None:
    """LCM-distilled UNets take the guidance scale as an embedding instead of CFG, one
    per row, so requests with different scales still share the pass."""
    if pipeline.time_cond_dim is None:
        return None
    w = torch.tensor(guidance, dtype=torch.float32) - 1
    embedding: torch.Tensor = pipeline.pipe.get_guidance_scale_embedding(
        w, embedding_dim=pipeline.time_cond_dim
    )
    return embedding.to(pipeline.device, pipeline.dtype)


def _scheduler_step(pipeline: Pipeline, eta: float, item: Item, k: int, eps: torch.Tensor) -> None:
    """Step ``item``'s own scheduler from loop index ``k`` with the noise estimate ``eps``."""
    kwargs: dict[str, Any] = {}
    if pipeline.step_takes_eta:
        kwargs["eta"] = eta
    if pipeline.step_takes_generator:
        # The request's own generator: stochastic schedulers draw fresh noise here.
        kwargs["generator"] = item.generator
    t = item.scheduler.timesteps[k]
    out = item.scheduler.step(eps, t, item.latents, return_dict=True, **kwargs)
    item.latents = out.prev_sample
    item.x0 = clean_estimate(item.scheduler, out)


def clean_estimate(scheduler: Any, out: Any) -> torch.Tensor | None:
    """The scheduler's estimate of the fully denoised latents after its last step."""
    for attr in ("pred_original_sample", "denoised"):  # most schedulers / LCM and TCD
        value = getattr(out, attr, None)
        if isinstance(value, torch.Tensor):
            return value
    # Multistep solvers keep their converted model outputs; in the data-prediction
    # variants those are exactly the clean estimates.
    outputs = getattr(scheduler, "model_outputs", None)
    algorithm = scheduler.config.get("algorithm_type", "")
    predicts_x0 = algorithm in ("dpmsolver++", "sde-dpmsolver++") or bool(
        getattr(scheduler, "predict_x0", False)
    )
    if predicts_x0 and outputs and isinstance(outputs[-1], torch.Tensor):
        return outputs[-1]
    return None
