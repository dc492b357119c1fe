"""Latents back to pictures: previews mid-run and the final images."""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from daguerre.models.diffusers.state import Item


def estimate(item: Item, step: int) -> torch.Tensor:
    """What to show of ``item`` after ``step`` loop iterations.

    Mid-run latents are still noisy (and, for sigma schedulers, scaled far beyond the
    VAE's range); the scheduler's clean estimate is what a preview should show.
    """
    if step >= item.num_steps or item.x0 is None:
        return item.latents
    return item.x0


def decode(vae: Any, latents: torch.Tensor, size: tuple[int, int]) -> Image.Image:
    """Decode one request's latents with ``vae`` and resize to ``size`` (width, height)."""
    config = vae.config
    z = latents.to(vae.device, vae.dtype)
    mean, std = config.get("latents_mean"), config.get("latents_std")
    if mean is not None and std is not None:
        # Some VAEs (e.g. the SDXL fine-tunes that set these) normalise per channel.
        channels = z.shape[1]
        mean_t = torch.tensor(mean).view(1, channels, 1, 1).to(z.device, z.dtype)
        std_t = torch.tensor(std).view(1, channels, 1, 1).to(z.device, z.dtype)
        z = z * std_t / config.scaling_factor + mean_t
    else:
        z = z / config.scaling_factor
        if config.get("shift_factor") is not None:
            z = z + config.shift_factor
    pixels = vae.decode(z, return_dict=False)[0]
    # The same mapping as diffusers' VaeImageProcessor.postprocess, without needing it.
    array = (
        ((pixels[0].float() / 2 + 0.5).clamp(0, 1) * 255)
        .round()
        .to(torch.uint8)
        .permute(1, 2, 0)
        .cpu()
        .numpy()
    )
    image = Image.fromarray(array, "RGB")
    if image.size != size:
        # Render sizes are rounded to the VAE's multiple (and capped by max_side).
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image
