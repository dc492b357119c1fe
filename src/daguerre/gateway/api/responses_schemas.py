"""Request bodies of OpenAI's Responses API, as far as its image_generation tool goes
(routes/responses.py). Kept apart from schemas.py, which holds the Images API's."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from daguerre.gateway.api.schemas import MAX_PROMPT_CHARS, Quality

Model = TypeVar("Model", bound=BaseModel)


def checked(model: type[Model], value: Any) -> Model:
    """``value`` as ``model``; a part of a body checked apart from the body (a tool, an
    input part) gets the same 400 naming the field as the body's own fields."""
    try:
        return model.model_validate(value)
    except ValidationError as err:
        raise RequestValidationError(err.errors()) from None


class ImageGenerationTool(BaseModel):
    """``tools: [{"type": "image_generation", ...}]``: the options of its images."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["image_generation"]
    model: str | None = None
    action: Literal["generate", "edit", "auto"] = "auto"
    size: str = "auto"
    quality: Quality | None = None
    background: Literal["auto", "opaque", "transparent"] | None = None
    output_format: Literal["png", "jpeg", "webp"] = "png"
    output_compression: int | None = Field(default=None, ge=0, le=100)
    partial_images: int | None = Field(default=None, ge=0, le=3)
    moderation: Literal["auto", "low"] | None = None
    input_image_mask: Any = None


class ResponseCreate(BaseModel):
    """POST /v1/responses. Unknown fields (instructions, reasoning, ...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    input: str | list[dict[str, Any]] = Field(json_schema_extra={"minLength": 1})
    tools: list[dict[str, Any]] = Field(default_factory=list)
    previous_response_id: str | None = Field(default=None, max_length=80)
    stream: bool = False
    background: bool = False

    def prompt(self) -> str:
        """The text of the input: the string, or the input_text parts of its messages."""
        if isinstance(self.input, str):
            return self.input[:MAX_PROMPT_CHARS]
        texts = []
        for item in self.input:
            content = item.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                parts = [p for p in content if isinstance(p, dict)]
                texts += [str(p.get("text", "")) for p in parts if p.get("type") == "input_text"]
        return " ".join(t for t in texts if t)[:MAX_PROMPT_CHARS]
