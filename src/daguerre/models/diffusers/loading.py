"""Loading a local pipeline folder, and what the denoising loop needs to know about it.

The folder is anything saved with ``pipeline.save_pretrained(folder)`` (it holds a
``model_index.json``). It is loaded with ``local_files_only=True``: this backend never
downloads anything. Pipelines the loop cannot drive are refused with a clear error, as
early as possible (before gigabytes of weights are read when the index already tells).
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import torch

from daguerre.models.diffusers.options import DTYPES, Options

_INSTALL_HINT = "pip install 'daguerre[diffusers]'"

# Components we never call. Passing None for them skips loading their weights (the SD
# safety checker alone is a ~1.2 GB CLIP model); moderation is not this layer's job.
_UNUSED_COMPONENTS = ("safety_checker", "feature_extractor", "image_encoder")

# Pipeline classes whose UNet expects something other than pure text conditioning
# (a source image, a mask, aesthetic scores). Their folders load fine but cannot be
# driven as text-to-image, so refuse them before loading gigabytes of weights.
_NOT_TEXT_TO_IMAGE = ("Img2Img", "Inpaint", "Upscale", "Pix2Pix", "Depth2Img", "ControlNet")


@dataclass
class Pipeline:
    """A loaded pipeline and the facts about it that the loop reads at every step."""

    pipe: Any
    scheduler: Any  # pristine: each request deep-copies it; it never gets timesteps set
    device: torch.device
    dtype: torch.dtype
    sdxl: bool  # the UNet takes SDXL's added conditioning (pooled embeddings, time ids)
    step_takes_eta: bool
    step_takes_generator: bool
    default_steps: int
    guidance_scale: float
    time_cond_dim: int | None  # set for LCM-distilled UNets: guidance as an embedding
    vae_factor: int
    latent_channels: int
    native_size: int


def load(options: Options, device: str) -> Pipeline:
    """Load the pipeline at ``options.path`` onto ``device``. Nothing is downloaded."""
    diffusers = _import_diffusers()
    path = options.path
    index = _read_model_index(path)
    _refuse_by_index(path, index)

    where = torch.device(device)
    if options.dtype is not None:
        dtype = DTYPES[options.dtype]
    else:
        # Half precision is the norm on GPUs; CPU kernels for it are slow or missing.
        dtype = torch.float16 if where.type == "cuda" else torch.float32

    skip: dict[str, Any] = {name: None for name in _UNUSED_COMPONENTS if name in index}
    if "requires_safety_checker" in index:
        # Otherwise diffusers warns loudly that we dropped the checker we never run.
        skip["requires_safety_checker"] = False
    skip[_dtype_keyword()] = dtype
    pipe = diffusers.DiffusionPipeline.from_pretrained(
        str(path), local_files_only=True, variant=options.variant, **skip
    )
    check_pipeline(pipe, path)
    pipe.to(where)
    sdxl = getattr(pipe.unet.config, "addition_embed_type", None) == "text_time"
    if sdxl and pipe.vae.dtype == torch.float16 and pipe.vae.config.get("force_upcast", False):
        # The SDXL VAE overflows in float16 (black or NaN images); diffusers upcasts it
        # for decoding, we keep it upcast.
        pipe.vae.to(torch.float32)
    if options.scheduler is not None:
        pipe.scheduler = _scheduler_called(diffusers, options.scheduler, pipe.scheduler.config)
    return _describe(pipe, options, where, dtype, sdxl)


def _describe(
    pipe: Any, options: Options, device: torch.device, dtype: torch.dtype, sdxl: bool
) -> Pipeline:
    """What the loop reads about a loaded pipeline."""
    scheduler = pipe.scheduler
    step_params = inspect.signature(scheduler.step).parameters
    # Defaults come from the pipeline's own __call__ so each family keeps its tuning
    # (SD 7.5, SDXL 5.0, LCM 8.5 with few steps) unless the operator overrides them.
    call_params = inspect.signature(pipe.__call__).parameters
    guidance = options.guidance_scale
    if guidance is None:
        guidance = float(_param_default(call_params, "guidance_scale", 7.5))
    vae_factor = int(
        getattr(pipe, "vae_scale_factor", 0) or 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    )
    sample_size = pipe.unet.config.sample_size
    if isinstance(sample_size, (list, tuple)):
        sample_size = sample_size[0]
    return Pipeline(
        pipe=pipe,
        scheduler=scheduler,
        device=device,
        dtype=dtype,
        sdxl=sdxl,
        step_takes_eta="eta" in step_params,
        step_takes_generator="generator" in step_params,
        default_steps=options.steps or _param_default(call_params, "num_inference_steps", 50),
        guidance_scale=guidance,
        time_cond_dim=pipe.unet.config.get("time_cond_proj_dim"),
        vae_factor=vae_factor,
        latent_channels=int(pipe.unet.config.in_channels),
        native_size=int(sample_size) * vae_factor,
    )


def _import_diffusers() -> ModuleType:
    try:
        import diffusers
        import transformers  # noqa: F401  (every supported pipeline has CLIP encoders)
    except ImportError as exc:
        raise ImportError(
            f"the diffusers backend needs the optional diffusers extra: {_INSTALL_HINT}"
        ) from exc
    return diffusers


def _read_model_index(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise FileNotFoundError(
            f"diffusers pipeline folder {path} does not exist; set the backend's "
            "path option to a local folder saved with DiffusionPipeline.save_pretrained"
        )
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise FileNotFoundError(
            f"{path} has no model_index.json, so it is not a diffusers pipeline "
            "folder (single-file .safetensors/.ckpt checkpoints are not supported; convert "
            "them with DiffusionPipeline.from_single_file(...).save_pretrained(folder))"
        )
    data = json.loads(index_file.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{index_file} is not a JSON object")
    return data


def _refuse_by_index(path: Path, index: dict[str, Any]) -> None:
    """Refuse what the index already shows to be out of reach, before loading weights."""
    class_name = str(index.get("_class_name", "?"))
    if "unet" not in index:
        raise ValueError(
            f"{path}: pipeline {class_name} has no UNet; the diffusers backend runs "
            "UNet2DConditionModel pipelines (Stable Diffusion 1.x/2.x, SDXL, LCM), not "
            "transformer-based ones such as SD3, Flux or PixArt"
        )
    if any(word in class_name for word in _NOT_TEXT_TO_IMAGE):
        raise ValueError(
            f"{path}: {class_name} is not a text-to-image pipeline; save the "
            "text-to-image pipeline of the same model instead"
        )


def check_pipeline(pipe: Any, path: Path) -> None:
    """Refuse pipelines this loop cannot drive, naming what is missing."""
    kind = type(pipe).__name__
    missing = [
        part
        for part in ("unet", "vae", "scheduler", "text_encoder", "tokenizer")
        if getattr(pipe, part, None) is None
    ]
    if missing or not callable(getattr(pipe, "encode_prompt", None)):
        what = ", ".join(missing) or "encode_prompt"
        raise ValueError(f"{kind} from {path} is not supported: it lacks {what}")
    problem = _unet_problem(pipe)
    if problem is not None:
        raise ValueError(f"{kind} from {path} is not supported: {problem}")


def _unet_problem(pipe: Any) -> str | None:
    """Why the pipeline's UNet needs more than text conditioning, or None if it does not."""
    unet_config = pipe.unet.config
    latent_channels = pipe.vae.config.get("latent_channels")
    if unet_config.in_channels != latent_channels:
        # Inpainting (9), depth (5) and pix2pix (8) UNets take extra image channels.
        return (
            f"its UNet takes {unet_config.in_channels} input channels but the VAE makes "
            f"{latent_channels}, so it needs an image input (inpaint/depth/pix2pix)"
        )
    extra = unet_config.get("addition_embed_type")
    if extra not in (None, "text_time"):
        return f"its UNet needs {extra!r} added conditioning"
    if unet_config.get("class_embed_type") is not None:
        # Stable unCLIP and the x4 upscaler condition on an image embedding or noise level.
        return "its UNet needs class labels"
    if extra == "text_time" and not callable(getattr(pipe, "_get_add_time_ids", None)):
        return "no SDXL time ids"
    if unet_config.get("time_cond_proj_dim") is not None and not callable(
        getattr(pipe, "get_guidance_scale_embedding", None)
    ):
        return "no guidance embedding"
    return None


def _scheduler_called(diffusers: ModuleType, name: str, config: Any) -> Any:
    """The scheduler class ``name`` built from the folder's scheduler config."""
    cls = getattr(diffusers, name, None)
    if not (isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin)):
        raise ValueError(f"diffusers has no scheduler called {name!r}")
    return cast(Any, cls).from_config(config)


def _dtype_keyword() -> str:
    """``from_pretrained``'s name for the dtype: newer diffusers renamed ``torch_dtype``
    to ``dtype`` and warn on the old name, older ones only know ``torch_dtype``."""
    try:
        from diffusers.utils import deprecation_utils
    except ImportError:
        return "torch_dtype"
    return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"


def _param_default(params: Any, name: str, fallback: Any) -> Any:
    param = params.get(name)
    if param is None or param.default is inspect.Parameter.empty or param.default is None:
        return fallback
    return param.default
