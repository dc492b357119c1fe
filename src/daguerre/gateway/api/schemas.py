"""Request and response bodies. ``...Create`` comes in, ``...Public`` goes out.

Field checks that need no settings live here, so FastAPI reports them (as a 400 that
names the field, see errors.py); checks against the model catalog live in jobs.py.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.json_schema import JsonDict

MAX_PROMPT_CHARS = 32_000
MAX_IMAGES = 10
JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# What ``size`` may look like; which sizes a model serves is checked against the
# catalog (gateway/services/catalog_checks.py), with an error that lists them. The
# pattern is in the schema (json_schema_extra) so that /openapi.json says it; the check
# stays ours.
SIZE_PATTERN = r"^(auto|\d{1,5}x\d{1,5})$"
_SIZE_SCHEMA: JsonDict = {"pattern": SIZE_PATTERN}
# The prompt's bounds, for /openapi.json; the validators below check them with
# messages that say what to fix.
_PROMPT_SCHEMA: JsonDict = {"minLength": 1, "maxLength": MAX_PROMPT_CHARS}

Quality = Literal["auto", "low", "medium", "high", "standard", "hd"]
# OpenAI parameters no Daguerre model can honour: refused with a 400 that names them and
# says why, rather than ignored (docs/api.md has the table of every parameter).
UNSUPPORTED = {
    "complexity": "no model here plans separately from rendering; use 'quality'",
    "frame_count": "animated (GIF) output is not made here",
    "frame_duration_ms": "animated (GIF) output is not made here",
    "svg": "SVG output is not made here",
    "markup": "guide an edit with a 'mask' instead",
}


class RenderParams(BaseModel):
    """What to draw: shared by the OpenAI endpoint and the native job API."""

    # Unknown fields are accepted and ignored, as are the OpenAI ones that do not apply
    # (moderation, style): clients written for OpenAI keep working.
    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(json_schema_extra=_PROMPT_SCHEMA)
    model: str | None = Field(default=None, description="Default: the served model.")
    n: int = Field(default=1, ge=1, le=MAX_IMAGES)
    size: str = Field(
        default="auto",
        description='"auto" or "WIDTHxHEIGHT", e.g. "512x512".',
        json_schema_extra=_SIZE_SCHEMA,
    )
    output_format: Literal["png", "jpeg", "webp"] = "png"
    output_compression: int | None = Field(
        default=None, ge=0, le=100, description="JPEG and WebP quality. Default: 100."
    )
    quality: Quality | None = None
    background: Literal["auto", "opaque", "transparent"] | None = Field(
        default=None,
        description='"transparent": the background has alpha 0 (png and webp). Default: opaque.',
    )
    moderation: Literal["auto", "low"] | None = Field(
        default=None,
        description='"low" relaxes prompt moderation where the tier allows it. Default: auto.',
    )
    style: str | None = Field(default=None, description="Legacy (DALL-E 3); no effect.")
    user: str | None = None
    safety_identifier: str | None = Field(
        default=None, description="Accepted; the account is what moderation tracks."
    )
    complexity: Any = Field(default=None, description="Refused: see UNSUPPORTED.")
    frame_count: Any = Field(default=None, description="Refused: see UNSUPPORTED.")
    frame_duration_ms: Any = Field(default=None, description="Refused: see UNSUPPORTED.")
    svg: Any = Field(default=None, description="Refused: see UNSUPPORTED.")
    markup: Any = Field(default=None, description="Refused: see UNSUPPORTED.")

    @field_validator(*UNSUPPORTED, mode="before")
    @classmethod
    def _unsupported(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        if value is not None:
            raise ValueError(f"'{name}' is not supported: {UNSUPPORTED.get(name, '')}")
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt_fits(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the prompt is empty; describe the image to draw")
        if len(value) > MAX_PROMPT_CHARS:
            raise ValueError(
                f"the prompt has {len(value)} characters; the limit is {MAX_PROMPT_CHARS}"
            )
        return value


class ImageGenerateCreate(RenderParams):
    """POST /v1/images/generations, as in OpenAI's Images API."""

    response_format: Literal["b64_json", "url"] = "b64_json"
    stream: bool | None = None
    partial_images: int | None = Field(default=None, ge=0, le=3)


class ImageEditCreate(ImageGenerateCreate):
    """The text fields of POST /v1/images/edits (multipart); the images come as files."""

    input_fidelity: Literal["high", "low"] | None = Field(
        default=None,
        description="Accepted: the built-in model keeps what an edit does not change exactly.",
    )


class ImageReference(BaseModel):
    """An image in a JSON edit body: a data URL (``data:image/png;base64,...``), or the
    id of an uploaded file."""

    model_config = ConfigDict(extra="forbid")

    image_url: str | None = Field(default=None, description="A data URL.")
    file_id: str | None = None


class ImageEditJSON(ImageEditCreate):
    """POST /v1/images/edits as JSON (OpenAI's other form of it): the images by
    reference instead of as files."""

    images: list[ImageReference] = Field(min_length=1)
    mask: ImageReference | None = None


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    title: str | None = Field(default=None, max_length=200)


class ConversationUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    title: str = Field(max_length=200)


class TurnCreate(BaseModel):
    """A prompt in a conversation. ``edit`` reworks the image of the previous turn (or
    of ``from_turn``, to branch from an earlier image); ``new`` draws from scratch;
    ``auto`` edits when there is a previous image."""

    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(max_length=MAX_PROMPT_CHARS, json_schema_extra={"minLength": 1})
    mode: Literal["auto", "new", "edit"] = "auto"
    from_turn: int | None = Field(default=None, ge=1, description="Turn number (1 = first).")
    model: str | None = None
    size: str = Field(
        default="auto",
        description="For new images; an edit keeps its source's size.",
        json_schema_extra=_SIZE_SCHEMA,
    )
    output_format: Literal["png", "jpeg", "webp"] = "png"

    @field_validator("prompt")
    @classmethod
    def _prompt_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the prompt is empty; describe the image to draw or the change")
        return value


