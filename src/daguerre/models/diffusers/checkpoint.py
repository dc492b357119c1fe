"""Checkpoints: a batch's progress as bytes, and back, to continue bit for bit.

Scheduler attributes are tensors, numpy arrays, numbers, flags and lists of those. They
are written as plain containers of tensors so that ``torch.load(weights_only=True)`` can
read them back (checkpoints come back from storage, so nothing is ever unpickled); the
marker dicts of ``_encode_value`` keep what plain containers would lose.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from daguerre.models.base import ModelInputError, RenderRequest
from daguerre.models.diffusers.loading import Pipeline
from daguerre.models.diffusers.state import DiffusersState, Item

# Bumped whenever the layout changes, so an old checkpoint fails loudly instead of
# resuming into garbage.
_STATE_FORMAT = "daguerre.diffusers.state"
_STATE_VERSION = 1


def save(pipeline: Pipeline, state: DiffusersState) -> bytes:
    """Serialise a batch's progress. The state itself is left untouched."""
    payload = {
        "format": _STATE_FORMAT,
        "version": _STATE_VERSION,
        "pipeline": type(pipeline.pipe).__name__,
        "scheduler": type(pipeline.scheduler).__name__,
        "step": state.step,
        "total_steps": state.total_steps,
        "items": [_item_entry(item, pipeline.scheduler) for item in state.items],
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _item_entry(item: Item, pristine: Any) -> dict[str, Any]:
    """One request's part of a checkpoint."""
    template = vars(pristine)
    # Only what differs from the pristine scheduler that ``load`` copies again: the
    # beta/alpha tables (thousands of floats) never change and are left out.
    scheduler_state = {
        name: value
        for name, value in vars(item.scheduler).items()
        if name != "_internal_dict" and not (name in template and _unchanged(value, template[name]))
    }
    # Some schedulers rewrite their own config in set_timesteps (DPM-Solver single-step
    # forces lower_order_final for odd step counts); keep that too.
    config_changes = {
        key: value
        for key, value in item.scheduler.config.items()
        if not _unchanged(value, pristine.config.get(key))
    }
    try:
        encoded_scheduler = _encode_value(scheduler_state)
        encoded_config = _encode_value(config_changes)
    except TypeError as exc:
        raise ValueError(
            f"cannot checkpoint {type(item.scheduler).__name__}: {exc}; choose another scheduler"
        ) from exc
    return {
        "key": item.key,
        "out_size": list(item.out_size),
        "latents": _to_cpu(item.latents),
        "x0": None if item.x0 is None else _to_cpu(item.x0),
        "cond": _to_cpu(item.cond),
        "uncond": None if item.uncond is None else _to_cpu(item.uncond),
        "cond_added": {k: _to_cpu(v) for k, v in item.cond_added.items()},
        "uncond_added": {k: _to_cpu(v) for k, v in item.uncond_added.items()},
        "guidance_scale": item.guidance_scale,
        "num_steps": item.num_steps,
        "generator": item.generator.get_state(),
        "scheduler": encoded_scheduler,
        "scheduler_config": encoded_config,
    }


def load(
    pipeline: Pipeline,
    data: bytes,
    requests: list[RenderRequest],
    key_of: Callable[[RenderRequest], str],
) -> DiffusersState:
    """Rebuild a state saved by ``save`` for the same ``requests``; ``key_of`` names a
    request as its plan does (and refuses one the model cannot serve)."""
    payload = _read_payload(pipeline, data)
    saved = payload["items"]
    if len(saved) != len(requests):
        raise ModelInputError(
            f"checkpoint holds {len(saved)} requests but {len(requests)} were given"
        )
    items: list[Item] = []
    for request, entry in zip(requests, saved, strict=True):
        if key_of(request) != entry["key"]:
            raise ModelInputError("checkpoint was made for different requests")
        items.append(_item_from(entry, pipeline))
    return DiffusersState(
        step=int(payload["step"]), total_steps=int(payload["total_steps"]), items=items
    )


def _read_payload(pipeline: Pipeline, data: bytes) -> dict[str, Any]:
    """The checkpoint's contents, once they are known to be ours and for this model."""
    try:
        # weights_only: checkpoints come back from storage, so never unpickle code.
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for bytes it cannot read
        raise ValueError(f"not a diffusers backend checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != _STATE_FORMAT:
        raise ValueError("not a diffusers backend checkpoint")
    if payload.get("version") != _STATE_VERSION:
        raise ValueError(
            f"checkpoint version {payload.get('version')} is not supported "
            f"(this backend writes version {_STATE_VERSION})"
        )
    # Resuming on another model would not fail, just quietly render garbage.
    for part, ours in (
        ("pipeline", type(pipeline.pipe).__name__),
        ("scheduler", type(pipeline.scheduler).__name__),
    ):
        if payload.get(part) != ours:
            raise ValueError(
                f"checkpoint was made with {part} {payload.get(part)} but this model "
                f"uses {ours}; it cannot be resumed here"
            )
    return payload


def _item_from(entry: dict[str, Any], pipeline: Pipeline) -> Item:
    """One request back from its checkpoint entry, on the pipeline's device."""
    device = pipeline.device
    scheduler = copy.deepcopy(pipeline.scheduler)
    config_changes = _decode_value(entry["scheduler_config"], device)
    if config_changes:
        scheduler.register_to_config(**config_changes)
    scheduler.__dict__.update(_decode_value(entry["scheduler"], device))
    generator = torch.Generator("cpu")
    generator.set_state(entry["generator"])
    x0, uncond = entry["x0"], entry["uncond"]
    return Item(
        key=entry["key"],
        out_size=(int(entry["out_size"][0]), int(entry["out_size"][1])),
        latents=entry["latents"].to(device),
        x0=None if x0 is None else x0.to(device),
        cond=entry["cond"].to(device),
        uncond=None if uncond is None else uncond.to(device),
        cond_added={k: v.to(device) for k, v in entry["cond_added"].items()},
        uncond_added={k: v.to(device) for k, v in entry["uncond_added"].items()},
        guidance_scale=float(entry["guidance_scale"]),
        scheduler=scheduler,
        generator=generator,
        num_steps=int(entry["num_steps"]),
    )


def _unchanged(value: Any, original: Any) -> bool:
    """Whether ``value`` is certainly equal to ``original`` (False when unsure)."""
    if isinstance(value, torch.Tensor):
        return (
            isinstance(original, torch.Tensor)
            and value.shape == original.shape
            and value.dtype == original.dtype
            and value.device == original.device
            and bool(torch.equal(value, original))
        )
    if isinstance(value, np.ndarray):
        return (
            isinstance(original, np.ndarray)
            and value.dtype == original.dtype
            and bool(np.array_equal(value, original))
        )
    if value is None or isinstance(value, (bool, int, float, str)):
        return type(value) is type(original) and value == original
    if isinstance(value, (list, tuple)):
        return (
            type(value) is type(original)
            and len(value) == len(original)
            and all(_unchanged(a, b) for a, b in zip(value, original, strict=True))
        )
    return False


def _to_cpu(tensor: torch.Tensor) -> torch.Tensor:
    # clone() so a view saves only its own elements, not its base's whole storage.
    return tensor.detach().to("cpu").clone()


def _encode_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        # Remember whether it lived on the accelerator: schedulers keep some tensors
        # (sigmas) on the CPU on purpose, and resume may happen on another device.
        return {"__tensor__": _to_cpu(value), "on_device": value.device.type != "cpu"}
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError("it keeps a numpy object array")
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value).copy())}
    if isinstance(value, np.generic):
        return {"__npscalar__": value.item(), "dtype": str(value.dtype)}
    if isinstance(value, list):
        return [_encode_value(v) for v in value]
    if isinstance(value, tuple):
        return {"__tuple__": [_encode_value(v) for v in value]}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("it keeps a dict with non-string keys")
        return {"__dict__": {k: _encode_value(v) for k, v in value.items()}}
    raise TypeError(f"it keeps a {type(value).__name__}, which cannot be saved")


def _decode_value(value: Any, device: torch.device) -> Any:
    if isinstance(value, list):
        return [_decode_value(v, device) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        tensor: torch.Tensor = value["__tensor__"]
        return tensor.to(device) if value["on_device"] else tensor
    if "__ndarray__" in value:
        return value["__ndarray__"].numpy()
    if "__npscalar__" in value:
        return np.dtype(value["dtype"]).type(value["__npscalar__"])
    if "__tuple__" in value:
        return tuple(_decode_value(v, device) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: _decode_value(v, device) for k, v in value["__dict__"].items()}
    raise ValueError(f"unrecognised checkpoint entry {sorted(value)}")
