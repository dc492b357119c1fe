"""What a request's model, size, background and steps resolve to against the model
catalog (config/catalog.py), or the 400 that says what the catalog serves instead. The
gateway checks here, without importing any model; the workers check again when they
render."""

from __future__ import annotations

import re

from daguerre.config import ModelCatalogEntry, Settings
from daguerre.config.catalog import MAX_ASPECT, MAX_FRAME, SIZE_MULTIPLE
from daguerre.gateway.api.errors import bad_request
from daguerre.gateway.api.schemas import RenderParams

_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")


def resolve_size(size: str, model: str, entry: ModelCatalogEntry) -> tuple[int, int]:
    """``auto``, one of the model's square sizes, or any ``WxH`` by OpenAI's current rule
    (catalog.py): a model that draws squares only has its picture centred in the frame by
    the worker (workers/imaging.py), and a diffusers pipeline draws the frame itself."""
    if size == "auto":
        return entry.auto_size, entry.auto_size
    match = _SIZE.match(size)
    if match is not None:
        width, height = int(match[1]), int(match[2])
        if serves(width, height, entry):
            return width, height
    squares = ", ".join(entry.size_names())
    least = min(entry.sizes)
    frame = "x".join(map(str, MAX_FRAME))
    raise bad_request(
        f"Invalid value for 'size': {size!r} is not supported by model '{model}'. "
        f"Supported sizes: {squares}, or WIDTHxHEIGHT with both sides multiples of "
        f"{SIZE_MULTIPLE} and at least {least}, the longer at most {MAX_ASPECT} times the "
        f"shorter, within {frame} either way up (such as 1536x1024 or 1024x1536).",
        param="size",
        code="unsupported_size",
    )


def serves(width: int, height: int, entry: ModelCatalogEntry) -> bool:
    """Whether the model serves ``width`` x ``height``: one of its squares, or any size
    by OpenAI's rule."""
    if width == height and width in entry.sizes:
        return True
    short, long = sorted((width, height))
    return (
        width % SIZE_MULTIPLE == 0
        and height % SIZE_MULTIPLE == 0
        and short >= min(entry.sizes)
        and long <= MAX_ASPECT * short
        and long <= max(MAX_FRAME)
        and short <= min(MAX_FRAME)
    )


def resolve_model(settings: Settings, name: str | None) -> tuple[str, ModelCatalogEntry]:
    """The catalog's name for the model a request names (an alias maps to its model, ""
    to the served one), and its entry; or a 400 listing what is known."""
    model = name or settings.model
    if model in settings.model_aliases:
        model = settings.model_aliases[model] or settings.model
    entry = settings.models.get(model)
    if entry is None:
        known = ", ".join(sorted({*settings.models, *settings.model_aliases}))
        raise bad_request(
            f"Invalid value for 'model': unknown model '{name or model}'. Known models: {known}.",
            param="model",
            code="model_not_found",
        )
    return model, entry


def resolve_background(params: RenderParams, model: str, entry: ModelCatalogEntry) -> str:
    """``opaque`` or ``transparent``: what the image will be (``auto`` is opaque), or a
    400 where it cannot be that."""
    if params.background != "transparent":
        return "opaque"
    if params.output_format == "jpeg":
        raise bad_request(
            "Invalid value for 'background': a JPEG has no transparency; ask for "
            "output_format 'png' or 'webp', or for an opaque background.",
            param="background",
        )
    if not entry.draws_transparent(model):
        raise bad_request(
            f"Invalid value for 'background': model '{model}' does not draw transparent "
            "backgrounds; ask for 'opaque' or 'auto'.",
            param="background",
        )
    return "transparent"


def check_steps(steps: int | None, model: str, entry: ModelCatalogEntry) -> None:
    """A 400 for steps outside the model's declared range: accepted, the job would only
    fail in the worker, after it cost the client a place in the queue and its rate."""
    if steps is None:
        return
    least, most = entry.step_range(model)
    if not least <= steps <= most:
        raise bad_request(
            f"Invalid value for 'steps': model '{model}' takes {least} to {most} steps "
            f"(got {steps}).",
            param="steps",
        )