class JobCreate(RenderParams):
    """POST /v1/jobs: the native, asynchronous API."""

    id: str | None = Field(
        default=None,
        pattern=JOB_ID_PATTERN,
        description="Your own id for the job: submitting it again returns the same job.",
    )
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    steps: int | None = Field(default=None, ge=1, le=1000)
    webhook_url: str | None = Field(
        default=None,
        max_length=2000,
        pattern=r"^https?://",
        description=(
            "POSTed the job once it is final, signed with your account's webhook secret "
            "(Daguerre-Signature; see GET /v1/webhooks/secret). It must reach the public "
            "internet: loopback, private and link-local addresses are refused."
        ),
    )


class ErrorDetail(BaseModel):
    message: str = Field(description="What went wrong and what to fix.")
    type: str = Field(description='"invalid_request_error" or "server_error".')
    param: str | None = Field(default=None, description="The field at fault, if one is.")
    code: str = Field(description="A stable code to switch on, e.g. invalid_value.")


class ErrorResponse(BaseModel):
    """Every error answer, in OpenAI's shape (gateway/api/errors.py)."""

    error: ErrorDetail


# One wording for the field wherever an image is described.
REVISED_PROMPT = (
    "The prompt as the model understood it: the built-in model's reading of the prompt "
    "or edit instruction. Absent (null) where the model gives none."
)


class ImageData(BaseModel):
    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = Field(default=None, description=REVISED_PROMPT)


class InputTokensDetails(BaseModel):
    text_tokens: int
    image_tokens: int = 0


class OutputTokensDetails(BaseModel):
    image_tokens: int
    text_tokens: int = 0


class Usage(BaseModel):
    total_tokens: int
    input_tokens: int
    output_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens_details: OutputTokensDetails


class ImagesPublic(BaseModel):
    created: int
    data: list[ImageData]
    usage: Usage
    background: str | None = None
    output_format: str
    quality: str | None = None
    size: str


class ImagePublic(BaseModel):
    id: str
    url: str
    media_type: str
    width: int
    height: int
    revised_prompt: str | None = Field(default=None, description=REVISED_PROMPT)


class JobPublic(BaseModel):
    id: str
    object: Literal["job"] = "job"
    status: str
    created_at: int
    model: str
    prompt: str
    n: int
    size: str
    output_format: str
    queue_position: int | None = Field(
        default=None, description="Queued jobs ahead of this one in its pool."
    )
    estimated_wait_s: float | None = Field(
        default=None,
        description="Rough time until this job starts: the backlog ahead of it over the "
        "pool's measured throughput.",
    )
    step: int
    total_steps: int | None = None
    resumed_from_step: int | None = None
    attempts: int
    preemptions: int = Field(
        default=0,
        description="Times the render paused (at a step boundary, losing nothing) to let "
        "higher-priority work through.",
    )
    error: str | None = None
    error_code: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    images: list[ImagePublic] = Field(default_factory=list)
    events_url: str
    tier: str | None = Field(default=None, description="The plan the job was admitted under.")
    degraded: bool = Field(
        default=False, description="Rendered with the plan's reduced settings (a busy pool)."
    )
    expired_at: float | None = Field(
        default=None,
        description="When the job's images were deleted, at the end of the time its plan "
        "keeps them (their URLs then answer 410). None: still kept.",
    )


class ModelPublic(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "daguerre"
    sizes: list[str]
    alias_of: str | None = Field(
        default=None, description="For another name of a model: the model it stands for."
    )


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelPublic]


class TurnImage(BaseModel):
    id: str
    url: str
    width: int
    height: int
    revised_prompt: str | None = Field(default=None, description=REVISED_PROMPT)


class TurnPublic(BaseModel):
    id: str
    object: Literal["conversation.turn"] = "conversation.turn"
    conversation_id: str
    index: int = Field(description="Turn number, from 1.")
    prompt: str
    mode: Literal["new", "edit"] = Field(description="What the turn did (auto resolved).")
    parent_turn: int | None = Field(default=None, description="The turn whose image it edits.")
    parent_turn_id: str | None = None
    created_at: int
    image: TurnImage | None = Field(default=None, description="Once its job succeeded.")
    job: JobPublic


class ConversationPublic(BaseModel):
    id: str
    object: Literal["conversation"] = "conversation"
    title: str | None = None
    created_at: int
    updated_at: int
    turn_count: int = 0
    turns: list[TurnPublic] | None = Field(default=None, description="On GET of one only.")


class ConversationList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ConversationPublic]


class ImageListed(BaseModel):
    """One of the account's images in ``GET /v1/images``."""

    id: str
    object: Literal["image"] = "image"
    url: str = Field(description="A signed link: it opens the image without a key, for a while.")
    media_type: str
    width: int
    height: int
    created_at: int
    job_id: str = Field(description="The job that made it, by the id its owner knows.")
    prompt: str | None = None
    revised_prompt: str | None = Field(default=None, description=REVISED_PROMPT)
    conversation_id: str | None = Field(
        default=None, description="The conversation whose turn made it, if one did."
    )


class ImageList(BaseModel):
    """A page of images, newest first; pass ``last_id`` as ``after`` for the next."""

    object: Literal["list"] = "list"
    data: list[ImageListed]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool
